"""What a source distribution and the API docs carry."""
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
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
                   "multi_lfilter/csrc/lfilter_kernels.h", "multi_lfilter/csrc/lfilter_tiles.h",
                   "multi_lfilter/csrc/native_ops.cpp", "multi_lfilter/csrc/varying_kernels.c",
                   "multi_lfilter/csrc/varying_kernels.h",
                   "tests/conftest.py", "tests/helpers.py", "benchmarks/bench_lfilter.py"):
        assert wanted in names, wanted


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source checkout")
@pytest.mark.slow
def test_an_install_without_the_op_library_warns_and_falls_back(tmp_path):
    """What a machine without a compiler gets (``MULTI_LFILTER_SKIP_BUILD=1`` stands in
    for the missing compiler): the install succeeds, the import warns once with the
    fix, and CPU calls run the block algorithm, matching scipy."""
    environment = dict(os.environ, MULTI_LFILTER_SKIP_BUILD="1")
    source = tmp_path / "source"  # the checkout without its build outputs
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "_build", "*.so", "*.egg-info", "__pycache__", ".hypothesis"))
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=600, env=environment,
    )
    assert install.returncode == 0, install.stderr
    assert not list(target.glob("multi_lfilter/_ops*")), "the op library was built anyway"
    program = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import multi_lfilter
        import numpy as np, scipy.signal, torch
        messages = [str(w.message) for w in caught if "op library" in str(w.message)]
        assert len(messages) == 1 and "not built" in messages[0], messages
        assert multi_lfilter.library_path() is None
        assert "native" not in multi_lfilter.available_backends()
        x = np.random.default_rng(0).normal(size=400)
        a, b = np.array([1.0, -1.6, 0.8]), np.array([0.2, 0.1, 0.05])
        y = multi_lfilter.lfilter_bank(torch.from_numpy(x), a_coeffs=torch.from_numpy(a), b_coeffs=torch.from_numpy(b))
        assert np.abs(y.numpy() - scipy.signal.lfilter(b, a, x)).max() < 1e-10
        print("fallback-ok", multi_lfilter.__file__)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(target)),
    )
    assert run.returncode == 0, run.stderr
    assert "fallback-ok" in run.stdout and str(target) in run.stdout


@pytest.mark.parametrize("module", [multi_lfilter.LFilterBank, multi_lfilter.BiquadFilterBank, multi_lfilter.SOSFilterBank])
def test_modules_document_their_own_forward(module):
    """The API page shows each Module's forward, not nn.Module's inherited text."""
    assert module.forward.__doc__ and module.forward.__doc__ != torch.nn.Module.forward.__doc__
    assert "(..., C, T)" in module.forward.__doc__
