// `scripts/bench call`: CPU and memory of one participant in a call,
// Conclave next to Chromium, through the same meeting server.
//
// 1:1: two participants, each sending 720p30 video and audio and receiving
// the other's. 4 people: four participants, each sending 720p30 and audio
// and receiving the three others. One participant is measured: CPU as the
// share of one core over the window (user + system time, /proc/PID/stat,
// summed over its processes) and memory as the proportional set size (PSS,
// /proc/PID/smaps_rollup, summed; for one process PSS is its RSS less its
// share of pages it shares with others).
//
// Conclave: conclave-cli (release) with the synthetic 720p30 camera, a
// virtual PulseAudio microphone with voice processing on, and a virtual
// speaker. Chromium: our page (tests/bench/peer.html, role=both) with a
// canvas stream and a WebAudio source, in its own Chromium instance per
// participant (headless, software video coding).
//
// Env: CONCLAVE_TEST_SERVER, CONCLAVE_CLI, CALL_SECONDS (20).
import { spawn, execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { waitFor } from "../webdriver/webdriver.mjs";
import { newRoom, peerPages } from "./peers.mjs";

const SERVER = process.env.CONCLAVE_TEST_SERVER;
const CLI = process.env.CONCLAVE_CLI;
const SECONDS = Number(process.env.CALL_SECONDS ?? 20);
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const TICK = 100; // clock ticks per second (USER_HZ)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x) => Math.round(x * 10) / 10;

function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

function pssMb(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").match(/^Pss:\s+(\d+) kB/m);
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** A process and all its descendants. */
function tree(root) {
  const children = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {}
  }
  const out = [];
  const walk = (p) => { out.push(p); for (const c of children.get(p) ?? []) walk(c); };
  walk(root);
  return out;
}

/** CPU % of one core and PSS (MB, sampled each second, median) of a process tree over the window. */
async function measure(pidsOf) {
  const before = new Map(pidsOf().map((p) => [p, cpuTicks(p)]));
  const started = Date.now();
  const pss = [];
  while (Date.now() - started < SECONDS * 1000) {
    await sleep(1000);
    pss.push(pidsOf().reduce((s, p) => s + pssMb(p), 0));
  }
  const elapsed = (Date.now() - started) / 1000;
  let ticks = 0;
  for (const p of pidsOf()) ticks += cpuTicks(p) - (before.get(p) ?? 0);
  pss.sort((a, b) => a - b);
  return { cpu: (100 * ticks) / TICK / elapsed, mb: pss[Math.floor(pss.length / 2)] ?? 0 };
}

async function conclaveCall(people, dir) {
  const names = ["a", "b", "c", "d"].slice(0, people);
  const exported = execFileSync(join(ROOT, "scripts/pulse"), ["start", join(dir, `pulse${people}`), ...names]).toString();
  const env = { ...process.env, PULSE_SERVER: exported.match(/PULSE_SERVER=(\S+)/)[1] };
  const children = [];
  try {
    const room = newRoom(CLI, SERVER);
    const parts = names.map((n) => {
      const child = spawn(CLI, ["join", String(room), "--server", SERVER, "--name", n.toUpperCase(), "--json",
        "--camera", "synthetic:1280x720@30", "--mic", `${n}_mic`, "--speaker", `${n}_out`, "--stay", String(SECONDS + 30)],
        { env, stdio: ["ignore", "pipe", "inherit"] });
      children.push(child);
      const events = [];
      createInterface({ input: child.stdout }).on("line", (l) => { try { events.push(JSON.parse(l)); } catch {} });
      return { child, events };
    });
    const a = parts[0];
    await waitFor("everyone's video reaches A", async () =>
      a.events.filter((e) => e.event === "track_added" && e.kind === "video").length >= people - 1, 40000);
    await sleep(3000);
    const m = await measure(() => [a.child.pid]);
    const frames = a.events.filter((e) => e.event === "stats").pop()?.remotes?.map((r) => r.video_frames) ?? [];
    return { ...m, frames };
  } finally {
    for (const c of children) c.kill("SIGKILL");
    execFileSync(join(ROOT, "scripts/pulse"), ["stop", join(dir, `pulse${people}`)]);
  }
}

async function chromiumCall(people) {
  const pages = await peerPages();
  try {
    const room = newRoom(CLI, SERVER);
    const before = new Set(tree(pages.driverPid));
    let firstTree = null;
    const sessions = [];
    for (let i = 0; i < people; i++) {
      const s = await pages.open();
      sessions.push(s);
      if (i === 0) {
        // The first Chromium's processes: the new child of chromedriver.
        firstTree = tree(pages.driverPid).find((p) => !before.has(p) && readFileSync(`/proc/${p}/stat`, "utf8").includes("chrom"));
      }
      await s.navigate(pages.url({ server: SERVER, room, role: "both", name: `p${i}`, expect: people - 1 }));
    }
    for (const [i, s] of sessions.entries()) {
      await waitFor(`Chromium ${i} in the call`, async () => {
        const st = await s.execute("return window.bench && window.bench.state");
        if (String(st).startsWith("error")) throw new Error(st);
        return st === "calling";
      }, 60000);
    }
    await waitFor("Chromium decodes video", async () => (await sessions[0].execute("return window.bench.g2g.length")) > 30, 30000);
    await sleep(3000);
    const m = await measure(() => tree(firstTree));
    return { ...m, frames: [await sessions[0].execute("return window.bench.g2g.length")] };
  } finally {
    await pages.stop();
  }
}

const dir = await mkdtemp(join(tmpdir(), "conclave-call-"));
const results = {};
try {
  results.conclave1 = await conclaveCall(2, dir);
  results.conclave4 = await conclaveCall(4, dir);
  results.chromium1 = await chromiumCall(2);
  results.chromium4 = await chromiumCall(4);
} finally {
  await rm(dir, { recursive: true, force: true });
}
const rows = [
  ["client", "call", "CPU % of a core", "memory MB (PSS)"],
  ["conclave", "1:1 720p30", round(results.conclave1.cpu), round(results.conclave1.mb)],
  ["conclave", "4 people", round(results.conclave4.cpu), round(results.conclave4.mb)],
  ["chromium", "1:1 720p30", round(results.chromium1.cpu), round(results.chromium1.mb)],
  ["chromium", "4 people", round(results.chromium4.cpu), round(results.chromium4.mb)],
];
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
console.log(`One participant over ${SECONDS} s through ${SERVER}; everyone sends 720p30 video and audio`);
for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(widths[i])).join("  "));
console.log(JSON.stringify({
  cpu_pct_1to1: round(results.conclave1.cpu),
  rss_mb_4p: round(results.conclave4.mb),
  chromium_cpu_pct_1to1: round(results.chromium1.cpu),
  chromium_rss_mb_4p: round(results.chromium4.mb),
  cpu_pct_4p: round(results.conclave4.cpu),
  rss_mb_1to1: round(results.conclave1.mb),
  chromium_cpu_pct_4p: round(results.chromium4.cpu),
}));
