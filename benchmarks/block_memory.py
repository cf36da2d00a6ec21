"""Peak memory of the block backend's forward, as a multiple of its output's bytes.

Each case runs in a fresh process (one thread), so nothing an earlier case allocated
or the allocator kept sets the high-water mark: after the inputs exist and a small
warm-up call has loaded what the first call loads, the rise of
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` over one forward, divided by the
output's bytes, is what the forward holds beyond its inputs. An output alone is
1.0x; everything above is the backend's temporaries. The block backend keeps it under
2.5x (``tests/test_block_memory.py``).

Cases (``--cases``): ``long`` is ``(1, 1, 2_000_000)`` through a ``(4, 3)`` biquad
bank, ``rows`` ``(8, 1, 250_000)`` through the same bank, each in float32 and
float64.

Usage::

    python benchmarks/block_memory.py                       # every case
    python benchmarks/block_memory.py --cases long --dtypes float32 --json
"""
import argparse
import json
import resource
import subprocess
import sys

CASES = {
    "long": (1, 1, 2_000_000),
    "rows": (8, 1, 250_000),
}
N_FILTERS = 4
DTYPES = ["float32", "float64"]
# ru_maxrss is in KiB, on macOS in bytes.
MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def measure_here(case: str, dtype_name: str) -> dict:
    """One forward in this process: its peak resident-set rise over the output's bytes."""
    import torch

    import multi_lfilter

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(CASES[case], generator=generator, dtype=dtype)
    poles = 0.5 + 0.45 * torch.rand(N_FILTERS, 1, generator=generator, dtype=torch.float64)
    angles = 3.0 * torch.rand(N_FILTERS, 1, generator=generator, dtype=torch.float64)
    a_coeffs = torch.cat([torch.ones_like(poles), -2 * poles * torch.cos(angles), poles**2], -1).to(dtype)
    b_coeffs = torch.randn(N_FILTERS, 3, generator=generator, dtype=dtype)
    multi_lfilter.lfilter_bank_with_state(waveform[..., :1000], a_coeffs, b_coeffs, backend="block")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y, _ = multi_lfilter.lfilter_bank_with_state(waveform, a_coeffs, b_coeffs, backend="block")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rise = (after - before) * MAXRSS_UNIT
    return dict(case=case, shape=list(CASES[case]), n_filters=N_FILTERS, dtype=dtype_name,
                output_bytes=y.nbytes, peak_rise_bytes=rise, peak_over_output=rise / y.nbytes)


def measure(case: str, dtype_name: str) -> dict:
    """``measure_here`` in a fresh Python process."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", case, dtype_name], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=DTYPES)
    parser.add_argument("--json", action="store_true", help="print one JSON row per case instead of a table")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "DTYPE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(measure_here(*arguments.child)))
        return
    if not arguments.json:
        print("| case | dtype | output | peak rise | peak rise / output |")
        print("|---|---|---|---|---|")
    for case in arguments.cases:
        for dtype_name in arguments.dtypes:
            row = measure(case, dtype_name)
            if arguments.json:
                print(json.dumps(row))
            else:
                print(
                    f"| {row['shape']} x ({N_FILTERS}, 3) | {dtype_name} | {row['output_bytes'] / 2**20:.1f} MiB "
                    f"| {row['peak_rise_bytes'] / 2**20:.1f} MiB | {row['peak_over_output']:.2f} |"
                )


if __name__ == "__main__":
    main()
