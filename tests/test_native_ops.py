"""The op library's operators (``multi_lfilter::native_*``, C++ on the stable ABI):
PyTorch's operator checks, their own error messages, and use without the package."""
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.library import opcheck

import multi_lfilter
from multi_lfilter.backends import native

from helpers import random_filter_bank, scipy_lfilter_rows

pytestmark = pytest.mark.skipif(not native.available(), reason="the op library is not loaded here")
ops = torch.ops.multi_lfilter


def _filter_cases(rng):
    """(waveform, a, b, zi) for the filter op: broadcast layouts, both dtypes, with and
    without a state, a non-contiguous waveform."""
    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.9)
    cases = []
    for dtype in (torch.float32, torch.float64):
        waveform = torch.from_numpy(rng.normal(size=(2, 1, 40))).to(dtype)
        zi = torch.from_numpy(rng.normal(size=(3, 2))).to(dtype)
        cases.append((waveform, a, b, None))
        cases.append((waveform, a, b, zi))
    strided = torch.from_numpy(rng.normal(size=(3, 80)))[:, ::2]
    cases.append((strided, a, b, None))
    return cases


def _cascade_cases(rng):
    sections = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.2]], dtype=torch.float64)
    a, b = sections[:, 3:].repeat(2, 1, 1), sections[:, :3].repeat(2, 1, 1)  # (2 filters, S=2, 3)
    cases = []
    for dtype in (torch.float32, torch.float64):
        waveform = torch.from_numpy(rng.normal(size=(3, 1, 40))).to(dtype)
        cases.append((waveform, a, b, None))
        cases.append((waveform, a, b, torch.from_numpy(rng.normal(size=(2, 2, 2))).to(dtype)))
    return cases


def test_the_filter_ops_pass_opcheck(rng):
    """Schema, fake kernel, autograd registration and AOTAutograd, forward and adjoint."""
    for waveform, a, b, zi in _filter_cases(rng):
        opcheck(ops.native_filter.default, (waveform, a, b, zi, 64))
        y, _ = ops.native_filter(waveform, a, b, zi)
        grad_y = torch.randn_like(y)
        grad_zf = torch.randn(list(y.shape[:-1]) + [2], dtype=torch.float64)
        for need_waveform, need_zi in ((True, True), (False, False)):
            opcheck(ops.native_filter_adjoint.default,
                    (grad_y, grad_zf, waveform, a, b, y, need_waveform, need_zi and zi is not None, 64))


def test_the_cascade_ops_pass_opcheck(rng):
    for waveform, a, b, zi in _cascade_cases(rng):
        opcheck(ops.native_sosfilt.default, (waveform, a, b, zi, 64))
        y, _ = ops.native_sosfilt(waveform, a, b, zi)
        grad_y = torch.randn_like(y)
        opcheck(ops.native_sosfilt_adjoint.default, (grad_y, None, waveform, a, b, zi, True, zi is not None, 64))


def test_the_filter_op_matches_scipy(rng):
    a, b = random_filter_bank(4, n_filters=3, rng=rng, max_radius=0.95)
    a, b = a / a[:, :1], b / a[:, :1]  # the op takes normalised coefficients
    waveform = torch.from_numpy(rng.normal(size=(1, 500)))
    y, _ = ops.native_filter(waveform, a, b, None)
    for row in range(3):
        expected, _ = scipy_lfilter_rows(waveform, a[row], b[row])
        torch.testing.assert_close(y[row], expected[0], rtol=0, atol=1e-10)


def test_the_ops_are_differentiable_twice():
    """The autograd formulas registered from Python on the C++ ops (what scripted and
    exported native programs differentiate)."""
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(2, 1, 25, dtype=torch.float64, generator=generator, requires_grad=True)
    a = torch.tensor([[1.0, -0.5, 0.2], [1.0, 0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    zi = torch.randn(2, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    filtered = lambda *inputs: ops.native_filter(*inputs, 64)  # noqa: E731
    assert torch.autograd.gradcheck(filtered, (waveform, a, b, zi))
    assert torch.autograd.gradgradcheck(filtered, (waveform, a, b, zi))
    cascade = lambda x, sa, sb, szi: ops.native_sosfilt(x, sa, sb, szi, 64)  # noqa: E731
    section_a = torch.stack([a, a.flip(0)], -2).detach().requires_grad_(True)  # (2, S=2, 3)
    section_b = torch.stack([b, b], -2).detach().requires_grad_(True)
    section_zi = torch.randn(2, 2, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(cascade, (waveform, section_a, section_b, section_zi))
    assert torch.autograd.gradgradcheck(cascade, (waveform, section_a, section_b, section_zi))


@pytest.mark.parametrize(
    "change, message",
    [
        ("order", "expected an order of at most 32, got 33"),
        ("dims", "expected at most 8 batch dims"),
        ("broadcast", "expected leading dims that broadcast"),
        ("float32 coefficients", "expected a_coeffs to be float64 CPU tensors"),
        ("integer waveform", "expected waveform to be float32 or float64"),
        ("lengths", "expected a and b of one length K >= 1"),
    ],
)
def test_the_ops_refuse_what_the_kernels_cannot_take(change, message):
    """The C++ layer checks what it hands the C kernels (the Python layer never sends
    these), with messages that say what was expected."""
    waveform, a, b = torch.zeros(2, 10), torch.tensor([[1.0, -0.5, 0.1]], dtype=torch.float64), None
    b = a.clone()
    if change == "order":
        a = b = torch.zeros(1, 34, dtype=torch.float64)
    elif change == "dims":
        waveform = torch.zeros([1] * 9 + [10])
    elif change == "broadcast":
        a = b = torch.zeros(3, 3, dtype=torch.float64)
    elif change == "float32 coefficients":
        a = a.float()
    elif change == "integer waveform":
        waveform = torch.zeros(2, 10, dtype=torch.int32)
    elif change == "lengths":
        b = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=message):
        ops.native_filter(waveform, a, b, None)


def test_the_cascade_op_refuses_too_many_sections():
    a = torch.tensor([1.0, -0.5, 0.1], dtype=torch.float64).repeat(33, 1)
    with pytest.raises(RuntimeError, match="expected at most 32 sections of order 2, got 33"):
        ops.native_sosfilt(torch.zeros(1, 10), a, a, None)


def test_empty_problems_run():
    y, zf = ops.native_filter(torch.zeros(0, 10), torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64), None)
    assert y.shape == (0, 10) and zf.shape == (0, 2)


def test_the_library_serves_a_process_that_does_not_import_the_package(tmp_path):
    """``torch.ops.load_library(multi_lfilter.library_path())`` is all a process needs."""
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules["multi_lfilter"] = None  # any import of the package now fails
        import torch
        torch.ops.load_library({str(multi_lfilter.library_path())!r})
        a = torch.tensor([[1.0, -0.9]], dtype=torch.float64)
        b = torch.tensor([[0.1, 0.0]], dtype=torch.float64)
        y, zf = torch.ops.multi_lfilter.native_filter(torch.ones(1, 3), a, b, None)
        print([round(v, 6) for v in y[0].tolist()])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.1, 0.19, 0.271]"


def test_loading_the_library_twice_is_harmless():
    """Loading it again (as a user following the docs in an importing process) keeps
    the one registration."""
    torch.ops.load_library(str(multi_lfilter.library_path()))
    assert native._ops_registered()
