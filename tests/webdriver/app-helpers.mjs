// Helpers shared by the app's WebDriver tests.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import { deflateSync } from "node:zlib";
import { readWav } from "../audio/wav.mjs";
import { waitFor } from "./webdriver.mjs";

/** Leaves the meeting if the app is in one (a failed test must not leave
 * the next one in a meeting). */
export async function leaveIfInMeeting(session) {
  if ((await session.findAll('[data-testid="meeting-screen"]')).length === 0) return;
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]', 15000);
}

/** Joins from the join screen with a link and a nickname. */
export async function joinFromScreen(session, link, nickname) {
  await leaveIfInMeeting(session);
  await session.clear('[data-testid="link-input"]');
  await session.type('[data-testid="link-input"]', link);
  await waitFor("link preview", () => session.text('[data-testid="link-preview"]'));
  await session.clear('[data-testid="nickname-input"]');
  await session.type('[data-testid="nickname-input"]', nickname);
  await installPageProbes(session);
  await session.click('[data-testid="join-button"]');
  // A click that lands while the join screen re-lays itself out (a
  // clipboard offer appearing) starts nothing: then it is clicked again.
  const started = () =>
    session.execute(
      "return !!document.querySelector('[data-testid=\"meeting-screen\"]') || /…/.test(document.querySelector('[data-testid=\"join-button\"]')?.textContent ?? '') || !!document.querySelector('[data-testid=\"join-error\"]')?.textContent",
    );
  if (!(await waitFor("the join to start", started, 3000).catch(() => false))) {
    await session.click('[data-testid="join-button"]');
  }
  await waitJoined(session);
}

/** Collects the page's errors, console warnings and which screen shows
 * (with times) into `window.__joinErrors`, for failure messages. */
export async function installPageProbes(session) {
  await session.execute(`
    if (!window.__joinErrors) {
      window.__joinErrors = [];
      window.addEventListener("error", (e) => window.__joinErrors.push(String(e.message)));
      window.addEventListener("unhandledrejection", (e) => window.__joinErrors.push(String(e.reason)));
      const seen = () => (document.querySelector('[data-testid="meeting-screen"]') ? "meeting" : "join:" + (document.querySelector('[data-testid="join-button"]')?.textContent ?? "?").trim());
      let last = seen();
      new MutationObserver(() => {
        const now = seen();
        if (now !== last) window.__joinErrors.push(new Date().toISOString().slice(11, 23) + " " + now);
        last = now;
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
      // The engine events that change screens, as the page receives them.
      const internals = window.__TAURI_INTERNALS__;
      if (internals) {
        window.__eventCounts = {};
        const handler = internals.transformCallback((e) => {
          const type = e?.payload?.type;
          window.__eventCounts[type] = (window.__eventCounts[type] ?? 0) + 1;
          // The engine's latest figures, for reports of what broke.
          if (type === "stats") window.__lastStats = e.payload.stats;
          if (type === "warning" || type === "error") window.__joinErrors.push(type + ": " + e.payload.message);
          if (["joined", "left", "disconnected", "error", "join_failed"].includes(type)) {
            window.__joinErrors.push(new Date().toISOString().slice(11, 23) + " event " + type + (e.payload.room ? " " + e.payload.room : ""));
          }
        });
        internals.invoke("plugin:event|listen", { event: "engine-event", target: { kind: "Any" }, handler }).catch((e) => window.__joinErrors.push("listen: " + e));
      }
      for (const level of ["error", "warn"]) {
        const original = console[level];
        console[level] = (...args) => {
          window.__joinErrors.push(level + ": " + args.map(String).join(" ").slice(0, 300));
          original(...args);
        };
      }
    }
  `);
}

/** Waits for the meeting screen; a failure says what the join screen shows. */
export async function waitJoined(session, timeoutMs = 20000) {
  try {
    await session.waitFind('[data-testid="meeting-screen"]', timeoutMs);
  } catch (e) {
    const shown = await session.execute(`
      const q = (id) => document.querySelector('[data-testid="' + id + '"]');
      const texts = ["join-error", "link-error", "nickname-error", "password-error", "server-error", "join-button"]
        .map((id) => id + ": " + (q(id)?.textContent ?? "-"));
      return [
        ...texts,
        "nickname: " + q("nickname-input")?.value,
        "link: " + q("link-input")?.value,
        "button disabled: " + q("join-button")?.disabled,
        "dialogs: " + [...document.querySelectorAll("[role=dialog]")].map((d) => d.dataset.testid).join(","),
        "page errors: " + (window.__joinErrors ?? []).slice(-40).join(" / "),
      ].join(" | ");
    `,
    ).catch(() => "?");
    if (process.env.CONCLAVE_SCREENSHOTS) {
      const png = await session.screenshot().catch(() => null);
      if (png) writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, `join-failed-${Date.now()}.png`), png);
    }
    throw new Error(`${e.message}; the join screen shows: ${shown}`);
  }
}

/** The spread of green values (0-255) of a canvas scaled to 64x36: 0 for a
 * blank canvas, large for a picture. */
export function canvasSpread(session, css) {
  return session.execute(`
    const c = document.querySelector(${JSON.stringify(css)});
    if (!c || c.width < 16) return 0;
    const probe = document.createElement('canvas');
    probe.width = 64; probe.height = 36;
    const g = probe.getContext('2d');
    g.drawImage(c, 0, 0, 64, 36);
    const d = g.getImageData(0, 0, 64, 36).data;
    let min = 255, max = 0;
    for (let i = 0; i < d.length; i += 4) { min = Math.min(min, d[i + 1]); max = Math.max(max, d[i + 1]); }
    return max - min;`);
}

/** Records `ms` of what is played into a PulseAudio sink; its samples (-1..1). */
export async function recordSink(sink, ms) {
  const file = join(process.env.TMPDIR ?? "/tmp", `${sink}-${process.pid}-${Date.now()}.wav`);
  const child = spawn("parecord", ["-d", `${sink}.monitor`, "--rate=48000", "--channels=1",
    "--format=s16le", "--file-format=wav", file], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, ms));
  child.kill("SIGINT");
  await new Promise((r) => child.once("exit", r));
  return readWav(readFileSync(file)).samples;
}

/** Mean power at `freq` (Goertzel, per 10 ms block) and of everything else. */
export function tonePower(samples, freq, rate = 48000) {
  const n = rate / 100;
  const k = (2 * Math.cos((2 * Math.PI * freq) / rate));
  let tone = 0;
  let total = 0;
  let blocks = 0;
  for (let start = 0; start + n <= samples.length; start += n) {
    let s1 = 0;
    let s2 = 0;
    let energy = 0;
    for (let i = 0; i < n; i++) {
      const x = samples[start + i];
      const s0 = x + k * s1 - s2;
      s2 = s1;
      s1 = s0;
      energy += x * x;
    }
    // |X(f)|^2 scaled to the power of a sine at f.
    tone += (2 * (s1 * s1 + s2 * s2 - k * s1 * s2)) / (n * n);
    total += energy / n;
    blocks++;
  }
  tone /= Math.max(1, blocks);
  total /= Math.max(1, blocks);
  return { tone, rest: Math.max(0, total - tone) };
}

/** A mono 48 kHz 16-bit WAV of a sine tone. */
export function toneWav(freq, seconds) {
  const n = 48000 * seconds;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write("RIFF", 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write("WAVE", 8);
  buf.write("fmt ", 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(48000, 24); buf.writeUInt32LE(96000, 28); buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34);
  buf.write("data", 36); buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(Math.sin((2 * Math.PI * freq * i) / 48000) * 12000), 44 + i * 2);
  return buf;
}

/** Answers the native "Save File" dialog the app just opened with `path`
 * (typed into it through xdotool, as a user would). */
export async function answerSaveDialog(path) {
  const dialog = await dialogWindow("Save");
  execFileSync("xdotool", ["windowfocus", "--sync", dialog]);
  execFileSync("xdotool", ["key", "--window", dialog, "ctrl+a"]);
  execFileSync("xdotool", ["type", "--window", dialog, "--delay", "5", path]);
  execFileSync("xdotool", ["key", "--window", dialog, "Return"]);
}

/** What the X clipboard holds now ("" if nothing). */
export function clipboardText() {
  try {
    return execFileSync("xclip", ["-o", "-selection", "clipboard"], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return "";
  }
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Writes an 8-bit RGB PNG of one colour, with a text chunk if given. */
export function writeColourPng(path, width, height, [r, g, b], text = null) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => [r, g, b]).flat())]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header)];
  if (text) parts.push(chunk("tEXt", Buffer.from(`Comment\0${text}`, "latin1")));
  parts.push(chunk("IDAT", pixels), chunk("IEND", Buffer.alloc(0)));
  writeFileSync(path, Buffer.concat(parts));
}

/** A picture file's pixels scaled to `width × height`, as RGB bytes (ffmpeg). */
export function pictureRgb(path, width, height) {
  return execFileSync("ffmpeg", ["-v", "error", "-i", path, "-vf", `scale=${width}:${height}:flags=area`,
    "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], { maxBuffer: 64 << 20 });
}

/** A canvas scaled to `width × height`, as RGB bytes (null if it is not there). */
export async function canvasRgb(session, css, width, height) {
  const values = await session.execute(`
    const c = document.querySelector(${JSON.stringify(css)});
    if (!c || c.width < 16) return null;
    const probe = document.createElement('canvas');
    probe.width = ${width}; probe.height = ${height};
    const g = probe.getContext('2d');
    g.drawImage(c, 0, 0, ${width}, ${height});
    const d = g.getImageData(0, 0, ${width}, ${height}).data;
    const out = [];
    for (let i = 0; i < d.length; i += 4) out.push(d[i], d[i + 1], d[i + 2]);
    return out;`);
  return values ? Buffer.from(values) : null;
}

/**
 * How a picture (RGB, `width × height`) matches a person in front of a
 * backdrop colour, by a reference mask (grey, same size): the share of
 * sure-person pixels that are not the colour, and of sure-background pixels
 * that are.
 */
export function backdropShares(rgb, mask, [r, g, b]) {
  let person = 0, personKept = 0, room = 0, roomReplaced = 0;
  for (let i = 0; i < mask.length / 3; i++) {
    const m = mask[i * 3];
    const d = (Math.abs(rgb[i * 3] - r) + Math.abs(rgb[i * 3 + 1] - g) + Math.abs(rgb[i * 3 + 2] - b)) / 3;
    if (m > 240) {
      person++;
      if (d > 40) personKept++;
    } else if (m < 15) {
      room++;
      if (d < 30) roomReplaced++;
    }
  }
  return { person: personKept / Math.max(1, person), room: roomReplaced / Math.max(1, room) };
}

/** The X window of a visible dialog whose title holds `title`. */
function dialogWindow(title) {
  return waitFor(`the ${title} dialog`, () => {
    try {
      return execFileSync("xdotool", ["search", "--onlyvisible", "--name", title], { encoding: "utf8" }).trim().split("\n")[0];
    } catch {
      return null;
    }
  }, 10000);
}

/** Answers a GTK "open file" dialog titled `title` with `path`. */
export async function answerOpenDialog(title, path) {
  const dialog = await dialogWindow(title);
  execFileSync("xdotool", ["windowfocus", "--sync", dialog]);
  // Ctrl+L opens the location field of GTK's file chooser.
  execFileSync("xdotool", ["key", "--window", dialog, "ctrl+l"]);
  execFileSync("xdotool", ["type", "--window", dialog, "--delay", "5", path]);
  await new Promise((r) => setTimeout(r, 300));
  if (process.env.CONCLAVE_SCREENSHOTS) screenGrab(join(process.env.CONCLAVE_SCREENSHOTS, "open-dialog.png"));
  execFileSync("xdotool", ["key", "--window", dialog, "Return"]);
}

/** The whole X screen as a PNG (for a dialog outside the webview). */
export function screenGrab(file) {
  try {
    execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "x11grab", "-i", process.env.DISPLAY ?? ":0",
      "-frames:v", "1", file], { timeout: 10000 });
  } catch {
    // Only for looking at; never a reason to fail.
  }
}

/** A busy loop on one core (the last) until `stop()`: the machine a real
 * user meets on is doing other things, and the meeting must hold there. */
export function cpuHog() {
  const core = String(availableParallelism() - 1);
  const hog = spawn("taskset", ["-c", core, "sh", "-c", "while :; do :; done"], { stdio: "ignore" });
  hog.on("error", () => {});
  return { stop: () => hog.kill("SIGKILL") };
}

/** What ffmpeg says, warnings included, while decoding every stream of
 * `file` (empty: nothing). */
export function ffmpegSays(file) {
  const run = spawnSync("ffmpeg", ["-nostdin", "-v", "warning", "-i", file, "-map", "0", "-f", "null", "-"], { encoding: "utf8" });
  return `${run.stderr ?? ""}${run.status === 0 ? "" : `(exit ${run.status})`}`.trim();
}
