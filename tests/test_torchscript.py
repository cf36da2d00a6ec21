"""TorchScript: scripted functions and Modules match eager, and export without the package."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from multi_lfilter import BiquadFilterBank, SOSFilterBank, lfilter, lfilter_bank, lfilter_bank_with_state, sosfilt_bank_with_state

from multi_lfilter import library_path
from multi_lfilter.backends.dispatch import SCRIPT_PORTABLE_VARIABLE, SCRIPTS_CALL_NATIVE

from helpers import random_filter_bank

needs_scripted_native = pytest.mark.skipif(not SCRIPTS_CALL_NATIVE, reason="the op library is not loaded here")


class BankModel(torch.nn.Module):
    """A minimal model: a fixed bank of filters followed by a gain."""

    def __init__(self, a_coeffs, b_coeffs):
        super().__init__()
        self.register_buffer("a_coeffs", a_coeffs)
        self.b_coeffs = torch.nn.Parameter(b_coeffs)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        y, zf = lfilter_bank_with_state(waveform.unsqueeze(-2), self.a_coeffs, self.b_coeffs)
        return 2.0 * lfilter_bank(waveform.unsqueeze(-2), self.a_coeffs, self.b_coeffs) + y + zf.sum()


@pytest.mark.parametrize("backend", ["auto", "loop", "block"])
@pytest.mark.parametrize("length", [100, 1500], ids=["short-loop", "long-block"])
def test_scripted_functions_match_eager(backend, length, rng):
    """Under TorchScript "auto" runs the loop for short signals, the block algorithm for long."""
    a, b = random_filter_bank(3, n_filters=4, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(4, 3)))
    scripted_bank = torch.jit.script(lfilter_bank)
    scripted_with_state = torch.jit.script(lfilter_bank_with_state)
    expected_y, expected_zf = lfilter_bank_with_state(waveform, a, b, zi, backend="loop")
    torch.testing.assert_close(scripted_bank(waveform, a, b, zi, backend), expected_y, rtol=0, atol=1e-10)
    actual_y, actual_zf = scripted_with_state(waveform, a, b, zi, backend)
    torch.testing.assert_close(actual_y, expected_y, rtol=0, atol=1e-10)
    torch.testing.assert_close(actual_zf, expected_zf, rtol=0, atol=1e-10)


def test_scripted_lfilter_matches_eager(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng)
    waveform = torch.from_numpy(rng.uniform(-1, 1, size=(2, 300)))
    scripted_lfilter = torch.jit.script(lfilter)
    torch.testing.assert_close(scripted_lfilter(waveform, a, b, True, False), lfilter(waveform, a, b, True, False))


def test_scripted_unknown_backend_is_a_clear_error(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng)
    scripted_bank = torch.jit.script(lfilter_bank)
    with pytest.raises(torch.jit.Error, match="expected backend 'auto', 'native', 'block' or 'loop' under TorchScript, got triton"):
        scripted_bank(torch.randn(4, 300, dtype=torch.float64), a, b, None, "triton")


def _calls(graph) -> set:
    """The kinds of every node of a TorchScript graph, inside branches too."""
    kinds = set()
    pending = [graph]
    while pending:
        block = pending.pop()
        for node in block.nodes():
            kinds.add(node.kind())
            pending.extend(node.blocks())
    return kinds


@needs_scripted_native
@pytest.mark.parametrize("backend", ["auto", "native"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scripted_code_runs_the_native_op_on_cpu(backend, dtype, rng):
    """On CPU tensors scripted "auto" and "native" call the op library: the same bits as
    eager's native kernels, and the op is in the graph."""
    a, b = random_filter_bank(2, n_filters=4, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(3, 1, 700))).to(dtype)
    zi = torch.from_numpy(rng.normal(size=(4, 2))).to(dtype)
    scripted = torch.jit.script(lfilter_bank_with_state)
    actual = scripted(waveform, a.to(dtype), b.to(dtype), zi, backend)
    expected = lfilter_bank_with_state(waveform, a.to(dtype), b.to(dtype), zi, backend="native")
    assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])
    assert "multi_lfilter::native_filter" in _calls(scripted.inlined_graph)


@needs_scripted_native
def test_scripted_native_falls_back_where_the_op_cannot_run(rng):
    """Above the kernels' order (and on other devices) scripted "auto" runs the block
    algorithm; "native" says why it cannot."""
    a, b = random_filter_bank(34, n_filters=2, rng=rng, max_radius=0.5)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 300)))
    scripted = torch.jit.script(lfilter_bank)
    expected = lfilter_bank(waveform, a, b, backend="loop")
    torch.testing.assert_close(scripted(waveform, a, b, None, "auto"), expected, rtol=0, atol=1e-8)
    with pytest.raises(torch.jit.Error, match="expected a problem the native backend supports under TorchScript"):
        scripted(waveform, a, b, None, "native")


def _sections(rng, n_sections: int, n_filters: int = 3) -> torch.Tensor:
    a, b = random_filter_bank(2, n_filters=n_filters * n_sections, rng=rng, max_radius=0.9)
    return torch.cat([b, a], -1).reshape(n_filters, n_sections, 6)


@needs_scripted_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scripted_cascades_run_the_native_cascade_op(dtype, rng):
    """A scripted cascade is one ``native_sosfilt`` call (every section in one pass),
    bit for bit eager's, gradients included."""
    sos = _sections(rng, 4).to(dtype)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 500))).to(dtype)
    zi = torch.from_numpy(rng.normal(size=(3, 4, 2))).to(dtype)
    scripted = torch.jit.script(sosfilt_bank_with_state)
    actual = scripted(waveform, sos, zi, "auto")
    expected = sosfilt_bank_with_state(waveform, sos, zi, backend="native")
    assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])
    calls = _calls(scripted.inlined_graph)
    assert "multi_lfilter::native_sosfilt" in calls
    leaf = sos.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(scripted(waveform, leaf, zi, "auto")[0].square().sum(), leaf)
    eager_leaf = sos.clone().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(sosfilt_bank_with_state(waveform, eager_leaf, zi)[0].square().sum(), eager_leaf)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("backend", ["auto", "block", "loop"])
def test_scripted_cascades_beyond_the_fused_kernels_run_section_by_section(backend, rng):
    """More sections than the native kernels fuse (or a portable backend): the scripted
    filter per section, equal to eager's cascade."""
    from multi_lfilter.backends.native import MAX_SECTIONS

    sections = MAX_SECTIONS + 1 if backend == "auto" else 3
    sos = _sections(rng, sections, n_filters=2)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 300)))
    scripted = torch.jit.script(sosfilt_bank_with_state)
    actual = scripted(waveform, sos, None, backend)
    expected = sosfilt_bank_with_state(waveform, sos, None, backend="loop")
    torch.testing.assert_close(actual[0], expected[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(actual[1], expected[1], rtol=1e-9, atol=1e-9)


def test_scripted_module_matches_eager_and_trains(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng, max_radius=0.95)
    model = BankModel(a.float(), b.float())
    scripted = torch.jit.script(model)
    waveform = torch.randn(3, 200)
    torch.testing.assert_close(scripted(waveform), model(waveform), rtol=1e-6, atol=1e-5)
    scripted(waveform).square().mean().backward()
    assert scripted.b_coeffs.grad is not None and scripted.b_coeffs.grad.abs().sum() > 0


def exported_models(rng):
    a, b = random_filter_bank(2, n_filters=4, rng=rng, max_radius=0.95)
    sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]]]).repeat(3, 1, 1)
    return {
        "custom": BankModel(a.float(), b.float()),
        "biquad-bank": BiquadFilterBank(8, 16000, kind="peaking", gain_db=3.0),
        "sos-bank": SOSFilterBank(sos),
    }


def _run_without_the_package(program: str, folder, extra_environment=None):
    """Runs ``program`` where ``import multi_lfilter`` fails (from an empty folder, with
    the package's name blocked) and returns its standard output."""
    header = 'import sys, warnings\nwarnings.simplefilter("ignore")\nsys.modules["multi_lfilter"] = None\n'
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "", **(extra_environment or {})}
    result = subprocess.run(
        [sys.executable, "-c", header + textwrap.dedent(program)], cwd=folder, capture_output=True, text=True,
        timeout=300, env=environment,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


SCRIPT_AND_SAVE = """
    import multi_lfilter, torch, pickle
    from multi_lfilter.backends.dispatch import SCRIPTS_CALL_NATIVE
    assert not SCRIPTS_CALL_NATIVE
    model = pickle.load(open({model!r}, "rb"))
    torch.jit.save(torch.jit.script(model), {saved!r})
"""


@pytest.mark.parametrize("mode", ["native", pytest.param("portable", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", ["custom", "biquad-bank", "sos-bank"])
def test_saved_module_loads_in_a_process_without_multi_lfilter(name, mode, tmp_path, rng):
    """A scripted model runs where the package is not installed: with the op library
    loaded (the default where it is built), or with torch alone when scripted with
    ``MULTI_LFILTER_SCRIPT_PORTABLE=1``."""
    if mode == "native" and not SCRIPTS_CALL_NATIVE:
        pytest.skip("the op library is not loaded here")
    model = exported_models(rng)[name]
    waveform = torch.randn(3, 200)
    saved = str(tmp_path / "bank.pt")
    if mode == "native":
        torch.jit.save(torch.jit.script(model), saved)
    else:  # scripted in a process that imported the package with the switch set
        import pickle

        pickle.dump(model, open(tmp_path / "model.pkl", "wb"))
        program = SCRIPT_AND_SAVE.format(model=str(tmp_path / "model.pkl"), saved=saved)
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True, timeout=300,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__)] + sys.path),
                     **{SCRIPT_PORTABLE_VARIABLE: "1"}),
        )
        assert result.returncode == 0, result.stderr
    torch.save({"waveform": waveform, "expected": model(waveform).detach()}, tmp_path / "io.pt")
    load_library = f"torch.ops.load_library({str(library_path())!r})" if mode == "native" else ""
    output = _run_without_the_package(
        f"""
        import torch
        {load_library}
        model = torch.jit.load({saved!r})
        print("native-op" if "multi_lfilter::native_filter" in str(model.inlined_graph) else "built-in-ops-only")
        io = torch.load({str(tmp_path / "io.pt")!r})
        with torch.no_grad():
            actual = model(io["waveform"])
        torch.testing.assert_close(actual, io["expected"], rtol=1e-6, atol=1e-5)
        print("loaded-and-matched")
        """,
        tmp_path,
    )
    assert "loaded-and-matched" in output
    assert ("native-op" if mode == "native" else "built-in-ops-only") in output


@pytest.mark.parametrize("backend", ["loop", "block"])
def test_scripted_gradients_are_exact(backend, rng):
    """Under TorchScript gradients flow by autograd through the loop or the block ops."""
    from torch.autograd import gradcheck

    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.9)
    scripted_with_state = torch.jit.script(lfilter_bank_with_state)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 70))).requires_grad_(True)
    zi = torch.from_numpy(rng.normal(size=(3, 2))).requires_grad_(True)
    a.requires_grad_(True)
    b.requires_grad_(True)

    def filtered(waveform, a, b, zi):
        return scripted_with_state(waveform, a, b, zi, backend)

    assert gradcheck(filtered, (waveform, a, b, zi))
