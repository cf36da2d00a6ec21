"""How many ops the portable time-varying filter runs, and whether that grows with ``T``.

The portable path (``multi_lfilter/backends/varying_scan.py``) must have the same
graph at every signal length: on a GPU its cost is kernel launches. For each form and
length this counts, on the bank layout (2 signals ``(2, 1, T)`` through 16 band-pass
biquads with new coefficients every sample, ``(16, T, 3)``):

- the ``call_function`` nodes of the ``torch.export`` graph of the forward (static
  shapes, one export per length), all of them and the data ops (all but views,
  reshapes and other metadata ops: on a GPU, the launches);
- the ``aten::`` ops one eager forward+backward calls (gradients for the signal and
  both coefficient tensors): the top-level ones (what Python and autograd called;
  the events nested in them depend on ATen's kernels, e.g. ``cat`` copies large
  inputs piecewise) and, of those, the data ops.

With ``--memory`` it also measures the rise of the resident set during one forward
(no grad) and one forward+backward of ``[4, 1, T]`` float32 through 32 biquads
(per-sample and constant coefficients, ``T`` the first length), against the output's
size, each in a fresh process (freed memory stays resident and would hide a rise).

Usage::

    python benchmarks/count_varying_ops.py                    # tdf2 and df1, T = 16000 and 128000
    python benchmarks/count_varying_ops.py --forms tdf2 df2 tdf1 --lengths 500 4000
    python benchmarks/count_varying_ops.py --memory --lengths 16000
"""
import argparse
import math
import subprocess
import sys

import torch
from torch.profiler import profile

from multi_lfilter.backends.varying_scan import varying_filter

from bench_lfilter import peak_rise_bytes
from count_ops import METADATA_OPS


def swept_bank(n_filters, length, dtype=torch.float32):
    """``(a, b)`` ``(n_filters, length, 3)``: cookbook band-passes whose centres sweep
    over an octave, each filter in its own band."""
    centre = torch.logspace(math.log10(100.0), math.log10(4000.0), n_filters, dtype=torch.float64).unsqueeze(-1)
    centre = centre * 2 ** torch.linspace(0, 1, length, dtype=torch.float64)
    omega = 2 * math.pi * centre / 16000.0
    alpha = torch.sin(omega) / 8.0
    a = torch.stack([1 + alpha, -2 * torch.cos(omega), 1 - alpha], -1)
    b = torch.stack([alpha, torch.zeros_like(alpha), -alpha], -1)
    return a.to(dtype), b.to(dtype)


class Bank(torch.nn.Module):
    """``varying_filter`` on ``(B, 1, T)`` signals and ``(C, T, K)`` coefficients."""

    def __init__(self, form):
        super().__init__()
        self.form = form

    def forward(self, waveform, a, b):
        batch = [waveform.shape[0], a.shape[0]]
        return varying_filter(waveform, a, b, None, batch, self.form, 0)


def export_counts(form, length):
    """``(call_function nodes, data ops)`` of the exported forward."""
    waveform = torch.randn(2, 1, length)
    a, b = swept_bank(16, length)
    program = torch.export.export(Bank(form), (waveform, a, b))
    calls = [node for node in program.graph.nodes if node.op == "call_function"]
    data = [
        node for node in calls
        if isinstance(node.target, torch._ops.OpOverload) and node.target._schema.name not in METADATA_OPS
    ]
    return len(calls), len(data)


def profiled_counts(form, length):
    """``(top-level aten ops, data ops among them)`` of one eager forward+backward."""
    torch.manual_seed(0)
    waveform = torch.randn(2, 1, length, requires_grad=True)
    a, b = swept_bank(16, length)
    a.requires_grad_(True)
    b.requires_grad_(True)
    upstream = torch.randn(2, 16, length)
    Bank(form)(waveform, a, b)[0].backward(upstream)  # warm-up
    with profile() as profiler:
        Bank(form)(waveform, a, b)[0].backward(upstream)
    top_level = [
        event for event in profiler.events()
        if event.name.startswith("aten::")
        and (event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::"))
    ]
    data = [event for event in top_level if event.name not in METADATA_OPS]
    return len(top_level), len(data)


def memory_ratios(form, coefficients, length, backward):
    """The rise of the resident set during one call, over the output's bytes."""
    torch.manual_seed(0)
    waveform = torch.randn(4, 1, length)
    a, b = swept_bank(32, length)
    if coefficients == "constant":
        a, b = a[:, :1].contiguous(), b[:, :1].contiguous()
    output_bytes = 4 * 32 * length * waveform.element_size()
    model = Bank(form)
    if not backward:
        with torch.no_grad():
            return peak_rise_bytes(lambda: model(waveform, a, b)) / output_bytes
    leaves = [tensor.requires_grad_(True) for tensor in (waveform, a, b)]
    upstream = torch.randn(4, 32, length)
    return peak_rise_bytes(lambda: model(*leaves)[0].backward(upstream)) / output_bytes


def memory_in_a_fresh_process(form, coefficients, length, backward):
    command = [sys.executable, __file__, "--memory-case", form, coefficients, str(length), str(int(backward))]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", nargs="+", default=["tdf2", "df1"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[16000, 128000])
    parser.add_argument("--memory", action="store_true", help="also the peak memory against the output")
    parser.add_argument("--memory-case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        form, coefficients, length, backward = args.memory_case
        print(memory_ratios(form, coefficients, int(length), bool(int(backward))))
        return
    print("| form | T | export nodes | export data ops | fwd+bwd top-level aten ops | fwd+bwd data ops |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for form in args.forms:
        seen = set()
        for length in args.lengths:
            nodes, data = export_counts(form, length)
            events, data_events = profiled_counts(form, length)
            seen.add((nodes, data, events, data_events))
            print(f"| {form} | {length} | {nodes} | {data} | {events} | {data_events} |", flush=True)
        print(f"<!-- {form}: {'the same at every length' if len(seen) == 1 else 'GROWS WITH T'} -->", flush=True)
    if args.memory:
        print()
        print("| form | coefficients | forward peak / output | fwd+bwd peak / output |")
        print("| --- | --- | ---: | ---: |")
        for form in args.forms:
            for coefficients in ["per-sample", "constant"]:
                forward, both = (
                    memory_in_a_fresh_process(form, coefficients, args.lengths[0], backward)
                    for backward in (False, True)
                )
                print(f"| {form} | {coefficients} | {forward:.1f} | {both:.1f} |", flush=True)


if __name__ == "__main__":
    main()
