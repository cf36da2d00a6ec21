"""torch.export with a choice: portable (standard ops, the default) or native (the op
library's operator), ``to_portable`` between them, and an AOTInductor package of a
native program run with only the op library loaded."""
import subprocess
import sys
import textwrap

import pytest
import torch

import multi_lfilter
from multi_lfilter import SOSFilterBank, export_mode, lfilter_bank, to_portable
from multi_lfilter.backends import native

from helpers import LogEnergies

needs_native = pytest.mark.skipif(not native.available(), reason="the op library is not loaded here")
NATIVE_OP = "multi_lfilter.native_filter.default"
INPUTS = [torch.randn(2, 777), torch.randn(5, 3000)]  # two batch sizes, two lengths


def export(model, example=None):
    dims = {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=2, max=2**24)}}
    return torch.export.export(model, (torch.randn(3, 1000) if example is None else example,), dynamic_shapes=dims)


def call_targets(program):
    return [str(node.target) for node in program.graph.nodes if node.op == "call_function"]


def test_the_default_mode_is_portable():
    assert multi_lfilter.export_modes.current_export_mode() == "portable"
    assert NATIVE_OP not in call_targets(export(LogEnergies()))


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match=r"expected an export mode in \('portable', 'native'\), got 'fast'"):
        with export_mode("fast"):
            pass


@needs_native
def test_a_native_program_holds_one_op_per_filter_call_at_any_shape():
    model = LogEnergies()
    with export_mode("native"):
        program = export(model)
    assert multi_lfilter.export_modes.current_export_mode() == "portable"  # restored
    assert call_targets(program).count(NATIVE_OP) == 1
    for waveform in INPUTS:
        torch.testing.assert_close(program.module()(waveform), model(waveform), rtol=0, atol=0)


@needs_native
def test_a_cascade_exports_one_native_op_per_section():
    sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.2]]]).repeat(3, 1, 1)
    model = SOSFilterBank(sos)
    with export_mode("native"):
        program = export(model)
    assert call_targets(program).count(NATIVE_OP) == 2
    for waveform in INPUTS:
        torch.testing.assert_close(program.module()(waveform), model(waveform), rtol=1e-6, atol=1e-6)


@needs_native
@pytest.mark.slow
def test_to_portable_replaces_the_native_ops_with_the_export_graph(tmp_path):
    """The portable program has no native node, matches, and loads without the package."""
    model = LogEnergies()
    with export_mode("native"):
        native_program = export(model)
    portable = to_portable(native_program)
    assert NATIVE_OP not in call_targets(portable)
    assert not any("multi_lfilter" in target for target in call_targets(portable))
    for waveform in INPUTS:
        torch.testing.assert_close(portable.module()(waveform), model(waveform), rtol=1e-5, atol=1e-6)
    torch.export.save(portable, str(tmp_path / "portable.pt2"))
    torch.save({"inputs": INPUTS, "expected": [model(x).detach() for x in INPUTS]}, str(tmp_path / "io.pt"))
    output = _run_without_the_package(
        f"""
        program = torch.export.load({str(tmp_path / "portable.pt2")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        for waveform, expected in zip(io["inputs"], io["expected"]):
            torch.testing.assert_close(program.module()(waveform), expected, rtol=1e-5, atol=1e-6)
        print("portable-ok")
        """,
        tmp_path,
    )
    assert "portable-ok" in output


@needs_native
def test_a_native_program_is_differentiable():
    """``ExportedProgram.module()`` keeps autograd: the op's registered formula."""
    waveform = torch.randn(2, 300, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([[1.0, -1.6, 0.8]], dtype=torch.float64)
    b = torch.tensor([[0.2, 0.1, 0.05]], dtype=torch.float64)

    class Bank(torch.nn.Module):
        def forward(self, waveform):
            return lfilter_bank(waveform, a_coeffs=a, b_coeffs=b)

    with export_mode("native"):
        program = torch.export.export(Bank(), (waveform,))
    (gradient,) = torch.autograd.grad(program.module()(waveform).square().sum(), waveform)
    (expected,) = torch.autograd.grad(Bank()(waveform).square().sum(), waveform)
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-12)


def _run_without_the_package(program, folder, load_library=False):
    """Runs ``program`` (after ``import torch``) where ``import multi_lfilter`` fails,
    with the op library loaded first where asked."""
    header = "import sys\nsys.modules['multi_lfilter'] = None\nimport torch\n"
    if load_library:
        header += f"torch.ops.load_library({str(multi_lfilter.library_path())!r})\n"
    result = subprocess.run(
        [sys.executable, "-c", header + textwrap.dedent(program)], cwd=folder, capture_output=True, text=True,
        timeout=600, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@needs_native
@pytest.mark.slow
def test_an_aotinductor_package_of_a_native_program_runs_with_only_the_op_library(tmp_path):
    """AOTInductor calls the op through the dispatcher: the package needs the library
    loaded, and nothing of this package's Python code."""
    model = LogEnergies()
    with export_mode("native"):
        program = export(model)
    path = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "native.pt2"))
    torch.save({"inputs": INPUTS, "expected": [model(x).detach() for x in INPUTS]}, str(tmp_path / "io.pt"))
    output = _run_without_the_package(
        f"""
        runner = torch._inductor.aoti_load_package({path!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        for waveform, expected in zip(io["inputs"], io["expected"]):
            torch.testing.assert_close(runner(waveform), expected, rtol=1e-5, atol=1e-6)
        print("aoti-native-ok")
        """,
        tmp_path,
        load_library=True,
    )
    assert "aoti-native-ok" in output
