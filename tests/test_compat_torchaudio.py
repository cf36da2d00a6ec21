"""multi_lfilter.lfilter is a drop-in for torchaudio.functional.lfilter."""
import pytest
import torch

from multi_lfilter import lfilter

from helpers import TORCHAUDIO_ERROR, random_filter_bank, torchaudio_functional

needs_torchaudio = pytest.mark.skipif(torchaudio_functional is None, reason=TORCHAUDIO_ERROR)


@pytest.fixture
def bank(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng, max_radius=0.95)
    return a, b


@needs_torchaudio
@pytest.mark.parametrize("clamp", [True, False])
@pytest.mark.parametrize("waveform_shape", [(4, 300), (2, 4, 300)], ids=str)
def test_batching_true_matches_torchaudio(bank, clamp, waveform_shape, rng):
    a, b = bank
    waveform = torch.from_numpy(rng.uniform(-1, 1, size=waveform_shape))
    expected = torchaudio_functional.lfilter(waveform, a, b, clamp=clamp, batching=True)
    actual = lfilter(waveform, a, b, clamp=clamp, batching=True)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)


@needs_torchaudio
@pytest.mark.parametrize("clamp", [True, False])
@pytest.mark.parametrize("waveform_shape", [(300,), (3, 300), (2, 3, 300)], ids=str)
def test_batching_false_matches_torchaudio(bank, clamp, waveform_shape, rng):
    a, b = bank
    waveform = torch.from_numpy(rng.uniform(-1, 1, size=waveform_shape))
    expected = torchaudio_functional.lfilter(waveform, a, b, clamp=clamp, batching=False)
    actual = lfilter(waveform, a, b, clamp=clamp, batching=False)
    assert actual.shape == expected.shape == waveform_shape[:-1] + (4, 300)
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)


@needs_torchaudio
@pytest.mark.parametrize("clamp", [True, False])
@pytest.mark.parametrize("batching", [True, False])
def test_one_dimensional_coefficients_match_torchaudio(bank, clamp, batching, rng):
    a, b = bank
    waveform = torch.from_numpy(rng.uniform(-1, 1, size=(2, 3, 200))).float()
    expected = torchaudio_functional.lfilter(waveform, a[0].float(), b[0].float(), clamp=clamp, batching=batching)
    actual = lfilter(waveform, a[0].float(), b[0].float(), clamp=clamp, batching=batching)
    assert actual.shape == expected.shape == (2, 3, 200)
    # torchaudio runs its recurrence in float32; ours runs in float64.
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_clamp_limits_the_output_without_torchaudio():
    a = torch.tensor([1.0, -0.99])
    b = torch.tensor([1.0, 0.0])
    loud = lfilter(torch.ones(1, 500), a, b, clamp=True)
    free = lfilter(torch.ones(1, 500), a, b, clamp=False)
    assert loud.max() == 1.0 and free.max() > 50
