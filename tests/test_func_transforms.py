"""torch.func transforms and forward-mode AD, on every backend: each matches autograd
(itself checked against finite differences in test_gradients.py)."""
import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, vmap

from multi_lfilter import BiquadFilterBank, lfilter_bank, lfilter_bank_with_state

from helpers import random_filter_bank


def problem(rng):
    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 40)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, 2)))
    return waveform, a, b, zi


def loss_of(backend):
    def loss(waveform, a_coeffs, b_coeffs, zi):
        y, zf = lfilter_bank_with_state(waveform, a_coeffs=a_coeffs, b_coeffs=b_coeffs, zi=zi, backend=backend)
        return y.sin().sum() + zf.pow(2).sum()

    return loss


def autograd_gradients(loss, inputs):
    leaves = [tensor.clone().requires_grad_() for tensor in inputs]
    return torch.autograd.grad(loss(*leaves), leaves)


ALL = (0, 1, 2, 3)


@pytest.mark.parametrize("transform", [grad, jacrev, jacfwd], ids=["grad", "jacrev", "jacfwd"])
def test_gradient_transforms_match_autograd(transform, backend, rng):
    inputs = problem(rng)
    loss = loss_of(backend)
    expected = autograd_gradients(loss, inputs)
    result = transform(loss, argnums=ALL)(*inputs)
    for got, want in zip(result, expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_forward_mode_tangents_match_autograd(backend, rng):
    """jvp along a random direction equals the gradient's projection on it; so does
    torch.autograd.forward_ad (dual tensors) outside torch.func."""
    inputs = problem(rng)
    loss = loss_of(backend)
    directions = [torch.from_numpy(rng.normal(size=tensor.shape)) for tensor in inputs]
    directions[1][..., 0] = 0  # a0 is the normaliser: a direction along it is fine, but keep a0 = 1
    expected = sum((g * d).sum() for g, d in zip(autograd_gradients(loss, inputs), directions))
    _, tangent = torch.func.jvp(loss, tuple(inputs), tuple(directions))
    torch.testing.assert_close(tangent, expected, rtol=1e-9, atol=1e-10)
    with torch.autograd.forward_ad.dual_level():
        duals = [torch.autograd.forward_ad.make_dual(t, d) for t, d in zip(inputs, directions)]
        tangent = torch.autograd.forward_ad.unpack_dual(loss(*duals)).tangent
    torch.testing.assert_close(tangent, expected, rtol=1e-9, atol=1e-10)


def test_hessian_is_symmetric_and_matches_double_backward(backend, rng):
    """jacfwd over jacrev (torch.func.hessian) against autograd's double backward."""
    waveform, a, b, zi = problem(rng)

    def loss_of_a(a_coeffs):
        return loss_of(backend)(waveform, a_coeffs, b, zi)

    result = hessian(loss_of_a)(a)
    leaf = a.clone().requires_grad_()
    (first,) = torch.autograd.grad(loss_of_a(leaf), leaf, create_graph=True)
    rows = [torch.autograd.grad(first.flatten()[i], leaf, retain_graph=True)[0] for i in range(first.numel())]
    expected = torch.stack(rows).reshape(a.shape + a.shape)
    torch.testing.assert_close(result, expected, rtol=1e-8, atol=1e-9)
    flat = result.reshape(a.numel(), a.numel())
    torch.testing.assert_close(flat, flat.T, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("mapped", ["waveform", "a_coeffs", "zi", "waveform-dim-2"])
def test_vmap_matches_a_loop(mapped, backend, rng):
    waveform, a, b, zi = problem(rng)
    many = 4
    stacked = {
        "waveform": torch.from_numpy(rng.normal(size=(many,) + tuple(waveform.shape))),
        "a_coeffs": a * torch.linspace(0.9, 1.0, many, dtype=a.dtype)[:, None, None] ** torch.arange(3.0, dtype=a.dtype),
        "zi": torch.from_numpy(rng.normal(size=(many,) + tuple(zi.shape))),
        "waveform-dim-2": torch.from_numpy(rng.normal(size=(2, 1, many, 40))),
    }[mapped]
    name = mapped.split("-")[0]
    in_dims = 2 if mapped == "waveform-dim-2" else 0

    def run(value):
        arguments = {"waveform": waveform, "a_coeffs": a, "b_coeffs": b, "zi": zi, name: value}
        return lfilter_bank_with_state(**arguments, backend=backend)

    y, zf = vmap(run, in_dims=in_dims)(stacked)
    pieces = [run(stacked.select(in_dims, i)) for i in range(many)]
    torch.testing.assert_close(y, torch.stack([p[0] for p in pieces]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(zf, torch.stack([p[1] for p in pieces]), rtol=1e-12, atol=1e-12)


def test_per_example_gradients_of_a_filter_bank_module(rng):
    """The torch.func recipe for per-example gradients (vmap of grad over a batch),
    through a learnable module, against one backward per example."""
    model = BiquadFilterBank(4, 16000).double()
    params = {name: p.detach() for name, p in model.named_parameters()}
    batch = torch.from_numpy(rng.normal(size=(3, 1, 200)))

    def loss(params, waveform):
        return torch.func.functional_call(model, params, (waveform.unsqueeze(0),)).pow(2).mean()

    per_example = vmap(grad(loss), in_dims=(None, 0))(params, batch)
    for i in range(3):
        model.zero_grad()
        model(batch[i : i + 1]).pow(2).mean().backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(per_example[name][i], p.grad, rtol=1e-9, atol=1e-12)


def test_vmap_skips_the_zero_a0_check_instead_of_failing():
    """Under vmap the check cannot read values (as under torch.compile); a valid call runs."""
    a = torch.tensor([[1.0, -0.5], [2.0, -0.5]])
    y = vmap(lambda aa: lfilter_bank(torch.ones(10), aa, torch.tensor([1.0])))(a)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
