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
import wave

import numpy as np
from scipy.signal import fftconvolve, resample_poly

RATE = 16000


def read_wav(path):
    with wave.open(path, "rb") as w:
        channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        data = w.readframes(frames)
    if width != 2:
        raise SystemExit(f"{path}: only 16-bit WAV files are read")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
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
    # loop within the second loop's length.
    first = best_lag(received, reference, loop // 2, loop // 2)
    starts = []
    at = first
    search = RATE // 2
    while at is not None and at + loop <= len(received):
        found = best_lag(received, reference, at, search)
        if found is None or found + loop > len(received):
            break
        starts.append(found)
        at = found + loop
    # The piece before the first found one, if whole.
    if first is not None and first - loop >= 0:
        earlier = best_lag(received, reference, first - loop, search)
        if earlier is not None and earlier >= 0:
            starts.insert(0, earlier)
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
        "pesq_each": [round(p, 2) for p in pesqs],
        "stoi_each": [round(s, 3) for s in stois],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
