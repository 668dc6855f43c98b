// `scripts/bench latency`: glass-to-glass video and mouth-to-ear audio
// delay, Conclave next to Chromium, through the same meeting server.
//
// Conclave: participant A (conclave-cli) sends the 720p30 test pattern,
// whose frames carry their wall-clock capture time, and its virtual
// PulseAudio microphone; B (conclave-cli) decodes, logging each frame's
// stamp at the moment it is decoded (handed on for display), and plays
// into its own virtual speaker. click-probe plays a click train into A's
// microphone and times each click at A's microphone and at B's speaker.
// Chromium: two headless pages of ours (tests/bench/peer.html) do the same
// with a canvas stream stamped with Date.now() and WebAudio clicks.
//
// With LATENCY_STARVE=1 (`scripts/bench latency-starved`) the sender of
// each client (conclave-cli A; the sending Chromium, all its processes)
// runs on one core shared with a busy loop, from before it joins to the
// end: a laptop busy with something else.
//
// Env: CONCLAVE_TEST_SERVER, CONCLAVE_CLI, CLICK_PROBE, LATENCY_SECONDS,
// LATENCY_STARVE, LATENCY_KEEP (a folder: Conclave's frame log is copied
// there, and the participants' logs written there).
import { spawn, execFileSync } from "node:child_process";
import { openSync } from "node:fs";
import { mkdtemp, rm, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { waitFor } from "../webdriver/webdriver.mjs";
import { newRoom, peerPages } from "./peers.mjs";

const SERVER = process.env.CONCLAVE_TEST_SERVER;
const CLI = process.env.CONCLAVE_CLI;
const PROBE = process.env.CLICK_PROBE;
const SECONDS = Number(process.env.LATENCY_SECONDS ?? 30);
const STARVE = process.env.LATENCY_STARVE === "1";
/** The core the sender shares with the busy loop. */
const SENDER_CPU = "1";
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];

function percentile(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

/** When starving: a busy loop on the sender's core, until killed. */
function hog() {
  if (!STARVE) return null;
  const h = spawn("taskset", ["-c", SENDER_CPU, "sh", "-c", "while :; do :; done"], { stdio: "ignore" });
  children.push(h);
  return h;
}

function participant(env, room, name, args, { sender = false } = {}) {
  const argv = [CLI, "join", String(room), "--server", SERVER, "--name", name, "--json", ...args];
  const [cmd, ...rest] = STARVE && sender ? ["taskset", "-c", SENDER_CPU, ...argv] : argv;
  const keep = process.env.LATENCY_KEEP;
  // The log goes straight to a file: the probe below blocks this process,
  // and a pipe nobody reads would stall the participant.
  const child = spawn(cmd, rest, { env: keep ? { ...env, CONCLAVE_LOG: env.CONCLAVE_LOG ?? "info" } : env,
    stdio: ["ignore", "pipe", keep ? openSync(join(keep, `${name}.log`), "w") : "inherit"] });
  children.push(child);
  const events = [];
  createInterface({ input: child.stdout }).on("line", (l) => { try { events.push(JSON.parse(l)); } catch {} });
  return { child, events };
}

async function conclave(dir) {
  const exported = execFileSync(join(ROOT, "scripts/pulse"), ["start", join(dir, "pulse"), "a", "b"]).toString();
  const env = { ...process.env, PULSE_SERVER: exported.match(/PULSE_SERVER=(\S+)/)[1] };
  try {
    const room = newRoom(CLI, SERVER);
    const save = join(dir, "received");
    const stay = String(SECONDS + 15);
    // Voice processing adds no delay (it works in place on 10 ms blocks) but
    // would treat a click train as noise: it is off for the measurement.
    const busy = hog();
    participant(env, room, "A", ["--camera", "synthetic:1280x720@30", "--mic", "a_mic", "--processing", "off", "--stay", stay],
      { sender: true });
    const b = participant(env, room, "B", ["--speaker", "b_out", "--save-received", save, "--stay", stay]);
    for (const kind of ["audio", "video"]) {
      await waitFor(`B receives A's ${kind}`, async () =>
        b.events.some((e) => e.event === "track_added" && e.kind === kind), 30000);
    }
    await sleep(2000);
    const from = Date.now() * 1000;
    const probe = execFileSync(PROBE, ["--play", "a_feed", "--mouth", "a_feed.monitor", "--ear", "b_out.monitor",
      "--seconds", String(SECONDS)], { env }).toString().trim().split("\n").pop();
    const to = Date.now() * 1000;
    busy?.kill("SIGKILL");
    const audio = JSON.parse(probe);
    const csv = (await readdir(save)).find((f) => f.endsWith("-video.csv"));
    const text = await readFile(join(save, csv), "utf8");
    if (process.env.LATENCY_KEEP) await writeFile(join(process.env.LATENCY_KEEP, "conclave-video.csv"), text);
    const rows = text.trim().split("\n").slice(1).map((l) => l.split(",").map(Number));
    const measured = rows.filter(([n, cap, rx]) => n >= 0 && rx >= from && rx <= to);
    const g2g = measured.map(([, cap, rx]) => (rx - cap) / 1000);
    const sizes = measured.map(([, , , w, h]) => `${w}x${h}`);
    const frames = rows.filter(([n, , rx]) => rx >= from && rx <= to);
    const stats = b.events.filter((e) => e.event === "stats").pop();
    console.log(`conclave receiver's last stats: ${JSON.stringify(stats?.remotes)}`);
    return { g2g, sizes, m2e: audio.m2e_ms, clicks: audio.clicks, heard: audio.heard,
      fps: frames.length / ((to - from) / 1e6), damaged: frames.filter(([n]) => n < 0).length };
  } finally {
    for (const c of children.splice(0)) c.kill("SIGKILL");
    execFileSync(join(ROOT, "scripts/pulse"), ["stop", join(dir, "pulse")]);
  }
}

async function chromium() {
  // The sender has a chromedriver of its own, so that when starving, all
  // of its Chromium's processes inherit the one core.
  const pages = await peerPages();
  const senderPages = await peerPages(STARVE ? { cpu: SENDER_CPU } : {});
  const busy = hog();
  try {
    const room = newRoom(CLI, SERVER);
    const url = (role) => pages.url({ server: SERVER, room, role, name: role });
    const sender = await senderPages.open();
    const receiver = await pages.open();
    const load = async (s, role, state) => {
      for (let attempt = 1; ; attempt++) {
        await s.navigate(url(role));
        try {
          await waitFor(`the ${role} page ${state}`, async () => {
            const st = await s.execute("return window.bench && window.bench.state");
            if (String(st).startsWith("error")) throw new Error(st);
            return st === state;
          }, 20000);
          return;
        } catch (e) {
          if (attempt === 3) throw e;
        }
      }
    };
    await load(sender, "send", "publishing");
    await load(receiver, "recv", "receiving");
    await waitFor("Chromium decodes video", async () => (await receiver.execute("return window.bench.g2g.length")) > 30, 20000);
    await receiver.execute("window.bench.g2g = []; window.bench.sizes = []; window.bench.ears = []; return 0");
    const from = Date.now();
    await sleep(SECONDS * 1000);
    const g2g = await receiver.execute("return window.bench.g2g");
    const sizes = await receiver.execute("return window.bench.sizes");
    const ears = await receiver.execute("return window.bench.ears");
    const clicks = (await sender.execute("return window.bench.clicks")).filter((t) => t >= from);
    const m2e = [];
    for (const c of clicks) {
      const e = ears.find((t) => t > c);
      if (e !== undefined && e - c < 600) m2e.push(e - c);
    }
    return { g2g, sizes, m2e, clicks: clicks.length, heard: ears.length, fps: g2g.length / SECONDS, damaged: 0 };
  } finally {
    busy?.kill("SIGKILL");
    await senderPages.stop();
    await pages.stop();
  }
}

const dir = await mkdtemp(join(tmpdir(), "conclave-latency-"));
let ours, theirs;
try {
  ours = await conclave(dir);
  theirs = await chromium();
} finally {
  for (const c of children) c.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
}
/** The picture size most frames had, with its share. */
function commonSize(sizes) {
  const counts = new Map();
  for (const s of sizes ?? []) counts.set(s, (counts.get(s) ?? 0) + 1);
  const [size, n] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? ["-", 0];
  return `${size} (${Math.round((100 * n) / Math.max(1, sizes.length))} %)`;
}
const row = (name, r) => [name,
  round(percentile(r.g2g, 50)), round(percentile(r.g2g, 95)), r.g2g.length, round(r.fps), commonSize(r.sizes),
  round(percentile(r.m2e, 50)), round(percentile(r.m2e, 95)), `${r.m2e.length}/${r.clicks}`];
const header = ["client", "video p50 ms", "video p95 ms", "frames", "fps", "size", "audio p50 ms", "audio p95 ms", "clicks heard"];
const table = [header, row("conclave", ours), row("chromium", theirs)];
const widths = header.map((_, i) => Math.max(...table.map((r) => String(r[i]).length)));
console.log(`Latency over ${SECONDS} s through ${SERVER} (720p30 video, click train every 600 ms)` +
  (STARVE ? `; each sender on core ${SENDER_CPU} with a busy loop` : ""));
for (const r of table) console.log(r.map((c, i) => String(c).padEnd(widths[i])).join("  "));
if (ours.damaged) console.log(`conclave: ${ours.damaged} frames with a damaged stamp`);
// Lip sync: how much later than the picture the sound arrives (p50s);
// negative: the sound is ahead.
const avOffset = (r) => round(percentile(r.m2e, 50) - percentile(r.g2g, 50));
console.log(`sound after picture (p50): conclave ${avOffset(ours)} ms, chromium ${avOffset(theirs)} ms`);
console.log(JSON.stringify({
  variant: STARVE ? "starved" : "idle",
  video_g2g_p50_ms: round(percentile(ours.g2g, 50)),
  video_g2g_p95_ms: round(percentile(ours.g2g, 95)),
  audio_m2e_p50_ms: round(percentile(ours.m2e, 50)),
  audio_m2e_p95_ms: round(percentile(ours.m2e, 95)),
  chromium_video_g2g_p50_ms: round(percentile(theirs.g2g, 50)),
  chromium_video_g2g_p95_ms: round(percentile(theirs.g2g, 95)),
  chromium_audio_m2e_p50_ms: round(percentile(theirs.m2e, 50)),
  av_offset_ms: avOffset(ours),
  chromium_av_offset_ms: avOffset(theirs),
}));
