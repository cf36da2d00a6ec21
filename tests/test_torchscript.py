"""TorchScript: scripted functions and Modules match eager, and export without the package."""
import subprocess
import sys
import textwrap

import pytest
import torch

from multi_lfilter import BiquadFilterBank, SOSFilterBank, lfilter, lfilter_bank, lfilter_bank_with_state

from helpers import random_filter_bank


class BankModel(torch.nn.Module):
    """A minimal model: a fixed bank of filters followed by a gain."""

    def __init__(self, a_coeffs, b_coeffs):
        super().__init__()
        self.register_buffer("a_coeffs", a_coeffs)
        self.b_coeffs = torch.nn.Parameter(b_coeffs)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        y, zf = lfilter_bank_with_state(waveform.unsqueeze(-2), self.a_coeffs, self.b_coeffs)
        return 2.0 * lfilter_bank(waveform.unsqueeze(-2), self.a_coeffs, self.b_coeffs) + y + zf.sum()


@pytest.mark.parametrize("backend", ["auto", "loop", "block"])
@pytest.mark.parametrize("length", [100, 1500], ids=["short-loop", "long-block"])
def test_scripted_functions_match_eager(backend, length, rng):
    """Under TorchScript "auto" runs the loop for short signals, the block algorithm for long."""
    a, b = random_filter_bank(3, n_filters=4, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(4, 3)))
    scripted_bank = torch.jit.script(lfilter_bank)
    scripted_with_state = torch.jit.script(lfilter_bank_with_state)
    expected_y, expected_zf = lfilter_bank_with_state(waveform, a, b, zi, backend="loop")
    torch.testing.assert_close(scripted_bank(waveform, a, b, zi, backend), expected_y, rtol=0, atol=1e-10)
    actual_y, actual_zf = scripted_with_state(waveform, a, b, zi, backend)
    torch.testing.assert_close(actual_y, expected_y, rtol=0, atol=1e-10)
    torch.testing.assert_close(actual_zf, expected_zf, rtol=0, atol=1e-10)


def test_scripted_lfilter_matches_eager(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng)
    waveform = torch.from_numpy(rng.uniform(-1, 1, size=(2, 300)))
    scripted_lfilter = torch.jit.script(lfilter)
    torch.testing.assert_close(scripted_lfilter(waveform, a, b, True, False), lfilter(waveform, a, b, True, False))


def test_scripted_native_backend_is_a_clear_error(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng)
    scripted_bank = torch.jit.script(lfilter_bank)
    with pytest.raises(torch.jit.Error, match="expected backend 'auto', 'block' or 'loop' under TorchScript, got native"):
        scripted_bank(torch.randn(4, 300, dtype=torch.float64), a, b, None, "native")


def test_scripted_module_matches_eager_and_trains(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng, max_radius=0.95)
    model = BankModel(a.float(), b.float())
    scripted = torch.jit.script(model)
    waveform = torch.randn(3, 200)
    torch.testing.assert_close(scripted(waveform), model(waveform), rtol=1e-6, atol=1e-5)
    scripted(waveform).square().mean().backward()
    assert scripted.b_coeffs.grad is not None and scripted.b_coeffs.grad.abs().sum() > 0


def exported_models(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng, max_radius=0.95)
    sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]]]).repeat(3, 1, 1)
    return {
        "custom": BankModel(a.float(), b.float()),
        "biquad-bank": BiquadFilterBank(8, 16000, kind="peaking", gain_db=3.0),
        "sos-bank": SOSFilterBank(sos),
    }


@pytest.mark.parametrize("name", ["custom", "biquad-bank", "sos-bank"])
def test_saved_module_loads_in_a_process_without_multi_lfilter(name, tmp_path, rng):
    model = exported_models(rng)[name]
    waveform = torch.randn(3, 200)
    torch.jit.save(torch.jit.script(model), str(tmp_path / "bank.pt"))
    torch.save({"waveform": waveform, "expected": model(waveform).detach()}, tmp_path / "io.pt")

    program = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        sys.modules["multi_lfilter"] = None  # any import of the package now fails
        import torch
        model = torch.jit.load({str(tmp_path / "bank.pt")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        actual = model(io["waveform"])
        torch.testing.assert_close(actual, io["expected"], rtol=1e-6, atol=1e-5)
        print("loaded-and-matched")
        """
    )
    # Run from the temporary folder so the package is not importable by path either.
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "loaded-and-matched" in result.stdout


@pytest.mark.parametrize("backend", ["loop", "block"])
def test_scripted_gradients_are_exact(backend, rng):
    """Under TorchScript gradients flow by autograd through the loop or the block ops."""
    from torch.autograd import gradcheck

    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.9)
    scripted_with_state = torch.jit.script(lfilter_bank_with_state)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 70))).requires_grad_(True)
    zi = torch.from_numpy(rng.normal(size=(3, 2))).requires_grad_(True)
    a.requires_grad_(True)
    b.requires_grad_(True)

    def filtered(waveform, a, b, zi):
        return scripted_with_state(waveform, a, b, zi, backend)

    assert gradcheck(filtered, (waveform, a, b, zi))
