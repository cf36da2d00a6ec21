"""Export a model with a learnable filter bank with torch.export and ONNX; run both without the package.

The model: 40 band-pass biquads on a mel scale, then the log energy of each band in
25 ms frames (the front-end of ``export_torchscript.py``). ``torch.export`` records the
filter as standard ops whose number does not depend on the signal's length, so the
program takes any batch size and any length. It is saved, then loaded and run in a
fresh Python process where importing ``multi_lfilter`` fails; the same goes for the
ONNX model in onnxruntime (skipped, with a message, where onnxruntime or onnxscript is
missing: ``pip install multi_lfilter[export]``).

Run:  python examples/export.py [--output-dir DIR] [--short]
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import torch
from torch import Tensor, nn

from multi_lfilter import BiquadFilterBank

SAMPLE_RATE = 16000
HOP = 400  # 25 ms frames


class LogBandEnergies(nn.Module):
    """``(B, T)`` audio to ``(B, C, T // hop)`` log energies of ``C`` learnable bands."""

    def __init__(self, n_bands: int = 40, hop: int = HOP):
        super().__init__()
        self.bank = BiquadFilterBank(n_bands, SAMPLE_RATE, kind="bandpass", f_min=60.0, f_max=7600.0, q=4.0)
        self.hop = hop

    def forward(self, waveform: Tensor) -> Tensor:
        bands = self.bank(waveform)  # (B, C, T)
        return torch.log(nn.functional.avg_pool1d(bands.square(), self.hop) + 1e-6)


def dynamic_shapes():
    """A dynamic batch and a dynamic length. The length's range starts at two frames:
    torch.export would otherwise ask whether ``avg_pool1d`` makes exactly one (the
    filter itself takes any length up to ``2**25`` samples)."""
    return {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=2 * HOP, max=2**24)}}


def export(model: nn.Module, example: Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch size and length."""
    return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes())


def export_onnx(model: nn.Module, example: Tensor, path: str) -> None:
    """The same graph as an ONNX model (``torch.onnx.export`` goes through ``torch.export``)."""
    program = torch.onnx.export(model, (example,), dynamic_shapes=dynamic_shapes(), dynamo=True, verbose=False)
    program.save(path)


RUN_WITHOUT_THE_PACKAGE = """
import sys
sys.modules["multi_lfilter"] = None  # importing the package now fails
import torch
kind, model_path, inputs_path = sys.argv[1:]
inputs = torch.load(inputs_path)
for waveform, expected in zip(inputs["waveforms"], inputs["expected"]):
    if kind == "pt2":
        actual = torch.export.load(model_path).module()(waveform)
    else:
        import onnxruntime
        session = onnxruntime.InferenceSession(model_path)
        actual = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: waveform.numpy()})[0])
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    print(f"{kind}: input {tuple(waveform.shape)} -> {tuple(actual.shape)}, matches eager")
"""


def run_without_the_package(kind: str, model_path: str, inputs_path: str, folder: str) -> None:
    # From the temporary folder, with no PYTHONPATH, so the package cannot be found by path either.
    result = subprocess.run([sys.executable, "-c", RUN_WITHOUT_THE_PACKAGE, kind, model_path, inputs_path],
                            cwd=folder, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if result.returncode != 0:
        raise SystemExit(f"the fresh process failed:\n{result.stderr}")
    print(result.stdout.strip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None, help="where to save model.pt2 and model.onnx (default: a temporary folder)")
    parser.add_argument("--short", action="store_true", help="signals of 0.25 s and 0.5 s instead of 1 s and 3 s")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = LogBandEnergies().eval()
    seconds = (0.25, 0.5) if args.short else (1.0, 3.0)
    # Two batch sizes and two lengths, none of them the example's.
    waveforms = [torch.randn(batch, int(s * SAMPLE_RATE)) for batch, s in zip((3, 1), seconds)]
    with torch.no_grad():
        expected = [model(waveform) for waveform in waveforms]

    with tempfile.TemporaryDirectory() as folder:
        output_dir = args.output_dir or folder
        inputs_path = os.path.join(folder, "inputs.pt")
        torch.save({"waveforms": waveforms, "expected": expected}, inputs_path)

        program = export(model, torch.randn(2, SAMPLE_RATE))
        n_nodes = sum(node.op == "call_function" for node in program.graph.nodes)
        print(f"torch.export: {n_nodes} standard ops, for any batch size and length")
        pt2_path = os.path.join(output_dir, "model.pt2")
        torch.export.save(program, pt2_path)
        run_without_the_package("pt2", pt2_path, inputs_path, folder)

        missing = [name for name in ("onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
        if missing:
            print(f"ONNX: skipped, {' and '.join(missing)} not installed (pip install multi_lfilter[export])")
            return
        onnx_path = os.path.join(output_dir, "model.onnx")
        export_onnx(model, torch.randn(2, SAMPLE_RATE), onnx_path)
        run_without_the_package("onnx", onnx_path, inputs_path, folder)


if __name__ == "__main__":
    main()
