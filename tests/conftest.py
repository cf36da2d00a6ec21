"""Fixtures, and the hook that runs tests once per backend (and device)."""
import os

import torch

# Without a GPU the Triton kernels' logic runs in Triton's interpreter, on CPU tensors
# (set before the kernels are first imported).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# pytest-xdist runs one worker per core: each worker's torch then uses one thread
# (two threads per worker would contend for the cores; the tests' problems are small).
# Tests of thread counts set their own.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

from helpers import DEVICES, backends_on  # noqa: E402


def _interpret_helpers_without_repatching():
    """Speeds up the interpreter's calls of the kernels' own helper functions.

    On every call of a ``@triton.jit`` helper, Triton's interpreter patches
    ``triton.language`` again for the helper's module (about 2 ms), although the
    launch that is running already patched it for the kernels' module; the kernels
    call a few helpers per time step, so this is most of a test's time. Helpers of
    ``_triton_kernels`` are called straight away instead. (Where the interpreter's
    internals differ, nothing is changed.)
    """
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return
    call = getattr(InterpretedFunction, "__call__", None)
    if call is None or not hasattr(InterpretedFunction, "rewrite"):
        return

    def helper_call(self, *args, **kwargs):
        if self.fn.__module__ != "multi_lfilter.backends.triton.kernels":
            return call(self, *args, **kwargs)
        return self.rewrite()(*args, **kwargs)

    InterpretedFunction.__call__ = helper_call


if os.environ.get("TRITON_INTERPRET") == "1":
    _interpret_helpers_without_repatching()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_generate_tests(metafunc):
    """A ``backend`` argument runs the test once per kernel; with a ``device`` argument
    too, once per (kernel, device) pair that exists (CUDA where available)."""
    if "backend" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        names = [name.strip() for name in names.split(",")] if isinstance(names, str) else list(names)
        if "backend" in names:  # the test chose its own backends
            return
    if "device" in metafunc.fixturenames:
        pairs = [(name, device) for device in DEVICES for name in backends_on(device)]
        metafunc.parametrize("backend, device", pairs, ids=[f"{name}-{device}" for name, device in pairs])
    else:
        metafunc.parametrize("backend", backends_on("cpu"))


# Cases of parametrised tests that take the longest (over 10 s each on the project's
# 2-core machine) and repeat what faster cases of the same test cover: run in CI's slow
# step (``python -m pytest -m slow``), so the default run stays under six minutes.
SLOW_CASES = (
    "test_cascade_gradients_gradcheck_and_gradgradcheck[block-bank-12]",
    "test_cascade_gradients_gradcheck_and_gradgradcheck[block-per-channel-12]",
    "test_cascade_gradients_gradcheck_and_gradgradcheck[export-bank-12]",
    "test_cascade_gradients_gradcheck_and_gradgradcheck[export-per-channel-12]",
    # Scripting a Module with frame-rate values compiles the time-varying loop (10-12 s).
    "test_scripted_module_with_frames_equals_eager[biquad]",
    "test_scripted_module_with_frames_equals_eager[sos]",
    # Complex gradcheck and gradgradcheck through the block backend (5-50 s each); the
    # default run keeps the loop's and one block case (one section, complex filters).
    "test_lfilter_gradcheck_and_gradgradcheck[complex-filter-block]",
    "test_lfilter_gradcheck_and_gradgradcheck[complex-signal-block]",
    "test_lfilter_gradcheck_and_gradgradcheck[both-block]",
    "test_sosfilt_gradcheck_and_gradgradcheck[1-complex-signal-block]",
    "test_sosfilt_gradcheck_and_gradgradcheck[1-both-block]",
    "test_sosfilt_gradcheck_and_gradgradcheck[2-complex-filter-block]",
    "test_sosfilt_gradcheck_and_gradgradcheck[2-complex-signal-block]",
    "test_sosfilt_gradcheck_and_gradgradcheck[2-both-block]",
    "test_each_input_alone_gets_its_gradient[waveform-block]",
    "test_each_input_alone_gets_its_gradient[a-block]",
    "test_each_input_alone_gets_its_gradient[b-block]",
    "test_each_input_alone_gets_its_gradient[zi-block]",
    "test_filtfilt_gradcheck[pad]",
    "test_torch_compile_fullgraph_matches_eager",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.name in SLOW_CASES:
            item.add_marker(pytest.mark.slow)
