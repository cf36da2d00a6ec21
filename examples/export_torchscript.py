"""Export a model with a learnable filter bank through TorchScript, and load it back.

The model: 40 band-pass biquads on a mel scale, then the log energy of each band in
25 ms frames, a small learnable front-end. It is scripted, saved, loaded, and compared
with the eager model; then loaded again in a fresh Python process where importing
``multi_lfilter`` is impossible: a scripted model needs only torch and, where it calls
the native op on CPU (the default where the op library is built), that library,
loaded with ``torch.ops.load_library(multi_lfilter.library_path())``. Scripted with
``MULTI_LFILTER_SCRIPT_PORTABLE=1`` set, it needs torch alone.

Run:  python examples/export_torchscript.py [--output front_end.pt] [--short]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from torch import Tensor, nn

from multi_lfilter import BiquadFilterBank, library_path

SAMPLE_RATE = 16000


class LogBandEnergies(nn.Module):
    """``(..., T)`` audio to ``(..., C, T // hop)`` log energies of ``C`` learnable bands."""

    def __init__(self, n_bands: int = 40, hop: int = 400):
        super().__init__()
        self.bank = BiquadFilterBank(n_bands, SAMPLE_RATE, kind="bandpass", f_min=60.0, f_max=7600.0, q=4.0)
        self.hop = hop

    def forward(self, waveform: Tensor) -> Tensor:
        bands = self.bank(waveform)
        energies = nn.functional.avg_pool1d(bands.square().flatten(0, -2).unsqueeze(1), self.hop).squeeze(1)
        return torch.log(energies + 1e-6).reshape(bands.shape[:-1] + energies.shape[-1:])


CHECK_IN_FRESH_PROCESS = """
import sys
sys.modules["multi_lfilter"] = None  # importing the package now fails
import torch
if sys.argv[3]:  # the op library, where the model calls it
    torch.ops.load_library(sys.argv[3])
model = torch.jit.load(sys.argv[1])
inputs = torch.load(sys.argv[2])
torch.testing.assert_close(model(inputs["waveform"]), inputs["expected"])
print("loaded and matched without multi_lfilter")
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="where to save the scripted model (default: a temporary folder)")
    parser.add_argument("--short", action="store_true", help="a 0.5 s test signal instead of 2 s")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = LogBandEnergies().eval()
    waveform = torch.randn(2, SAMPLE_RATE // 2 if args.short else 2 * SAMPLE_RATE)

    with tempfile.TemporaryDirectory() as folder:
        path = args.output or os.path.join(folder, "front_end.pt")
        torch.jit.save(torch.jit.script(model), path)
        loaded = torch.jit.load(path)
        with torch.no_grad():
            expected, actual = model(waveform), loaded(waveform)
        print(f"saved and loaded {path}: output {tuple(actual.shape)}, max |loaded - eager| = {(actual - expected).abs().max().item():.2e}")
        torch.testing.assert_close(actual, expected)

        inputs = os.path.join(folder, "inputs.pt")
        torch.save({"waveform": waveform, "expected": expected}, inputs)
        # Run from the temporary folder so the package cannot be found by path either.
        library = str(library_path() or "")
        result = subprocess.run([sys.executable, "-c", CHECK_IN_FRESH_PROCESS, path, inputs, library], cwd=folder,
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        if result.returncode != 0:
            raise SystemExit(f"the fresh process failed:\n{result.stderr}")
        print(result.stdout.strip())


if __name__ == "__main__":
    main()
