"""Speech quality of a received recording against the looped reference.

    python speech_quality.py REFERENCE.wav RECEIVED.wav [--last N]

The sender played REFERENCE in a loop; RECEIVED is what the receiver
played. The received recording is cut into pieces one loop long, each
aligned on the reference by cross-correlation (the delay may change as a
jitter buffer adapts), and each piece is scored against the reference:
PESQ (ITU-T P.862.2, wide band, 16 kHz) and STOI (short-time objective
intelligibility). With --last N only the last N whole pieces are scored
(the first ones hold the join). Prints one JSON object: the mean of each
measure and the score of each piece.

Needs numpy, scipy, pesq and pystoi (scripts/setup test installs them in
a virtual environment of the project's).
"""

import argparse
import json
import sys

import numpy as np
from scipy.signal import fftconvolve, resample_poly

RATE = 16000


def read_wav(path):
    """The first channel of a 16-bit PCM WAV file, at 16 kHz. Tolerates a
    recording whose header sizes were never filled in."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[0:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise SystemExit(f"{path}: not a WAV file")
    at, channels, rate, width, data = 12, 1, 0, 2, None
    while at + 8 <= len(buf):
        chunk, size = buf[at : at + 4], int.from_bytes(buf[at + 4 : at + 8], "little")
        if chunk == b"fmt ":
            channels = int.from_bytes(buf[at + 10 : at + 12], "little")
            rate = int.from_bytes(buf[at + 12 : at + 16], "little")
            width = int.from_bytes(buf[at + 22 : at + 24], "little") // 8
        elif chunk == b"data":
            if size in (0, 0xFFFFFFFF) or at + 8 + size > len(buf):
                size = len(buf) - at - 8
            data = buf[at + 8 : at + 8 + size]
            break
        at += 8 + size + (size & 1)
    if data is None or width != 2 or rate == 0:
        raise SystemExit(f"{path}: not a 16-bit PCM WAV file")
    samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels)[:, 0]
    if rate != RATE:
        g = np.gcd(rate, RATE)
        samples = resample_poly(samples, RATE // g, rate // g)
    return samples


def best_lag(received, reference, start, search):
    """The offset near `start` at which `reference` best matches `received`."""
    lo = max(0, start - search)
    hi = min(len(received), start + len(reference) + search)
    window = received[lo:hi]
    if len(window) < len(reference):
        return None
    corr = fftconvolve(window, reference[::-1], mode="valid")
    return lo + int(np.argmax(corr))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("reference")
    parser.add_argument("received")
    parser.add_argument("--last", type=int, default=0)
    args = parser.parse_args()

    from pesq import pesq
    from pystoi import stoi

    reference = read_wav(args.reference)
    received = read_wav(args.received)
    loop = len(reference)
    if len(received) < 2 * loop:
        print(json.dumps({"error": "the recording is shorter than two loops", "seconds": len(received) / RATE}))
        return 1
    # The phase of the loop in the recording: the best match of a whole
    # loop within the first two loops' length, then back to the earliest
    # whole loop (the match may be the second one).
    search = RATE // 2
    at = best_lag(received, reference, loop // 2, loop // 2)
    while at is not None and at - loop >= 0:
        earlier = best_lag(received, reference, at - loop, search)
        if earlier is None or earlier >= at:
            break
        at = earlier
    starts = []
    while at is not None and at + loop <= len(received):
        found = best_lag(received, reference, at, search)
        if found is None or found + loop > len(received):
            break
        starts.append(found)
        at = found + loop
    if args.last:
        starts = starts[-args.last :]
    pesqs, stois = [], []
    for s in starts:
        piece = received[s : s + loop]
        try:
            pesqs.append(float(pesq(RATE, reference, piece, "wb")))
        except Exception as e:  # a piece of silence has no utterance to score
            print(f"piece at {s / RATE:.1f} s: {e}", file=sys.stderr)
            pesqs.append(1.0)
        stois.append(float(stoi(reference, piece, RATE, extended=False)))
    result = {
        "pesq": round(float(np.mean(pesqs)), 2) if pesqs else None,
        "stoi": round(float(np.mean(stois)), 3) if stois else None,
        "pieces": len(starts),
        "seconds": round(len(received) / RATE, 1),
        "pesq_each": [round(p, 2) for p in pesqs],
        "stoi_each": [round(s, 3) for s in stois],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
