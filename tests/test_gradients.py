"""Analytic adjoint: gradcheck and gradgradcheck in float64 for every input subset."""
import itertools

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter import lfilter_bank_with_state

from helpers import random_filter_bank

INPUT_NAMES = ("waveform", "a_coeffs", "b_coeffs", "zi")
SUBSETS = [
    subset
    for size in range(1, 5)
    for subset in itertools.combinations(INPUT_NAMES, size)
]

# (waveform shape, number of filters / coefficient leading shape, zi shape, order)
SHAPES = {
    "bank(B,1,T)x(C,K)": ((2, 1, 7), (3,), (2, 3), 2),
    "per-channel(B,C,T)x(C,K)": ((2, 3, 6), (3,), (3,), 2),
    "per-example(C,T)x(B,C,K)": ((3, 5), (2, 3), (3,), 1),
    "shorter-than-order": ((2, 1, 2), (3,), (2, 3), 3),
}


def make_inputs(shape_name, rng):
    waveform_shape, coeff_lead, zi_lead, order = SHAPES[shape_name]
    n_filters = 1
    for size in coeff_lead:
        n_filters *= size
    a, b = random_filter_bank(order, n_filters, rng, max_radius=0.9)
    a = a.reshape(*coeff_lead, order + 1)
    b = b.reshape(*coeff_lead, order + 1)
    waveform = torch.from_numpy(rng.normal(size=waveform_shape))
    zi = torch.from_numpy(rng.normal(size=(*zi_lead, order)))
    return {"waveform": waveform, "a_coeffs": a, "b_coeffs": b, "zi": zi}


# Every subset of inputs on the bank layout, and every layout with every input: which
# gradients are asked for and how they are summed over broadcast dims are separate
# concerns (the full product of the two took a third of the suite's time).
CASES = [("bank(B,1,T)x(C,K)", subset) for subset in SUBSETS]
CASES += [(shape_name, INPUT_NAMES) for shape_name in SHAPES if shape_name != "bank(B,1,T)x(C,K)"]


@pytest.mark.parametrize("shape_name, subset", CASES, ids=[f"{'+'.join(s)}-{shape}" for shape, s in CASES])
def test_gradcheck_and_gradgradcheck(shape_name, subset, rng, backend, device):
    if backend == "export" and len(subset) < len(INPUT_NAMES):
        pytest.skip("the export backend's adjoint is the composite one, whose handling of each subset the "
                    "loop backend's cases check; the export backend is checked with every input")
    inputs = {name: tensor.to(device) for name, tensor in make_inputs(shape_name, rng).items()}
    for name in subset:
        inputs[name].requires_grad_(True)
    ordered = tuple(inputs[name] for name in INPUT_NAMES)

    def filter_all(waveform, a_coeffs, b_coeffs, zi):
        return lfilter_bank_with_state(
            waveform, a_coeffs=a_coeffs, b_coeffs=b_coeffs, zi=zi, backend=backend
        )

    assert gradcheck(filter_all, ordered)
    assert gradgradcheck(filter_all, ordered)


def test_gradcheck_without_initial_state(rng, backend, device):
    inputs = {name: tensor.to(device) for name, tensor in make_inputs("bank(B,1,T)x(C,K)", rng).items()}
    args = [inputs[name].requires_grad_(True) for name in ("waveform", "a_coeffs", "b_coeffs")]
    assert gradcheck(lambda *t: lfilter_bank_with_state(*t, backend=backend), args)
    assert gradgradcheck(lambda *t: lfilter_bank_with_state(*t, backend=backend), args)


def test_float32_gradients_match_float64(rng):
    inputs = make_inputs("bank(B,1,T)x(C,K)", rng)
    gradients = {}
    for dtype in (torch.float32, torch.float64):
        leaves = {name: tensor.to(dtype).requires_grad_(True) for name, tensor in inputs.items()}
        y, zf = lfilter_bank_with_state(**leaves)
        (y.square().sum() + zf.sum()).backward()
        gradients[dtype] = {name: leaf.grad for name, leaf in leaves.items()}
    for name in INPUT_NAMES:
        assert gradients[torch.float32][name].dtype == torch.float32
        torch.testing.assert_close(
            gradients[torch.float32][name].double(), gradients[torch.float64][name], rtol=1e-4, atol=1e-5
        )


def test_gradient_of_a0_follows_the_normalisation(rng):
    """Scaling a and b together leaves y unchanged, so the gradients balance."""
    inputs = make_inputs("per-channel(B,C,T)x(C,K)", rng)
    a = inputs["a_coeffs"].requires_grad_(True)
    b = inputs["b_coeffs"].requires_grad_(True)
    y, _ = lfilter_bank_with_state(inputs["waveform"], a_coeffs=a, b_coeffs=b)
    y.square().sum().backward()
    # d/ds L(s a, s b) at s = 1 is zero: sum(a * grad_a) + sum(b * grad_b) == 0 per filter.
    directional = (a * a.grad).sum(-1) + (b * b.grad).sum(-1)
    torch.testing.assert_close(directional, torch.zeros_like(directional), atol=1e-9, rtol=0)


@pytest.mark.parametrize("create_graph", [False, True], ids=["backward", "create-graph"])
def test_backward_through_an_empty_signal(create_graph, backend, device):
    """With T = 0 the final state is the initial one: its gradient passes straight
    through to zi, and the coefficients get zeros (it used to raise IndexError)."""
    waveform = torch.zeros(2, 1, 0, dtype=torch.float64, device=device, requires_grad=True)
    a = torch.tensor([[1.0, -0.5, 0.2]] * 3, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.tensor([[1.0, 0.5, 0.2]] * 3, dtype=torch.float64, device=device, requires_grad=True)
    zi = torch.randn(2, 3, 2, dtype=torch.float64, device=device, requires_grad=True)
    weights = torch.arange(12.0, dtype=torch.float64, device=device).reshape(2, 3, 2)
    y, zf = lfilter_bank_with_state(waveform, a_coeffs=a, b_coeffs=b, zi=zi, backend=backend)
    gradients = torch.autograd.grad((zf * weights).sum(), (waveform, a, b, zi), create_graph=create_graph)
    assert gradients[0].shape == (2, 1, 0)
    torch.testing.assert_close(gradients[1], torch.zeros_like(a))
    torch.testing.assert_close(gradients[2], torch.zeros_like(b))
    torch.testing.assert_close(gradients[3], weights)


def test_gradcheck_through_a_filter_without_feedback(rng, backend):
    """A one-coefficient ``a`` takes the convolution path; its gradients come from
    autograd through it, a0 included."""
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 7))).requires_grad_(True)
    a = torch.tensor([[1.5], [0.7]], dtype=torch.float64, requires_grad=True)
    b = torch.from_numpy(rng.normal(size=(2, 3))).requires_grad_(True)
    zi = torch.from_numpy(rng.normal(size=(2, 2, 2))).requires_grad_(True)

    def filter_all(waveform, a, b, zi):
        return lfilter_bank_with_state(waveform, a_coeffs=a, b_coeffs=b, zi=zi, backend=backend)

    assert gradcheck(filter_all, (waveform, a, b, zi))
    assert gradgradcheck(filter_all, (waveform, a, b, zi))
