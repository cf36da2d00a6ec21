"""What the time-varying Triton kernels compile to on a GPU, read without one.

As ``triton_report.py`` (whose specialisation, ``ptxas`` and loop-finding helpers this
uses): the host code of ``backends/triton/varying.py`` runs on meta tensors of the
bank workload (``[32, 1, 16000]`` float32 through 128 filters) with its launcher
replaced by a recorder, and each launch is compiled with ``triton.compile`` for a
``GPUTarget``. Coefficients are float32 ``(128, steps, K)``: per sample
(``steps = T``), per frame (``hop = 128``) or constant (``steps = 1``).

Instructions per step: the PTX of the tiled time loop (the loop with the most
instructions of its own) divided by its ``TILE`` steps. With frames, the tiles in
which a frame starts after their first sample run a sample at a time (a nested loop,
left out: none of them when ``hop`` is a multiple of ``TILE``), and a tile may start
with a frame's reload (forward) or end with a frame's flush (adjoint):
``instructions_per_step`` is the shortest path through the loop body (a tile
without them), ``with_boundaries`` the longest (divided by ``TILE`` too; one tile in
``hop / TILE`` pays it). Registers and spills: ``ptxas -v``.

One line per variant::

    KERNEL varying_<pass>_<coefficients> arch=<sm> order=<N> tile=<t> instructions_per_step=<x>
        with_boundaries=<y> registers=<r> spill_bytes=<s> compile_s=<t>

Usage::

    python benchmarks/triton_varying_report.py                       # sm_90, orders 1 2 4 8
    python benchmarks/triton_varying_report.py --orders 2 --modes frames
"""
import argparse
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from multi_lfilter.backends.triton import available, varying  # noqa: E402
from triton_report import BANK, is_instruction, ptxas_usage, signature_of  # noqa: E402

HOP = 128
MODES = {"samples": BANK["length"], "frames": -(-BANK["length"] // HOP), "constant": 1}


def record_launches(run):
    """``[(kernel, args, constants)]`` of every launch ``run()`` makes."""
    launches = []
    original = varying._launch
    varying._launch = lambda kernel, grid, *args, **constants: launches.append((kernel, args, constants))
    try:
        run()
    finally:
        varying._launch = original
    return launches


def problem(order, mode):
    """The bank workload on meta tensors, both coefficient tensors read as ``mode``."""
    meta = dict(device="meta", dtype=torch.float32)
    steps = MODES[mode]
    waveform = torch.empty(BANK["batch"], 1, BANK["length"], **meta)
    a = torch.empty(BANK["filters"], steps, order + 1, **meta)
    b = torch.empty(BANK["filters"], steps, order + 1, **meta)
    p = varying._Problem(waveform, a, b, [BANK["batch"], BANK["filters"]], HOP if mode == "frames" else 0)
    y = torch.empty(p.batch + [p.length], **meta)
    return p, y


def basic_blocks(ptx):
    """The kernel's basic blocks, as ``{name: (loop, n_instructions, successors)}``
    with ``loop`` the header of the innermost loop holding the block (``None``
    outside loops), from the loop comments LLVM writes beside each block."""
    blocks = {}
    name, loop, count, successors, ended = None, None, 0, [], False

    def close(next_name):
        if name is not None:
            blocks[name] = (loop, count, successors + ([] if ended else [next_name]))

    for line in ptx.splitlines():
        label = re.match(r"^(\$L__BB\d+_\d+):|^// (%bb\.\d+):", line)
        if label:
            new_name = label.group(1) or label.group(2)
            close(new_name)
            name, loop, count, successors, ended = new_name, None, 0, [], False
        if name is not None and count == 0 and "//" in line:  # the block's loop comments
            if "Loop Header" in line:
                loop = name
            elif loop is None and re.search(r"in Loop: Header=BB(\d+_\d+)", line):
                loop = "$L__BB" + re.search(r"in Loop: Header=BB(\d+_\d+)", line).group(1)
        if label or name is None or not is_instruction(line):
            continue
        count += 1
        branch = re.search(r"(@!?%p\d+\s+)?bra(?:\.uni)?\s+(\$L__BB\d+_\d+);", line)
        if branch:
            successors.append(branch.group(2))
            ended = not branch.group(1)
        elif re.search(r"\bret;", line):
            ended = True
    close(None)
    return blocks


def time_loop_paths(ptx):
    """``(shortest, longest)`` instruction counts once round the tiled time loop (the
    loop with the most instructions of its own), from its header to the branch back
    to it, leaving out its nested loops (the tiles run a sample at a time)."""
    blocks = basic_blocks(ptx)
    sizes = {}
    for loop, count, _ in blocks.values():
        if loop is not None:
            sizes[loop] = sizes.get(loop, 0) + count
    header = max(sizes, key=sizes.get)
    own = {name for name, (loop, _, _) in blocks.items() if loop == header}

    cache = {}

    def paths(name):
        """(shortest, longest) from the start of ``name`` to the branch back."""
        if name not in cache:
            _, count, successors = blocks[name]
            found = [(0, 0) if s == header else paths(s) for s in successors if s == header or s in own]
            found = [f for f in found if f is not None]
            cache[name] = (count + min(f[0] for f in found), count + max(f[1] for f in found)) if found else None
        return cache[name]

    return paths(header)


def measure(kernel_name, args, constants, arch):
    """``(instructions_per_step, with_boundaries, registers, spill_bytes, seconds)`` of
    one recorded launch compiled for ``arch``."""
    import triton
    from triton.backends.compiler import GPUTarget

    started = time.perf_counter()
    kernel = getattr(varying._kernels(), kernel_name)
    constants = dict(constants)
    options = {"num_warps": constants.pop("num_warps", varying.NUM_WARPS)}
    signature, constexprs, attrs = signature_of(kernel, args, constants)
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    target = GPUTarget("cuda", int(arch.removeprefix("sm_")), 32)
    ptx = triton.compile(source, target=target, options=options).asm["ptx"]
    registers, spills = ptxas_usage(ptx, arch)
    shortest, longest = time_loop_paths(ptx)
    tile = constants["TILE"]
    return shortest / tile, longest / tile, registers, spills, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=["sm_90"])
    parser.add_argument("--orders", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--passes", nargs="+", choices=["forward", "adjoint"], default=["forward", "adjoint"])
    parser.add_argument("--tile", type=int, help="compile with this TILE instead of the backend's choice")
    arguments = parser.parse_args()
    if arguments.tile:
        varying.tile_for = lambda *_: arguments.tile
    if not available():
        print("SKIP triton_varying_report: Triton is not installed (it ships with CUDA builds of torch)")
        return 0
    failures = 0
    for arch in arguments.arch:
        for mode in arguments.modes:
            for order in arguments.orders:
                p, y = problem(order, mode)
                runs = {
                    "forward": lambda: varying._forward(p, None),
                    "adjoint": lambda: varying._adjoint(p, torch.empty_like(y), None, y, (True, True, True, False)),
                }
                for name in arguments.passes:
                    for kernel_name, args, constants in record_launches(runs[name]):
                        try:
                            per_step, with_boundaries, registers, spills, seconds = measure(
                                kernel_name, args, constants, arch)
                        except Exception as error:  # one line per variant
                            failures += 1
                            print(f"FAILED varying_{name}_{mode} arch={arch} order={order}: "
                                  f"{type(error).__name__}: {error}", flush=True)
                            continue
                        print(f"KERNEL varying_{name}_{mode} arch={arch} order={order} tile={constants['TILE']} "
                              f"instructions_per_step={per_step:.1f} with_boundaries={with_boundaries:.1f} "
                              f"registers={registers} spill_bytes={spills} compile_s={seconds:.1f}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
