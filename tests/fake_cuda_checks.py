"""Checks of the CUDA path that need no GPU: on fake CUDA tensors (``FakeTensorMode``),
and on the kernels as compiled for an H100.

Run as a script by ``test_fake_cuda.py``, in a process where Triton's interpreter is
off (the test process turns it on without a GPU, and interpreted kernels can be
neither traced nor compiled). Fake tensors have shapes, dtypes and devices but no
values, so:

- a host-device sync (any read of a value: ``.item()``, ``bool(tensor)``) raises;
- ``torch.export`` and AOTAutograd (the front half of ``torch.compile``) trace what
  a CUDA call records, without running a kernel.

The compiled kernels' integer arithmetic is read from their Triton IR (compiled for
``sm_90`` by Triton's own compiler, as ``benchmarks/triton_report.py`` does).

Prints one JSON line per check: ``{"check": name, "ok": bool, "detail": str}``.
"""
import json
import sys
import traceback

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import multi_lfilter
from multi_lfilter import _op
from multi_lfilter.backends import block, triton as triton_backend

CHECKS = {}


def check(function):
    CHECKS[function.__name__] = function
    return function


def bank(mode, batch=2, filters=3, length=600, requires_grad=False, sections=None):
    """Fake CUDA inputs: ``(waveform (B, 1, T), a, b (C, [S,] 3), zi (B, C, [S,] 2))``."""
    with mode:
        taps = [filters] + ([sections] if sections else []) + [3]
        waveform = torch.empty(batch, 1, length, device="cuda")
        a = torch.empty(taps, device="cuda")
        b = torch.empty(taps, device="cuda")
        zi = torch.empty([batch, filters] + ([sections] if sections else []) + [2], device="cuda")
    for tensor in (waveform, a, b, zi):
        tensor.requires_grad_(requires_grad)
    return waveform, a, b, zi


@check
def no_sync_in_the_functions():
    """Filters and cascades on every CUDA backend read no value on the way to their op
    (checks, normalisation, dispatch); the ops' host code is checked below. (The
    autograd engine itself needs a real device, so backward is checked op by op.)"""
    for backend in ("triton", "block", "auto"):
        mode = FakeTensorMode()
        waveform, a, b, zi = bank(mode, requires_grad=True)
        with mode:
            y, zf = multi_lfilter.lfilter_bank_with_state(waveform, a, b, zi, backend=backend)
            assert y.requires_grad and y.shape == (2, 3, 600)
            sos = torch.cat([b, a], -1).unsqueeze(-2).expand(3, 2, 6)
            y, zf = multi_lfilter.sosfilt_bank_with_state(waveform, sos, zi.unsqueeze(-2).expand(2, 3, 2, 2),
                                                          backend=backend)
            assert y.requires_grad and zf.shape == (2, 3, 2, 2)
    return "triton, block and auto: filters and cascades"


@check
def no_sync_in_the_kernels_host_code():
    """The backends' own host code (run by the ops on real tensors) reads no value."""
    mode = FakeTensorMode()
    waveform, a, b, zi = bank(mode, length=40000)
    with mode:
        a, b, zi = a.double(), b.double(), zi.double()
        for module in (triton_backend, block):
            y, zf = module.forward(waveform, a, b, zi)
            module.adjoint(y, zf, waveform, a, b, y, list(zi.shape), (True, True, True, True))
        grad_y = torch.empty(2, 3, 40000, device="cuda")
        _op.filter_adjoint_op(grad_y, None, waveform, a, b, y, list(zi.shape), [True, True, True, True], "auto")
        waveform, a, b, zi = bank(mode, length=40000, sections=3)
        a, b, zi = a.double(), b.double(), zi.double()
        y, zf = triton_backend.cascade_forward(waveform, a, b, zi)
        triton_backend.cascade_adjoint(y, zf, waveform, a, b, zi, (True, True, True, True))
    return "triton (time-chunked at 40000 samples) and block"


class Bank(torch.nn.Module):
    def __init__(self, backend, cascade=False):
        super().__init__()
        self.backend = backend
        self.cascade = cascade

    def forward(self, waveform, a, b):
        if self.cascade:
            return multi_lfilter.sosfilt_bank(waveform, torch.cat([b, a], -1), backend=self.backend)
        return multi_lfilter.lfilter_bank(waveform, a, b, backend=self.backend)


def exported_targets(backend, cascade=False):
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    waveform, a, b, _ = bank(mode, sections=2 if cascade else None)
    with mode:
        program = torch.export.export(Bank(backend, cascade), (waveform, a, b))
    return {str(node.target) for node in program.graph.nodes if node.op == "call_function"}


@check
def export_on_cuda_records_the_triton_op():
    """backend="triton": the program holds the Triton op (AOTInductor compiles its
    kernels); "auto" (the block algorithm on CUDA) lowers to standard ops."""
    triton_targets = exported_targets("triton")
    assert "multi_lfilter.triton_filter.default" in triton_targets, triton_targets
    assert not any("bmm" in target or "matmul" in target for target in triton_targets), triton_targets
    auto_targets = exported_targets("auto")
    assert not any("multi_lfilter" in target for target in auto_targets), auto_targets
    cascade_targets = exported_targets("triton", cascade=True)
    assert "multi_lfilter.triton_filter.default" in cascade_targets, cascade_targets
    return f"{len(triton_targets)} targets with triton, {len(auto_targets)} standard ops with auto"


def traced_kernels(function, *inputs):
    """The Triton kernels AOTAutograd (what ``torch.compile`` hands Inductor) sees when
    tracing ``function`` forward, and no opaque multi_lfilter op."""
    from torch._functorch.aot_autograd import aot_function
    from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table

    graphs = []

    def keep(graph_module, _):
        graphs.append(graph_module)
        return graph_module

    aot_function(function, fw_compiler=keep)(*inputs)
    nodes = [node for graph_module in graphs for node in graph_module.graph.nodes]
    assert not any("multi_lfilter" in str(node.target) for node in nodes), [str(node.target) for node in nodes]
    kernels = [kernel_side_table.get_kernel(node.kwargs["kernel_idx"]) for node in nodes
               if "triton_kernel_wrapper" in str(node.target)]
    return sorted({getattr(kernel, "fn", kernel).__name__ for kernel in kernels})


@check
def compile_traces_into_the_kernels():
    """Under torch.compile a CUDA call with backend="triton" is the Triton kernels
    themselves, forward and adjoint, for filters and cascades."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    waveform, a, b, zi = bank(mode, length=40000)
    sections = bank(mode, length=40000, sections=2)
    found = {}
    with mode:
        found["filter"] = traced_kernels(lambda x, a, b: Bank("triton")(x, a, b), waveform, a, b)
        a, b, zi = a.double(), b.double(), zi.double()
        y = torch.empty(2, 3, 40000, device="cuda")
        found["filter adjoint"] = traced_kernels(
            lambda g, x, a, b, y: triton_backend.filter_adjoint_op(g, None, x, a, b, y, [], [True, True, True, False]),
            y, waveform, a, b, y,
        )
        found["cascade"] = traced_kernels(lambda x, a, b: Bank("triton", cascade=True)(x, a, b), *sections[:3])
        sos_a, sos_b = sections[1].double(), sections[2].double()
        found["cascade adjoint"] = traced_kernels(
            lambda g, x, a, b: triton_backend.sosfilt_adjoint_op(g, None, x, a, b, None, [True, True, True, False]),
            y, waveform, sos_a, sos_b,
        )
    assert found["filter"] == ["carry_kernel", "forward_kernel"], found
    assert found["filter adjoint"] == ["adjoint_kernel", "carry_kernel"], found
    assert found["cascade"] == ["carry_kernel", "forward_kernel"], found
    assert found["cascade adjoint"] == ["adjoint_kernel", "carry_kernel", "cascade_adjoint_kernel", "forward_kernel"], found
    return json.dumps(found)


@check
def offsets_are_64_bit():
    """Every integer product in every kernel is 64-bit (an output past 2**31 elements,
    or chunk rows times the state's size, would wrap in 32 bits), in the launches of a
    filter and of a cascade, forward and backward, chunked in time."""
    import re
    import importlib.util
    from pathlib import Path

    import triton
    from triton.backends.compiler import GPUTarget

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "triton_report.py"
    spec = importlib.util.spec_from_file_location("triton_report", path)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    compiled = set()
    for _, _, run in report.variants([2], [2]):
        for kernel_name, _, args, constants in report.record_launches(run):
            name, signature, constexprs, attrs, options = report.compile_source(kernel_name, args, constants)
            kernel = getattr(triton_backend._kernels(), name)
            source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
            ir = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["ttir"]
            products = re.findall(r"arith\.muli [^\n]*: (\S+)", ir)
            assert products, f"{name}: no integer products found: is the IR's syntax what this check reads?"
            narrow = [kind for kind in products if "i64" not in kind]
            assert not narrow, f"{name} multiplies in {narrow}"
            compiled.add(name)
    assert compiled == {"forward_kernel", "adjoint_kernel", "carry_kernel", "cascade_adjoint_kernel"}, compiled
    return f"{sorted(compiled)}"


if __name__ == "__main__":
    for name, function in CHECKS.items():
        try:
            detail = function()
            print(json.dumps({"check": name, "ok": True, "detail": detail}), flush=True)
        except Exception:
            print(json.dumps({"check": name, "ok": False, "detail": traceback.format_exc()}), flush=True)
    sys.exit(0)
