"""Graphs that keep the filter op: torch.jit.trace and torch.export resolve the backend
where the graph runs, from the tensors it receives."""
import os
import subprocess
import sys
import textwrap

import torch

from multi_lfilter import lfilter_bank

A = torch.tensor([[1.0, -1.6, 0.8], [1.0, -0.5, 0.1]])
B = torch.tensor([[0.2, 0.1, 0.05], [0.3, 0.0, -0.3]])


def bank(waveform):
    return lfilter_bank(waveform, a_coeffs=A, b_coeffs=B)


def test_jit_trace_records_the_filter_not_a_constant():
    """Traced without autograd, the graph holds the op, not an empty tensor: new
    inputs, of new lengths too, give new outputs (it used to return the trace's)."""
    with torch.no_grad():
        traced = torch.jit.trace(bank, torch.randn(3, 1, 100))
    assert "multi_lfilter::filter" in str(traced.graph)
    for shape in [(3, 1, 100), (2, 1, 257)]:
        waveform = torch.randn(shape)
        torch.testing.assert_close(traced(waveform), bank(waveform))


class Bank(torch.nn.Module):
    def forward(self, waveform):
        return bank(waveform)


def test_an_exported_program_resolves_the_backend_where_it_runs(tmp_path):
    """Exported where the C kernels run, the program carries "auto" and runs where they
    are disabled (the block algorithm then does the work)."""
    waveform = torch.randn(3, 1, 200)
    program = torch.export.export(Bank(), (waveform,))
    filters = [node for node in program.graph.nodes if "multi_lfilter" in str(node.target)]
    assert filters and all("auto" in node.args for node in filters), [node.args for node in filters]
    torch.export.save(program, str(tmp_path / "bank.pt2"))
    torch.save({"waveform": waveform, "expected": bank(waveform)}, str(tmp_path / "io.pt"))
    script = textwrap.dedent(
        f"""
        import torch, multi_lfilter
        assert "native" not in multi_lfilter.available_backends()
        program = torch.export.load({str(tmp_path / "bank.pt2")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        torch.testing.assert_close(program.module()(io["waveform"]), io["expected"], rtol=1e-5, atol=1e-6)
        print("ran-without-native")
        """
    )
    environment = dict(os.environ, MULTI_LFILTER_DISABLE_NATIVE="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ran-without-native" in result.stdout
