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
// Not measured yet (docs/network.md): the Chromium reference, PESQ under
// loss, freezes under loss, the 500 kbit/s cap.
//
// Env: CONCLAVE_TEST_SERVER, CONCLAVE_CLI, CONCLAVE_TURN_IP.
import { spawn, execFileSync } from "node:child_process";
import { mkdtemp, rm, readFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const SERVER = process.env.CONCLAVE_TEST_SERVER;
const CLI = process.env.CONCLAVE_CLI;
const TURN = process.env.CONCLAVE_TURN_IP;
const JOINS = Number(process.env.NETWORK_JOINS ?? 5);
const BLACKOUTS = Number(process.env.NETWORK_BLACKOUTS ?? 3);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function newMeeting() {
  const out = execFileSync(CLI, ["create-room", "--server", SERVER, "--json"]).toString().trim().split("\n").pop();
  return JSON.parse(out).link;
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

/** The frame receive times (µs) of the one decoded stream saved in `saved`. */
async function frameTimes(saved) {
  const log = (await readdir(saved)).find((f) => f.endsWith("-video.csv"));
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

async function main() {
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
  console.log(
    JSON.stringify({
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
    }),
  );
}

try {
  await main();
} finally {
  for (const c of children) c.kill("SIGKILL");
}
