// App + app: two instances of the real app (two tauri-drivers, two
// profiles, each with its own virtual microphone and speaker) join one
// meeting, see each other's camera and hear each other.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Session, waitFor } from "./webdriver.mjs";
import { joinFromScreen, canvasSpread, cpuHog, recordSink } from "./app-helpers.mjs";
import { envelope, toDb } from "../audio/wav.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through scripts/e2e)`);
  return v;
};
const app = env("CONCLAVE_APP");
const cli = env("CONCLAVE_CLI");
const server = env("CONCLAVE_TEST_SERVER");
const secondConfig = env("CONCLAVE_APP2_CONFIG");
const driverA = process.env.WEBDRIVER_URL ?? "http://127.0.0.1:4444";
const driverB = process.env.WEBDRIVER_URL_2 ?? "http://127.0.0.1:4446";

const sessions = [];
after(async () => {
  for (const s of sessions) await s.end().catch(() => {});
});

/** A spoken sentence as a WAV (espeak-ng). */
function speech(text) {
  const wav = join(process.env.TMPDIR ?? "/tmp", `speech-${process.pid}-${Date.now()}.wav`);
  execFileSync("espeak-ng", ["-w", wav, "-s", "150", text]);
  return wav;
}

/** The app's latest engine figures (a stats event). */
const statsOf = (s) => s.execute("return window.__lastStats ?? null").catch(() => null);

/** Plays `wav` into `sink` (the speaker's microphone) while recording
 * `heardOn` (the listener's speaker): the share of 10 ms frames of the
 * recording louder than -50 dBFS, and, link by link, where the sound went:
 * the speaker's microphone level and packets sent, the listener's packets
 * received from them and the level it plays them at. */
async function speakAndListen(wav, sink, heardOn, speaker, listener) {
  const [speakerBefore, listenerBefore] = [await statsOf(speaker), await statsOf(listener)];
  const recording = recordSink(heardOn, 3500);
  await new Promise((r) => setTimeout(r, 300));
  const player = spawn("paplay", ["-d", sink, wav], { stdio: "ignore" });
  // The speaker's own level, sampled while the sentence plays.
  const levels = [];
  const sampler = setInterval(async () => {
    const st = await statsOf(speaker);
    if (st) levels.push(st.mic_level);
  }, 250);
  const samples = await recording;
  clearInterval(sampler);
  player.kill();
  const [speakerAfter, listenerAfter] = [await statsOf(speaker), await statsOf(listener)];
  const frames = envelope(samples, 48000);
  const loud = frames.filter((rms) => toDb(rms) > -50).length / Math.max(1, frames.length);
  const sent = (st) => st?.sending?.audio_packets ?? 0;
  const remote = (st) => (st?.remotes ?? []).find((r) => r.audio_packets > 0) ?? null;
  const received = (st) => remote(st)?.audio_packets ?? 0;
  const chain = [
    `speaker: microphone ${speakerAfter?.has_microphone ? "open" : "missing"}${speakerAfter?.muted ? " (muted)" : ""}, ` +
      `loudest level -${Math.min(...levels, 127)} dBov, ${sent(speakerAfter) - sent(speakerBefore)} packets sent`,
    `listener: ${received(listenerAfter) - received(listenerBefore)} packets received, ` +
      `played at -${remote(listenerAfter)?.level ?? 127} dBov, ${remote(listenerAfter)?.audio_concealed ?? 0} concealed`,
    `recorded from its speaker: ${(loud * 100).toFixed(0)} % of frames loud`,
  ].join("; ");
  return { loud, chain };
}

test("two apps in one meeting see and hear each other, on a busy machine", async () => {
  // A busy loop on one core throughout, from before the apps start: both
  // must find their devices and hold the meeting there.
  const hog = cpuHog();
  after(() => hog.stop());
  // The second app's profile: its own virtual devices and the small test pattern.
  mkdirSync(join(secondConfig, "conclave"), { recursive: true });
  writeFileSync(join(secondConfig, "conclave", "settings.json"), JSON.stringify({
    nickname: "", server, language: "en", camera: "synthetic:640x360@15",
    microphone: "pulseaudio:app2_mic", speaker: "pulseaudio:app2_out",
  }));
  const a = await Session.start(driverA, app);
  sessions.push(a);
  const b = await Session.start(driverB, app);
  sessions.push(b);
  const out = execFileSync(cli, ["create-room", "--server", server, "--password", "two-apps-pw", "--json"], { encoding: "utf8" });
  const room = JSON.parse(out.trim().split("\n").pop());

  // The first app sends the 720p test pattern and uses the OS defaults (app_*).
  await a.waitFind('[data-testid="join-screen"]');
  await a.click('[data-testid="devices-disclosure"]');
  await a.click('[data-testid="camera-select"] option[value="synthetic"]');
  await a.click('[data-testid="devices-disclosure"]');
  await joinFromScreen(a, room.link, "Ada (first app)");
  await b.waitFind('[data-testid="join-screen"]');
  await joinFromScreen(b, room.link, "Grace (second app)");

  // Each sees both pictures: its own and the other's.
  for (const [s, who] of [[a, "first"], [b, "second"]]) {
    await waitFor(`both pictures in the ${who} app`, async () =>
      (await s.findAll('[data-testid="stage-tile"][data-video="on"]')).length === 2, 20000).catch(async (e) => {
      // What the app shows instead, for the report.
      const tiles = await s.execute(`return [...document.querySelectorAll('[data-testid="stage-tile"]')].map((t) => t.textContent.trim() + ':' + t.dataset.video).join(' | ')
        + '; events seen: ' + JSON.stringify(window.__eventCounts ?? {}) + '; ' + (window.__joinErrors ?? []).slice(-10).join(' / ')`).catch(() => "?");
      if (process.env.CONCLAVE_SCREENSHOTS) writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, `two-apps-${who}.png`), await s.screenshot());
      throw new Error(`${e.message}; tiles: ${tiles}`);
    });
    for (const n of [1, 2]) {
      const tile = `[data-testid="stage-tile"][data-video="on"]:nth-child(${n}) canvas`;
      await waitFor(`picture ${n} drawn in the ${who} app`, async () => (await canvasSpread(s, tile)) > 60, 10000);
    }
  }

  // Each hears the other: speech into one app's microphone comes out of the
  // other's speaker.
  await waitFor("both microphones ready", async () =>
    (await a.property('[data-testid="mute-button"]', "disabled")) === false &&
    (await b.property('[data-testid="mute-button"]', "disabled")) === false);
  const wav = speech("Can you hear me? This is a test of the meeting audio.");
  const bHearsA = await speakAndListen(wav, "app_feed", "app2_out", a, b);
  const aHearsB = await speakAndListen(wav, "app2_feed", "app_out", b, a);
  console.log(`first to second: ${bHearsA.chain}\nsecond to first: ${aHearsB.chain}`);
  assert.ok(bHearsA.loud > 0.2, `the second app plays the first's speech: ${bHearsA.chain}`);
  assert.ok(aHearsB.loud > 0.2, `the first app plays the second's speech: ${aHearsB.chain}; ` +
    `second app's page: ${await b.execute("return (window.__joinErrors ?? []).slice(-10).join(' / ')").catch(() => "?")}`);

  for (const s of [a, b]) {
    await s.click('[data-testid="leave-button"]');
    await s.waitFind('[data-testid="join-screen"]');
  }
});
