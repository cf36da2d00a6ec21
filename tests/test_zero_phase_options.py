"""filtfilt_bank and sosfiltfilt_bank with scipy's options (padtype, padlen, method="gust",
irlen), against scipy.signal.filtfilt/sosfiltfilt in float64, row by row."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter import design, filtfilt_bank, sosfiltfilt_bank

from helpers import ORDERS, random_filter_bank

PADTYPES = ["odd", "even", "constant", None]
LAYOUTS = ["bank", "per-channel"]


def scipy_rows(function, waveform, coefficients, coefficient_dims, **options):
    """``function(coefficients..., x, **options)`` (scipy's argument order) over the
    broadcast batch of ``waveform`` and ``coefficients`` (each with ``coefficient_dims``
    trailing dims of its own)."""
    arrays = [c.detach().double().numpy() for c in coefficients]
    x = waveform.detach().double().numpy()
    batch = np.broadcast_shapes(x.shape[:-1], *[c.shape[: c.ndim - coefficient_dims] for c in arrays])
    x = np.broadcast_to(x, batch + x.shape[-1:])
    arrays = [np.broadcast_to(c, batch + c.shape[c.ndim - coefficient_dims :]) for c in arrays]
    y = np.zeros(batch + x.shape[-1:])
    for index in np.ndindex(*batch):
        y[index] = function(*[np.array(c[index]) for c in arrays], np.array(x[index]), **options)
    return torch.from_numpy(y)


def scipy_filtfilt(waveform, a_coeffs, b_coeffs, **options):
    return scipy_rows(scipy.signal.filtfilt, waveform, [b_coeffs, a_coeffs], 1, **options)


def scipy_sosfiltfilt(waveform, sos, **options):
    normalised = sos / sos[..., 3:4]  # scipy wants a0 = 1
    return scipy_rows(lambda s, x, **kw: scipy.signal.sosfiltfilt(s, x, **kw), waveform, [normalised], 2, **options)


def assert_close_to(result, expected, relative):
    """Within ``relative`` of the reference's scale (at least 1)."""
    assert result.shape == expected.shape
    scale = max(expected.abs().max().item() if expected.numel() else 0.0, 1.0)
    torch.testing.assert_close(result.double(), expected, rtol=0, atol=relative * scale)


def bank_case(order, layout, rng, length=120, max_radius=0.95):
    """A bank of 3 stable filters and a waveform: ``(2, 1, T)`` through every filter, or
    ``(2, 3, T)`` one filter per channel."""
    a, b = random_filter_bank(order, n_filters=3, rng=rng, max_radius=max_radius)
    channels = 1 if layout == "bank" else 3
    waveform = torch.from_numpy(rng.normal(size=(2, channels, length)))
    return waveform, a, b


# Padding ---------------------------------------------------------------------------


def layout_of(order):
    """Odd orders run the bank layout, even orders one filter per channel."""
    return LAYOUTS[(order + 1) % 2]


@pytest.mark.parametrize("padlen", [None, 0, 1, 40], ids=lambda p: f"padlen={p}")
@pytest.mark.parametrize("padtype", PADTYPES, ids=lambda p: f"padtype={p}")
@pytest.mark.parametrize("order", ORDERS)
def test_filtfilt_padding_matches_scipy(order, padtype, padlen, rng):
    waveform, a, b = bank_case(order, layout_of(order), rng)
    result = filtfilt_bank(waveform, a, b, padtype=padtype, padlen=padlen)
    assert result.shape == (2, 3, 120)
    assert_close_to(result, scipy_filtfilt(waveform, a, b, padtype=padtype, padlen=padlen), 1e-10)


def test_filtfilt_takes_the_longest_padding_scipy_allows(rng):
    waveform, a, b = bank_case(3, "bank", rng, length=30)
    for padtype in ["odd", "even", "constant"]:
        result = filtfilt_bank(waveform, a, b, padtype=padtype, padlen=29)
        assert_close_to(result, scipy_filtfilt(waveform, a, b, padtype=padtype, padlen=29), 1e-10)


def test_padtype_none_ignores_padlen_as_scipy_does(rng):
    waveform, a, b = bank_case(2, "bank", rng, length=20)
    expected = filtfilt_bank(waveform, a, b, padlen=0)
    torch.testing.assert_close(filtfilt_bank(waveform, a, b, padtype=None, padlen=500), expected, rtol=0, atol=0)
    sos = torch.from_numpy(scipy.signal.butter(4, 0.2, output="sos"))
    torch.testing.assert_close(
        sosfiltfilt_bank(waveform, sos, 500, padtype=None), sosfiltfilt_bank(waveform, sos, 0), rtol=0, atol=0
    )


def butter_bank(order):
    """``(3, S, 6)``: scipy's Butterworth low-passes of one order at three cut-offs (one
    number of first-order sections, so one default padding)."""
    return torch.from_numpy(np.stack([scipy.signal.butter(order, cutoff, output="sos") for cutoff in (0.1, 0.25, 0.4)]))


@pytest.mark.parametrize("padlen", [None, 0, 40], ids=lambda p: f"padlen={p}")
@pytest.mark.parametrize("padtype", PADTYPES, ids=lambda p: f"padtype={p}")
@pytest.mark.parametrize("order", ORDERS)
def test_sosfiltfilt_padding_matches_scipy(order, padtype, padlen, rng):
    sos = butter_bank(order)
    sos[..., 3:] *= 2.0  # a0 != 1
    waveform = torch.from_numpy(rng.normal(size=(2, 1 if layout_of(order) == "bank" else 3, 120)))
    result = sosfiltfilt_bank(waveform, sos, padlen, padtype=padtype)
    assert result.shape == (2, 3, 120)
    assert_close_to(result, scipy_sosfiltfilt(waveform, sos, padtype=padtype, padlen=padlen), 1e-10)


# Gustafsson's method ---------------------------------------------------------------


def ellip_case():
    """scipy's test_filtfilt_gust filter, and its impulse response length (to 1e-10)."""
    z, p, k = scipy.signal.ellip(3, 0.01, 120, 0.0875, output="zpk")
    b, a = scipy.signal.zpk2tf(z, p, k)
    impulse_length = int(np.ceil(np.log(1e-10) / np.log(np.max(np.abs(p)))))
    return torch.from_numpy(a), torch.from_numpy(b), impulse_length


@pytest.mark.parametrize("with_irlen", [False, True], ids=["whole", "irlen"])
@pytest.mark.parametrize("times", [5, 2], ids=["5-irlen", "under-2-irlen"])
def test_gust_matches_scipy_on_its_own_case(with_irlen, times, rng):
    a, b, impulse_length = ellip_case()
    length = times * impulse_length - (50 if times == 2 else 0)  # scipy's lengths
    irlen = impulse_length if with_irlen else None
    waveform = torch.from_numpy(rng.normal(size=(2, 2, length)))
    result = filtfilt_bank(waveform, a, b, method="gust", irlen=irlen)
    assert_close_to(result, scipy_filtfilt(waveform, a, b, method="gust", irlen=irlen), 1e-10)


@pytest.mark.parametrize("irlen", [None, 10], ids=lambda i: f"irlen={i}")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("order", ORDERS)
def test_gust_matches_scipy_for_random_banks(order, layout, irlen, rng):
    waveform, a, b = bank_case(order, layout, rng, length=60, max_radius=0.9)
    result = filtfilt_bank(waveform, a, b, method="gust", irlen=irlen)
    assert result.shape == (2, 3, 60)
    assert_close_to(result, scipy_filtfilt(waveform, a, b, method="gust", irlen=irlen), 1e-10)


@pytest.mark.parametrize(
    "design_filter",
    [lambda: scipy.signal.butter(4, 0.125), lambda: scipy.signal.ellip(4, 0.01, 120, 0.125), lambda: scipy.signal.cheby1(5, 1.0, 0.3, "highpass")],
    ids=["butter4", "ellip4", "cheby1-5"],
)
def test_gust_matches_scipy_for_designed_filters(design_filter, rng):
    b, a = (torch.from_numpy(c) for c in design_filter())
    waveform = torch.from_numpy(rng.standard_normal(size=(3, 200)) ** 3 + 3 * rng.standard_normal(size=(3, 200)).cumsum(-1))
    assert_close_to(filtfilt_bank(waveform, a, b, method="gust"), scipy_filtfilt(waveform, a, b, method="gust"), 1e-10)


@pytest.mark.parametrize("length", [0, 1, 2, 5, 7])
def test_gust_on_signals_shorter_than_its_unknowns_is_scipys_minimum_norm_answer(length, rng):
    b, a = (torch.from_numpy(c) for c in scipy.signal.butter(3, 0.2))  # 6 unknowns
    waveform = torch.from_numpy(rng.normal(size=(2, length)))
    assert_close_to(filtfilt_bank(waveform, a, b, method="gust"), scipy_filtfilt(waveform, a, b, method="gust"), 1e-10)


def test_gust_by_hand_and_for_gains():
    """scipy's test_gust_simple (solved by hand) and test_gust_scalars."""
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    y = filtfilt_bank(x, torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64), method="gust")
    z1, z2 = 0.3 * x[0] + 0.2 * x[1], 0.2 * x[0] + 0.3 * x[1]
    expected = torch.stack([z1 + 0.25 * z2 + 0.25 * x[0] + 0.125 * x[1], 0.25 * z1 + z2 + 0.125 * x[0] + 0.25 * x[1]])
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-14)
    x = torch.arange(12.0, dtype=torch.float64)
    gain = filtfilt_bank(x, torch.tensor([2.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64), method="gust")
    torch.testing.assert_close(gain, 2.25 * x, rtol=0, atol=1e-13)


def test_gust_where_zeros_cancel_the_poles_has_scipys_answer():
    """``b == a``: every initial state makes forward-backward equal backward-forward, so
    the system is zero and scipy's least squares returns the minimum-norm states, zero."""
    coefficients = torch.tensor([1.0, -0.6, 0.3], dtype=torch.float64)
    x = torch.arange(12.0, dtype=torch.float64)
    result = filtfilt_bank(x, coefficients, coefficients, method="gust")
    torch.testing.assert_close(result, x, rtol=0, atol=1e-12)
    assert_close_to(result, scipy_filtfilt(x, coefficients, coefficients, method="gust"), 1e-10)


def test_gust_with_an_irlen_beyond_half_the_signal_is_the_whole_fit(rng):
    waveform, a, b = bank_case(3, "bank", rng, length=40, max_radius=0.9)
    whole = filtfilt_bank(waveform, a, b, method="gust")
    torch.testing.assert_close(filtfilt_bank(waveform, a, b, method="gust", irlen=20), whole, rtol=0, atol=0)


def test_gust_ignores_padtype_and_padlen_as_scipy_does(rng):
    waveform, a, b = bank_case(2, "bank", rng, length=30)
    expected = filtfilt_bank(waveform, a, b, method="gust")
    ignored = filtfilt_bank(waveform, a, b, method="gust", padtype="reflect", padlen=-5)
    torch.testing.assert_close(ignored, expected, rtol=0, atol=0)


def test_one_signal_through_a_bank(rng):
    """A ``(T,)`` waveform through a ``(C, K)`` bank gives ``(C, T)``."""
    a, b = random_filter_bank(3, n_filters=2, rng=rng, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=50))
    for options in [{"method": "gust"}, {"method": "gust", "irlen": 8}, {"padtype": "constant"}]:
        result = filtfilt_bank(waveform, a, b, **options)
        assert result.shape == (2, 50)
        assert_close_to(result, scipy_filtfilt(waveform, a, b, **options), 1e-10)


def test_per_example_banks_broadcast(rng):
    """``(B, 1, T)`` through per-example banks ``(B, C, K)``: each row its own filters."""
    a, b = random_filter_bank(2, n_filters=6, rng=rng, max_radius=0.9)
    a, b = a.reshape(2, 3, 3), b.reshape(2, 3, 3)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 50)))
    for options in [{"method": "gust"}, {"method": "gust", "irlen": 8}, {"padtype": "even", "padlen": 12}]:
        result = filtfilt_bank(waveform, a, b, **options)
        assert result.shape == (2, 3, 50)
        assert_close_to(result, scipy_filtfilt(waveform, a, b, **options), 1e-10)


# float32, gradients, graphs ------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"method": "gust"}, {"method": "gust", "irlen": 30}, {"padtype": "even"}, {"padtype": "constant", "padlen": 50}],
    ids=["gust", "gust-irlen", "even", "constant"],
)
def test_float32_follows_float64(options, rng):
    waveform, a, b = bank_case(4, "bank", rng, length=200, max_radius=0.9)
    expected = scipy_filtfilt(waveform, a, b, **options)
    result = filtfilt_bank(waveform.float(), a.float(), b.float(), **options)
    assert result.dtype == torch.float32
    # float32 rounding of the signal and of the gust system's pseudo-inverse.
    assert_close_to(result, expected, 2e-4)


def test_sosfiltfilt_float32_follows_float64(rng):
    sos = butter_bank(4)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 200)))
    result = sosfiltfilt_bank(waveform.float(), sos.float(), 30, padtype="even")
    assert result.dtype == torch.float32
    assert_close_to(result, scipy_sosfiltfilt(waveform, sos, padtype="even", padlen=30), 1e-5)


@pytest.mark.parametrize(
    "options",
    [{"method": "gust"}, {"method": "gust", "irlen": 3}, {"padtype": "even", "padlen": 4}],
    ids=["gust", "gust-irlen", "even"],
)
def test_filtfilt_gradcheck_and_gradgradcheck(options, rng):
    waveform, a, b = bank_case(2, "bank", rng, length=8, max_radius=0.8)
    inputs = (waveform[:1].clone().requires_grad_(True), a[:1].clone().requires_grad_(True), b[:1].clone().requires_grad_(True))

    def run(x, a, b):
        return filtfilt_bank(x, a, b, **options)

    assert gradcheck(run, inputs)
    assert gradgradcheck(run, inputs)


def test_sosfiltfilt_gradcheck_and_gradgradcheck(rng):
    sos = butter_bank(2)[:2].clone().requires_grad_(True)
    waveform = torch.from_numpy(rng.normal(size=(1, 1, 9))).requires_grad_(True)

    def run(x, s):
        return sosfiltfilt_bank(x, s, 4, padtype="constant")

    assert gradcheck(run, (waveform, sos))
    assert gradgradcheck(run, (waveform, sos))


def scripted(function):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        return torch.jit.script(function)


def test_the_options_script_and_match_eager(rng):
    """Without the profiling executor's optimisation, which takes seconds per inlined
    filter call (test_cascades runs a scripted default call with it)."""
    waveform, a, b = bank_case(3, "bank", rng, length=80)
    with torch.jit.optimized_execution(False):
        check_the_scripted_options(waveform, a, b)


def check_the_scripted_options(waveform, a, b):
    filtfilt = scripted(filtfilt_bank)
    for options in [{"method": "gust"}, {"method": "gust", "irlen": 20}, {"padtype": "even", "padlen": 10}, {"padtype": None}]:
        torch.testing.assert_close(filtfilt(waveform, a, b, **options), filtfilt_bank(waveform, a, b, **options))
    sos = butter_bank(3)
    sosfiltfilt = scripted(sosfiltfilt_bank)
    torch.testing.assert_close(sosfiltfilt(waveform, sos, padtype="constant"), sosfiltfilt_bank(waveform, sos, padtype="constant"))
    with pytest.raises(torch.jit.Error, match=r"expected padtype to be 'odd', 'even', 'constant' or None, got 'reflect'"):
        filtfilt(waveform, a, b, padtype="reflect")
    with pytest.raises(torch.jit.Error, match=r"expected irlen >= 1 or None, got 0"):
        filtfilt(waveform, a, b, method="gust", irlen=0)


def test_the_options_compile_into_one_graph(rng):
    waveform, a, b = bank_case(3, "bank", rng, length=80)
    sos = butter_bank(3)

    def zero_phase(x, a, b, sos):
        return (
            filtfilt_bank(x, a, b, method="gust", irlen=20),
            filtfilt_bank(x, a, b, padtype="constant", padlen=10),
            sosfiltfilt_bank(x, sos, 12, padtype="even"),
        )

    torch._dynamo.reset()
    compiled = torch.compile(zero_phase, fullgraph=True, backend="eager")
    for result, expected in zip(compiled(waveform, a, b, sos), zero_phase(waveform, a, b, sos)):
        torch.testing.assert_close(result, expected)


@pytest.mark.slow
def test_the_options_export_with_dynamic_batch_and_length():
    """Slow: exporting the gust method's eight filter calls takes about half a minute."""
    a = torch.tensor([[1.0, -1.6, 0.8], [1.0, -0.5, 0.1]])
    b = torch.tensor([[0.2, 0.1, 0.05], [0.3, 0.0, -0.3]])

    class Model(torch.nn.Module):
        def forward(self, waveform):
            bank_input = waveform.unsqueeze(-2)
            gust = filtfilt_bank(bank_input, a, b, method="gust", irlen=20)
            return gust + filtfilt_bank(bank_input, a, b, padtype="even", padlen=20)

    # With irlen, the lengths must all be above 2 * irlen (one branch of scipy's rule).
    dims = {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=41, max=2**20)}}
    program = torch.export.export(Model(), (torch.randn(3, 100),), dynamic_shapes=dims)
    for waveform in [torch.randn(2, 300), torch.randn(4, 41)]:
        torch.testing.assert_close(program.module()(waveform), Model()(waveform), rtol=1e-5, atol=1e-6)


# Errors ---------------------------------------------------------------------------------

X = torch.randn(3, 1, 20)
A = torch.tensor([1.0, -0.5, 0.2])
B = torch.tensor([0.5, 0.1, 0.0])
SOS = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]])

ERRORS = [
    ("filtfilt_bank(x, a, b, padtype='reflect')", lambda: filtfilt_bank(X, A, B, padtype="reflect"),
     ValueError, r"expected padtype to be 'odd', 'even', 'constant' or None, got 'reflect'"),
    ("filtfilt_bank(x, a, b, padtype=3)", lambda: filtfilt_bank(X, A, B, padtype=3),
     TypeError, r"expected padtype to be a str or None, got int"),
    ("filtfilt_bank(x, a, b, padlen=-1)", lambda: filtfilt_bank(X, A, B, padlen=-1),
     ValueError, r"expected padlen >= 0, got -1"),
    ("filtfilt_bank(x, a, b, padlen=20)", lambda: filtfilt_bank(X, A, B, padlen=20),
     ValueError, r"expected a waveform longer than the padding of 20 samples \(padlen\), got 20 samples"),
    ("filtfilt_bank(x, a, b, padlen=2.5)", lambda: filtfilt_bank(X, A, B, padlen=2.5),
     TypeError, r"expected padlen to be an int or None, got float"),
    ("filtfilt_bank(x, a, b, method='foo')", lambda: filtfilt_bank(X, A, B, method="foo"),
     ValueError, r"expected method to be 'pad' or 'gust', got 'foo'"),
    ("filtfilt_bank(x, a, b, method='gust', irlen=0)", lambda: filtfilt_bank(X, A, B, method="gust", irlen=0),
     ValueError, r"expected irlen >= 1 or None, got 0"),
    ("filtfilt_bank(x, a, b, method='gust', irlen=True)", lambda: filtfilt_bank(X, A, B, method="gust", irlen=True),
     TypeError, r"expected irlen to be an int or None, got bool"),
    ("filtfilt_bank(x, a, b, 'auto', 'even')", lambda: filtfilt_bank(X, A, B, "auto", "even"),
     TypeError, r"takes from 3 to 4 positional arguments but 5 were given"),
    ("sosfiltfilt_bank(x, sos, padtype='reflect')", lambda: sosfiltfilt_bank(X, SOS, padtype="reflect"),
     ValueError, r"expected padtype to be 'odd', 'even', 'constant' or None, got 'reflect'"),
    ("sosfiltfilt_bank(x, sos, 20, padtype='even')", lambda: sosfiltfilt_bank(X, SOS, 20, padtype="even"),
     ValueError, r"expected a waveform longer than the padding of 20 samples \(padlen\), got 20 samples"),
    ("sosfiltfilt_bank(x, sos, padlen=-1)", lambda: sosfiltfilt_bank(X, SOS, padlen=-1),
     ValueError, r"expected padlen >= 0, got -1"),
]


@pytest.mark.parametrize("text, call, error, message", ERRORS, ids=[row[0] for row in ERRORS])
def test_bad_options_raise_errors_that_name_them(text, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_default_paddings_say_where_they_come_from():
    with pytest.raises(ValueError, match=r"padding of 9 samples \(padlen, by default 3 \* max\(Ka, Kb\)\), got 9 samples"):
        filtfilt_bank(torch.zeros(9), A, B)
    sos = torch.from_numpy(scipy.signal.butter(3, 0.2, output="sos"))
    with pytest.raises(ValueError, match=r"padding of 12 samples \(padlen, by default 3 \* \(2 S \+ 1 - min"):
        sosfiltfilt_bank(torch.zeros(12, dtype=torch.float64), sos, padtype="even")


def test_the_docs_list_the_option_errors():
    """docs/errors.rst has a table of these calls, kept current like tests/test_errors.py's."""
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - Call", "     - Raises", "     - Message"]
    for text, call, _, _ in ERRORS:
        try:
            call()
        except (TypeError, ValueError) as error:
            lines += [f"   * - ``{text}``", f"     - ``{type(error).__name__}``", f"     - {error}"]
    table = "\n".join(lines) + "\n"
    docs = (Path(__file__).resolve().parent.parent / "docs" / "errors.rst").read_text()
    assert table in docs, "docs/errors.rst is out of date; its zero-phase table should read:\n\n" + table


def test_butter_sos_designs_go_through_every_padtype(rng):
    """The library's own designs (sections grouped differently from scipy's) give
    scipy's zero-phase result for every padtype."""
    sos = design.butter_sos(4, torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=torch.float64), "bandpass")
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 150)))
    for padtype in PADTYPES:
        assert_close_to(sosfiltfilt_bank(waveform, sos, 30, padtype=padtype), scipy_sosfiltfilt(waveform, sos, padtype=padtype, padlen=30), 1e-10)
