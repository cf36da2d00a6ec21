"""The Triton backend's launch arithmetic (``backends/triton/launch.py``), which needs
no GPU and no Triton: grids within CUDA's limits, chunks of time that cover the
signal, and batch strides that read broadcast tensors in place. The kernels' own
64-bit offsets are checked on their compiled code (``test_fake_cuda.py``)."""
import pytest
import torch

from multi_lfilter.backends.triton import launch


@pytest.mark.parametrize("n_chains", [1, 3, 128, 4096, 1 << 16, 1 << 20])
@pytest.mark.parametrize("length", [1, 511, 512, 16000, 33_554_432, 1 << 31, 1 << 40], ids=lambda n: f"T{n}")
def test_chunks_cover_the_signal_within_the_grid_limit(n_chains, length):
    n_chunks, chunk_length = launch.chunking(n_chains, length, 2, 1 << 16, 512, 64)
    assert 1 <= n_chunks <= launch.MAX_GRID_CHUNKS
    assert (n_chunks - 1) * chunk_length < length <= n_chunks * chunk_length  # every chunk holds samples
    if n_chunks > 1:
        assert chunk_length % 64 == 0 and chunk_length >= 512


def test_one_long_chain_gets_no_more_chunks_than_a_grid_holds():
    """A chain of 2**25 samples wants 65,536 chunks of 512 samples; the grid holds 65,535."""
    assert (1 << 25) // 512 == launch.MAX_GRID_CHUNKS + 1
    n_chunks, chunk_length = launch.chunking(1, 1 << 25, 2, 1 << 16, 512, 1)
    assert chunk_length == 513 and n_chunks == 65409


@pytest.mark.parametrize("n_chains, length, state_size", [(0, 100, 2), (4, 0, 2), (4, 100_000, 0), (1 << 16, 16000, 2)])
def test_one_chunk_where_there_is_nothing_to_split(n_chains, length, state_size):
    assert launch.chunking(n_chains, length, state_size, 1 << 16, 512, 64) == (1, length)


def test_the_bank_workload_is_split_in_sixteen():
    assert launch.chunking(4096, 16000, 2, 1 << 16, 512, 64) == (16, 1024)


def test_program_counts():
    assert launch.program_count(0, 64) == 1
    assert launch.program_count(64, 64) == 1
    assert launch.program_count(65, 64) == 2
    assert launch.program_count(4096 * 16, 64) == 1024


def test_batch_strides_of_broadcast_inputs():
    batch = [2, 3]
    waveform = torch.zeros(2, 1, 50)  # one signal per example, shared by the filters
    a_coeffs = torch.zeros(3, 5)  # one filter per channel, shared by the examples
    zi = torch.zeros(5, 2, 3, 4).permute(1, 2, 0, 3)[..., 0, :]  # a non-contiguous (2, 3, 4)
    assert launch.padded_batch(batch) == [1, 1, 2, 3]
    assert launch.batch_strides(waveform, batch) == [0, 0, 50, 0, 1]
    assert launch.batch_strides(a_coeffs, batch) == [0, 0, 0, 5, 1]
    assert launch.batch_strides(zi, batch) == [0, 0, zi.stride(0), zi.stride(1), 1]
    assert launch.batch_strides(None, batch) == [0] * 5


def test_batch_strides_of_cascades_give_the_section_step():
    sos = torch.zeros(3, 4, 6)[..., :3]  # (C, S, 3) taken from a (C, S, 6) array
    assert launch.batch_strides(sos, [2, 3], tail_dims=2) == [0, 0, 0, 24, 1, 6]


def test_more_batch_dims_than_the_kernels_index_are_refused():
    with pytest.raises(ValueError, match=r"expected at most 4 batch dims for the Triton kernels, got \[1, 2, 3, 4, 5\]"):
        launch.padded_batch([1, 2, 3, 4, 5])
