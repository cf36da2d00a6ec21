"""What a source distribution and the API docs carry."""
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

import multi_lfilter

ROOT = Path(__file__).resolve().parent.parent


def test_license_and_type_marker_ship_with_the_package():
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text()
    assert (Path(multi_lfilter.__file__).parent / "py.typed").exists()


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source checkout")
def test_the_source_distribution_carries_the_tests_license_and_kernels(tmp_path):
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for wanted in ("LICENSE", "multi_lfilter/py.typed", "multi_lfilter/csrc/lfilter_kernels.c",
                   "tests/conftest.py", "tests/helpers.py", "benchmarks/bench_lfilter.py"):
        assert wanted in names, wanted


@pytest.mark.parametrize("module", [multi_lfilter.LFilterBank, multi_lfilter.BiquadFilterBank, multi_lfilter.SOSFilterBank])
def test_modules_document_their_own_forward(module):
    """The API page shows each Module's forward, not nn.Module's inherited text."""
    assert module.forward.__doc__ and module.forward.__doc__ != torch.nn.Module.forward.__doc__
    assert "(..., C, T)" in module.forward.__doc__
