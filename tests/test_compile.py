"""torch.compile sees one opaque op for forward and one for backward; opcheck passes."""
import pytest
import torch

from multi_lfilter import available_backends, lfilter_bank_with_state
from multi_lfilter._op import filter_op

from helpers import random_filter_bank


@pytest.mark.parametrize("backend", available_backends())
def test_compiled_forward_and_backward_match_eager(backend, rng):
    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.95)
    inputs = {
        "waveform": torch.from_numpy(rng.normal(size=(2, 1, 200))).float(),
        "a_coeffs": a.float(),
        "b_coeffs": b.float(),
        "zi": torch.from_numpy(rng.normal(size=(3, 2))).float(),
    }

    def loss(waveform, a_coeffs, b_coeffs, zi):
        y, zf = lfilter_bank_with_state(waveform, a_coeffs, b_coeffs, zi, backend=backend)
        return (y * torch.linspace(-1, 1, y.shape[-1])).sum() + zf.square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True)
    results = []
    for function in (loss, compiled):
        leaves = [tensor.clone().requires_grad_(True) for tensor in inputs.values()]
        value = function(*leaves)
        results.append((value, torch.autograd.grad(value, leaves)))
    (eager_value, eager_grads), (compiled_value, compiled_grads) = results
    torch.testing.assert_close(compiled_value, eager_value, rtol=1e-5, atol=1e-4)
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("with_state", [False, True])
def test_opcheck(backend, with_state, rng):
    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.95)
    a = (a / a[:, :1]).requires_grad_(True)
    b = b.requires_grad_(True)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 30))).requires_grad_(True)
    zi = torch.from_numpy(rng.normal(size=(3, 2))).requires_grad_(True) if with_state else None
    torch.library.opcheck(filter_op, (waveform, a, b, zi, backend))


@pytest.mark.parametrize("kind", ["bandpass", "peaking"])
def test_compiled_biquad_bank_trains_like_eager(kind):
    """A Module (design + filter) under torch.compile(fullgraph=True): same loss and gradients."""
    from multi_lfilter import BiquadFilterBank

    torch.manual_seed(0)
    waveform = torch.randn(2, 500)
    gain = 4.0 if kind == "peaking" else 0.0
    results = []
    for compile_it in (False, True):
        bank = BiquadFilterBank(8, 16000, kind=kind, q=2.0, gain_db=gain)
        forward = torch.compile(bank, fullgraph=True) if compile_it else bank
        torch._dynamo.reset()
        loss = forward(waveform).square().mean()
        loss.backward()
        results.append((loss.detach(), [parameter.grad for parameter in bank.parameters()]))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-6)
