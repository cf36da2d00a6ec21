"""Complex signals and filters: every function against scipy, the dtype rules and
the registry's complex policy (gradients and graphs: ``test_complex_gradients``).

Runs on every backend that declares ``runs_complex`` (the test grows when one gains
it); the others must refuse a complex call by name and be skipped by ``"auto"``.
"""
import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch

from multi_lfilter import (
    filtfilt_bank,
    lfilter,
    freqz_bank,
    lfilter_bank,
    lfilter_bank_with_state,
    lfilter_zi_bank,
    sosfilt_bank,
    sosfilt_bank_with_state,
    sosfilt_zi_bank,
    sosfiltfilt_bank,
)
from multi_lfilter.backends.dispatch import REGISTRY, complex_backends, resolve_backend

from helpers import ORDERS

COMPLEX_BACKENDS = complex_backends()
REAL_ONLY_BACKENDS = [entry.name for entry in REGISTRY if entry.is_available() and not entry.runs_complex]
# Which inputs are complex: the signal, the coefficients, or both.
KINDS = ("complex-signal", "complex-filter", "both")
# Tolerances relative to the reference's peak.
TOLERANCE = {torch.complex128: 1e-12, torch.complex64: 1e-5}


def stable_filter(order, rng, real=False, max_radius=0.99):
    """``(a, b)`` numpy arrays of ``order + 1`` taps, with poles inside ``max_radius``
    (the largest exactly there) at angles spread around the circle: clustered poles make
    a direct form ill-conditioned, and scipy itself then strays from the exact output
    by more than the tolerances. Complex filters have poles anywhere (not in conjugate
    pairs) and a complex ``a0`` that is not 1 (checks the normalisation); real ones
    (``real``) conjugate pairs and a real ``a0``."""
    count = (order + 1) // 2 if real else order
    radii = rng.uniform(0.3, max_radius, size=count)
    radii[0] = max_radius
    turn = np.pi if real else 2 * np.pi
    angles = turn * (np.arange(count) + 0.5 + rng.uniform(-0.25, 0.25, size=count)) / count
    if not real:
        angles = angles + rng.uniform(-np.pi, np.pi)
    poles = radii * np.exp(1j * angles)
    if real:
        poles = np.concatenate([poles[: order // 2], poles[: order // 2].conj(), -radii[-1:] if order % 2 else []])
    scale = rng.uniform(0.5, 2.0) * (1 if real else np.exp(1j * rng.uniform(-np.pi, np.pi)))
    noise = rng.normal(size=order + 1) + (0 if real else 1j * rng.normal(size=order + 1))
    a = np.poly(poles) * scale
    return (a.real if real else a), noise * scale


def complex_stable_filter(order, rng, max_radius=0.99):
    return stable_filter(order, rng, False, max_radius)


def bank(kind, order, n_filters, rng):
    """``(a, b)`` numpy ``(n_filters, order + 1)``: complex unless the kind's signal
    alone is complex."""
    pairs = [stable_filter(order, rng, kind == "complex-signal") for _ in range(n_filters)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def signal(kind, shape, rng):
    values = rng.normal(size=shape)
    if kind != "complex-filter":
        values = values + 1j * rng.normal(size=shape)
    return values


def as_tensor(values, dtype):
    """A numpy array as a tensor of ``dtype``'s precision, complex only where it is."""
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    if tensor.is_complex():
        return tensor.to(dtype)
    return tensor.to(torch.float64 if dtype == torch.complex128 else torch.float32)


def exact(tensor):
    """A tensor back in numpy, at double precision (what the reference filters)."""
    return tensor.detach().to(torch.complex128 if tensor.is_complex() else torch.float64).numpy()


def assert_close_to_peak(actual, expected, dtype):
    actual = actual.detach().to(torch.complex128).numpy()
    error = np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-300)
    assert error <= TOLERANCE[dtype], f"error {error:.3g} of the peak, tolerance {TOLERANCE[dtype]}"


def scipy_rows(waveform, a, b, zi):
    """scipy.signal.lfilter per row of ``waveform (B, 1, T)`` through ``(C, K)`` filters
    with ``zi (C, N)`` or ``None``: ``(y, zf)`` ``(B, C, T)``, ``(B, C, N)``."""
    ys, zfs = [], []
    for row in waveform[:, 0]:
        pairs = [
            scipy.signal.lfilter(b[c], a[c], row, zi=None if zi is None else zi[c])
            if zi is not None else (scipy.signal.lfilter(b[c], a[c], row), np.zeros(0))
            for c in range(a.shape[0])
        ]
        ys.append([pair[0] for pair in pairs])
        zfs.append([pair[1] for pair in pairs])
    return np.array(ys), np.array(zfs)


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("with_zi", [False, True], ids=["rest", "zi"])
def test_lfilter_matches_scipy_in_complex128(backend, kind, order, with_zi, rng):
    a, b = bank(kind, order, 3, rng)
    waveform = signal(kind, (2, 1, 300), rng)
    zi = rng.normal(size=(3, order)) + 1j * rng.normal(size=(3, order)) if with_zi else None
    if zi is not None and kind == "complex-signal":
        zi = zi.real  # a complex signal with a real state
    expected_y, expected_zf = scipy_rows(waveform, a, b, zi)
    y, zf = lfilter_bank_with_state(
        as_tensor(waveform, torch.complex128), a_coeffs=as_tensor(a, torch.complex128),
        b_coeffs=as_tensor(b, torch.complex128), zi=None if zi is None else as_tensor(zi, torch.complex128),
        backend=backend,
    )
    assert y.dtype == zf.dtype == torch.complex128
    assert_close_to_peak(y, expected_y, torch.complex128)
    if with_zi:
        assert_close_to_peak(zf, expected_zf, torch.complex128)


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", [1, 2, 4, 8])
def test_lfilter_matches_scipy_in_complex64(backend, kind, order, rng):
    """complex64 inputs (float32 where real): the reference filters the same rounded
    values in double precision."""
    a, b = bank(kind, order, 3, rng)
    waveform = signal(kind, (2, 1, 300), rng)
    zi = rng.normal(size=(3, order)) + 1j * rng.normal(size=(3, order))
    inputs = [as_tensor(value, torch.complex64) for value in (waveform, a, b, zi)]
    expected_y, expected_zf = scipy_rows(*[exact(tensor) for tensor in inputs])
    y, zf = lfilter_bank_with_state(inputs[0], a_coeffs=inputs[1], b_coeffs=inputs[2], zi=inputs[3], backend=backend)
    assert y.dtype == zf.dtype == torch.complex64
    assert_close_to_peak(y, expected_y, torch.complex64)
    assert_close_to_peak(zf, expected_zf, torch.complex64)


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_filters_without_feedback(backend, kind, rng):
    """A one-coefficient ``a`` takes the convolution path (scipy's semantics)."""
    waveform = signal(kind, (2, 50), rng)
    b = rng.normal(size=4) + (1j * rng.normal(size=4) if kind != "complex-signal" else 0)
    a = np.array([2.0 - 0.5j]) if kind != "complex-signal" else np.array([2.0])
    zi = rng.normal(size=3) + 1j * rng.normal(size=3)
    expected_y, expected_zf = scipy.signal.lfilter(b, a, waveform, zi=np.broadcast_to(zi, (2, 3)))
    y, zf = lfilter_bank_with_state(
        as_tensor(waveform, torch.complex128), as_tensor(a, torch.complex128), as_tensor(b, torch.complex128),
        as_tensor(zi, torch.complex128), backend=backend,
    )
    assert_close_to_peak(y, expected_y, torch.complex128)
    assert_close_to_peak(zf, expected_zf, torch.complex128)


def random_sos(kind, sections, rng):
    """``(S, 6)`` stable sections with ``a0 = 1`` (scipy's ``sosfilt`` asks for it),
    complex unless the kind's signal alone is."""
    rows = []
    for _ in range(sections):
        a, b = stable_filter(2, rng, kind == "complex-signal", 0.98)
        row = np.concatenate([b, a]) / a[0]
        row[3] = 1  # exactly: a complex a0 / a0 may round
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sections", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
def test_sosfilt_matches_scipy(backend, kind, sections, dtype, rng):
    sos = as_tensor(random_sos(kind, sections, rng), dtype)
    waveform = as_tensor(signal(kind, (3, 400), rng), dtype)
    zi = as_tensor(rng.normal(size=(sections, 2)) + 1j * rng.normal(size=(sections, 2)), dtype)
    expected_y, expected_zf = scipy.signal.sosfilt(
        exact(sos), exact(waveform), zi=np.broadcast_to(exact(zi)[:, None], (sections, 3, 2))
    )
    y, zf = sosfilt_bank_with_state(waveform, sos, zi, backend=backend)
    assert y.dtype == zf.dtype == dtype
    assert_close_to_peak(y, expected_y, dtype)
    assert_close_to_peak(zf, expected_zf.transpose(1, 0, 2), dtype)
    assert_close_to_peak(sosfilt_bank(waveform, sos, backend=backend), scipy.signal.sosfilt(exact(sos), exact(waveform)), dtype)


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("padtype", ["odd", "even", "constant", None])
def test_filtfilt_and_sosfiltfilt_match_scipy(backend, kind, padtype, rng):
    a, b = bank(kind, 3, 1, rng)
    waveform = signal(kind, (2, 120), rng)
    as_complex = lambda value: as_tensor(value, torch.complex128)  # noqa: E731
    y = filtfilt_bank(as_complex(waveform), as_complex(a[0]), as_complex(b[0]), backend=backend, padtype=padtype)
    assert_close_to_peak(y, scipy.signal.filtfilt(b[0], a[0], waveform, padtype=padtype), torch.complex128)
    sos = random_sos(kind, 2, rng)
    y = sosfiltfilt_bank(as_complex(waveform), as_complex(sos), backend=backend, padtype=padtype)
    assert_close_to_peak(y, scipy.signal.sosfiltfilt(sos, waveform, padtype=padtype), torch.complex128)


def gustafsson_reference(b, a, x, irlen=None):
    """scipy's ``_filtfilt_gust`` (1.17) for one signal, in complex arithmetic throughout.

    scipy allocates its observability and system matrices as real arrays, so for
    complex coefficients it drops their imaginary parts (with a ``ComplexWarning``);
    with real coefficients this is scipy's computation exactly.
    """
    order = max(len(a), len(b)) - 1
    length = x.shape[-1]
    rows = length if irlen is None or length <= 2 * irlen else irlen
    dtype = np.result_type(a, b, x, float)
    observability = np.zeros((rows, order), dtype)
    unit = np.zeros(order, dtype)
    unit[0] = 1
    observability[:, 0] = scipy.signal.lfilter(b, a, np.zeros(rows), zi=unit)[0]
    for k in range(1, order):
        observability[k:, k] = observability[:-k, 0]
    reversed_observability = observability[::-1]
    filtered = scipy.signal.lfilter(b, a, observability[::-1], axis=0)
    filtered_reversed = filtered[::-1]
    if rows == length:
        system = np.hstack((filtered_reversed - observability, reversed_observability - filtered))
        correction = np.hstack((filtered_reversed, reversed_observability))
    else:
        system = np.zeros((2 * rows, 2 * order), dtype)
        system[:rows, :order] = filtered_reversed - observability
        system[rows:, order:] = reversed_observability - filtered
        correction = np.zeros((2 * rows, 2 * order), dtype)
        correction[:rows, :order] = filtered_reversed
        correction[rows:, order:] = reversed_observability
    forward_backward = scipy.signal.lfilter(b, a, scipy.signal.lfilter(b, a, x)[::-1])[::-1]
    backward_forward = scipy.signal.lfilter(b, a, scipy.signal.lfilter(b, a, x[::-1])[::-1])
    difference = backward_forward - forward_backward
    if rows != length:
        difference = np.concatenate((difference[:rows], difference[-rows:]))
    adjustment = correction @ scipy.linalg.lstsq(system, difference)[0]
    result = forward_backward.astype(np.result_type(forward_backward, adjustment))
    if rows == length:
        return result + adjustment
    result[:rows] += adjustment[:rows]
    result[-rows:] += adjustment[-rows:]
    return result


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("irlen", [None, 25])
def test_filtfilt_gust(backend, kind, irlen, rng):
    """Against scipy where it computes in complex (a complex signal through real
    filters), else against scipy's algorithm run in complex arithmetic."""
    a, b = bank(kind, 2, 1, rng)
    a, b = a[0], b[0]
    waveform = signal(kind, 100, rng)
    if kind == "complex-signal":
        expected = scipy.signal.filtfilt(b, a, waveform, method="gust", irlen=irlen)
        assert_close_to_peak(torch.from_numpy(gustafsson_reference(b, a, waveform, irlen)), expected, torch.complex128)
    else:
        expected = gustafsson_reference(b, a, waveform, irlen)
    as_complex = lambda value: as_tensor(value, torch.complex128)  # noqa: E731
    y = filtfilt_bank(as_complex(waveform), as_complex(a), as_complex(b), backend=backend, method="gust", irlen=irlen)
    assert_close_to_peak(y, expected, torch.complex128)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
def test_steady_states_and_responses_match_scipy(order, dtype, rng):
    a, b = complex_stable_filter(order, rng)
    a_coeffs, b_coeffs = as_tensor(a, dtype), as_tensor(b, dtype)
    zi = lfilter_zi_bank(a_coeffs=a_coeffs, b_coeffs=b_coeffs)
    assert zi.dtype == dtype
    assert_close_to_peak(zi, scipy.signal.lfilter_zi(exact(b_coeffs), exact(a_coeffs)), dtype)
    freqs, response = freqz_bank(a_coeffs=a_coeffs, b_coeffs=b_coeffs, n_freqs=256)
    expected_freqs, expected_response = scipy.signal.freqz(exact(b_coeffs), exact(a_coeffs), worN=256)
    assert not freqs.is_complex() and response.dtype == dtype
    np.testing.assert_allclose(freqs.numpy(), expected_freqs, rtol=TOLERANCE[dtype])
    assert_close_to_peak(response, expected_response, dtype)
    # A real numerator with a complex denominator promotes too.
    real_b = torch.from_numpy(b.real).to(freqs.dtype)
    zi = lfilter_zi_bank(a_coeffs=a_coeffs, b_coeffs=real_b)
    assert zi.dtype == dtype
    assert_close_to_peak(zi, scipy.signal.lfilter_zi(exact(real_b), exact(a_coeffs)), dtype)


@pytest.mark.parametrize("sections", [1, 2, 3, 4])
def test_sosfilt_zi_matches_scipy(sections, rng):
    sos = random_sos("both", sections, rng)
    assert_close_to_peak(sosfilt_zi_bank(torch.from_numpy(sos)), scipy.signal.sosfilt_zi(sos), torch.complex128)


# The dtype rules.


@pytest.mark.parametrize(
    "waveform_dtype, coefficient_dtype, expected",
    [
        (torch.float32, torch.complex64, torch.complex64),
        (torch.complex64, torch.float32, torch.complex64),
        (torch.complex64, torch.complex64, torch.complex64),
        (torch.float64, torch.complex128, torch.complex128),
        (torch.complex128, torch.float64, torch.complex128),
    ],
    ids=str,
)
def test_the_result_is_complex_where_any_input_is(waveform_dtype, coefficient_dtype, expected):
    waveform = torch.randn(2, 30).to(waveform_dtype)
    a = torch.tensor([1.0, -0.5]).to(coefficient_dtype)
    b = torch.tensor([0.5, 0.1]).to(coefficient_dtype)
    y, zf = lfilter_bank_with_state(waveform, a, b)
    assert y.dtype == zf.dtype == expected
    assert sosfilt_bank(waveform, torch.cat([b, torch.zeros(1).to(b.dtype), a, torch.zeros(1).to(a.dtype)])[None]).dtype == expected
    assert filtfilt_bank(waveform, a, b).dtype == expected
    # A real signal and real filters with a complex state: complex too.
    zi = torch.ones(1, dtype=expected)
    assert lfilter_bank(waveform.real if waveform.is_complex() else waveform, a.real if a.is_complex() else a,
                        b.real if b.is_complex() else b, zi).dtype == expected


def test_mixed_precision_is_still_refused_naming_every_dtype():
    message = (
        r"expected one precision for all inputs \(float32 with complex64, float64 with complex128\), "
        r"got waveform torch.float32, a_coeffs torch.complex128, b_coeffs torch.float32"
    )
    with pytest.raises(TypeError, match=message):
        lfilter_bank(torch.randn(2, 10), torch.tensor([1.0, -0.5], dtype=torch.complex128), torch.tensor([1.0]))
    with pytest.raises(TypeError, match=r"zi torch.complex64"):
        lfilter_bank(torch.randn(2, 10).double(), torch.tensor([1.0, -0.5]).double(), torch.tensor([1.0]).double(),
                     torch.zeros(1, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"expected one precision for all inputs"):
        sosfilt_bank(torch.randn(2, 10).double(), torch.tensor([[1.0, 0, 0, 1, -0.5, 0]], dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"expected one precision for all inputs"):
        freqz_bank(a_coeffs=torch.tensor([1.0, -0.5], dtype=torch.complex64), b_coeffs=torch.tensor([1.0]).double())


def test_half_precision_waveforms_refuse_complex_coefficients():
    with pytest.raises(TypeError, match=r"expected real a_coeffs, b_coeffs and zi with a float16 or bfloat16 waveform"):
        lfilter_bank(torch.randn(2, 10).half(), torch.tensor([1.0, -0.5], dtype=torch.complex64), torch.tensor([1.0]))
    with pytest.raises(TypeError, match=r"convert the waveform with .float\(\) or .double\(\) for a complex result"):
        sosfilt_bank(torch.randn(2, 10).bfloat16(), torch.tensor([[1.0, 0, 0, 1, -0.5, 0]], dtype=torch.complex64))


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_complex_half_is_refused():
    with pytest.raises(TypeError, match=r"expected waveform to be float32 or float64, got torch.complex32"):
        lfilter_bank(torch.randn(2, 10).to(torch.complex32), torch.tensor([1.0, -0.5]), torch.tensor([1.0]))


# The registry's complex policy.


def test_block_and_loop_declare_complex():
    assert {"block", "loop"} <= set(COMPLEX_BACKENDS)


def test_auto_picks_a_backend_that_runs_complex():
    waveform = torch.zeros(3, 100, dtype=torch.complex64)
    assert resolve_backend("auto", waveform, order=2, batch_ndim=1) in COMPLEX_BACKENDS
    # A real waveform through complex coefficients: the call's result dtype decides.
    chosen = resolve_backend("auto", torch.zeros(3, 100), order=2, batch_ndim=1, dtype=torch.complex64)
    assert chosen in COMPLEX_BACKENDS


def test_auto_runs_complex_calls_that_a_real_only_backend_would_take(rng):
    """A CPU problem within the native kernels' limits: real calls take them, complex
    ones another backend, with the same result as that backend named."""
    waveform = torch.from_numpy(signal("both", (2, 1, 200), rng))
    a, b = (torch.from_numpy(values) for values in bank("both", 2, 4, rng))
    expected = lfilter_bank(waveform, a, b, backend=resolve_backend("auto", waveform, 2, 2))
    torch.testing.assert_close(lfilter_bank(waveform, a, b), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", REAL_ONLY_BACKENDS)
def test_a_real_only_backend_named_for_a_complex_call_refuses(name):
    message = (
        rf"expected a real call for the {name} backend, which runs float32 and float64 only, got a "
        rf"torch.complex64 call; complex calls run on \[.*'block'.*\]"
    )
    a = torch.tensor([1.0, -0.5])
    with pytest.raises(ValueError, match=message):  # a complex signal through real filters
        lfilter_bank(torch.randn(2, 10, dtype=torch.complex64), a, torch.tensor([1.0]), backend=name)
    with pytest.raises(ValueError, match=message):  # a real signal through complex filters
        lfilter_bank(torch.randn(2, 10), a.to(torch.complex64), torch.tensor([1.0]), backend=name)
    with pytest.raises(ValueError, match=message):
        sosfilt_bank(torch.randn(2, 10), torch.tensor([[1.0, 0, 0, 1, -0.5j, 0]], dtype=torch.complex64), backend=name)


def test_the_torchaudio_drop_in_filters_complex_without_clamping(rng):
    waveform = torch.from_numpy(signal("both", (2, 50), rng))
    a, b = (torch.from_numpy(values) for values in bank("both", 2, 2, rng))
    with pytest.raises(ValueError, match=r"expected clamp=False for complex inputs .*, got clamp=True"):
        lfilter(waveform, a, b)
    torch.testing.assert_close(lfilter(waveform, a, b, clamp=False, batching=False), lfilter_bank(waveform.unsqueeze(-2), a, b))
