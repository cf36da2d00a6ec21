"""Complex calls under autograd and in graphs: gradients follow PyTorch's convention
for complex autograd (``gradcheck`` and ``gradgradcheck`` check it: the backward is
the product with the conjugate Jacobian), forward mode and ``vmap`` work,
``torch.compile`` and TorchScript run complex calls, ``torch.export`` refuses them.

The problems and the backends that run complex calls are ``test_complex``'s.
"""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter import filtfilt_bank, freqz_bank, lfilter_bank, lfilter_bank_with_state, lfilter_zi_bank, sosfilt_bank_with_state

from test_complex import COMPLEX_BACKENDS, KINDS, bank, complex_stable_filter, random_sos, signal


def tiny_problem(kind, rng, order=2):
    """Two filters of ``order`` over one signal of 8 samples: gradgradcheck perturbs the
    real and imaginary part of every input and output value."""
    a, b = bank(kind, order, 2, rng)
    waveform = torch.from_numpy(signal(kind, (1, 1, 8), rng)).requires_grad_()
    zi = torch.from_numpy(rng.normal(size=(2, order)) + 1j * rng.normal(size=(2, order))).requires_grad_()
    a = torch.from_numpy(a).requires_grad_()
    b = torch.from_numpy(b).requires_grad_()
    return waveform, a, b, zi


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_lfilter_gradcheck_and_gradgradcheck(backend, kind, rng):
    inputs = tiny_problem(kind, rng)

    def run(waveform, a, b, zi):
        return lfilter_bank_with_state(waveform, a, b, zi, backend=backend)

    assert gradcheck(run, inputs)
    assert gradgradcheck(run, inputs)


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("wanted", ["waveform", "a", "b", "zi"])
def test_each_input_alone_gets_its_gradient(backend, wanted, rng):
    inputs = list(tiny_problem("both", rng))
    index = ["waveform", "a", "b", "zi"].index(wanted)
    inputs = [tensor if i == index else tensor.detach() for i, tensor in enumerate(inputs)]

    def run(value):
        arguments = list(inputs)
        arguments[index] = value
        return lfilter_bank_with_state(*arguments, backend=backend)

    assert gradcheck(run, (inputs[index],))
    assert gradgradcheck(run, (inputs[index],))


def test_gradient_convention_on_a_one_tap_filter():
    """``y = c x``: PyTorch's backward gives ``conj(c) g`` for ``x`` and ``conj(x) g`` for ``c``."""
    waveform = torch.tensor([[1.0 + 2.0j, -0.5j]], requires_grad=True)
    gain = torch.tensor([0.3 - 0.7j], dtype=torch.complex64, requires_grad=True)
    y = lfilter_bank(waveform, torch.tensor([1.0, 0.0], dtype=torch.complex64), torch.cat([gain, torch.zeros(1)]))
    upstream = torch.tensor([[1.0 - 1.0j, 2.0 + 0.5j]])
    grad_waveform, grad_gain = torch.autograd.grad(y, [waveform, gain], upstream)
    torch.testing.assert_close(grad_waveform, gain.detach().conj() * upstream)
    torch.testing.assert_close(grad_gain, (waveform.detach().conj() * upstream).sum(-1))


@pytest.mark.parametrize("backend", COMPLEX_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sections", [1, 2])
def test_sosfilt_gradcheck_and_gradgradcheck(backend, kind, sections, rng):
    """Two sections run the fused cascades (and their adjoints) where a backend has them."""
    sos = torch.from_numpy(random_sos(kind, sections, rng)).requires_grad_()
    waveform = torch.from_numpy(signal(kind, 8, rng)).requires_grad_()
    zi = torch.from_numpy(rng.normal(size=(sections, 2)) + 0.5j).requires_grad_()

    def run(waveform, sos, zi):
        return sosfilt_bank_with_state(waveform, sos, zi, backend=backend)

    assert gradcheck(run, (waveform, sos, zi))
    # Double backward recomputes the sections through the filter (checked in full above).
    assert gradgradcheck(run, (waveform, sos, zi), fast_mode=True)


@pytest.mark.parametrize("method", ["pad", "gust"])
def test_filtfilt_gradcheck(method, rng):
    a, b = (torch.from_numpy(values[0]).requires_grad_() for values in bank("both", 2, 1, rng))
    waveform = torch.from_numpy(signal("complex-filter", 20, rng)).requires_grad_()

    def run(waveform, a, b):
        return filtfilt_bank(waveform, a, b, method=method)

    assert gradcheck(run, (waveform, a, b))


def test_steady_state_and_response_gradcheck(rng):
    a, b = (torch.from_numpy(values).requires_grad_() for values in complex_stable_filter(3, rng))
    assert gradcheck(lambda a, b: lfilter_zi_bank(a_coeffs=a, b_coeffs=b), (a, b))
    assert gradcheck(lambda a, b: freqz_bank(a_coeffs=a, b_coeffs=b, n_freqs=8)[1], (a, b))


def test_forward_mode_and_vmap(rng):
    """The tangent is the Jacobian's product (no conjugate: forward mode is holomorphic)."""
    waveform = torch.from_numpy(signal("both", (2, 1, 20), rng))
    a, b = (torch.from_numpy(values) for values in bank("both", 2, 2, rng))
    tangents = [torch.randn_like(tensor) for tensor in (waveform, a, b)]
    _, tangent = torch.func.jvp(lfilter_bank, (waveform, a, b), tuple(tangents))
    step = 1e-6
    plus = lfilter_bank(*[value + step * t for value, t in zip((waveform, a, b), tangents)])
    minus = lfilter_bank(*[value - step * t for value, t in zip((waveform, a, b), tangents)])
    torch.testing.assert_close(tangent, (plus - minus) / (2 * step), rtol=1e-6, atol=1e-6)
    mapped = torch.func.vmap(lambda row: lfilter_bank(row, a, b))(waveform)
    torch.testing.assert_close(mapped, lfilter_bank(waveform, a, b), rtol=0, atol=0)


def test_torch_compile_fullgraph_matches_eager(rng):
    waveform = torch.from_numpy(signal("complex-filter", (2, 1, 64), rng)).float()
    a, b = (torch.from_numpy(values).to(torch.complex64) for values in bank("both", 2, 3, rng))

    def loss(waveform, a, b):
        y = lfilter_bank(waveform, a, b)
        return (y * y.conj()).real.sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True)
    results = []
    for function in (loss, compiled):
        leaves = [tensor.clone().requires_grad_(True) for tensor in (waveform, a, b)]
        value = function(*leaves)
        results.append((value, torch.autograd.grad(value, leaves)))
    (eager_value, eager_grads), (compiled_value, compiled_grads) = results
    torch.testing.assert_close(compiled_value, eager_value)
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(compiled_grad, eager_grad)


class _ComplexBank(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([[1.0, -0.9j], [1.0, 0.5 + 0.5j]], dtype=torch.complex64))
        self.b = torch.nn.Parameter(torch.tensor([[0.1, 0.0], [0.5, 0.0]], dtype=torch.complex64))

    def forward(self, waveform):
        return lfilter_bank(waveform.unsqueeze(-2), self.a, self.b)


def test_torch_export_refuses_complex_calls_naming_onnx():
    with pytest.raises(TypeError, match=r"expected real inputs under torch.export, got a torch.complex64 call: ONNX has no complex type"):
        torch.export.export(_ComplexBank(), (torch.randn(2, 100),))


def test_torchscript_runs_complex_calls_on_the_complex_backends(rng):
    scripted = torch.jit.script(lfilter_bank_with_state)
    waveform = torch.from_numpy(signal("both", (2, 1, 200), rng))
    a, b = (torch.from_numpy(values) for values in bank("both", 3, 2, rng))
    for backend in ("auto", "loop", "block"):
        y, zf = scripted(waveform, a, b, None, backend)
        expected_y, expected_zf = lfilter_bank_with_state(waveform, a, b, backend="loop")
        torch.testing.assert_close(y, expected_y, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(zf, expected_zf, rtol=1e-12, atol=1e-12)
