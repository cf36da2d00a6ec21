"""Probe: can a graph that steps through time (torch's ``scan``) serve AOTInductor?

The export backend runs the block algorithm (``multi_lfilter/backends/export_graph.py``),
which does several times the arithmetic of the recurrence. The alternative is a graph
that walks the blocks one after the other with ``torch._higher_order_ops.scan`` (a
prototype in torch 2.14), each step running ``BLOCK`` samples of a transposed direct
form II biquad for every signal and filter. This script builds that graph for the bank
workload of ``bench_lfilter.py`` and reports:

1. whether ``torch.export`` plus ``aoti_compile_and_package`` accept it with a dynamic
   batch and length (what deployment needs);
2. with fixed shapes, the AOTInductor package's forward time against the eager native
   forward in the same process (medians), and its error.

It is a probe of what the installed torch can do, not part of the library: rerun it on
a newer torch before reconsidering the export graph's design.

Usage::

    python benchmarks/probe_scan_export.py            # about two minutes
"""
import argparse
import tempfile
import time
import traceback

import torch
from torch._higher_order_ops.scan import scan

from multi_lfilter import lfilter_bank

from bench_export import bank_workload
from bench_lfilter import median_seconds

BLOCK = 32


class ScanBank(torch.nn.Module):
    """``(B, T)`` float32 -> ``(B, F, T)``: F biquads, float64 arithmetic, by blocks in a scan."""

    def __init__(self, a, b):
        super().__init__()
        a, b = a.double(), b.double()
        self.register_buffer("a", a / a[:, :1])
        self.register_buffer("b", b / a[:, :1])

    def forward(self, waveform):
        batch, length = waveform.shape
        n_blocks = length // BLOCK + 2  # at least two: no size-1 guard on the scan length
        positions = torch.arange(n_blocks).unsqueeze(-1) * BLOCK + torch.arange(BLOCK)
        positions = torch.where(positions >= length, torch.full_like(positions, length), positions)
        blocks = torch.nn.functional.pad(waveform.double(), [0, 1])[:, positions].permute(1, 0, 2)  # (n, B, L)
        # Copies: the scan body must not alias its inputs.
        b0, b1, b2 = (self.b[:, k].clone() for k in range(3))
        a1, a2 = (self.a[:, k].clone() for k in range(1, 3))

        def step(state, block):
            z1, z2 = state
            outputs = []
            for t in range(BLOCK):
                x = block[:, t : t + 1]
                y = b0 * x + z1
                z1 = b1 * x - a1 * y + z2
                z2 = b2 * x - a2 * y
                outputs.append(y)
            return (z1, z2), torch.stack(outputs, 0)  # (L, B, F)

        zero = waveform.new_zeros(batch, self.a.shape[0], dtype=torch.float64)
        _, outputs = scan(step, (zero, zero.clone()), blocks)  # (n, L, B, F)
        y = outputs.permute(2, 3, 0, 1).flatten(-2).index_select(-1, torch.arange(length))
        return y.to(waveform.dtype)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    waveform, a, b, workload = bank_workload()
    model = ScanBank(a, b).eval()
    print(f"{workload}, blocks of {BLOCK} in a scan")

    dynamic = {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=2, max=2**24)}}
    with tempfile.TemporaryDirectory() as folder:
        try:
            program = torch.export.export(model, (waveform,), dynamic_shapes=dynamic)
            torch._inductor.aoti_compile_and_package(program, package_path=f"{folder}/dynamic.pt2")
            print("dynamic batch and length: export and AOTInductor compile succeeded")
        except Exception as error:  # the probe reports whatever the installed torch raises
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            print(f"dynamic batch and length: failed ({last[:300]})")

        start = time.perf_counter()
        program = torch.export.export(model, (waveform,))
        path = torch._inductor.aoti_compile_and_package(program, package_path=f"{folder}/static.pt2")
        print(f"fixed shapes: export and AOTInductor compile {time.perf_counter() - start:.0f} s")
        runner = torch._inductor.aoti_load_package(path)
        with torch.no_grad():
            expected = lfilter_bank(waveform.double().unsqueeze(-2), model.a, model.b)
            error = (runner(waveform).double() - expected).abs().max().item() / expected.abs().max().item()
            native = median_seconds(lambda: lfilter_bank(waveform.unsqueeze(-2), a, b), args.repeats, warmups=1)
            package = median_seconds(lambda: runner(waveform), args.repeats, warmups=1)
    print(f"fixed shapes: AOTInductor {package * 1e3:.0f} ms, eager native {native * 1e3:.0f} ms "
          f"({package / native:.1f}x); max error / peak {error:.1e}")


if __name__ == "__main__":
    main()
