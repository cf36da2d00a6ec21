"""Initial/final state continuity and broadcasting of the leading dims."""
import itertools

import pytest
import torch

from multi_lfilter import lfilter_bank, lfilter_bank_with_state

from helpers import MATRIX_BACKENDS, random_filter_bank, to_device


@pytest.mark.parametrize("order", [1, 2, 5])
@pytest.mark.parametrize("chunk_lengths", [(100, 200, 3), (1, 0, 1, 250), (2, 2, 2, 2)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_chunks_with_state_equal_whole_signal(order, chunk_lengths, dtype, rng, backend, device):
    a, b = to_device(device, *random_filter_bank(order, n_filters=4, rng=rng))
    waveform = torch.from_numpy(rng.normal(size=(3, 1, sum(chunk_lengths)))).to(device, dtype)
    zi = torch.from_numpy(rng.normal(size=(3, 4, order))).to(device, dtype)
    whole, zf_whole = lfilter_bank_with_state(
        waveform, a_coeffs=a.to(dtype), b_coeffs=b.to(dtype), zi=zi, backend=backend
    )

    pieces, state = [], zi
    for chunk in waveform.split(list(chunk_lengths), dim=-1):
        y, state = lfilter_bank_with_state(
            chunk, a_coeffs=a.to(dtype), b_coeffs=b.to(dtype), zi=state, backend=backend
        )
        pieces.append(y)
    # The state passes between chunks rounded to the dtype; in float32 that rounding is
    # amplified by the filter's gain, so compare relative to the signal's scale.
    relative = (1e-10 if backend in MATRIX_BACKENDS else 1e-12) if dtype == torch.float64 else 1e-5
    scale = whole.abs().max().item()
    torch.testing.assert_close(torch.cat(pieces, -1), whole, rtol=0, atol=relative * scale)
    torch.testing.assert_close(state, zf_whole, rtol=0, atol=relative * scale)


def loop_over_batch(waveform, a, b, zi=None, backend="auto"):
    """The broadcast computed the slow way: expand everything, filter item by item."""
    shapes = [waveform.shape[:-1], a.shape[:-1], b.shape[:-1]] + ([zi.shape[:-1]] if zi is not None else [])
    batch = torch.broadcast_shapes(*shapes)
    waveform = waveform.expand(batch + waveform.shape[-1:])
    a = a.expand(batch + a.shape[-1:])
    b = b.expand(batch + b.shape[-1:])
    zi = zi.expand(batch + zi.shape[-1:]) if zi is not None else None
    out = torch.empty(batch + waveform.shape[-1:], dtype=waveform.dtype)
    for index in itertools.product(*[range(n) for n in batch]):
        state = zi[index] if zi is not None else None
        out[index] = lfilter_bank(waveform[index], a_coeffs=a[index], b_coeffs=b[index], zi=state, backend=backend)
    return out


BROADCAST_CASES = {
    "(B,1,T)x(C,K)": ((3, 1, 40), (4, 3), (4, 3), None),
    "(B,C,T)x(C,K)": ((3, 4, 40), (4, 3), (4, 3), None),
    "(C,T)x(B,C,K)": ((4, 40), (3, 4, 3), (3, 4, 3), None),
    "(T,)x(K,)": ((40,), (3,), (3,), None),
    "(B,1,T)x(C,K)+zi(B,C,N)": ((3, 1, 40), (4, 3), (4, 3), (3, 4, 2)),
    "(B,1,T)x(C,K)b(K,)zi(N,)": ((3, 1, 40), (4, 3), (3,), (2,)),
}


@pytest.mark.parametrize("case", list(BROADCAST_CASES), ids=list(BROADCAST_CASES))
def test_broadcasting_equals_loop_over_items(case, rng, backend, device):
    waveform_shape, a_shape, b_shape, zi_shape = BROADCAST_CASES[case]
    a_ref, _ = random_filter_bank(2, n_filters=1, rng=rng)
    a = a_ref[0] + torch.from_numpy(rng.uniform(-0.02, 0.02, size=a_shape))
    b = torch.from_numpy(rng.normal(size=b_shape))
    waveform = torch.from_numpy(rng.normal(size=waveform_shape))
    zi = torch.from_numpy(rng.normal(size=zi_shape)) if zi_shape else None

    x_dev, a_dev, b_dev, zi_dev = to_device(device, waveform, a, b, zi)
    y = lfilter_bank(x_dev, a_coeffs=a_dev, b_coeffs=b_dev, zi=zi_dev, backend=backend).cpu()
    expected = loop_over_batch(waveform, a, b, zi, backend="loop")
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


def test_bank_output_shape_for_the_bank_workload():
    waveform = torch.randn(32, 800)
    a = torch.tensor([1.0, -1.8, 0.9]).repeat(128, 1)
    b = torch.rand(128, 3)
    assert lfilter_bank(waveform.unsqueeze(-2), a_coeffs=a, b_coeffs=b).shape == (32, 128, 800)

