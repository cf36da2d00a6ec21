"""Empty inputs on every backend: no signals, no filters, no samples.

Each case runs forwards and backwards through ``lfilter_bank_with_state`` and
``sosfilt_bank_with_state`` and is compared with the loop backend: the outputs and
gradients have the shapes and dtypes of a non-empty call, every gradient is zeros but
``zi``'s for ``T = 0``, and for ``T = 0`` the final state is ``zi`` unchanged (zeros
without one).
"""
import pytest
import torch

import multi_lfilter
from multi_lfilter.backends import triton as triton_backend

# Every backend that runs CPU tensors here (Triton only in its interpreter).
CPU_BACKENDS = [
    name for name in multi_lfilter.available_backends() if name != "triton" or triton_backend.interpreting()
]
N_SECTIONS = 2
# name: (waveform shape, number of filters); 300 samples are several blocks of every
# block algorithm (the chunks and the scan over them run).
EMPTY_CASES = {
    "no-signals": ((0, 1, 300), 4),
    "no-filters": ((2, 1, 300), 0),
    "no-samples": ((2, 1, 0), 4),
}
# None, a state per signal and filter, or one per signal shared by the filters (broadcast).
STATES = [None, "per-filter", "shared"]


def _problem(case, dtype, state, cascade):
    """``(waveform, coefficients, zi)``: ``coefficients`` is ``(a, b)`` of ``(C, 3)``
    biquads, or ``(sos,)`` of ``(C, S, 6)`` cascades; random and stable."""
    waveform_shape, n_filters = EMPTY_CASES[case]
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(waveform_shape, generator=generator, dtype=dtype)
    sections = [N_SECTIONS] if cascade else []
    feedback = 0.3 * torch.rand([n_filters] + sections + [2], generator=generator, dtype=dtype) - 0.15
    a_coeffs = torch.cat([torch.ones([n_filters] + sections + [1], dtype=dtype), feedback], -1)
    b_coeffs = torch.randn([n_filters] + sections + [3], generator=generator, dtype=dtype)
    coefficients = (torch.cat([b_coeffs, a_coeffs], -1),) if cascade else (a_coeffs, b_coeffs)
    zi = None
    if state is not None:
        filters = n_filters if state == "per-filter" else 1
        zi = torch.randn([waveform_shape[0], filters] + sections + [2], generator=generator, dtype=dtype)
    return waveform, coefficients, zi


def _run(backend, cascade, waveform, coefficients, zi):
    if cascade:
        return multi_lfilter.sosfilt_bank_with_state(waveform, *coefficients, zi=zi, backend=backend)
    return multi_lfilter.lfilter_bank_with_state(waveform, *coefficients, zi=zi, backend=backend)


def _weights(y, zf):
    """The loss's weights of ``y`` and ``zf``: ``zi``'s gradient for ``T = 0`` is the
    second, summed to ``zi``'s shape."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(y.shape, generator=generator, dtype=y.dtype), torch.randn(zf.shape, generator=generator, dtype=zf.dtype)


def _gradients(backend, cascade, waveform, coefficients, zi):
    """``(zf's weights, the gradients of every input, the inputs)``."""
    inputs = [tensor.clone().requires_grad_() for tensor in (waveform, *coefficients)]
    if zi is not None:
        inputs.append(zi.clone().requires_grad_())
    y, zf = _run(backend, cascade, inputs[0], inputs[1 : 1 + len(coefficients)], inputs[-1] if zi is not None else None)
    y_weights, zf_weights = _weights(y, zf)
    loss = (y * y_weights).sum() + (zf * zf_weights).sum()
    return zf_weights, torch.autograd.grad(loss, inputs), inputs


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", list(EMPTY_CASES))
@pytest.mark.parametrize("state", STATES, ids=str)
@pytest.mark.parametrize("cascade", [False, True], ids=["lfilter", "sosfilt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_empty_forward_matches_the_loop(backend, case, state, cascade, dtype):
    waveform, coefficients, zi = _problem(case, dtype, state, cascade)
    y, zf = _run(backend, cascade, waveform, coefficients, zi)
    expected_y, expected_zf = _run("loop", cascade, waveform, coefficients, zi)
    assert y.dtype == zf.dtype == dtype
    torch.testing.assert_close(y, expected_y, rtol=0, atol=0)
    torch.testing.assert_close(zf, expected_zf, rtol=0, atol=0)
    if case == "no-samples":  # the state passes through
        expected_state = zi.expand_as(zf) if zi is not None else torch.zeros_like(zf)
        torch.testing.assert_close(zf, expected_state, rtol=0, atol=0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", list(EMPTY_CASES))
@pytest.mark.parametrize("state", STATES, ids=str)
@pytest.mark.parametrize("cascade", [False, True], ids=["lfilter", "sosfilt"])
def test_empty_backward_matches_the_loop(backend, case, state, cascade):
    waveform, coefficients, zi = _problem(case, torch.float64, state, cascade)
    zf_weights, gradients, inputs = _gradients(backend, cascade, waveform, coefficients, zi)
    _, expected, _ = _gradients("loop", cascade, waveform, coefficients, zi)
    for tensor, gradient, expected_gradient in zip(inputs, gradients, expected):
        assert gradient.shape == tensor.shape and gradient.dtype == tensor.dtype
        torch.testing.assert_close(gradient, expected_gradient, rtol=0, atol=0)
    if case == "no-samples" and zi is not None:  # zi reaches the loss through zf alone
        torch.testing.assert_close(gradients[-1], zf_weights.sum_to_size(zi.shape), rtol=0, atol=0)
        gradients = gradients[:-1]
    for gradient in gradients:
        assert torch.count_nonzero(gradient) == 0
