"""The CUDA path without a GPU: ``fake_cuda_checks.py`` runs in a subprocess with
Triton's interpreter off, on fake CUDA tensors (no values, so any host-device sync
raises; ``torch.export`` and AOTAutograd trace without running a kernel) and on the
kernels compiled for an H100 (their offsets are 64-bit)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from multi_lfilter.backends import triton as triton_backend

pytestmark = pytest.mark.skipif(not triton_backend.available(), reason="Triton is not installed (it ships with CUDA builds of torch)")

CHECKS = [
    "no_sync_in_the_functions",
    "no_sync_in_the_kernels_host_code",
    "export_on_cuda_records_the_triton_op",
    "compile_traces_into_the_kernels",
    "offsets_are_64_bit",
]


@pytest.fixture(scope="module")
def results():
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("fake_cuda_checks.py")
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=environment, timeout=600
    )
    found = {}
    for line in completed.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            found[record["check"]] = record
    assert found, f"the checks printed nothing:\n{completed.stdout}\n{completed.stderr[-3000:]}"
    return found


@pytest.mark.parametrize("name", CHECKS)
def test_fake_cuda(name, results):
    assert name in results, f"{name} did not run"
    assert results[name]["ok"], results[name]["detail"]
