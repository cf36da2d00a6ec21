"""The backend registry (the one dispatch point), the native kernels' limits, and the
fallback without them."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from multi_lfilter import available_backends, lfilter_bank, lfilter_bank_with_state, sosfilt_bank
from multi_lfilter.backends import native, triton as triton_backend
from multi_lfilter.backends.dispatch import REGISTRY, resolve_backend

from helpers import random_filter_bank, scipy_lfilter_rows

needs_native = pytest.mark.skipif(not native.available(), reason="the C kernels are not built here")


def test_available_backends_lists_the_pure_tensor_ones():
    backends = available_backends()
    assert backends[-3:] == ["block", "loop", "export"]
    assert ("native" in backends) == native.available()
    assert ("triton" in backends) == triton_backend.available()


def test_every_registered_backend_declares_what_it_supports():
    names = [backend.name for backend in REGISTRY]
    assert names == ["native", "triton", "block", "loop", "export"]
    by_name = {backend.name: backend for backend in REGISTRY}
    assert [name for name in names if by_name[name].scriptable] == ["native", "block", "loop"]
    assert by_name["native"].devices == ("cpu",)
    assert "cpu" not in (by_name["block"].devices or ())  # None: any device


def test_the_c_kernels_never_see_a_cuda_or_meta_pointer():
    """Whatever is asked, a non-CPU tensor never resolves to the native backend."""
    for device in ("meta",) + (("cuda",) if torch.cuda.is_available() else ()):
        waveform = torch.zeros(3, 10, device=device)
        assert resolve_backend("auto", waveform, order=2, batch_ndim=1) != "native"
        if native.available():
            with pytest.raises(ValueError, match="expected a problem the native backend supports"):
                resolve_backend("native", waveform, order=2, batch_ndim=1)


def test_triton_on_cpu_only_under_the_interpreter(monkeypatch):
    waveform = torch.zeros(3, 10)
    if not triton_backend.available():
        pytest.skip("Triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", waveform, order=2, batch_ndim=1) == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"expected a problem the triton backend supports \(cuda or cpu tensors, order <= 8, at most 4 batch dims\)"):
        resolve_backend("triton", waveform, order=2, batch_ndim=1)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(ValueError, match="order 9"):
        resolve_backend("triton", waveform, order=9, batch_ndim=1)


def test_auto_does_not_pick_triton_until_measured(monkeypatch):
    """The Triton kernels are opt-in until a GPU run has compared them with the block
    algorithm: "auto" passes them over even for a problem they declare they run (here
    with the native kernels out of the way and Triton made to take CPU tensors)."""
    from dataclasses import replace

    from multi_lfilter.backends import dispatch

    runs_anything = replace(dispatch.registered("triton"), is_available=lambda: True, devices=None, extra_support=None)
    monkeypatch.setitem(dispatch._BY_NAME, "triton", runs_anything)
    monkeypatch.setitem(dispatch._BY_NAME, "native", replace(dispatch.registered("native"), is_available=lambda: False))
    waveform = torch.zeros(3, 10)
    assert dispatch.registered("triton").supports(waveform, order=2, batch_ndim=1)
    assert resolve_backend("auto", waveform, order=2, batch_ndim=1) == "block"


@needs_native
def test_auto_picks_native_on_cpu():
    assert resolve_backend("auto", torch.zeros(3, 10), order=2, batch_ndim=1) == "native"


def test_auto_picks_block_where_native_cannot_run():
    assert resolve_backend("auto", torch.zeros(3, 10, device="meta"), order=2, batch_ndim=1) == "block"
    assert resolve_backend("auto", torch.zeros(3, 10), order=2, batch_ndim=native.MAX_DIMS + 1) == "block"
    assert resolve_backend("auto", torch.zeros(3, 10), order=native.max_order() + 1, batch_ndim=1) == "block"


@needs_native
def test_native_for_a_problem_it_cannot_run_is_a_value_error():
    with pytest.raises(ValueError, match=r"expected a problem the native backend supports \(cpu tensors, order <= \d+, at most 8 batch dims\), got cpu tensors of order 40 .* available backends: \[.*'native'.*\]"):
        lfilter_bank(
            torch.zeros(2, 50), a_coeffs=torch.eye(1, 41)[0], b_coeffs=torch.ones(41), backend="native"
        )


def test_high_orders_fall_back_and_stay_exact(rng):
    """Order 40 is past the native limit: "auto" still filters it (block), like scipy."""
    order = max(native.max_order(), 8) + 8
    a = torch.zeros(order + 1, dtype=torch.float64)
    a[0], a[order] = 1.0, -0.5  # poles on a circle of radius 0.5 ** (1 / order)
    b = torch.from_numpy(rng.normal(size=order + 1))
    waveform = torch.from_numpy(rng.normal(size=(2, 300)))
    y = lfilter_bank(waveform, a_coeffs=a, b_coeffs=b)
    y_ref, _ = scipy_lfilter_rows(waveform, a, b)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-9)


def test_more_batch_dims_than_the_native_kernels_take(rng):
    a, b = random_filter_bank(2, n_filters=1, rng=rng, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(1,) * 9 + (2, 40)))
    y = lfilter_bank(waveform, a_coeffs=a[0], b_coeffs=b[0])
    y_ref, _ = scipy_lfilter_rows(waveform, a[0], b[0])
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)


@needs_native
@pytest.mark.parametrize("n_threads", [1, 2])
def test_native_threads_and_waveform_gradient_reduction(n_threads, rng, monkeypatch):
    """Many filters adding into one waveform row, split over threads, sum exactly once.

    Small SAMPLES_PER_THREAD forces threads on a small problem; the rows sharing a
    waveform row straddle the threads' boundaries.
    """
    monkeypatch.setattr(native, "SAMPLES_PER_THREAD", 64)
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        a, b = random_filter_bank(2, n_filters=37, rng=rng, max_radius=0.95)
        waveform = torch.from_numpy(rng.normal(size=(3, 1, 150))).requires_grad_(True)
        weights = torch.from_numpy(rng.normal(size=(3, 37, 150)))
        grads = {}
        for backend in ("native", "loop"):
            a_leaf, b_leaf = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
            y = lfilter_bank(waveform, a_coeffs=a_leaf, b_coeffs=b_leaf, backend=backend)
            grads[backend] = torch.autograd.grad((y * weights).sum(), (waveform, a_leaf, b_leaf))
        for native_grad, loop_grad in zip(grads["native"], grads["loop"]):
            torch.testing.assert_close(native_grad, loop_grad, rtol=1e-10, atol=1e-10)
    finally:
        torch.set_num_threads(previous)


def test_without_the_extension_everything_falls_back(tmp_path):
    """With the kernels unavailable, "auto" runs the block algorithm and results hold."""
    program = textwrap.dedent(
        """
        import numpy as np, scipy.signal, torch
        import multi_lfilter
        backends = multi_lfilter.available_backends()
        assert "native" not in backends and backends[-3:] == ["block", "loop", "export"], backends
        try:
            multi_lfilter.lfilter_bank(torch.zeros(3), torch.ones(1), torch.ones(1), backend="native")
        except ValueError as error:
            assert f"one of {backends}" in str(error), error
        else:
            raise AssertionError("backend='native' did not raise")
        rng = np.random.default_rng(0)
        x = rng.normal(size=500)
        a, b = np.array([1.0, -1.6, 0.8]), np.array([0.2, 0.1, 0.05])
        y = multi_lfilter.lfilter_bank(torch.from_numpy(x), a_coeffs=torch.from_numpy(a), b_coeffs=torch.from_numpy(b))
        assert np.abs(y.numpy() - scipy.signal.lfilter(b, a, x)).max() < 1e-10
        print("fallback-ok")
        """
    )
    environment = dict(os.environ, MULTI_LFILTER_DISABLE_NATIVE="1")
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0, result.stderr
    assert "fallback-ok" in result.stdout


@pytest.mark.parametrize("with_state", [False, True])
def test_gradients_agree_across_backends(with_state, rng):
    a, b = random_filter_bank(3, n_filters=4, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 300)))
    zi = torch.from_numpy(rng.normal(size=(4, 3))) if with_state else None
    weights = torch.from_numpy(rng.normal(size=(2, 4, 300)))
    results = {}
    for backend in available_backends():
        leaves = [t.clone().requires_grad_(True) for t in (waveform, a, b) + ((zi,) if with_state else ())]
        y, zf = lfilter_bank_with_state(*leaves[:3], zi=leaves[3] if with_state else None, backend=backend)
        loss = (y * weights).sum() + zf.square().sum()
        results[backend] = torch.autograd.grad(loss, leaves)
    for backend, gradients in results.items():
        for actual, expected in zip(gradients, results["loop"]):
            torch.testing.assert_close(actual, expected, rtol=1e-8, atol=1e-8, msg=backend)


def _resident_high_water_rise(function):
    """Bytes the resident set's high-water mark rises during ``function()`` (Linux)."""

    def status_kib(field):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field))

    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident set
    before = status_kib("VmRSS:")
    function()
    return (status_kib("VmHWM:") - before) * 1024


@needs_native
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_native_memory_is_the_output_and_nothing_the_size_of_it_besides():
    """No copy of the waveform per filter, no output-sized temporaries in either kernel."""
    waveform = torch.randn(8, 1, 40000)
    a = torch.tensor([1.0, -1.8, 0.9], dtype=torch.float64).repeat(64, 1)
    b = torch.rand(64, 3, dtype=torch.float64)
    output_bytes = 8 * 64 * 40000 * 4
    results = {}

    def forward():
        results["y"], _ = native.forward(waveform, a, b, None)

    assert _resident_high_water_rise(forward) < 1.2 * output_bytes
    upstream = torch.randn(8, 64, 40000)

    def adjoint():
        native.adjoint(upstream, None, waveform, a, b, results["y"], None, (True, True, True, False))

    assert _resident_high_water_rise(adjoint) < 0.2 * output_bytes


@pytest.mark.parametrize("reason, warns", [("not built", True), ("disabled", False)])
def test_a_missing_build_warns_with_the_fix(reason, warns, monkeypatch):
    """Without the op library CPU calls run the block algorithm: where it failed to
    build or load (not where it was disabled on purpose) importing the package says so."""
    import warnings

    from multi_lfilter.backends import dispatch

    monkeypatch.setattr(native, "_WHY_MISSING", reason)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dispatch.warn_if_the_op_library_is_missing()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if warns:
        assert len(messages) == 1, messages
        assert f"the native op library is {reason}" in messages[0]
        assert "Reinstall with a C/C++ compiler" in messages[0]
    else:
        assert messages == []


@needs_native
@pytest.mark.parametrize(
    "waveform_shape, n_filters",
    [((3, 1, 300), 37), ((1, 1, 300), 37), ((3, 37, 300), 37)],
    ids=["bank", "one-shared-row", "per-channel"],
)
def test_native_waveform_gradient_is_the_same_bits_on_any_thread_count(waveform_shape, n_filters, rng, monkeypatch):
    """Each waveform row is summed by one thread, in the same order whatever the split."""
    monkeypatch.setattr(native, "SAMPLES_PER_THREAD", 64)
    a, b = random_filter_bank(2, n_filters=n_filters, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=waveform_shape)).float().requires_grad_(True)
    upstream = torch.from_numpy(rng.normal(size=(waveform_shape[0], n_filters, 300))).float()
    previous = torch.get_num_threads()
    gradients = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            y = lfilter_bank(waveform, a_coeffs=a.float(), b_coeffs=b.float(), backend="native")
            gradients.append(torch.autograd.grad((y * upstream).sum(), waveform)[0])
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(gradients[0], gradients[1])


@needs_native
@pytest.mark.parametrize("waveform_shape", [(3, 1, 300), (3, 37, 300)], ids=["bank", "per-channel"])
def test_native_cascade_gradients_are_the_same_bits_on_any_thread_count(waveform_shape, rng, monkeypatch):
    """The one-pass cascade adjoint splits rows over threads like the filter's."""
    monkeypatch.setattr(native, "SAMPLES_PER_THREAD", 64)
    sections = []
    for _ in range(3):
        a, b = random_filter_bank(2, n_filters=37, rng=rng, max_radius=0.95)
        sections.append(torch.cat([b, a], -1))
    sos = torch.stack(sections, -2).float().requires_grad_(True)  # (37, 3, 6)
    waveform = torch.from_numpy(rng.normal(size=waveform_shape)).float().requires_grad_(True)
    upstream = torch.from_numpy(rng.normal(size=(3, 37, 300))).float()
    previous = torch.get_num_threads()
    gradients = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            y = sosfilt_bank(waveform, sos, backend="native")
            gradients.append(torch.autograd.grad((y * upstream).sum(), (waveform, sos)))
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(gradients[0][0], gradients[1][0]) and torch.equal(gradients[0][1], gradients[1][1])
