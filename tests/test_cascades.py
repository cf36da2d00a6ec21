"""SOS cascades, steady-state initial conditions and zero-phase filtering against scipy."""
import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck, gradgradcheck

import multi_lfilter

from multi_lfilter import filtfilt_bank, lfilter_bank, lfilter_zi_bank, sosfilt_bank, sosfilt_bank_with_state

from helpers import random_filter_bank


def butterworth_sos(order=10, band=(0.05, 0.1)):
    return torch.from_numpy(scipy.signal.butter(order, band, btype="bandpass", output="sos"))


@pytest.mark.parametrize("with_state", [False, True])
def test_sosfilt_matches_scipy(with_state, rng, backend):
    sos = butterworth_sos()  # (10, 6): a 20th-order band-pass
    waveform = torch.from_numpy(rng.normal(size=(3, 2000)))
    zi = torch.from_numpy(rng.normal(size=(3, 10, 2))) if with_state else None
    y, zf = sosfilt_bank_with_state(waveform, sos, zi, backend=backend)
    for row in range(3):
        if with_state:
            y_ref, zf_ref = scipy.signal.sosfilt(sos.numpy(), waveform[row].numpy(), zi=zi[row].numpy())
        else:
            y_ref, zf_ref = scipy.signal.sosfilt(sos.numpy(), waveform[row].numpy(), zi=np.zeros((10, 2)))
        # Random states ring this narrow band-pass up to |y| ~ 1e6: compare relative to it.
        tolerance = 1e-10 * max(np.abs(y_ref).max(), 1.0)
        np.testing.assert_allclose(y[row].numpy(), y_ref, rtol=0, atol=tolerance)
        np.testing.assert_allclose(zf[row].numpy(), zf_ref, rtol=0, atol=tolerance)


def test_sos_stays_accurate_in_float32_where_one_direct_form_does_not(rng):
    """A 10th-order Butterworth band-pass (scipy's design) with float32 coefficients.

    Rounding the sections to float32 moves the response by about 4e-5 of its peak;
    rounding the 20th-order direct form's polynomial puts poles outside the unit
    circle (measured: radius 2.27), and its output blows up.
    """
    sos = butterworth_sos(order=10, band=(0.02, 0.04))
    b, a = scipy.signal.sos2tf(sos.numpy())
    waveform = torch.from_numpy(rng.normal(size=4000)).float()
    exact = scipy.signal.sosfilt(sos.numpy(), waveform.double().numpy())
    rounded = scipy.signal.sosfilt(sos.float().double().numpy(), waveform.double().numpy())
    scale = np.abs(exact).max()

    cascade = sosfilt_bank(waveform, sos.float()).double().numpy()
    assert np.abs(cascade - rounded).max() < 1e-6 * scale  # the arithmetic adds ~nothing
    assert np.abs(cascade - exact).max() < 1e-4 * scale  # coefficient rounding costs 4e-5

    direct = lfilter_bank(waveform, torch.from_numpy(a).float(), torch.from_numpy(b).float()).double().numpy()
    assert not np.abs(direct - exact).max() < scale  # NaN or worse than the signal itself


def test_sos_banks_broadcast(rng):
    sos = butterworth_sos(order=2).expand(4, 2, 6).clone()
    sos[:, :, :3] *= torch.arange(1.0, 5.0, dtype=torch.float64)[:, None, None]
    waveform = torch.from_numpy(rng.normal(size=(3, 1, 100)))
    y = sosfilt_bank(waveform, sos)
    assert y.shape == (3, 4, 100)
    torch.testing.assert_close(y[:, 2], sosfilt_bank(waveform[:, 0], sos[2]), rtol=0, atol=1e-12)


def test_sos_shape_errors():
    with pytest.raises(ValueError, match=r"expected sos of shape \(\.\.\., S, 6\) with S >= 1 sections, got \[2, 5\]"):
        sosfilt_bank(torch.zeros(10), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"expected zi of shape \(\.\.\., 2, 2\) for 2 sections, got \[2, 3\]"):
        sosfilt_bank(torch.zeros(10), torch.ones(2, 6), zi=torch.zeros(2, 3))


@pytest.mark.parametrize("order", [1, 2, 4])
def test_lfilter_zi_matches_scipy(order, rng):
    a, b = random_filter_bank(order, n_filters=3, rng=rng, max_radius=0.95)
    zi = lfilter_zi_bank(a_coeffs=a, b_coeffs=b[:, : order])  # unequal lengths
    for row in range(3):
        np.testing.assert_allclose(zi[row].numpy(), scipy.signal.lfilter_zi(b[row, :order].numpy(), a[row].numpy()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_filtfilt_matches_scipy(order, rng):
    a, b = random_filter_bank(order, n_filters=2, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(3, 1, 300)))
    y = filtfilt_bank(waveform, a, b)
    assert y.shape == (3, 2, 300)
    for row in range(3):
        for c in range(2):
            y_ref = scipy.signal.filtfilt(b[c].numpy(), a[c].numpy(), waveform[row, 0].numpy())
            np.testing.assert_allclose(y[row, c].numpy(), y_ref, rtol=0, atol=1e-10)


def test_filtfilt_rejects_short_signals():
    with pytest.raises(ValueError, match=r"expected a waveform longer than the padding of 9 samples .* got 9 samples"):
        filtfilt_bank(torch.zeros(9), torch.tensor([1.0, -0.5, 0.1]), torch.ones(3))


def test_cascades_are_differentiable(rng):
    sos = butterworth_sos(order=2).clone().requires_grad_(True)
    waveform = torch.from_numpy(rng.normal(size=(2, 30))).requires_grad_(True)
    assert gradcheck(lambda x, s: sosfilt_bank(x, s), (waveform, sos))
    a, b = random_filter_bank(2, n_filters=1, rng=rng, max_radius=0.9)
    a, b = a[0].requires_grad_(True), b[0].requires_grad_(True)
    assert gradcheck(lambda x, a, b: filtfilt_bank(x, a, b), (waveform, a, b))


def test_cascades_script_and_match_eager(rng):
    sos = butterworth_sos(order=2)
    a, b = random_filter_bank(2, n_filters=2, rng=rng, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(3, 1, 200)))
    torch.testing.assert_close(torch.jit.script(sosfilt_bank)(waveform, sos), sosfilt_bank(waveform, sos))
    torch.testing.assert_close(torch.jit.script(filtfilt_bank)(waveform, a, b), filtfilt_bank(waveform, a, b))
    torch.testing.assert_close(torch.jit.script(lfilter_zi_bank)(a_coeffs=a, b_coeffs=b), lfilter_zi_bank(a_coeffs=a, b_coeffs=b))


def cascade_case(rng, n_sections, length, with_state, layout="bank", max_radius=0.97):
    """Stable random sections, a waveform and states."""
    sections = []
    for _ in range(n_sections):
        a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=max_radius)
        sections.append(torch.cat([b, a], -1))
    sos = torch.stack(sections, -2)  # (3, S, 6)
    sos[..., 3:] *= torch.from_numpy(rng.uniform(0.5, 2.0, size=(3, n_sections, 1)))  # a0 != 1
    if layout == "bank":
        waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    elif layout == "per-example":  # every example its own bank of cascades
        waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
        sos = torch.stack([sos, sos.flip(0)])  # (2, 3, S, 6)
    else:  # one cascade per channel, sections shared by the examples
        waveform = torch.from_numpy(rng.normal(size=(2, 3, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, n_sections, 2))) if with_state else None
    return waveform, sos, zi


def scipy_cascade(waveform, sos, zi):
    batch = torch.broadcast_shapes(waveform.shape[:-1], sos.shape[:-2], *([zi.shape[:-2]] if zi is not None else []))
    if waveform.shape[-1] == 0:  # scipy's zf is then zeros; ours is zi (the state passes through)
        states = zi.expand(batch + zi.shape[-2:]) if zi is not None else torch.zeros(batch + sos.shape[-2:-1] + (2,), dtype=sos.dtype)
        return torch.zeros(batch + (0,), dtype=waveform.dtype), states.contiguous()
    x = waveform.expand(batch + waveform.shape[-1:]).numpy().reshape(-1, waveform.shape[-1])
    s = (sos / sos[..., 3:4]).expand(batch + sos.shape[-2:]).numpy().reshape(-1, *sos.shape[-2:])  # scipy wants a0 = 1
    z = zi.expand(batch + zi.shape[-2:]).numpy().reshape(-1, *zi.shape[-2:]) if zi is not None else np.zeros((len(x),) + sos.shape[-2:-1] + (2,))
    outputs = [scipy.signal.sosfilt(s[i], x[i], zi=z[i]) for i in range(len(x))]
    y = np.stack([o[0] for o in outputs]).reshape(batch + waveform.shape[-1:])
    zf = np.stack([o[1] for o in outputs]).reshape(batch + sos.shape[-2:-1] + (2,))
    return torch.from_numpy(y), torch.from_numpy(zf)


@pytest.mark.parametrize("n_sections", [1, 2, 5, 10])
@pytest.mark.parametrize("length", [0, 1, 3, 200])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("layout", ["bank", "per-channel", "per-example"])
def test_one_pass_cascades_match_scipy(n_sections, length, with_state, layout, rng, backend, device):
    waveform, sos, zi = cascade_case(rng, n_sections, length, with_state, layout)
    y_ref, zf_ref = scipy_cascade(waveform, sos, zi)
    y, zf = sosfilt_bank_with_state(*[t.to(device) if t is not None else None for t in (waveform, sos, zi)], backend=backend)
    scale = max(y_ref.abs().max().item() if length else 1.0, 1.0)
    torch.testing.assert_close(y.cpu(), y_ref, rtol=0, atol=1e-10 * scale)
    torch.testing.assert_close(zf.cpu(), zf_ref, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("length", [0, 1, 12])
@pytest.mark.parametrize("layout", ["bank", "per-channel"])
def test_cascade_gradients_gradcheck_and_gradgradcheck(length, layout, rng, backend):
    # Poles well inside the unit circle keep the values small enough for finite differences.
    waveform, sos, zi = cascade_case(rng, 3, length, True, layout, max_radius=0.8)
    inputs = tuple(t.clone().requires_grad_(True) for t in (waveform, sos, zi))

    def run(x, s, z):
        y, zf = sosfilt_bank_with_state(x, s, z, backend=backend)
        return y, zf

    if length == 0:  # nothing to differentiate numerically: the state passes through
        _, zf = run(*inputs)
        grads = torch.autograd.grad(zf.sum(), inputs)
        assert grads[0].shape == waveform.shape and not grads[1].any() and (grads[2] == 1).all()
        return
    assert gradcheck(run, inputs)
    if length > 1:  # fast mode: the second derivatives along random directions
        assert gradgradcheck(run, inputs, fast_mode=True)


def test_the_one_pass_adjoint_matches_the_section_by_section_one(rng):
    """Native kernels (one pass, recomputing) against the loop's composed adjoint."""
    if "native" not in multi_lfilter.available_backends():
        pytest.skip("the C kernels are not built here")
    waveform, sos, zi = cascade_case(rng, 8, 1000, True)
    upstream_y = torch.from_numpy(rng.normal(size=(2, 3, 1000)))
    upstream_zf = torch.from_numpy(rng.normal(size=(2, 3, 8, 2)))
    results = {}
    for backend in ("native", "loop"):
        leaves = [t.clone().requires_grad_(True) for t in (waveform, sos, zi)]
        y, zf = sosfilt_bank_with_state(*leaves, backend=backend)
        results[backend] = torch.autograd.grad((y * upstream_y).sum() + (zf * upstream_zf).sum(), leaves)
    for native_grad, loop_grad in zip(results["native"], results["loop"]):
        torch.testing.assert_close(native_grad, loop_grad, rtol=1e-9, atol=1e-9 * loop_grad.abs().max().item())


def _multi_lfilter_ops(graph) -> list:
    """The ``multi_lfilter::`` operators a traced graph calls, by name."""
    names = []
    for node in graph.nodes:
        name = str(node.target)
        if node.op == "call_function" and name.startswith("multi_lfilter."):
            names.append(name.split(".")[1])
    return names


def test_a_cascade_compiles_to_one_op_each_way(rng):
    """Under torch.compile a cascade of 4 sections is one cascade op forward and one
    adjoint op backward, not a filter op per section."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = {}

    def keep(kind):
        def compiler(graph_module, example_inputs):
            graphs[kind] = graph_module.graph
            return make_boxed_func(graph_module.forward)

        return compiler

    waveform, sos, zi = cascade_case(rng, 4, 100, True)
    sos = sos.clone().requires_grad_(True)
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda x, s, z: sosfilt_bank_with_state(x, s, z)[0].square().sum(),
        fullgraph=True, backend=aot_autograd(fw_compiler=keep("forward"), bw_compiler=keep("backward")),
    )
    loss = compiled(waveform, sos, zi)
    (grad,) = torch.autograd.grad(loss, sos)
    expected_leaf = sos.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(sosfilt_bank_with_state(waveform, expected_leaf, zi)[0].square().sum(), expected_leaf)
    torch.testing.assert_close(grad, expected)
    assert _multi_lfilter_ops(graphs["forward"]) == ["sosfilt"]
    assert _multi_lfilter_ops(graphs["backward"]) == ["sosfilt_adjoint"]


def test_float32_cascades_with_states_are_float64_ones_rounded_once(rng, backend):
    """A float32 waveform, sections, states and output gradients: the forward and the
    gradients match the float64 computation to float32 rounding (the kernels work in
    float64 and must read the widened states, not the float32 ones)."""
    waveform, sos, zi = cascade_case(rng, 4, 300, True, max_radius=0.9)
    upstream_y = torch.from_numpy(rng.normal(size=(2, 3, 300)))
    upstream_zf = torch.from_numpy(rng.normal(size=(2, 3, 4, 2)))
    results = {}
    for dtype in (torch.float64, torch.float32):
        leaves = [t.to(dtype).requires_grad_(True) for t in (waveform, sos, zi)]
        y, zf = sosfilt_bank_with_state(*leaves, backend=backend)
        gradients = torch.autograd.grad((y * upstream_y.to(dtype)).sum() + (zf * upstream_zf.to(dtype)).sum(), leaves)
        results[dtype] = (y, zf) + gradients
    for single, double in zip(results[torch.float32], results[torch.float64]):
        scale = double.abs().max().item()
        torch.testing.assert_close(single.double(), double, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize("name", ["native", "block"])
def test_cascades_run_in_one_pass_not_section_by_section(name, rng, monkeypatch):
    """The native kernels and the block algorithm never run a cascade as S filter calls,
    forward or backward (the block algorithm's is differentiated by autograd)."""
    if name not in multi_lfilter.available_backends():
        pytest.skip(f"{name} is not available here")
    from multi_lfilter.backends import block, native

    module = {"native": native, "block": block}[name]

    def refuse(*args, **kwargs):
        raise AssertionError("a cascade ran section by section")

    waveform, sos, zi = cascade_case(rng, 6, 300, True)
    expected = sosfilt_bank_with_state(waveform, sos, zi, backend="loop")
    loop_leaf = sos.clone().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(sosfilt_bank(waveform, loop_leaf, zi, backend="loop").square().sum(), loop_leaf)
    monkeypatch.setattr(module, "forward", refuse)
    monkeypatch.setattr(module, "adjoint", refuse)
    leaf = sos.clone().requires_grad_(True)
    y, zf = sosfilt_bank_with_state(waveform, leaf, zi, backend=name)
    torch.testing.assert_close(y, expected[0], rtol=0, atol=1e-10 * expected[0].abs().max().item())
    torch.testing.assert_close(zf, expected[1], rtol=0, atol=1e-10 * expected[0].abs().max().item())
    (grad,) = torch.autograd.grad(y.square().sum(), leaf)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-8, atol=1e-8 * expected_grad.abs().max().item())


@pytest.mark.parametrize("order", range(1, 11))
def test_butterworth_cascades_of_every_order_match_scipy(order, rng, backend, device):
    """butter_sos band-passes (N sections) and low-passes (ceil(N / 2), a first-order
    section for odd N) through sosfilt, with states, against scipy's sosfilt."""
    from multi_lfilter.design import butter_sos

    for sos in (butter_sos(order, torch.tensor([0.05, 0.2], dtype=torch.float64), "bandpass"),
                butter_sos(order, torch.tensor(0.3, dtype=torch.float64), "lowpass")):
        waveform = torch.from_numpy(rng.normal(size=(2, 500)))
        zi = torch.from_numpy(rng.normal(size=(2,) + tuple(sos.shape[:-1]) + (2,)))
        y, zf = sosfilt_bank_with_state(waveform.to(device), sos.to(device), zi.to(device), backend=backend)
        for row in range(2):
            y_ref, zf_ref = scipy.signal.sosfilt(sos.numpy(), waveform[row].numpy(), zi=zi[row].numpy())
            scale = max(np.abs(y_ref).max(), 1.0)
            np.testing.assert_allclose(y[row].cpu().numpy(), y_ref, rtol=0, atol=1e-10 * scale)
            np.testing.assert_allclose(zf[row].cpu().numpy(), zf_ref, rtol=0, atol=1e-10 * scale)
