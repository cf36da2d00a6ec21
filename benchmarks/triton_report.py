"""What the Triton kernels compile to on a GPU, read without one.

Runs the ``"triton"`` backend's host code on meta tensors (bank-workload shapes:
``[32, 1, 16000]`` float32 through 128 filters) with its launcher replaced by a
recorder, then compiles each recorded launch with Triton's own compiler for an
NVIDIA architecture (``sm_90``: H100/H200; ``sm_89``: RTX 4090/L4/L40) exactly as
the JIT would specialise it (``triton.compile`` with a ``GPUTarget``), and reads:

- instructions per step: the PTX instructions of the kernel's time loop divided by
  the time steps one pass of that loop covers (a tiled loop covers ``TILE`` steps;
  the cascade adjoint's recompute and per-section loops one sample each, summed;
  the carry's loop one chunk);
- registers and spilled bytes: ``ptxas -v`` (the ``ptxas`` Triton ships).

One line per variant::

    KERNEL <name> arch=<sm> order=<N> instructions_per_step=<x> registers=<r> spill_bytes=<s> compile_s=<t>

Usage::

    python benchmarks/triton_report.py                 # sm_90 and sm_89, every variant
    python benchmarks/triton_report.py --arch sm_90 --orders 2
    python benchmarks/triton_report.py --jobs 8        # compile in 8 processes
    python benchmarks/triton_report.py --check         # exit 1 where a target is missed (CI)

Targets (``--check``), for ``sm_90``, float32 signals: forward order 2 at most 25
instructions per step, adjoint order 2 at most 60, forward order 8 at most 100; no
spills in any variant.

Needs Triton (it ships with CUDA builds of torch), no GPU. Exits 0 with a
``SKIP`` line where Triton is missing, 1 where a variant fails to compile (or, with
``--check``, misses a target).
"""
import argparse
import concurrent.futures
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from multi_lfilter.backends import triton as triton_backend  # noqa: E402

BANK = dict(batch=32, filters=128, length=16000)
# (variant, order) -> the most instructions per step, on sm_90.
TARGETS = {("forward", 2): 25, ("adjoint", 2): 60, ("forward", 8): 100}


def record_launches(run):
    """``[(kernel, grid, args, constants)]`` of every launch ``run()`` makes."""
    launches = []
    original = triton_backend._launch
    triton_backend._launch = lambda kernel, grid, *args, **constants: launches.append((kernel, grid, args, constants))
    try:
        run()
    finally:
        triton_backend._launch = original
    return launches


def bank_problem(order, sections=None, dtype=torch.float32):
    """Meta tensors of the bank workload: ``(waveform, a, b)`` normalised float64 coefficients."""
    meta = dict(device="meta")
    waveform = torch.empty(BANK["batch"], 1, BANK["length"], dtype=dtype, **meta)
    taps = [BANK["filters"]] + ([sections] if sections else []) + [order + 1]
    a = torch.empty(taps, dtype=torch.float64, **meta)
    b = torch.empty(taps, dtype=torch.float64, **meta)
    return waveform, a, b


def variants(orders, section_counts):
    """``(family, order, run)``: each runs the host code of one pass (every launch of a
    forward or a backward); ``family`` prefixes a cascade's kernels."""
    backend = triton_backend
    found = []
    for order in orders:
        waveform, a, b = bank_problem(order)
        problem = backend._problem(waveform, a, b, None, cascade=False)
        y = torch.empty(problem.batch + [problem.length], dtype=waveform.dtype, device="meta")
        grad_y = torch.empty_like(y)
        found.append(("", order, lambda p=problem: backend._forward(p, None)))
        found.append(("", order, lambda p=problem, g=grad_y, y=y: backend._adjoint(
            p, g, None, None, y, (True, True, True, False))))
    for sections in section_counts:
        waveform, a, b = bank_problem(2, sections)
        problem = backend._problem(waveform, a, b, None, cascade=True)
        grad_y = torch.empty(problem.batch + [problem.length], dtype=waveform.dtype, device="meta")
        found.append((f"cascade_s{sections}", 2, lambda p=problem: backend._forward(p, None)))
        found.append((f"cascade_s{sections}", 2, lambda p=problem, g=grad_y: backend._adjoint(
            p, g, None, None, None, (True, True, True, False))))
    return found


def signature_of(kernel, args, constants):
    """The JIT's specialisation of a launch: ``(signature, constexprs, attrs)``."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend

    names = kernel.arg_names
    signature, constexprs, attrs = {}, {}, {}
    for index, (name, value) in enumerate(zip(names, list(args) + [constants[n] for n in names[len(args):]])):
        if name in constants:
            signature[name] = "constexpr"
            constexprs[name] = constants[name]
            continue
        kind, attr = native_specialize_impl(BaseBackend, value, False, True, True)
        signature[name] = kind
        if kind == "constexpr":
            constexprs[name] = attr
        elif attr:
            attrs[(index,)] = BaseBackend.parse_attr(attr)
    return signature, constexprs, attrs


def ptx_loops(ptx):
    """``[(start_line, end_line, n_instructions)]``: every loop (a label and the last
    branch back to it)."""
    lines = ptx.splitlines()
    labels, loops = {}, []
    for number, line in enumerate(lines):
        label = re.match(r"^(\$L__BB\d+_\d+):", line)
        if label:
            labels[label.group(1)] = number
        branch = re.search(r"\bbra(?:\.uni)?\s+(\$L__BB\d+_\d+);", line)
        if branch and labels.get(branch.group(1), number) < number:
            start = labels[branch.group(1)]
            loops = [loop for loop in loops if loop[0] != start]
            loops.append((start, number, sum(is_instruction(text) for text in lines[start : number + 1])))
    return loops


def is_instruction(line):
    text = line.strip()
    return text.endswith(";") and not text.startswith(("//", ".", "$", "{", "}"))


def innermost(loops):
    return [loop for loop in loops if not any(o is not loop and loop[0] < o[0] and o[1] < loop[1] for o in loops)]


def instructions_per_step(kernel_name, ptx, constants):
    """The time loop's PTX instructions per time step (see the module doc)."""
    loops = innermost(ptx_loops(ptx))
    if not loops:
        return float("nan")
    if kernel_name == "cascade_adjoint_kernel":  # recompute + one loop per section, a sample each
        return sum(count for _, _, count in loops)
    largest = max(count for _, _, count in loops)
    steps = constants.get("TILE", 1) if kernel_name in ("forward_kernel", "adjoint_kernel") else 1
    return largest / steps


def ptxas_usage(ptx, arch):
    """``(registers, spill_bytes)`` from ``ptxas -v``, run with the options Triton's own
    build of the cubin uses (``-lineinfo --regAllocOptLevel=2``)."""
    from triton.backends.nvidia.compiler import get_ptxas

    target = re.search(r"^\.target\s+(\S+)", ptx, re.MULTILINE).group(1)
    ptxas = get_ptxas(int(arch.removeprefix("sm_"))).path
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run(
            [ptxas, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={target}", str(source),
             "-o", str(Path(folder) / "kernel.cubin")],
            capture_output=True, text=True, check=True,
        )
    registers = int(re.search(r"Used (\d+) registers", result.stderr).group(1))
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", result.stderr)
    return registers, int(spills.group(1)) + int(spills.group(2)) if spills else 0


def compile_source(kernel_name, args, constants):
    """What ``triton.compile`` needs for a recorded launch, as plain (picklable) data:
    ``(kernel_name, signature, constexprs, attrs, options)``."""
    kernel = getattr(triton_backend._kernels(), kernel_name)
    constants = dict(constants)
    options = {"num_warps": constants.pop("num_warps", triton_backend.NUM_WARPS)}
    return (kernel_name,) + signature_of(kernel, args, constants) + (options,)


def compile_and_measure(source, arch):
    """``(instructions_per_step, registers, spill_bytes, compile_seconds)`` of one
    variant compiled for ``arch``."""
    import triton
    from triton.backends.compiler import GPUTarget

    started = time.perf_counter()
    kernel_name, signature, constexprs, attrs, options = source
    kernel = getattr(triton_backend._kernels(), kernel_name)
    ast = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    capability = int(arch.removeprefix("sm_"))
    ptx = triton.compile(ast, target=GPUTarget("cuda", capability, 32), options=options).asm["ptx"]
    registers, spills = ptxas_usage(ptx, arch)
    return instructions_per_step(kernel_name, ptx, constexprs), registers, spills, time.perf_counter() - started


def pass_name(kernel_name, constants):
    """What a launch does: the pass that writes the output or the gradients
    (``forward``, ``adjoint``), or one of the time-chunk passes (``*_transition``:
    from unit states; ``*_local``: every chunk from its start; ``carry``)."""
    if kernel_name == "carry_kernel":
        return "carry_reverse" if constants["REVERSE"] else "carry"
    if kernel_name == "cascade_adjoint_kernel":
        return "adjoint"
    role = "forward" if kernel_name == "forward_kernel" else "adjoint"
    if constants.get("UNIT_STATES"):
        return f"{role}_transition"
    if constants.get("CHECKPOINT"):
        return "forward_checkpoints"
    if constants.get("WRITE_Y") or any(constants.get(flag) for flag in ("NEED_X", "NEED_A", "NEED_B")):
        return role
    return f"{role}_local"


class _InProcess:
    """``--jobs 1``: the executor interface, run in this process as results are asked for."""

    class _Later:
        def __init__(self, function, arguments):
            self.function, self.arguments = function, arguments

        def result(self):
            return self.function(*self.arguments)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return False

    def submit(self, function, *arguments):
        return self._Later(function, arguments)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=["sm_90", "sm_89"])
    parser.add_argument("--orders", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--sections", nargs="+", type=int, default=[2, 4, 8])
    parser.add_argument("--jobs", type=int, default=1, help="compile in this many processes")
    parser.add_argument("--check", action="store_true", help="exit 1 where a target is missed")
    arguments = parser.parse_args()
    if not triton_backend.available():
        print("SKIP triton_report: Triton is not installed (it ships with CUDA builds of torch)")
        return 0
    jobs = []  # (variant, shown order, arch, source), in the order printed
    for arch in arguments.arch:
        seen = set()
        for family, order, run in variants(arguments.orders, arguments.sections):
            for kernel_name, _, args, constants in record_launches(run):
                key = (kernel_name, tuple(sorted(constants.items())))
                if key in seen:
                    continue
                seen.add(key)
                variant = "_".join(part for part in (family, pass_name(kernel_name, constants)) if part)
                shown_order = constants.get("ORDER", constants.get("DIM", order))
                jobs.append((variant, shown_order, arch, compile_source(kernel_name, args, constants)))
    failures = 0
    with concurrent.futures.ProcessPoolExecutor(arguments.jobs) if arguments.jobs > 1 else _InProcess() as pool:
        futures = [pool.submit(compile_and_measure, source, arch) for _, _, arch, source in jobs]
        for (variant, shown_order, arch, _), future in zip(jobs, futures):
            try:
                per_step, registers, spills, seconds = future.result()
            except Exception as error:  # report and go on: one line per variant
                failures += 1
                print(f"FAILED {variant} arch={arch} order={shown_order}: {type(error).__name__}: {error}")
                continue
            print(
                f"KERNEL {variant} arch={arch} order={shown_order} instructions_per_step={per_step:.1f} "
                f"registers={registers} spill_bytes={spills} compile_s={seconds:.1f}",
                flush=True,
            )
            limit = TARGETS.get((variant, shown_order)) if arch == "sm_90" else None
            if arguments.check and (spills > 0 or (limit is not None and per_step > limit)):
                failures += 1
                print(f"MISSED {variant} arch={arch} order={shown_order}: "
                      f"{per_step:.1f} instructions per step (target {limit}), {spills} bytes spilled")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
