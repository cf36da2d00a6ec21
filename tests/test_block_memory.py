"""The block backend's peak memory, measured in fresh processes by
``benchmarks/block_memory.py``."""
import json
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "block_memory.py"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["long", "rows"])
def test_a_forward_peaks_under_two_and_a_half_outputs(case):
    """A 32 MB float32 output (one long signal, or eight, through 4 biquads) with its
    temporaries: the chunks of blocks are at most an eighth of it (they were as large
    as the output itself, 2.8x and 3.3x)."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cases", case, "--dtypes", "float32", "--json"],
        capture_output=True, text=True, check=True,
    )
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["peak_over_output"] < 2.5, row
