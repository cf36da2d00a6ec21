"""Streaming: filter a signal 512 samples at a time, carrying the filters' state.

A bank of 64 band-pass biquads runs over ten seconds of audio chunk by chunk, each
call starting from the state the previous one returned. The result equals filtering
the whole signal at once (to rounding), and each chunk takes a small fraction of its
32 ms of audio.

Run:  python examples/streaming.py          (``--short`` for one second of audio)
"""
import argparse
import time

import torch

from multi_lfilter import BiquadFilterBank

SAMPLE_RATE = 16000
CHUNK = 512


def stream(bank, signal, chunk=CHUNK):
    """Filter ``signal (..., T)`` in chunks; returns the ``(..., C, T)`` output and the
    seconds each chunk took."""
    outputs, seconds, state = [], [], None
    for start in range(0, signal.shape[-1], chunk):
        begin = time.perf_counter()
        output, state = bank.forward_with_state(signal[..., start : start + chunk], state)
        seconds.append(time.perf_counter() - begin)
        outputs.append(output)
    return torch.cat(outputs, -1), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="one second of audio")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    seconds_of_audio = 1 if args.short else 10
    signal = torch.randn(1, SAMPLE_RATE * seconds_of_audio)  # (batch 1, T)
    bank = BiquadFilterBank(64, SAMPLE_RATE, kind="bandpass", f_min=60.0, f_max=7000.0, q=4.0)

    with torch.inference_mode():
        streamed, seconds = stream(bank, signal)
        whole = bank(signal)
    difference = (streamed - whole).abs().max().item()
    print(f"{len(seconds)} chunks of {CHUNK} samples through {bank.n_filters} filters -> {tuple(streamed.shape)}")
    print(f"max |streamed - whole| = {difference:.2e} (peak |y| = {whole.abs().max().item():.2f})")
    median = sorted(seconds)[len(seconds) // 2]
    budget = CHUNK / SAMPLE_RATE
    print(f"median time per chunk: {median * 1e6:.0f} us, {100 * median / budget:.2f}% of the chunk's {budget * 1e3:.0f} ms")
    if difference > 1e-5:
        raise SystemExit("streaming did not match the whole signal")


if __name__ == "__main__":
    main()
