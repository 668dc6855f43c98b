// `scripts/bench network` (first part): how fast a participant is in the
// meeting and how fast it recovers, through conclave-server, with
// conclave-cli (release).
//
// - join_ms_udp: from starting `conclave-cli join LINK` to the first
//   remote audio it plays (its `talking` event for the participant already
//   there, who sends a loud tone), on the open test network; median of
//   NETWORK_JOINS (5) joins.
// - join_ms_relay_tcp: the same from a namespace of its own with every UDP
//   packet dropped, through coturn over TCP (`--relay-only`: conclave-server
//   would otherwise take it over ICE-TCP, which comes before a relay).
// - join_ms_ice_tcp: UDP dropped and no relay: over ICE-TCP to
//   conclave-server's WebSocket port.
// - blackout_recovery_ms: a participant sending the test pattern loses
//   its network for 5 s (scripts/netns-client-set blackout); the time from
//   the network's return to the first frame of its decoded at the other
//   participant; median of NETWORK_BLACKOUTS (3).
// - move_standstill_ms: the sender's address changes under it
//   (scripts/netns-client-set move: new address and route, old one
//   deleted); the longest gap between its frames decoded at the other
//   participant around the move (ICE restart included); median of
//   NETWORK_BLACKOUTS runs.
//
// Second part: the same impairments for Conclave and for Chromium (our
// peer page, tests/bench/peer.html), in the same run. A sender in a
// namespace of its own (scripts/netns-client) publishes 640x360 video at
// 30 frames/s and a spoken passage in a loop (espeak-ng, 11 s); a receiver
// of the same kind on the open network plays it. Conclave: two
// conclave-cli (release), the receiver saving what it plays
// (--save-received). Chromium: the sender's page in a headless Chromium
// inside the namespace (tests/bench/chromium-sender.mjs), the receiver's
// page recording the samples its WebAudio graph is given.
//
// - audio_pesq_lossN: N % of the sender's packets dropped at random each
//   way (nftables), from 6 s after joining; after 4 s more, the received
//   speech of the next NETWORK_SECONDS (30) is cut into loops, each
//   aligned on the original and scored by PESQ (P.862.2 wide band; 4.64
//   is a perfect copy), averaged (tests/bench/speech_quality.py; STOI
//   too).
// - video_longest_freeze_ms_loss10: at 10 % loss, the longest time
//   between two received frames shown (decoded, for conclave-cli) in that
//   window.
// - cap500_*: the sender's link capped to 500 kbit/s each way (tc tbf)
//   from the start: received frames per second and PESQ.
// - blackout_recovery_ms for both: as in the first part, with the video
//   at 640x360.
//
// Env: CONCLAVE_TEST_SERVER, CONCLAVE_CLI, CONCLAVE_TURN_IP,
// CONCLAVE_PYTHON (a Python with pesq and pystoi), NETWORK_SECONDS,
// NETWORK_PARTS (`join,quality`: which parts run).
import { spawn, execFileSync } from "node:child_process";
import { mkdtemp, rm, readFile, readdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { writeFileSync } from "node:fs";
import { waitFor } from "../webdriver/webdriver.mjs";
import { readWav } from "../audio/wav.mjs";
import { peerPages } from "./peers.mjs";

const SERVER = process.env.CONCLAVE_TEST_SERVER;
const CLI = process.env.CONCLAVE_CLI;
const TURN = process.env.CONCLAVE_TURN_IP;
const JOINS = Number(process.env.NETWORK_JOINS ?? 5);
const BLACKOUTS = Number(process.env.NETWORK_BLACKOUTS ?? 3);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const HERE = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.NETWORK_SECONDS ?? 30);
const PARTS = (process.env.NETWORK_PARTS ?? "join,quality").split(",");
const PYTHON = process.env.CONCLAVE_PYTHON ?? "python3";
const WARMUP_MS = 6000;
// For trying one thing quickly: NETWORK_KINDS=conclave, NETWORK_ROWS=loss20,cap500.
const KINDS = (process.env.NETWORK_KINDS ?? "conclave,chromium").split(",");
const SETTLE_MS = 4000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function newMeeting() {
  return newRoom().link;
}

/** A new meeting: `{room, link}`. */
function newRoom() {
  const out = execFileSync(CLI, ["create-room", "--server", SERVER, "--json"]).toString().trim().split("\n").pop();
  return JSON.parse(out);
}

function credentials() {
  const [user, password] = execFileSync(join(ROOT, "scripts/turn"), ["credentials"]).toString().trim().split("\n");
  return ["--ice-username", user, "--ice-password", password];
}

/** A participant; `wrap` runs it through scripts/netns-client. Resolves
 * events through `on(event)`; `stop()` ends it. */
function participant(link, name, args, { wrap = null, on = () => {} } = {}) {
  const argv = [CLI, "join", link, "--name", name, "--json", "--server", SERVER, ...args];
  const [cmd, ...rest] = wrap ? [join(ROOT, "scripts/netns-client"), ...wrap, "--", ...argv] : argv;
  const child = spawn(cmd, rest, { stdio: ["pipe", "pipe", "ignore"], env: { ...process.env, CONCLAVE_LOG: "error" } });
  children.add(child);
  createInterface({ input: child.stdout }).on("line", (line) => {
    try {
      on(JSON.parse(line), Date.now());
    } catch {}
  });
  const exited = new Promise((r) => child.once("exit", r));
  return {
    child,
    async stop() {
      child.stdin.end();
      const t = setTimeout(() => child.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(t);
      children.delete(child);
    },
  };
}

/** One join: ms from start to the first remote audio played. */
async function joinOnce(link, { wrap, args }) {
  let resolve;
  const heard = new Promise((r) => (resolve = r));
  const started = Date.now();
  const p = participant(link, "Joiner", args, {
    wrap,
    on: (e, at) => {
      if (e.event === "talking" && e.talking) resolve(at);
      if (e.event === "error") resolve(null);
    },
  });
  const at = await Promise.race([heard, sleep(20000).then(() => null)]);
  await p.stop();
  return at === null ? null : at - started;
}

async function joins(kind) {
  const link = newMeeting();
  const speaker = participant(link, "Speaker", ["--mic", "tone", "--stdin"]);
  await sleep(2000);
  const times = [];
  for (let i = 0; i < JOINS; i++) {
    const opts =
      kind === "udp"
        ? { wrap: null, args: ["--stdin"] }
        : kind === "ice_tcp"
          ? { wrap: ["--id", "33", "--block-udp"], args: ["--stdin"] }
          : {
              wrap: ["--id", "31", "--block-udp"],
              args: ["--stdin", "--relay-only", "--ice-server", `turn:${TURN}:3478?transport=tcp`, ...credentials()],
            };
    const ms = await joinOnce(link, opts);
    if (ms !== null) times.push(ms);
    await sleep(500);
  }
  await speaker.stop();
  return times;
}

/** The largest file in `dir` whose name ends with `suffix` (a sender seen
 * under two identities leaves two; the name of each is said). */
async function largest(dir, suffix) {
  const names = (await readdir(dir)).filter((f) => f.endsWith(suffix));
  if (names.length > 1) console.error(`${dir}: ${names.length} files *${suffix}: ${names.join(", ")}`);
  const sizes = await Promise.all(names.map(async (n) => [(await stat(join(dir, n))).size, n]));
  sizes.sort((a, b) => b[0] - a[0]);
  return sizes.length ? sizes[0][1] : undefined;
}

/** The frame receive times (µs) of the one decoded stream saved in `saved`. */
async function frameTimes(saved) {
  const log = await largest(saved, "-video.csv");
  return (await readFile(join(saved, log), "utf8"))
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => Number(l.split(",")[2]));
}

/** The longest stand-still (ms) of a sender's video around a move of its
 * address. */
async function moveOnce() {
  const link = newMeeting();
  const dir = await mkdtemp(join(tmpdir(), "conclave-bench-network-"));
  const control = join(dir, "control");
  const saved = join(dir, "saved");
  const receiver = participant(link, "Receiver", ["--stdin", "--save-received", saved]);
  const sender = participant(link, "Mover", ["--stdin", "--camera", "synthetic:320x180@15", "--mic", "tone"], {
    wrap: ["--id", "34", "--control", control],
  });
  await sleep(6000);
  const moved = Date.now() * 1000;
  execFileSync(join(ROOT, "scripts/netns-client-set"), [control, "move"]);
  await sleep(6000);
  await sender.stop();
  await receiver.stop();
  const times = await frameTimes(saved);
  await rm(dir, { recursive: true, force: true });
  if (!times.some((t) => t > moved + 2_000_000)) return null;
  let gap = 0;
  for (let i = 1; i < times.length; i++) {
    if (times[i] >= moved) gap = Math.max(gap, times[i] - times[i - 1]);
  }
  return gap / 1000;
}

/** ms from the network's return to the first decoded frame. */
async function blackoutOnce() {
  const link = newMeeting();
  const dir = await mkdtemp(join(tmpdir(), "conclave-bench-network-"));
  const control = join(dir, "control");
  const saved = join(dir, "saved");
  const receiver = participant(link, "Receiver", ["--stdin", "--save-received", saved]);
  const sender = participant(link, "Traveller", ["--stdin", "--camera", "synthetic:320x180@15", "--mic", "tone"], {
    wrap: ["--id", "32", "--control", control],
  });
  await sleep(6000);
  execFileSync(join(ROOT, "scripts/netns-client-set"), [control, "blackout"]);
  await sleep(5000);
  execFileSync(join(ROOT, "scripts/netns-client-set"), [control, "clear"]);
  const back = Date.now() * 1000;
  await sleep(4000);
  await sender.stop();
  await receiver.stop();
  const times = await frameTimes(saved);
  await rm(dir, { recursive: true, force: true });
  const first = times.find((t) => t >= back);
  return first === undefined ? null : (first - back) / 1000;
}

const PASSAGE =
  "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. " +
  "It is easy to tell the depth of a well. These days a chicken leg is a rare dish.";

/** The spoken passage every sender of the second part sends (48 kHz mono,
 * 0.6 s of silence after it); its length in ms. */
function speechFile(dir) {
  const raw = join(dir, "speech-raw.wav");
  const out = join(dir, "speech.wav");
  execFileSync("espeak-ng", ["-w", raw, "-s", "150", "-v", "en-us", PASSAGE]);
  execFileSync("ffmpeg", ["-loglevel", "error", "-y", "-i", raw, "-af", "apad=pad_dur=0.6", "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", out]);
  return out;
}

function writeWav(path, pcm, rate = 48000) {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(pcm.length, 40);
  writeFileSync(path, Buffer.concat([header, pcm]));
}

const netnsSet = (control, ...what) => execFileSync(join(ROOT, "scripts/netns-client-set"), [control, ...what]);
let nextClient = 40;

/** A sender of `kind` (`conclave` or `chromium`) in a namespace of its own
 * (its link capped to `rate` kbit/s if given) and a receiver of the same
 * kind on the open network. `finish()` ends both and gives the times (ms)
 * of the received frames and the received sound as a WAV file. */
async function startPair(kind, { rate = null, sound, dir }) {
  const id = String(nextClient++);
  const control = join(dir, `control-${id}`);
  const wrap = ["--id", id, "--control", control, ...(rate ? ["--rate", String(rate)] : [])];
  const { room, link } = newRoom();
  if (kind === "conclave") {
    const saved = join(dir, `saved-${id}`);
    const receiver = participant(link, "Receiver", ["--stdin", "--save-received", saved]);
    const sender = participant(link, "Sender", ["--stdin", "--camera", "synthetic:640x360@30", "--mic", sound], { wrap });
    return {
      control,
      async finish() {
        await sender.stop();
        await receiver.stop();
        const frames = (await frameTimes(saved)).map((t) => t / 1000);
        const wav = await largest(saved, "-audio.wav");
        return { frames, wav: wav ? join(saved, wav) : null };
      },
    };
  }
  const child = spawn(
    join(ROOT, "scripts/netns-client"),
    [...wrap, "--", "node", join(HERE, "chromium-sender.mjs"), SERVER, String(room), sound, "640", "360"],
    { stdio: ["pipe", "pipe", "ignore"] },
  );
  children.add(child);
  const exited = new Promise((r) => child.once("exit", r));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([new Promise((r) => lines.once("line", r)), sleep(40000).then(() => "timed out")]);
  lines.on("line", (l) => console.error(`chromium sender: ${l}`));
  if (first !== "publishing") throw new Error(`the Chromium sender: ${first}`);
  const pages = await peerPages();
  const page = await pages.open();
  await page.navigate(pages.url({ server: SERVER, room, role: "recv", name: "receiver", expect: 1, record: 1 }));
  await waitFor("the Chromium receiver", async () => (await page.execute("return window.bench && window.bench.state")) === "receiving", 30000);
  return {
    control,
    async finish() {
      const frames = await page.execute("return window.bench.frames");
      const inbound = await page.execute("return window.inboundStats()");
      if (process.env.NETWORK_SDP) console.error(await page.execute("return window.remoteSdp()"));
      for (const r of inbound) {
        const keys = ["kind", "packetsReceived", "packetsLost", "fecPacketsReceived", "fecPacketsDiscarded", "concealedSamples", "totalSamplesReceived", "jitterBufferDelay", "jitterBufferEmittedCount", "framesDecoded", "frameWidth", "framesPerSecond", "freezeCount", "totalFreezesDuration", "nackCount", "retransmittedPacketsReceived"];
        console.error(`chromium receiver: ${JSON.stringify(Object.fromEntries(keys.filter((k) => k in r).map((k) => [k, r[k]])))}`);
      }
      const pcm = Buffer.from(await page.execute("return window.takePcm()"), "base64");
      const wav = join(dir, `chromium-${id}.wav`);
      writeWav(wav, pcm);
      await pages.stop();
      child.stdin.end();
      const t = setTimeout(() => child.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(t);
      children.delete(child);
      return { frames, wav };
    },
  };
}

/** PESQ and STOI of the last `pieces` loops of `wav`. */
function speechQuality(reference, wav, pieces) {
  if (!wav) return { pesq: null, stoi: null };
  const out = execFileSync(PYTHON, [join(HERE, "speech_quality.py"), reference, wav, "--last", String(pieces)]);
  return JSON.parse(out.toString().trim().split("\n").pop());
}

/** The longest stand-still (ms) and the frame rate of `frames` in [from, to]. */
function videoFigures(frames, from, to) {
  const shown = frames.filter((t) => t >= from && t <= to);
  let longest = 0;
  let previous = from;
  for (const t of shown) {
    longest = Math.max(longest, t - previous);
    previous = t;
  }
  longest = Math.max(longest, to - previous);
  return { freeze_ms: Math.round(longest), fps: Math.round((shown.length / ((to - from) / 1000)) * 10) / 10 };
}

/** Audio and video figures of one pair under loss (set once joined) or a cap. */
async function impaired(kind, { loss = 0, rate = null, sound, loopMs, dir }) {
  try {
    const pair = await startPair(kind, { rate, sound, dir });
    await sleep(WARMUP_MS);
    if (loss) netnsSet(pair.control, "loss", String(loss));
    await sleep(SETTLE_MS);
    const from = Date.now();
    await sleep(SECONDS * 1000);
    const to = Date.now();
    const { frames, wav } = await pair.finish();
    const pieces = Math.max(1, Math.floor((SECONDS * 1000 - 1000) / loopMs));
    const audio = speechQuality(sound, wav, pieces);
    return { ...videoFigures(frames, from, to), pesq: audio.pesq, stoi: audio.stoi };
  } catch (e) {
    console.error(`${kind}, loss ${loss}, cap ${rate}: ${e.message}`);
    return { freeze_ms: null, fps: null, pesq: null, stoi: null };
  }
}

/** ms from the end of a 5 s blackout of the sender to the next frame shown. */
async function blackoutPair(kind, { sound, dir }) {
  try {
    const pair = await startPair(kind, { sound, dir });
    await sleep(WARMUP_MS);
    netnsSet(pair.control, "blackout");
    await sleep(5000);
    netnsSet(pair.control, "clear");
    const back = Date.now();
    await sleep(4000);
    const { frames } = await pair.finish();
    const first = frames.find((t) => t >= back);
    return first === undefined ? null : Math.round(first - back);
  } catch (e) {
    console.error(`${kind}, blackout: ${e.message}`);
    return null;
  }
}

async function qualityPart() {
  const dir = await mkdtemp(join(tmpdir(), "conclave-bench-quality-"));
  try {
    const sound = speechFile(dir);
    const loopMs = (readWav(await readFile(sound)).samples.length / 48000) * 1000;
    const only = process.env.NETWORK_ROWS?.split(",");
    const rows = [
      ["loss 0 %", { loss: 0 }],
      ["loss 10 %", { loss: 10 }],
      ["loss 20 %", { loss: 20 }],
      ["loss 30 %", { loss: 30 }],
      ["cap 500 kbit/s", { rate: 500 }],
    ].filter(([label]) => !only || only.includes(label.split(" ").slice(0, 2).join("")));
    const results = {};
    for (const [label, opts] of rows) {
      results[label] = {};
      for (const kind of KINDS) {
        results[label][kind] = await impaired(kind, { ...opts, sound, loopMs, dir });
      }
    }
    const blackouts = { conclave: [], chromium: [] };
    for (let i = 0; i < BLACKOUTS; i++) {
      for (const kind of KINDS) {
        const ms = await blackoutPair(kind, { sound, dir });
        if (ms !== null) blackouts[kind].push(ms);
      }
    }
    const cell = (v, w = 8) => String(v ?? "-").padStart(w);
    console.log("");
    console.log(`${SECONDS} s of speech and 640x360@30 video from a sender behind the impairment`);
    console.log("condition          PESQ conclave/chromium   STOI conclave/chromium   longest freeze ms   frames/s");
    for (const [label] of rows) {
      const none = { pesq: null, stoi: null, freeze_ms: null, fps: null };
      const c = results[label].conclave ?? none;
      const g = results[label].chromium ?? none;
      console.log(
        `${label.padEnd(16)} ${cell(c.pesq)} ${cell(g.pesq)}        ${cell(c.stoi)} ${cell(g.stoi)}        ${cell(c.freeze_ms)} ${cell(g.freeze_ms)}   ${cell(c.fps, 5)} ${cell(g.fps, 5)}`,
      );
    }
    const fmt = (xs) => xs.join(", ");
    console.log(`blackout recovery ms, 640x360: conclave ${fmt(blackouts.conclave)}; chromium ${fmt(blackouts.chromium)}`);
    const r = (label, kind, key) => results[label]?.[kind]?.[key] ?? null;
    return {
      audio_pesq_loss0: r("loss 0 %", "conclave", "pesq"),
      chromium_audio_pesq_loss0: r("loss 0 %", "chromium", "pesq"),
      audio_pesq_loss20: r("loss 20 %", "conclave", "pesq"),
      chromium_audio_pesq_loss20: r("loss 20 %", "chromium", "pesq"),
      audio_pesq_loss30: r("loss 30 %", "conclave", "pesq"),
      chromium_audio_pesq_loss30: r("loss 30 %", "chromium", "pesq"),
      audio_pesq_loss10: r("loss 10 %", "conclave", "pesq"),
      chromium_audio_pesq_loss10: r("loss 10 %", "chromium", "pesq"),
      audio_stoi_loss20: r("loss 20 %", "conclave", "stoi"),
      chromium_audio_stoi_loss20: r("loss 20 %", "chromium", "stoi"),
      video_longest_freeze_ms_loss10: r("loss 10 %", "conclave", "freeze_ms"),
      chromium_video_longest_freeze_ms_loss10: r("loss 10 %", "chromium", "freeze_ms"),
      video_fps_loss10: r("loss 10 %", "conclave", "fps"),
      chromium_video_fps_loss10: r("loss 10 %", "chromium", "fps"),
      cap500_video_fps: r("cap 500 kbit/s", "conclave", "fps"),
      chromium_cap500_video_fps: r("cap 500 kbit/s", "chromium", "fps"),
      cap500_audio_pesq: r("cap 500 kbit/s", "conclave", "pesq"),
      chromium_cap500_audio_pesq: r("cap 500 kbit/s", "chromium", "pesq"),
      cap500_video_longest_freeze_ms: r("cap 500 kbit/s", "conclave", "freeze_ms"),
      chromium_cap500_video_longest_freeze_ms: r("cap 500 kbit/s", "chromium", "freeze_ms"),
      blackout_recovery_ms_640x360: blackouts.conclave.length ? median(blackouts.conclave) : null,
      chromium_blackout_recovery_ms: blackouts.chromium.length ? median(blackouts.chromium) : null,
      quality_seconds: SECONDS,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function joinPart() {
  const udp = await joins("udp");
  const relay = await joins("relay_tcp");
  const iceTcp = await joins("ice_tcp");
  const recoveries = [];
  const moves = [];
  for (let i = 0; i < BLACKOUTS; i++) {
    const ms = await blackoutOnce();
    if (ms !== null) recoveries.push(ms);
    const still = await moveOnce();
    if (still !== null) moves.push(still);
  }
  const fmt = (xs) => xs.map((x) => Math.round(x)).join(", ");
  console.log("figure                  median ms   each run (ms)");
  console.log(`join, UDP open          ${String(median(udp)).padStart(9)}   ${fmt(udp)}`);
  console.log(`join, relay over TCP    ${String(median(relay)).padStart(9)}   ${fmt(relay)}`);
  console.log(`join, ICE-TCP           ${String(median(iceTcp)).padStart(9)}   ${fmt(iceTcp)}`);
  console.log(`blackout recovery       ${String(Math.round(median(recoveries))).padStart(9)}   ${fmt(recoveries)}`);
  console.log(`address move standstill ${String(Math.round(median(moves))).padStart(9)}   ${fmt(moves)}`);
  return {
    join_ms_udp: median(udp),
    join_ms_relay_tcp: median(relay),
    join_ms_ice_tcp: median(iceTcp),
    blackout_recovery_ms: recoveries.length ? Math.round(median(recoveries)) : null,
    move_standstill_ms: moves.length ? Math.round(median(moves)) : null,
    joins: JOINS,
    joins_failed_udp: JOINS - udp.length,
    joins_failed_relay_tcp: JOINS - relay.length,
    joins_failed_ice_tcp: JOINS - iceTcp.length,
    blackouts_failed: BLACKOUTS - recoveries.length,
    moves_failed: BLACKOUTS - moves.length,
  };
}

async function main() {
  let figures = {};
  if (PARTS.includes("join")) figures = { ...figures, ...(await joinPart()) };
  if (PARTS.includes("quality")) figures = { ...figures, ...(await qualityPart()) };
  console.log(JSON.stringify(figures));
}

try {
  await main();
} finally {
  for (const c of children) c.kill("SIGKILL");
}
