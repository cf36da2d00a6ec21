"""Graphs for deployment: torch.export (and ONNX, AOTInductor) lower the filter to
standard ops with dynamic batch and length; torch.jit.trace keeps the op, which resolves
its backend where the graph runs."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import multi_lfilter
from multi_lfilter import lfilter_bank

from helpers import LogEnergies

A = torch.tensor([[1.0, -1.6, 0.8], [1.0, -0.5, 0.1]])
B = torch.tensor([[0.2, 0.1, 0.05], [0.3, 0.0, -0.3]])
# Runs a script where ``import multi_lfilter`` fails, as on a machine without it.
WITHOUT_THE_PACKAGE = "import sys; sys.modules['multi_lfilter'] = None\n"


def bank(waveform):
    return lfilter_bank(waveform, a_coeffs=A, b_coeffs=B)


def dynamic_batch_and_length(minimum_length=1):
    return {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=minimum_length, max=2**24)}}


def export(model, example_length=1000, minimum_length=1):
    return torch.export.export(
        model, (torch.randn(3, example_length),), dynamic_shapes=dynamic_batch_and_length(minimum_length)
    )


def call_targets(program):
    return [str(node.target) for node in program.graph.nodes if node.op == "call_function"]


def run_script(script, environment=None):
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


NEW_INPUTS = [torch.randn(2, 777), torch.randn(5, 20000)]  # two batch sizes, two lengths


def test_an_exported_graph_holds_standard_ops_only_the_same_at_any_length():
    model = LogEnergies()
    short, long = export(model, 600), export(model, 40000)
    assert not [target for target in call_targets(short) if "multi_lfilter" in target]
    # aten ops, and the integer arithmetic on sizes (operator.floordiv and so on).
    standard = [target for target in call_targets(short) if target.startswith(("aten.", "<built-in function"))]
    assert standard == call_targets(short), sorted(set(call_targets(short)) - set(standard))
    assert call_targets(short) == call_targets(long)
    for waveform in NEW_INPUTS:
        torch.testing.assert_close(short.module()(waveform), model(waveform), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "front_end",
    [
        lambda x: multi_lfilter.lfilter_bank_with_state(x.unsqueeze(-2), A, B, zi=torch.ones(2, 2))[0],
        lambda x: lfilter_bank(x, torch.tensor([2.0]), torch.tensor([0.5, 0.25, 0.1])),  # no feedback
        lambda x: multi_lfilter.sosfilt_bank(x.unsqueeze(-2), torch.cat([B, A], -1).unsqueeze(1).repeat(1, 3, 1)),
        lambda x: multi_lfilter.filtfilt_bank(x.unsqueeze(-2), A, B),
        lambda x: multi_lfilter.lfilter(x, A[0], B[0]),
    ],
    ids=["state", "fir", "cascade", "filtfilt", "torchaudio-compatible"],
)
def test_every_front_end_exports_with_dynamic_batch_and_length(front_end):
    class Model(torch.nn.Module):
        def forward(self, waveform):
            return front_end(waveform)

    # filtfilt pads by 3 * max(Ka, Kb) samples and needs more than that: the range says so.
    program = export(Model(), minimum_length=10)
    assert not [target for target in call_targets(program) if "multi_lfilter" in target]
    for waveform in NEW_INPUTS:
        torch.testing.assert_close(program.module()(waveform), front_end(waveform), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_saved_program_runs_where_the_package_is_not_installed(tmp_path):
    model = LogEnergies()
    torch.export.save(export(model), str(tmp_path / "model.pt2"))
    torch.save({"inputs": NEW_INPUTS, "expected": [model(x).detach() for x in NEW_INPUTS]}, str(tmp_path / "io.pt"))
    script = WITHOUT_THE_PACKAGE + textwrap.dedent(
        f"""
        import torch
        program = torch.export.load({str(tmp_path / "model.pt2")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        for waveform, expected in zip(io["inputs"], io["expected"]):
            torch.testing.assert_close(program.module()(waveform), expected, rtol=1e-5, atol=1e-6)
        print("ran-without-the-package")
        """
    )
    assert "ran-without-the-package" in run_script(script)


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None,
    reason="onnx, onnxscript and onnxruntime come with the export extra: pip install multi_lfilter[export]",
)
@pytest.mark.slow
def test_the_onnx_model_runs_in_onnxruntime(tmp_path):
    import onnxruntime

    model = LogEnergies()
    waveform = torch.randn(3, 1000)
    onnx_program = torch.onnx.export(model, (waveform,), dynamic_shapes=dynamic_batch_and_length(), dynamo=True, verbose=False)
    onnx_program.save(str(tmp_path / "model.onnx"))
    assert not any("multi_lfilter" in node.domain for node in onnx_program.model_proto.graph.node)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    name = session.get_inputs()[0].name
    for waveform in NEW_INPUTS:
        (result,) = session.run(None, {name: waveform.numpy()})
        torch.testing.assert_close(torch.from_numpy(result), model(waveform).detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_an_aotinductor_package_runs_where_the_package_is_not_installed(tmp_path):
    """Compiled ahead of time (C++, about half a minute here), loaded without Python code."""
    model = LogEnergies()
    path = torch._inductor.aoti_compile_and_package(export(model), package_path=str(tmp_path / "model.pt2"))
    torch.save({"inputs": NEW_INPUTS, "expected": [model(x).detach() for x in NEW_INPUTS]}, str(tmp_path / "io.pt"))
    script = WITHOUT_THE_PACKAGE + textwrap.dedent(
        f"""
        import torch
        runner = torch._inductor.aoti_load_package({path!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        for waveform, expected in zip(io["inputs"], io["expected"]):
            torch.testing.assert_close(runner(waveform), expected, rtol=1e-5, atol=1e-6)
        print("ran-without-the-package")
        """
    )
    assert "ran-without-the-package" in run_script(script)


def test_an_unknown_backend_fails_at_export():
    class Model(torch.nn.Module):
        def forward(self, waveform):
            return lfilter_bank(waveform.unsqueeze(-2), A, B, backend="fastest")

    with pytest.raises(ValueError, match="expected backend to be 'auto' or one of"):
        export(Model())


def test_jit_trace_records_the_filter_not_a_constant():
    """Traced without autograd, the graph holds the op, not an empty tensor: new
    inputs, of new lengths too, give new outputs (it used to return the trace's)."""
    with torch.no_grad():
        traced = torch.jit.trace(bank, torch.randn(3, 1, 100))
    assert "multi_lfilter::filter" in str(traced.graph)
    for shape in [(3, 1, 100), (2, 1, 257)]:
        waveform = torch.randn(shape)
        torch.testing.assert_close(traced(waveform), bank(waveform))


def test_a_traced_graph_resolves_the_backend_where_it_runs(tmp_path):
    """Traced where the C kernels run, the graph keeps the op with "auto", and runs
    where they are disabled (the block algorithm then does the work)."""
    waveform = torch.randn(3, 1, 200)
    with torch.no_grad():
        traced = torch.jit.trace(bank, waveform)
    torch.jit.save(traced, str(tmp_path / "bank.pt"))
    torch.save({"waveform": waveform, "expected": bank(waveform)}, str(tmp_path / "io.pt"))
    script = textwrap.dedent(
        f"""
        import torch, multi_lfilter
        assert "native" not in multi_lfilter.available_backends()
        traced = torch.jit.load({str(tmp_path / "bank.pt")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        torch.testing.assert_close(traced(io["waveform"]), io["expected"], rtol=1e-5, atol=1e-6)
        print("ran-without-native")
        """
    )
    environment = dict(os.environ, MULTI_LFILTER_DISABLE_NATIVE="1")
    assert "ran-without-native" in run_script(script, environment)
