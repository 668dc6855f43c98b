// Small helpers for 16-bit PCM WAV files and level analysis in tests.

/** Parses a 16-bit PCM WAV (any channel count; the first channel is kept).
 * Tolerates recordings whose header sizes were never filled in. */
export function readWav(buf) {
  if (buf.toString("ascii", 0, 4) !== "RIFF" || buf.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error("not a WAV file");
  }
  let off = 12, rate = 0, channels = 1, bits = 16;
  while (off + 8 <= buf.length) {
    const id = buf.toString("ascii", off, off + 4);
    let size = buf.readUInt32LE(off + 4);
    if (id === "fmt ") {
      channels = buf.readUInt16LE(off + 10);
      rate = buf.readUInt32LE(off + 12);
      bits = buf.readUInt16LE(off + 22);
    } else if (id === "data") {
      if (size === 0 || size === 0xffffffff || off + 8 + size > buf.length) size = buf.length - off - 8;
      if (bits !== 16) throw new Error(`${bits}-bit WAV not supported`);
      const frames = Math.floor(size / (2 * channels));
      const samples = new Float32Array(frames);
      for (let i = 0; i < frames; i++) samples[i] = buf.readInt16LE(off + 8 + i * 2 * channels) / 32768;
      return { rate, samples };
    }
    off += 8 + size + (size & 1);
  }
  throw new Error("WAV without data");
}

/** RMS per 10 ms frame. */
export function envelope(samples, rate) {
  const n = Math.round(rate / 100);
  const out = [];
  for (let i = 0; i + n <= samples.length; i += n) {
    let s = 0;
    for (let j = i; j < i + n; j++) s += samples[j] * samples[j];
    out.push(Math.sqrt(s / n));
  }
  return out;
}

/** dBFS of an RMS value. */
export function toDb(rms) {
  return 20 * Math.log10(Math.max(rms, 1e-9));
}

function pearson(a, b) {
  const n = Math.min(a.length, b.length);
  if (n < 10) return 0;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
  ma /= n; mb /= n;
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i] - ma, y = b[i] - mb;
    num += x * y; da += x * x; db += y * y;
  }
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : 0;
}

/** The delay (in envelope frames, up to `maxLag`) at which `heard` best
 * matches `source`, and the correlation there (log-envelopes, so quiet and
 * loud syllables count alike). */
export function bestLag(source, heard, maxLag) {
  const log = (xs) => xs.map((v) => Math.max(toDb(v), -50));
  const s = log(source), h = log(heard);
  let best = { lag: 0, r: -1 };
  for (let lag = 0; lag <= maxLag && lag < h.length; lag++) {
    const r = pearson(s, h.slice(lag));
    if (r > best.r) best = { lag, r };
  }
  return best;
}

/** Onsets (times in seconds) of clicks: frames rising above `thresholdDb`
 * after at least `gapMs` of quiet. Uses 1 ms frames for precision. */
export function clickOnsets(samples, rate, thresholdDb = -30, gapMs = 200) {
  const n = Math.max(1, Math.round(rate / 1000));
  const onsets = [];
  let quiet = gapMs;
  for (let i = 0; i + n <= samples.length; i += n) {
    let peak = 0;
    for (let j = i; j < i + n; j++) peak = Math.max(peak, Math.abs(samples[j]));
    if (toDb(peak) > thresholdDb) {
      if (quiet >= gapMs) onsets.push(i / rate);
      quiet = 0;
    } else {
      quiet += 1;
    }
  }
  return onsets;
}
