"""What deployment costs: export time, graph size, and forward times of the deployed forms.

The bank workload of ``bench_lfilter.py`` (``[32, 16000]`` float32 through 128
band-pass biquads) as a Module, exported with ``torch.export`` (dynamic batch and
length), then run as:

- eager, ``backend="auto"`` (the native op on CPU): the baseline;
- eager, ``backend="export"``: the portable graph's algorithm without compilation;
- ``torch.jit.script``: calling the native op (the default where the op library is
  loaded), and with ``backend="block"``, the block algorithm a portable script
  (``MULTI_LFILTER_SCRIPT_PORTABLE=1``) runs on long signals;
- the ``ExportedProgram`` (``program.module()``), portable (standard ops, run op by
  op) and native (``multi_lfilter.export_mode("native")``: one op node);
- an AOTInductor package (``torch._inductor.aoti_compile_and_package``) of each;
- the ONNX model in onnxruntime (portable; where onnxscript and onnxruntime are
  installed).

Every time is the median of ``--repeats`` runs in one process, with the ratio to the
baseline. Also prints the export and compile times and the graph's node count at two
example lengths (the same at any length).

Usage::

    python benchmarks/bench_export.py                 # about three minutes
    python benchmarks/bench_export.py --skip onnx aoti script
"""
import argparse
import importlib.util
import platform
import tempfile
import time

import torch

import multi_lfilter
from multi_lfilter import lfilter_bank

from bench_lfilter import WORKLOADS, bandpass_bank, median_seconds


class Bank(torch.nn.Module):
    def __init__(self, a, b, backend="auto"):
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.backend = backend

    def forward(self, waveform):
        return lfilter_bank(waveform.unsqueeze(-2), self.a, self.b, backend=self.backend)


def bank_workload():
    """``(waveform, a, b, line)``: the bank workload's ``(B, T)`` signal and ``(C, 3)``
    float32 coefficients, and a line naming the machine and the workload."""
    batch, length, n_filters = WORKLOADS["bank"]
    torch.manual_seed(0)
    waveform = torch.randn(batch, length)
    a, b = bandpass_bank(n_filters, torch.float32)
    line = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
            f"bank workload [{batch}, {length}] float32 through {n_filters} biquads")
    return waveform, a, b, line


def dynamic_shapes():
    return {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=1, max=2**24)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], choices=["onnx", "aoti", "program", "script", "native"])
    args = parser.parse_args()
    waveform, a, b, workload = bank_workload()
    model = Bank(a, b).eval()
    print(f"{workload}; medians of {args.repeats}")

    start = time.perf_counter()
    program = torch.export.export(model, (waveform,), dynamic_shapes=dynamic_shapes())
    export_seconds = time.perf_counter() - start
    short = torch.export.export(model, (waveform[:2, :1000].clone(),), dynamic_shapes=dynamic_shapes())
    count = [sum(node.op == "call_function" for node in p.graph.nodes) for p in (program, short)]
    print(f"torch.export: {export_seconds:.1f} s; {count[0]} ops exported at T = {waveform.shape[-1]}, {count[1]} at T = 1000")

    rows = []
    with torch.no_grad():
        expected = model(waveform)
        baseline = median_seconds(lambda: model(waveform), args.repeats, warmups=1)
        rows.append(("eager, backend='auto' (native)", baseline, 0.0))
        export_backend = Bank(a, b, backend="export")
        rows.append(("eager, backend='export'", median_seconds(lambda: export_backend(waveform), args.repeats, warmups=1),
                     (export_backend(waveform) - expected).abs().max().item()))
        if "script" not in args.skip:
            for name, backend in (("torch.jit.script (native op)", "auto"), ("torch.jit.script, backend='block'", "block")):
                scripted = torch.jit.script(Bank(a, b, backend=backend))
                scripted(waveform)  # TorchScript's profiling runs
                rows.append((name, median_seconds(lambda: scripted(waveform), args.repeats, warmups=1),
                             (scripted(waveform) - expected).abs().max().item()))
        programs = {"portable": program}
        if "native" not in args.skip and multi_lfilter.library_path() is not None:
            with multi_lfilter.export_mode("native"):
                programs["native"] = torch.export.export(model, (waveform,), dynamic_shapes=dynamic_shapes())
        if "program" not in args.skip:
            for mode, exported in programs.items():
                module = exported.module()
                rows.append((f"ExportedProgram.module(), {mode}", median_seconds(lambda: module(waveform), args.repeats, warmups=1),
                             (module(waveform) - expected).abs().max().item()))
        with tempfile.TemporaryDirectory() as folder:
            if "aoti" not in args.skip:
                for mode, exported in programs.items():
                    start = time.perf_counter()
                    path = torch._inductor.aoti_compile_and_package(exported, package_path=f"{folder}/{mode}.pt2")
                    print(f"AOTInductor compile, {mode}: {time.perf_counter() - start:.1f} s")
                    runner = torch._inductor.aoti_load_package(path)
                    rows.append((f"AOTInductor package, {mode}", median_seconds(lambda: runner(waveform), args.repeats, warmups=1),
                                 (runner(waveform) - expected).abs().max().item()))
            if "onnx" not in args.skip and all(importlib.util.find_spec(n) for n in ("onnxscript", "onnxruntime")):
                import onnxruntime

                torch.onnx.export(model, (waveform,), dynamic_shapes=dynamic_shapes(), dynamo=True,
                                  verbose=False).save(f"{folder}/bank.onnx")
                session = onnxruntime.InferenceSession(f"{folder}/bank.onnx")
                feed = {session.get_inputs()[0].name: waveform.numpy()}
                rows.append(("onnxruntime (portable)", median_seconds(lambda: session.run(None, feed), args.repeats, warmups=1),
                             (torch.from_numpy(session.run(None, feed)[0]) - expected).abs().max().item()))

    peak = expected.abs().max().item()
    print("\n| form | forward | vs eager native | max error / peak |")
    print("|---|---:|---:|---:|")
    for name, seconds, error in rows:
        print(f"| {name} | {seconds * 1e3:.0f} ms | {seconds / baseline:.1f}x | {error / peak:.1e} |")


if __name__ == "__main__":
    main()
