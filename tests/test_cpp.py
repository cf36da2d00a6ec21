"""A libtorch C++ program (``tests/cpp/run_models.cpp``) runs a scripted model and an
AOTInductor package that call the op library, with no Python in the process."""
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import multi_lfilter
from multi_lfilter import export_mode
from multi_lfilter.backends import native
from multi_lfilter.backends.dispatch import SCRIPTS_CALL_NATIVE

from helpers import LogEnergies

SOURCE = Path(__file__).parent / "cpp" / "run_models.cpp"
COMPILER = shutil.which("g++") or shutil.which("clang++")
TORCH = Path(torch.__file__).parent
HEADERS = TORCH / "include" / "torch" / "script.h"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not native.available(), reason="the op library is not loaded here"),
    pytest.mark.skipif(COMPILER is None, reason="no C++ compiler (g++ or clang++) here"),
    pytest.mark.skipif(not HEADERS.exists(), reason="this torch has no libtorch headers"),
]


class Tensors(torch.nn.Module):
    """Tensors as attributes of a scripted module: what ``torch::jit::load`` reads."""

    def __init__(self, **tensors):
        super().__init__()
        for name, tensor in tensors.items():
            setattr(self, name, tensor)


def _build(folder: Path) -> Path:
    program = folder / "run_models"
    command = [
        COMPILER, "-std=c++20", "-O1", "-g0", str(SOURCE), "-o", str(program),
        f"-I{TORCH / 'include'}", f"-I{TORCH / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-L{TORCH / 'lib'}", f"-Wl,-rpath,{TORCH / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10", "-ldl",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(f"the C++ program does not build against this torch:\n{result.stderr[-2000:]}")
    return program


@pytest.mark.skipif(not SCRIPTS_CALL_NATIVE, reason="scripts are portable here")
def test_a_cpp_program_runs_a_scripted_model_and_an_aotinductor_package(tmp_path):
    model = LogEnergies().eval()
    waveform = torch.randn(3, 2000)
    with torch.no_grad():
        expected = model(waveform)
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(model), str(scripted))
    assert "native_filter" in str(torch.jit.load(str(scripted)).inlined_graph)
    dims = {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=2, max=2**24)}}
    with export_mode("native"):
        program = torch.export.export(model, (torch.randn(2, 1000),), dynamic_shapes=dims)
    package = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "native.pt2"))
    io = tmp_path / "io.pt"
    torch.jit.save(torch.jit.script(Tensors(waveform=waveform, expected=expected)), str(io))

    executable = _build(tmp_path)
    result = subprocess.run(
        [str(executable), str(multi_lfilter.library_path()), str(scripted), package, str(io)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["scripted-ok", "aoti-ok"]
