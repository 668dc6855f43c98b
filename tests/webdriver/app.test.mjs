// The real app, driven through WebDriver (tauri-driver + WebKitWebDriver under
// Xvfb), in a meeting on a real Janus with a `conclave-cli` participant.
// Started by scripts/e2e, which provides the environment below.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync, mkdirSync, rmSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Keys, Session, waitFor } from "./webdriver.mjs";
import { DemoPages } from "../demos/pages.mjs";
import { toDb } from "../audio/wav.mjs";
import { planted as canary, nickname as auditedNickname } from "../privacy/canaries.mjs";
import { answerOpenDialog, answerSaveDialog, backdropShares, canvasRgb, cpuHog, ffmpegSays, installPageProbes, pictureRgb, writeColourPng, canvasSpread, clipboardText, joinFromScreen, leaveIfInMeeting, waitJoined, recordSink, tonePower, toneWav } from "./app-helpers.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run scripts/e2e`);
  return v;
};
const driver = process.env.WEBDRIVER_URL ?? "http://127.0.0.1:4444";
const app = env("CONCLAVE_APP");
const cli = env("CONCLAVE_CLI");
const server = env("CONCLAVE_TEST_SERVER");
const shots = process.env.CONCLAVE_SCREENSHOTS;
const logDir = env("CONCLAVE_APP_LOG_DIR");
/** Values that must never reach the app's log. */
const planted = [];

/** A `conclave-cli join --json --stdin` participant whose events we can await. */
class CliPeer {
  constructor(link, name, extra = []) {
    this.events = [];
    this.waiters = [];
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    this.child = spawn(cli, ["join", link, "--name", name, "--json", "--stdin", ...extra], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    peers.push(this);
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      this.events.push(event);
      this.waiters = this.waiters.filter((w) => !w(event));
    });
    this.child.on("exit", (code) => this.resolveExit(code));
  }
  /** Resolves with the first event (past or future) matching `predicate`. */
  waitEvent(what, predicate, timeoutMs = 15000) {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cli: timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push((e) => {
        if (!predicate(e)) return false;
        clearTimeout(timer);
        resolve(e);
        return true;
      });
    });
  }
  say(text) {
    this.child.stdin.write(text + "\n");
  }
  async stop() {
    if (this.child.exitCode !== null) return;
    this.child.stdin.end();
    await new Promise((r) => {
      const timer = setTimeout(() => {
        this.child.kill();
        r();
      }, 5000);
      this.child.on("exit", () => {
        clearTimeout(timer);
        r();
      });
    });
  }
}

/** The pids of the apps running with the profile whose config is `config`. */
function appPids(config) {
  const pids = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(app)) continue;
      if (readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2] === "Z") continue;
      if (readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`XDG_CONFIG_HOME=${config}`)) pids.push(Number(pid));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function createMeeting(password) {
  const out = execFileSync(cli, ["create-room", "--server", server, "--password", password, "--json"], {
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").pop());
}

async function screenshot(session, name) {
  if (!shots) return;
  // Let the webview paint what the test just saw: a first snapshot can show
  // an older frame.
  await new Promise((r) => setTimeout(r, 500));
  await session.screenshot();
  await new Promise((r) => setTimeout(r, 500));
  mkdirSync(shots, { recursive: true });
  writeFileSync(join(shots, `${name}.png`), await session.screenshot());
}

let session;
let peer;
/** The invitation the app copied, and the stand-in clipboard manager holding it. */
let invitationText = null;
let clipboardManager = null;
/** Every cli started, stopped at the end whatever happens. */
const peers = [];

before(async () => {
  session = await Session.start(driver, app);
  await session.waitFind('[data-testid="join-screen"]', 20000).catch(() => {});
  await installPageProbes(session);
});

after(async () => {
  clipboardManager?.kill();
  await session?.end();
  for (const p of peers) await p.stop();
});

test("a bad link and a wrong password give inline errors", async () => {
  await session.waitFind('[data-testid="join-screen"]');
  await session.type('[data-testid="link-input"]', "not a meeting");
  const linkError = await waitFor("link error", () => session.text('[data-testid="link-error"]'));
  assert.match(linkError, /not a meeting link or ID/);

  const room = createMeeting("right-password");
  await session.clear('[data-testid="link-input"]');
  // The room's bare ID, on the server the settings name, with a wrong password.
  await session.type('[data-testid="link-input"]', String(room.room));
  await waitFor("link preview", () => session.text('[data-testid="link-preview"]'));
  await session.type('[data-testid="password-input"]', "wrong-password");
  await session.clear('[data-testid="nickname-input"]');
  await session.type('[data-testid="nickname-input"]', "Ada");
  await session.click("button.disclosure");
  await session.clear('[data-testid="server-input"]');
  await session.type('[data-testid="server-input"]', server);
  await session.click('[data-testid="join-button"]');
  const joinError = await waitFor("join error", () => session.text('[data-testid="join-error"]'));
  assert.match(joinError, /password/i);
  await screenshot(session, "join-error");
});

test("the join screen previews the devices: microphone meter, test-pattern camera, speaker test", async () => {
  await session.waitFind('[data-testid="join-screen"]');
  await session.click('[data-testid="devices-disclosure"]');
  await session.waitFind('[data-testid="preview-meter"]');
  // A tone into the app's (virtual) microphone moves the meter.
  const wav = join(process.env.TMPDIR ?? "/tmp", `tone-${process.pid}.wav`);
  writeFileSync(wav, toneWav(440, 3));
  const player = spawn("paplay", ["-d", "app_feed", wav], { stdio: "ignore" });
  try {
    await waitFor("the meter moves", async () => Number(await session.execute(
      "return document.querySelector('[data-testid=\"preview-meter\"]').dataset.level")) < 40, 10000);
  } finally {
    player.kill();
  }
  // This machine has no camera: the preview says so cleanly.
  const noCamera = await waitFor("the no-camera note", () => session.text('[data-testid="camera-error"]'));
  assert.match(noCamera, /No camera found/);
  // The test pattern shows in the camera preview.
  await session.click('[data-testid="camera-select"] option[value="synthetic"]');
  await waitFor("a picture in the camera preview", async () => (await canvasSpread(session, '[data-testid="camera-preview"]')) > 60, 10000);
  await screenshot(session, "join-devices");
  await session.click('[data-testid="speaker-test"]');
  assert.equal((await session.findAll('[data-testid="device-panel"] .error')).length, 0, "the speaker test played");
  // Back to the first camera (of which there is none) for the other tests.
  await session.click('[data-testid="camera-select"] option[value="default"]');
  await session.click('[data-testid="devices-disclosure"]');
});


test("join with a pasted link, see the cli participant, chat both ways, leave", async () => {
  const room = createMeeting("s3cret pass");
  planted.push("Welcome to my meeting", "Thanks for hosting", "s3cret pass", new URL(room.link).hash.match(/key=([^&]+)/)[1], "Hello from the app", "not bold");
  peer = new CliPeer(room.link, "Grace (cli)");
  await peer.waitEvent("cli joined", (e) => e.event === "joined");

  await session.clear('[data-testid="link-input"]');
  await session.type('[data-testid="link-input"]', `Join my meeting: ${room.link}`);
  const preview = await waitFor("link preview", () => session.text('[data-testid="link-preview"]'));
  assert.match(preview, /Password included/);
  assert.match(preview, /End-to-end encrypted chat/);
  await session.clear('[data-testid="nickname-input"]');
  await session.type('[data-testid="nickname-input"]', "Ada (app)");
  await screenshot(session, "join");
  await session.click('[data-testid="join-button"]');

  await session.waitFind('[data-testid="meeting-screen"]', 20000);
  assert.match(await session.text('[data-testid="encryption-badge"]'), /End-to-end encrypted/);
  await peer.waitEvent("app joins", (e) => e.event === "participant_joined" && e.nickname === "Ada (app)");
  await session.click('[data-testid="participants-tab"]');
  await waitFor("cli participant in the roster", async () =>
    (await session.texts('[data-testid="participant-name"]')).includes("Grace (cli)"),
  );
  await session.click('[data-testid="chat-tab"]');

  await session.type('[data-testid="chat-input"]', "Hello from the app" + Keys.Enter);
  const got = await peer.waitEvent("chat from the app", (e) => e.event === "chat" && e.text === "Hello from the app");
  assert.equal(got.encrypted, true);

  peer.say("Hello from the cli <b>not bold</b>");
  await waitFor("chat from the cli", async () =>
    (await session.texts('[data-testid="chat-message"]')).includes("Hello from the cli <b>not bold</b>"),
  );
  await screenshot(session, "meeting");

  await session.click('[data-testid="copy-invitation"]');
  await waitFor("copied notice", async () =>
    (await session.texts('[data-testid="toast"]')).some((t) => /copied/.test(t)),
  );

  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await peer.waitEvent("app leaves", (e) => e.event === "participant_left" && e.nickname === "Ada (app)");
  // The nickname is remembered for next time.
  assert.equal(await session.value('[data-testid="nickname-input"]'), "Ada (app)");

  // The invitation is still on the clipboard: the join screen offers the
  // meeting (grouped ID), and does not join by itself.
  const grouped = String(room.room).replace(/(\d{3})(?=\d)/g, "$1 ");
  const offered = await waitFor("the clipboard offer", () => session.text('[data-testid="clipboard-offer"]'), 10000);
  assert.ok(offered.includes(grouped), `offer names meeting ${grouped}: ${offered}`);
  await screenshot(session, "join-clipboard-offer");
  assert.equal((await session.findAll('[data-testid="meeting-screen"]')).length, 0, "not joined by itself");
  await session.click('[data-testid="clipboard-accept"]');
  await waitFor("the link filled in", async () => (await session.value('[data-testid="link-input"]')).includes(String(room.room)));
  // The same meeting is not offered again when the window regains focus.
  await session.clear('[data-testid="link-input"]');
  await session.execute("window.dispatchEvent(new Event('focus'))");
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await session.findAll('[data-testid="clipboard-offer"]')).length, 0, "offered once");

  // The meeting is in the local history, with who was there; search and delete.
  await session.click('[data-testid="history-button"]');
  const entry = `[data-testid="history-entry"][data-room="${room.room}"]`;
  const names = await waitFor("the meeting in the history", () => session.execute(
    `return document.querySelector('[data-testid="history-entry"][data-room="${room.room}"] [data-testid="history-names"]')?.textContent ?? ""`));
  assert.match(names, /Ada \(app\)/);
  assert.match(names, /Grace \(cli\)/);
  await session.type('[data-testid="history-search"]', "Grace");
  await waitFor("found by name", async () => (await session.findAll(entry)).length === 1);
  await session.type('[data-testid="history-search"]', " nobody-here");
  await waitFor("nothing for others", async () => (await session.findAll('[data-testid="history-entry"]')).length === 0);
  // Reopened, the panel lists everything again.
  await session.click('[data-testid="history-close"]');
  await session.click('[data-testid="history-button"]');
  await waitFor("listed again", async () => (await session.findAll(entry)).length === 1);
  await screenshot(session, "join-history");
  await session.click(`${entry} [data-testid="history-delete"]`);
  await waitFor("deleted", async () => (await session.findAll(entry)).length === 0);
  await session.click('[data-testid="history-close"]');
});

test("a cli participant's camera is drawn in its tile; the app, without a camera, says so and can mute", async (t) => {
  const room = createMeeting("video pass");
  planted.push("video pass");
  const sender = new CliPeer(room.link, "Linus (camera)", ["--camera", "synthetic:640x360@15", "--mic", "tone"]);
  await sender.waitEvent("cli joined", (e) => e.event === "joined");
  await joinFromScreen(session, room.link, "Ada (app)");

  // The cli's test pattern arrives and is drawn (not a blank canvas).
  const tile = '[data-testid="stage-tile"][data-video="on"]';
  await waitFor("the cli's video in its tile", async () => (await session.findAll(tile)).length === 1, 20000);
  const spread = await waitFor("a picture in the canvas", async () => {
    const s = await canvasSpread(session, `${tile} canvas`);
    return s > 60 ? s : 0;
  }, 15000);
  assert.ok(spread > 60, "the tile shows the pattern");
  // Drawn in the video worker where the webview has WebGL on OffscreenCanvas.
  const renderer = await session.execute(`return document.querySelector('${tile} canvas').dataset.renderer`);
  // (WebKitGTK here has OffscreenCanvas, but no WebGL on it: the page draws.)
  const offscreen = await session.execute(
    "return !!(self.OffscreenCanvas && new OffscreenCanvas(2, 2).getContext('webgl'))");
  t.diagnostic(`video drawn on the ${renderer === "worker" ? "worker's OffscreenCanvas" : "page"}`);
  if (offscreen === true) assert.equal(renderer, "worker");
  // The app plays the cli's 440 Hz tone on its speaker (the OS default,
  // a virtual sink here whose monitor we record).
  const heard = await recordSink("app_out", 2500);
  const { tone, rest } = tonePower(heard, 440);
  assert.ok(toDb(Math.sqrt(tone)) > -30, `the tone is played (${toDb(Math.sqrt(tone)).toFixed(1)} dBFS)`);
  assert.ok(tone > 10 * rest, "what is played is the tone, not noise");
  // No camera here: our own tile says so.
  assert.equal((await session.findAll('[data-testid="no-camera"]')).length, 1);

  // The app has a (virtual) microphone: mute it, and the badge shows on our tile.
  await waitFor("the microphone is ready", async () => (await session.property('[data-testid="mute-button"]', "disabled")) === false);
  assert.equal((await session.findAll('[data-testid="muted-badge"]')).length, 0, "nobody is muted yet");
  await session.click('[data-testid="mute-button"]');
  await waitFor("muted", async () => /Unmute/.test(await session.text('[data-testid="mute-button"]')));
  await waitFor("the muted badge on our tile", async () => (await session.findAll('[data-testid="muted-badge"]')).length === 1);
  // The camera button says there is no camera.
  assert.equal(await session.property('[data-testid="camera-button"]', "disabled"), true);
  await screenshot(session, "meeting-video");

  // Devices: the virtual microphones are listed; switching one mid-call works.
  await session.click('[data-testid="devices-button"]');
  const mics = await waitFor("the microphone list", async () => {
    const names = await session.texts('[data-testid="microphone-select"] option');
    return names.some((n) => /app-microphone/.test(n)) ? names : null;
  });
  assert.ok(mics.length >= 3, `microphones: ${mics.join(", ")}`);
  await session.click('[data-testid="microphone-select"] option[value="pulseaudio:app_feed.monitor"]');
  await screenshot(session, "meeting-devices");
  assert.equal((await session.findAll('[data-testid="device-panel"] .error')).length, 0, "the switch worked");
  await session.click('[data-testid="devices-button"]');
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await sender.stop();
});

test("switching the camera mid-call: the other side gets the new picture; no camera stops it", async () => {
  const room = createMeeting("lens-swap-pw");
  planted.push("lens-swap-pw");
  const receiver = new CliPeer(room.link, "Grace (receiver)");
  await receiver.waitEvent("cli joined", (e) => e.event === "joined");
  // The test pattern is chosen before joining.
  await session.click('[data-testid="devices-disclosure"]');
  await session.click('[data-testid="camera-select"] option[value="synthetic"]');
  await session.click('[data-testid="devices-disclosure"]');
  await joinFromScreen(session, room.link, "Ada (app)");

  /** The app's video as the cli's latest statistics describe it. */
  const seen = () => {
    const stats = receiver.events.filter((e) => e.event === "stats").at(-1);
    const v = stats?.remotes.find((r) => r.video_frames > 0);
    return v ? { size: `${v.video_width}x${v.video_height}`, fps: v.video_fps, frames: v.video_frames } : {};
  };
  /** Whether the cli gets the app's `w`x`h` camera: at that size, or, while
   * the app says its processor cannot keep up (the suite shares two cores),
   * at one of its steps down (3/4, 1/2, 3/8, 1/4 of the width). */
  const shows = async (w, h) => {
    const sending = await session.execute("return window.__lastStats?.sending ?? null").catch(() => null);
    const sizes = sending?.video_limited_by_cpu
      ? [8, 6, 4, 3, 2].map((e) => `${Math.floor((w * e) / 8) & ~1}x${Math.floor((h * e) / 8) & ~1}`)
      : [`${w}x${h}`];
    return sizes.includes(seen().size) && seen().fps > 10;
  };
  await waitFor("the app's 720p test pattern at the cli", () => shows(1280, 720), 20000);
  await waitFor("our own picture in the self tile", async () =>
    (await canvasSpread(session, '[data-testid="stage-tile"][data-video="on"] canvas')) > 60, 10000);

  // Another camera, mid-call: the cli gets the new picture, no rejoin.
  await session.click('[data-testid="devices-button"]');
  await session.click('[data-testid="camera-select"] option[value="synthetic:640x360@15"]');
  await waitFor("640x360 at the cli after the switch", () => shows(640, 360), 15000);
  assert.equal((await session.findAll('[data-testid="device-panel"] .error')).length, 0, "the switch worked");
  await screenshot(session, "meeting-camera-switch");

  // No camera: the camera goes off and nothing more is sent.
  await session.click('[data-testid="camera-select"] option[value=""]');
  await waitFor("the camera off", async () => (await session.execute(
    "return document.querySelector('[data-testid=\"camera-button\"]').getAttribute('aria-pressed')")) === "true");
  await waitFor("no more frames at the cli", async () => seen().fps === 0, 10000);

  await session.click('[data-testid="camera-select"] option[value="default"]');
  await session.click('[data-testid="devices-button"]');
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await receiver.stop();
});

test("virtual background: a picture or blur behind the person in the preview and for the others, toggled in the meeting; bad pictures refused", async () => {
  await leaveIfInMeeting(session);
  const testdata = (name) => fileURLToPath(new URL(`../../crates/background/testdata/${name}`, import.meta.url));
  const blue = [20, 40, 220];
  // A camera showing a person whose outline is known (MediaPipe's own mask).
  const mask = pictureRgb(testdata("mask-landscape.png"), 64, 36);
  const settingsFile = join(env("CONCLAVE_APP_CONFIG"), "conclave", "settings.json");
  const stored = existsSync(settingsFile) ? JSON.parse(readFileSync(settingsFile, "utf8")) : {};
  mkdirSync(join(env("CONCLAVE_APP_CONFIG"), "conclave"), { recursive: true });
  writeFileSync(settingsFile, JSON.stringify({ ...stored, camera: `picture:${testdata("astronaut-256x144.png")}`, background_enabled: false }));
  // The picture to add is a canary: its file name and the text inside it
  // must never reach the server (tests/privacy).
  writeColourPng(canary.backgroundPicture, 320, 180, blue, canary.backgroundText);
  const damaged = join(process.env.TMPDIR ?? "/tmp", `damaged-${process.pid}.png`);
  writeFileSync(damaged, readFileSync(canary.backgroundPicture).subarray(0, 60));
  const preview = '[data-testid="camera-preview"]';
  const previewShares = async () => {
    const rgb = await canvasRgb(session, preview, 64, 36);
    return rgb ? backdropShares(rgb, mask, blue) : { person: 0, room: 0 };
  };

  await session.click('[data-testid="devices-disclosure"]');
  await waitFor("the person in the camera preview", async () => (await canvasSpread(session, preview)) > 60, 10000);
  assert.ok((await previewShares()).room < 0.1, "no blue before a background is chosen");
  // Add the picture through the file dialog: it is chosen, the preview shows it behind the person.
  await session.click('[data-testid="background-add"]');
  await answerOpenDialog("Background picture", canary.backgroundPicture);
  await waitFor("the picture in the gallery", async () => (await session.findAll('[data-testid="background-picture"]')).length === 1, 10000);
  const shares = await waitFor("the picture behind the person in the preview", async () => {
    const s = await previewShares();
    return s.room > 0.8 && s.person > 0.8 ? s : null;
  }, 15000);
  assert.ok(shares, `preview: ${JSON.stringify(shares)}`);
  assert.match(await waitFor("the effects' cost", () => session.text('[data-testid="effects-cost"]')), /ms a frame/);
  await screenshot(session, "join-background");
  // A damaged picture is refused with a reason; the gallery stays as it was.
  await session.click('[data-testid="background-add"]');
  await answerOpenDialog("Background picture", damaged);
  assert.match(await waitFor("the error", () => session.text('[data-testid="background-error"]')), /damaged/i);
  assert.equal((await session.findAll('[data-testid="background-picture"]')).length, 1, "the gallery is intact");
  // Blur instead: the blue is gone at once, the picture stays.
  await session.click('[data-testid="background-blur"]');
  await waitFor("the blur in the preview", async () => (await previewShares()).room < 0.05, 10000);
  assert.ok((await canvasSpread(session, preview)) > 40, "still a picture");
  await screenshot(session, "join-background-blur");
  // The picture again, for the meeting.
  await session.click('[data-testid="background-picture"]');
  await waitFor("the picture again", async () => (await previewShares()).room > 0.8, 10000);
  await session.click('[data-testid="devices-disclosure"]');

  // In a meeting, the others receive the composite; the toggle turns it off.
  const room = createMeeting("backdrop-pw");
  planted.push("backdrop-pw");
  const dirs = ["a", "b"].map((n) => {
    const d = join(process.env.TMPDIR ?? "/tmp", `background-received-${process.pid}-${n}`);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    return d;
  });
  const receivers = dirs.map((d, i) => new CliPeer(room.link, `Receiver ${i + 1}`, ["--save-received", d]));
  for (const r of receivers) await r.waitEvent("cli joined", (e) => e.event === "joined");
  await joinFromScreen(session, room.link, "Ada (app)");
  const receiving = (r) => r.events.filter((e) => e.event === "stats").at(-1)?.remotes.some((v) => v.video_frames > 30);
  await waitFor("the app's video at both clis", async () => receivers.every(receiving), 20000);
  await waitFor("the cost in the header", () => session.text('[data-testid="header-effects-cost"]'), 10000);
  await screenshot(session, "meeting-background");
  const received = async (r, dir) => {
    await r.stop();
    const file = readdirSync(dir).find((f) => f.endsWith("-frame.png"));
    assert.ok(file, `a received picture in ${dir}`);
    return backdropShares(pictureRgb(join(dir, file), 64, 36), mask, blue);
  };
  const withBackground = await received(receivers[0], dirs[0]);
  assert.ok(withBackground.room > 0.8 && withBackground.person > 0.8, `received with the background: ${JSON.stringify(withBackground)}`);
  // Off during the meeting, at once: the room is back for the others.
  assert.equal(await session.execute("return document.querySelector('[data-testid=\"background-toggle\"]').getAttribute('aria-pressed')"), "true");
  await session.click('[data-testid="background-toggle"]');
  await waitFor("the toggle off", async () => (await session.execute(
    "return document.querySelector('[data-testid=\"background-toggle\"]').getAttribute('aria-pressed')")) === "false");
  await new Promise((r) => setTimeout(r, 3000));
  const without = await received(receivers[1], dirs[1]);
  assert.ok(without.room < 0.1, `received without the background: ${JSON.stringify(without)}`);
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');

  // Removing the picture empties the gallery; the camera goes back.
  await session.click('[data-testid="devices-disclosure"]');
  await session.click('[data-testid="background-remove"]');
  await waitFor("the gallery empty", async () => (await session.findAll('[data-testid="background-picture"]')).length === 0);
  await session.click('[data-testid="camera-select"] option[value="default"]');
  await session.click('[data-testid="devices-disclosure"]');
  const after = JSON.parse(readFileSync(settingsFile, "utf8"));
  writeFileSync(settingsFile, JSON.stringify({ ...after, background_enabled: false }));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("a Chromium participant (Janus's demo page) and the app see and hear each other, on a busy machine", async () => {
  const out = execFileSync(cli, ["create-room", "--server", server, "--json"], { encoding: "utf8" });
  const room = JSON.parse(out.trim().split("\n").pop());
  const pages = new DemoPages(server);
  await pages.start();
  // A busy loop on one core throughout: the app must hold its meeting there.
  const hog = cpuHog();
  try {
    const page = await pages.chrome();
    await pages.join(page, "videoroomtest.html", room.room, "Chromium");
    await waitFor("the page publishing", async () =>
      page.execute("const v = document.querySelector('#videolocal video'); return !!v && v.videoWidth > 0"), 20000);

    await joinFromScreen(session, room.link, "Ada (app)");

    // Chromium's fake camera is drawn in the app.
    await waitFor("Chromium's video in the app", async () =>
      (await session.findAll('[data-testid="stage-tile"][data-video="on"]')).length === 1, 40000);
    // Chromium receives the app's microphone (a virtual PulseAudio one).
    await waitFor("the page receiving the app's audio", async () => page.execute(`
      return [...document.querySelectorAll('[id^=videoremote] audio, [id^=videoremote] video')]
        .some((e) => e.srcObject && e.srcObject.getAudioTracks().some((t) => t.readyState === 'live'))`), 20000);
    await screenshot(session, "meeting-chromium");
  } finally {
    hog.stop();
    await leaveIfInMeeting(session);
    await pages.stop();
  }
});

test("share a window from the app (picker with thumbnails, sharing bar, stop); a cli's shared screen is presented", async () => {
  // Something to share on the app's display: the animated test pattern.
  const pattern = spawn(env("CONCLAVE_PATTERN_WINDOW"), ["960", "540", "60", "60"], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await new Promise((resolve) => createInterface({ input: pattern.stdout }).once("line", resolve));
    const room = createMeeting("share-pw");
    planted.push("share-pw");
    const viewer = new CliPeer(room.link, "Grace (viewer)");
    await viewer.waitEvent("cli joined", (e) => e.event === "joined");
    await joinFromScreen(session, room.link, "Ada (app)");

    // The picker lists screens and windows with pictures of them.
    await session.click('[data-testid="share-button"]');
    await session.waitFind('[data-testid="share-picker"]');
    const sources = await waitFor("sources listed", async () => {
      const ids = await session.execute(
        "return [...document.querySelectorAll('[data-testid=\"share-source\"]')].map((b) => [b.dataset.source, b.textContent.trim(), !!b.querySelector('img[src^=\"data:image/png\"]')])");
      return ids.length >= 2 ? ids : null;
    }, 15000);
    assert.ok(sources.some(([id]) => id.startsWith("screen:")), `a screen: ${JSON.stringify(sources)}`);
    const window = sources.find(([, name]) => name === "Conclave test pattern");
    assert.ok(window, `the pattern window is listed: ${JSON.stringify(sources)}`);
    assert.ok(window[2], "with a thumbnail");
    await screenshot(session, "share-picker");
    await session.click(`[data-testid="share-source"][data-source="${window[0]}"]`);

    // The cli receives the window, at the window's size; the app says it shares.
    await viewer.waitEvent("the share arrives", (e) => e.event === "track_added" && e.kind === "screen", 20000);
    await waitFor("the window's picture at the cli", async () => viewer.events.some((e) =>
      e.event === "stats" && e.remotes.some((r) => r.video_width === 960 && r.video_height === 540 && r.video_fps > 0)), 15000);
    await session.waitFind('[data-testid="sharing-banner"]');
    assert.match(await session.text('[data-testid="share-button"]'), /Stop sharing/);
    // The always-on-top sharing bar is a second window.
    assert.equal((await session.cmd("GET", "/window/handles")).length, 2, "the sharing bar is open");
    await screenshot(session, "meeting-sharing");
    // Stopping from the sharing bar ends the track for the others.
    const main = await session.cmd("GET", "/window");
    const bar = (await session.cmd("GET", "/window/handles")).find((h) => h !== main);
    await session.cmd("POST", "/window", { handle: bar });
    // The bar closes itself while the click is answered.
    await session.click('[data-testid="share-bar-stop"]').catch((e) => {
      if (!/no such window/.test(String(e))) throw e;
    });
    await session.cmd("POST", "/window", { handle: main });
    await viewer.waitEvent("the share ends", (e) => e.event === "track_removed" && e.kind === "screen", 15000);
    await waitFor("the banner gone", async () => (await session.findAll('[data-testid="sharing-banner"]')).length === 0);
    await waitFor("the sharing bar closed", async () => (await session.cmd("GET", "/window/handles")).length === 1);

    // A cli shares its screen (this display): the app presents it large.
    const presenter = new CliPeer(room.link, "Linus (presenter)", ["--share-screen"]);
    await presenter.waitEvent("presenter joined", (e) => e.event === "joined");
    await session.waitFind('[data-testid="presentation-tile"]', 20000);
    await waitFor("the shared screen drawn", async () =>
      (await canvasSpread(session, '[data-testid="presentation-tile"] canvas')) > 60, 15000);
    assert.match(await session.text('[data-testid="presentation-tile"]'), /Linus \(presenter\) is presenting/);
    assert.equal(await session.property('[data-testid="share-button"]', "disabled"), true, "one presenter at a time");
    await screenshot(session, "meeting-presentation");

    // A screenshot of the presentation, annotated, saved to the chosen folder only.
    const shots = canary.screenshotFolder;
    mkdirSync(shots, { recursive: true });
    for (const f of readdirSync(shots)) if (f.endsWith(".png")) rmSync(join(shots, f));
    const settingsFile = join(env("CONCLAVE_APP_CONFIG"), "conclave", "settings.json");
    const stored = JSON.parse(readFileSync(settingsFile, "utf8"));
    writeFileSync(settingsFile, JSON.stringify({ ...stored, screenshot_folder: shots }));
    await session.click('[data-testid="presentation-screenshot"]');
    await session.waitFind('[data-testid="annotation-editor"]');
    await waitFor("the screenshot in the editor", async () =>
      (await session.execute("return document.querySelector('[data-testid=\"annotation-canvas\"]').width")) >= 640);
    await session.click('[data-testid="tool-rect"]');
    await session.drag('[data-testid="annotation-canvas"]', [-120, -60], [120, 60]);
    assert.equal(await session.property('[data-testid="undo"]', "disabled"), false, "the rectangle can be undone");
    await session.click('[data-testid="undo"]');
    await session.click('[data-testid="redo"]');
    await screenshot(session, "annotation-editor");
    await session.click('[data-testid="annotate-save"]');
    const saved = await waitFor("saved", () => session.text('[data-testid="screenshot-saved"]'));
    const files = readdirSync(shots).filter((f) => f.endsWith(".png"));
    assert.equal(files.length, 1, `one PNG in the chosen folder (${saved})`);
    // The PNG holds the rectangle's pixels, in the pen's exact colour (#ff3b30).
    const rgb = execFileSync("ffmpeg", ["-v", "error", "-i", join(shots, files[0]), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], { maxBuffer: 256 * 1024 * 1024 });
    let marked = 0;
    for (let i = 0; i < rgb.length; i += 3) if (rgb[i] === 255 && rgb[i + 1] === 59 && rgb[i + 2] === 48) marked++;
    assert.ok(marked > 300, `the annotation is in the saved picture (${marked} pixels of its colour)`);

    await presenter.stop();
    await waitFor("the presentation ends", async () => (await session.findAll('[data-testid="presentation-tile"]')).length === 0, 15000);

    await session.click('[data-testid="leave-button"]');
    await session.waitFind('[data-testid="join-screen"]');
    await viewer.stop();
  } finally {
    pattern.kill();
  }
});

test("host a meeting from the app (no recording allowed, several presenters): a cli joins with its link, chat both ways, two present at once (a tab each), end it", async () => {
  await session.waitFind('[data-testid="join-screen"]');
  await session.clear('[data-testid="nickname-input"]');
  await session.type('[data-testid="nickname-input"]', "Hana (host)");
  // The host asks that nobody records: the rule goes with the room.
  await session.click('[data-testid="host-allow-recording"]');
  // And lets several people share their screens at once.
  await session.click('[data-testid="host-several-presenters"]');
  await session.click('[data-testid="host-button"]');
  await session.waitFind('[data-testid="meeting-screen"]', 20000);
  await session.waitFind('[data-testid="hosting-badge"]');
  // The link is shown whole in the page (ellipsised on screen): read its text content.
  const link = await waitFor("invitation link", () =>
    session.property('[data-testid="invite-link"]', "textContent"),
  );
  // wss:// to the app's own server, its certificate pinned by the link.
  assert.match(link, /^conclave:\/\/join\/\d{9}\?server=wss/);
  assert.match(link, /#pwd=.+&key=/);
  assert.match(link, /fp=[0-9a-f]{64}/);
  await screenshot(session, "hosting");
  // The invitation also names the meeting's page on the app's server, for a
  // browser: it offers "Open in Conclave" with a link to this meeting.
  await session.click('[data-testid="copy-invitation"]');
  const invitation = await waitFor("the invitation on the clipboard", () => {
    const text = clipboardText();
    return /In a browser: /.test(text) ? text : null;
  });
  const page = invitation.match(/In a browser: (https:\/\/\S+\/j\/(\d+))#/);
  assert.ok(page, invitation);
  const html = await new Promise((resolve, reject) => {
    // The app's certificate is self-signed (the link pins it with fp=).
    https.get(page[1], { rejectUnauthorized: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    }).on("error", reject);
  });
  assert.match(html, /Open in Conclave/);
  assert.ok(html.includes(`conclave://join/${page[2]}?server=wss%3A%2F%2F`), "the page links to the meeting on this server");

  const guest = new CliPeer(link, "Gus (cli)");
  const joined = await guest.waitEvent("guest joined", (e) => e.event === "joined");
  assert.equal(joined.encrypted, true);
  assert.equal(joined.recording_allowed, false, "the guest learns the host's rule from the server");
  assert.equal(joined.several_presenters, true, "and that several may present");
  assert.equal(await session.property('[data-testid="record-button"]', "disabled"), true);
  await waitFor("guest in the stage", async () =>
    (await session.textContents('[data-testid="stage-tile"]')).some((t) => t.includes("Gus (cli)")),
  );
  await session.type('[data-testid="chat-input"]', "Welcome to my meeting" + Keys.Enter);
  await guest.waitEvent("host chat", (e) => e.event === "chat" && e.text === "Welcome to my meeting");
  guest.say("Thanks for hosting");
  await waitFor("guest chat", async () =>
    (await session.texts('[data-testid="chat-message"]')).includes("Thanks for hosting"),
  );

  // Two guests share their screens at once: the app offers a tab for
  // each presentation and shows the one chosen.
  const pia = new CliPeer(link, "Pia (presenter)", ["--share-screen"]);
  const quinn = new CliPeer(link, "Quinn (presenter)", ["--share-screen"]);
  await pia.waitEvent("Pia joined", (e) => e.event === "joined");
  await quinn.waitEvent("Quinn joined", (e) => e.event === "joined");
  const tabs = await waitFor("a tab per presentation", async () => {
    const t = await session.textContents('[data-testid="presentation-tab"]');
    return t.length === 2 ? t : null;
  }, 25000);
  assert.ok(tabs.some((t) => t.includes("Pia (presenter)")) && tabs.some((t) => t.includes("Quinn (presenter)")), tabs.join(" | "));
  const shown = await session.text('[data-testid="presentation-tile"]');
  const other = /Pia/.test(shown) ? "Quinn (presenter)" : "Pia (presenter)";
  const otherTab = tabs.findIndex((t) => t.includes(other));
  await session.click(`[data-testid="presentation-tabs"] [data-testid="presentation-tab"]:nth-child(${otherTab + 1})`);
  await waitFor("the chosen presentation shown", async () =>
    (await session.text('[data-testid="presentation-tile"]')).includes(other), 10000);
  await waitFor("and drawn", async () =>
    (await canvasSpread(session, '[data-testid="presentation-tile"] canvas')) > 60, 15000);
  await screenshot(session, "presentation-tabs");
  await pia.stop();
  await quinn.stop();
  await waitFor("the presentations end", async () => (await session.findAll('[data-testid="presentation-tile"]')).length === 0, 15000);

  assert.match(await session.text('[data-testid="leave-button"]'), /End meeting/);
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  const ended = await guest.waitEvent("meeting ended", (e) => e.event === "disconnected");
  assert.match(ended.message, /ended/i);
  assert.equal(await guest.exited, 2);
});

test("record a meeting in the app: consent first, everyone told (late joiners too), pause, stop; a cut-off recording is offered for repair", async () => {
  await leaveIfInMeeting(session);
  const folder = canary.recordingFolder;
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  const settingsFile = join(env("CONCLAVE_APP_CONFIG"), "conclave", "settings.json");
  const stored = existsSync(settingsFile) ? JSON.parse(readFileSync(settingsFile, "utf8")) : {};
  mkdirSync(join(env("CONCLAVE_APP_CONFIG"), "conclave"), { recursive: true });
  writeFileSync(settingsFile, JSON.stringify({ ...stored, recording_folder: folder }));

  const room = createMeeting(`pw-${Date.now()}`);
  const guest = new CliPeer(room.link, "Rosa (cli)", ["--camera", "synthetic:320x180@15", "--mic", "tone:440"]);
  await guest.waitEvent("cli joined", (e) => e.event === "joined");
  await joinFromScreen(session, room.link, auditedNickname);

  // Consent first: the dialog names the folder; Start waits for the box.
  await session.click('[data-testid="record-button"]');
  await session.waitFind('[data-testid="record-consent"]');
  assert.equal(await waitFor("the folder", () => session.text('[data-testid="record-folder"]')), folder);
  assert.equal(await session.property('[data-testid="record-start"]', "disabled"), true, "no recording without consent");
  await screenshot(session, "record-consent");
  await session.click('[data-testid="record-agreed"]');
  await session.click('[data-testid="record-start"]');
  await waitFor("the indicator", async () => /You are recording/.test(await session.text('[data-testid="recording-indicator"]')));
  await guest.waitEvent("told", (e) => e.event === "recording" && e.state === "recording" && e.nickname === auditedNickname);
  // Someone who joins later learns it.
  const late = new CliPeer(room.link, "Lee (late)");
  await late.waitEvent("told on joining", (e) => e.event === "recording" && e.state === "recording" && e.nickname === auditedNickname);
  await new Promise((r) => setTimeout(r, 2500));
  await screenshot(session, "meeting-recording");

  await session.click('[data-testid="record-pause"]');
  await guest.waitEvent("paused", (e) => e.event === "recording" && e.state === "paused");
  assert.match(await session.text('[data-testid="recording-indicator"]'), /paused/);
  await session.click('[data-testid="record-resume"]');
  await guest.waitEvent("resumed", (e) => e.event === "recording" && e.state === "recording" && guest.events.some((x) => x.state === "paused"));
  await new Promise((r) => setTimeout(r, 2500));
  await session.click('[data-testid="record-stop"]');
  for (const p of [guest, late]) await p.waitEvent("stopped", (e) => e.event === "recording" && e.state === "stopped");
  await waitFor("the indicator gone", async () => (await session.findAll('[data-testid="recording-indicator"]')).length === 0);
  await session.waitFind('[data-testid="record-button"]');

  const files = readdirSync(folder).filter((f) => f.endsWith(".webm"));
  assert.equal(files.length, 1, `one recording in the chosen folder: ${files}`);
  const file = join(folder, files[0]);
  const probe = execFileSync("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "compact", file], { encoding: "utf8" });
  assert.match(probe, /codec_name=vp8/);
  assert.match(probe, /codec_name=opus/);
  const seconds = Number(/format\|duration=([\d.]+)/.exec(probe)?.[1] ?? 0);
  assert.ok(seconds > 3, `the recording lasts (${seconds} s), less the pause`);
  assert.equal(ffmpegSays(file), "", "ffmpeg reads the recording without a word");
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await late.stop();

  // A meeting whose host forbids recording: the button is off and says why.
  const forbidden = JSON.parse(execFileSync(cli, ["create-room", "--server", server, "--no-recording", "--json"], { encoding: "utf8" }).trim().split("\n").pop());
  await joinFromScreen(session, forbidden.link, auditedNickname);
  assert.equal(await session.property('[data-testid="record-button"]', "disabled"), true);
  assert.equal(await session.property('[data-testid="record-button"]', "title"), "The host does not allow recording this meeting");
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await guest.stop();

  // A recording a crash cut off (the Segment's size still "unknown", the
  // file ending mid-cluster) is offered for repair when the app starts
  // (the window reloads as at a start).
  const bytes = readFileSync(file);
  const segment = 5 + (bytes[4] & 0x7f) + 4;
  Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(bytes, segment);
  const cut = join(folder, "cut-off.webm");
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  await session.execute("location.reload()");
  await session.waitFind('[data-testid="repair-offer"]', 15000);
  assert.deepEqual(await session.texts('[data-testid="repair-file"]'), [cut]);
  await screenshot(session, "repair-offer");
  await session.click('[data-testid="repair-now"]');
  await waitFor("the offer gone", async () => (await session.findAll('[data-testid="repair-offer"]')).length === 0);
  const repaired = execFileSync("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "compact", cut], { encoding: "utf8" });
  assert.ok(Number(/duration=([\d.]+)/.exec(repaired)?.[1] ?? 0) > 1, `the repaired file has its length: ${repaired}`);
  assert.equal(ffmpegSays(cut), "", "ffmpeg reads the repaired recording without a word");
  await session.waitFind('[data-testid="join-screen"]');
});

test("a conclave:// link opened while the app runs goes to it: one instance, its join screen filled", async () => {
  await leaveIfInMeeting(session);
  const config = env("CONCLAVE_APP_CONFIG");
  const profile = join(config, "..");
  const open = (link) => new Promise((resolve, reject) => {
    // As the desktop does for a conclave:// link: the app, with the link.
    const child = spawn(app, [link], {
      stdio: "ignore",
      env: { ...process.env, XDG_CONFIG_HOME: config, XDG_DATA_HOME: join(profile, "data"), XDG_STATE_HOME: join(profile, "state"), XDG_CACHE_HOME: join(profile, "cache") },
    });
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error("the second start did not hand over and exit"));
    }, 15000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  for (const room of ["111222333", "444555666"]) {
    assert.equal(await open(`conclave://join/${room}?server=ws%3A%2F%2F127.0.0.1%3A8188`), 0, "handed over");
    await waitFor(`the join screen shows meeting ${room}`, async () => (await session.value('[data-testid="link-input"]')).includes(room));
  }
  assert.equal(appPids(config).length, 1, "one instance");
  await session.clear('[data-testid="link-input"]');
});

test("a relay added in the Connection settings carries the meeting (only through the relay); its password stays in the keychain", async () => {
  const turnDir = env("CONCLAVE_TEST_TURN_DIR");
  assert.ok(existsSync(turnDir), "the relay runs");
  const relayHost = new URL(server.replace(/^ws/, "http")).hostname;
  const [user, password] = execFileSync(join(fileURLToPath(new URL("../..", import.meta.url)), "scripts/turn"), ["credentials"], { encoding: "utf8" }).trim().split("\n");
  planted.push(password);
  const room = createMeeting("relay pass");
  const guest = new CliPeer(room.link, "Grace (cli)", ["--camera", "synthetic:320x180@15", "--mic", "tone:440"]);
  await guest.waitEvent("cli joined", (e) => e.event === "joined");
  await leaveIfInMeeting(session);
  await session.click('[data-testid="settings-button"]');
  await session.waitFind('[data-testid="connection-settings"]');
  // A wrong address is refused where it was typed.
  await session.type('[data-testid="relay-url"]', "http://not-a-relay");
  await session.click('[data-testid="relay-add"]');
  assert.match(await waitFor("the refusal", () => session.text('[data-testid="relay-error"]')), /not a turn:/);
  await session.clear('[data-testid="relay-url"]');
  await session.type('[data-testid="relay-url"]', `turn:${relayHost}:3478?transport=tcp`);
  await session.type('[data-testid="relay-username"]', user);
  await session.type('[data-testid="relay-password"]', password);
  await session.click('[data-testid="relay-add"]');
  await waitFor("the relay listed", async () => (await session.texts('[data-testid="relay-entry"]')).some((t) => t.includes(`turn:${relayHost}:3478`)));
  await session.click('[data-testid="relay-only"]');
  const settingsFile = join(env("CONCLAVE_APP_CONFIG"), "conclave", "settings.json");
  await waitFor("relay-only stored", () => JSON.parse(readFileSync(settingsFile, "utf8")).relay_only === true);
  await screenshot(session, "settings-connection");
  await session.click('[data-testid="settings-close"]');
  const stored = readFileSync(settingsFile, "utf8");
  assert.ok(!stored.includes(password), "no relay password in the settings file");
  assert.equal(JSON.parse(stored).relays[0].username, user);

  try {
    await joinFromScreen(session, room.link, "Ada (app)");
    // The chat connection (roster) and the received video come through
    // the relay; the app has no camera and may be muted here, so what it
    // sends is not counted on.
    await guest.waitEvent("app joins", (e) => e.event === "participant_joined" && e.nickname === "Ada (app)");
    const path = await waitFor("the header says the relay carries the media", () =>
      session.execute("return document.querySelector('[data-testid=\"connection-path\"]')?.dataset.path ?? ''"), 20000);
    assert.equal(path, "relay_tcp");
    await waitFor("the cli's video drawn", async () =>
      (await session.findAll('[data-testid="stage-tile"][data-video="on"]')).length >= 1, 20000);
    await screenshot(session, "meeting-relayed");
    await session.click('[data-testid="leave-button"]');
    await session.waitFind('[data-testid="join-screen"]');
    await guest.stop();

    // Removing the last relay removes its password and "only through a relay".
    await session.click('[data-testid="settings-button"]');
    await session.waitFind('[data-testid="relay-entry"]');
    await session.click('[data-testid="relay-remove"]');
    await waitFor("the relay gone", async () => (await session.findAll('[data-testid="relay-entry"]')).length === 0);
    await session.click('[data-testid="settings-close"]');
    const after = JSON.parse(readFileSync(settingsFile, "utf8"));
    assert.equal(after.relays.length, 0);
    assert.equal(after.relay_only, false);
    assert.ok(!after.remembered.some((n) => n.startsWith("relay ")), "the keychain entry is forgotten");
  } finally {
    // Whatever failed, the next tests start without the relay.
    await leaveIfInMeeting(session).catch(() => {});
    const left = JSON.parse(readFileSync(settingsFile, "utf8"));
    if (left.relays.length || left.relay_only) {
      writeFileSync(settingsFile, JSON.stringify({ ...left, relays: [], relay_only: false, remembered: left.remembered.filter((n) => !n.startsWith("relay ")) }));
    }
  }
});

/** The local UDP ports of process `pid` (its sockets, from /proc). */
function udpPorts(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
      if (m) inodes.add(m[1]);
    } catch {
      // Closed meanwhile.
    }
  }
  const ports = new Set();
  for (const table of ["/proc/net/udp", "/proc/net/udp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9])) ports.add(parseInt(f[1].split(":").pop(), 16));
    }
  }
  return [...ports];
}

/** Drops every UDP packet to and from `ports` (nftables, in the test
 * namespace), or (`ports` null) lets them through again. */
function udpBlackout(ports) {
  if (!ports) {
    execFileSync("nft", ["delete", "table", "inet", "app_blackout"]);
    return;
  }
  const set = `{ ${ports.join(", ")} }`;
  execFileSync("nft", ["-f", "-"], {
    input: `table inet app_blackout {
  chain out { type filter hook output priority 0; policy accept; udp sport ${set} drop; }
  chain in { type filter hook input priority 0; policy accept; udp dport ${set} drop; }
}
`,
  });
}

test("a UDP outage: the app shows Reconnecting… (and with conclave-server moves its media to TCP), and the meeting goes on after it", async () => {
  const room = createMeeting("outage pass");
  const guest = new CliPeer(room.link, "Grace (cli)", ["--camera", "synthetic:320x180@15", "--mic", "tone:440"]);
  await guest.waitEvent("cli joined", (e) => e.event === "joined");
  await joinFromScreen(session, room.link, "Ada (app)");
  await guest.waitEvent("app joins", (e) => e.event === "participant_joined" && e.nickname === "Ada (app)");
  await waitFor("the cli's video drawn", async () =>
    (await session.findAll('[data-testid="stage-tile"][data-video="on"]')).length >= 1, 20000);
  assert.equal((await session.findAll('[data-testid="reconnecting"]')).length, 0, "no banner while media flows");
  const [pid] = appPids(env("CONCLAVE_APP_CONFIG"));
  const ports = udpPorts(pid);
  assert.ok(ports.length >= 3, `the app's media sockets: ${ports}`);
  udpBlackout(ports);
  try {
    await session.waitFind('[data-testid="reconnecting"]', 10000);
    await screenshot(session, "meeting-reconnecting");
    if (process.env.CONCLAVE_TEST_BACKEND === "conclave") {
      // conclave-server takes media over TCP on its WebSocket's port too:
      // once ICE gives the UDP path up (about 20 s of unanswered checks),
      // the media moves there, the banner goes and the header says so.
      const path = await waitFor("the media moved to TCP", () =>
        session.execute("return document.querySelector('[data-testid=\"connection-path\"]')?.dataset.path ?? ''")
          .then((p) => (p === "direct_tcp" ? p : null)), 45000);
      assert.equal(path, "direct_tcp");
      await waitFor("the banner gone, UDP still blocked", async () => (await session.findAll('[data-testid="reconnecting"]')).length === 0, 15000);
      await waitFor("the cli's video drawn over TCP", async () =>
        (await session.findAll('[data-testid="stage-tile"][data-video="on"]')).length >= 1, 15000);
      await screenshot(session, "meeting-over-tcp");
    }
  } finally {
    udpBlackout(null);
  }
  await waitFor("the banner gone", async () => (await session.findAll('[data-testid="reconnecting"]')).length === 0, 15000);
  // Still in the meeting for both: nobody left, video flows again.
  assert.equal((await session.findAll('[data-testid="meeting-screen"]')).length, 1);
  assert.ok(!guest.events.some((e) => e.event === "participant_left" && e.nickname === "Ada (app)"), "the app was seen to leave");
  await waitFor("the cli's video drawn again", async () =>
    (await session.findAll('[data-testid="stage-tile"][data-video="on"]')).length >= 1, 15000);
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await guest.stop();
});

test("remember a password in the keychain; settings: consent, a diagnostics bundle without secrets, delete all local data", async () => {
  const room = createMeeting("keychain-pw-7");
  planted.push("keychain-pw-7");
  // The link without its password: the user types it once, and asks to keep it.
  const link = room.link.split("#")[0];
  const guest = new CliPeer(room.link, "Grace (cli)");
  await guest.waitEvent("cli joined", (e) => e.event === "joined");
  await leaveIfInMeeting(session);
  await session.clear('[data-testid="link-input"]');
  await session.type('[data-testid="link-input"]', link);
  await waitFor("link preview", () => session.text('[data-testid="link-preview"]'));
  await session.type('[data-testid="password-input"]', "keychain-pw-7");
  await session.click('[data-testid="remember-password"]');
  await session.clear('[data-testid="nickname-input"]');
  await session.type('[data-testid="nickname-input"]', "Ada (app)");
  await session.click('[data-testid="join-button"]');
  await waitJoined(session);
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  // Next time the keychain has it: no password to type, and the join works.
  await session.clear('[data-testid="link-input"]');
  await session.type('[data-testid="link-input"]', link);
  await session.waitFind('[data-testid="remembered-chip"]');
  assert.equal((await session.findAll('[data-testid="password-input"]')).length, 0, "no password field");
  await screenshot(session, "join-remembered");
  await session.click('[data-testid="join-button"]');
  await waitJoined(session);
  await session.click('[data-testid="leave-button"]');
  await session.waitFind('[data-testid="join-screen"]');
  await guest.stop();
  // The settings file names the meeting, never the password.
  const settingsFile = join(env("CONCLAVE_APP_CONFIG"), "conclave", "settings.json");
  const stored = readFileSync(settingsFile, "utf8");
  assert.equal(JSON.parse(stored).remembered.length, 1);
  assert.ok(!stored.includes("keychain-pw-7"), "no password in the settings file");

  // Consent: the camera switch is stored.
  await session.click('[data-testid="settings-button"]');
  await session.waitFind('[data-testid="settings-panel"]');
  await session.click('[data-testid="consent-camera"]');
  await waitFor("camera consent off", () => JSON.parse(readFileSync(settingsFile, "utf8")).camera_allowed === false);
  await screenshot(session, "settings");
  await session.click('[data-testid="consent-camera"]');
  await waitFor("camera consent on", () => JSON.parse(readFileSync(settingsFile, "utf8")).camera_allowed === true);

  // "Send feedback": the bundle is shown first, then saved where the user says.
  await session.click('[data-testid="send-feedback"]');
  await session.waitFind('[data-testid="diagnostics-preview"]');
  const names = await session.texts('[data-testid="diagnostics-file"]');
  assert.ok(names.some((n) => n.startsWith("versions.txt")), names.join());
  assert.ok(names.some((n) => n.startsWith("logs/")), `the logs are in it: ${names.join()}`);
  await screenshot(session, "settings-diagnostics");
  const bundleDir = join(process.env.TMPDIR ?? "/tmp", `diagnostics-${process.pid}`);
  mkdirSync(bundleDir, { recursive: true });
  const bundle = join(bundleDir, "bundle.zip");
  await session.click('[data-testid="diagnostics-save"]');
  await answerSaveDialog(bundle);
  await session.waitFind('[data-testid="diagnostics-saved"]');
  const unzipped = execFileSync("python3", ["-c",
    "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print('\\n'.join(n + '\\n' + z.read(n).decode('utf-8', 'replace') for n in z.namelist()))", bundle],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.match(unzipped, /joining/, "the bundle holds the log");
  const home = process.env.HOME ?? "";
  for (const value of [...planted, canary.clipboard, canary.chat, canary.password]) {
    assert.ok(!unzipped.includes(value), "the diagnostics bundle holds a planted secret");
  }
  if (home.length > 1) assert.ok(!unzipped.includes(home + "/"), "no path under the home folder");
  await session.click('[data-testid="settings-close"]');

  // Delete all local data: history, settings, the keychain entry.
  await session.click('[data-testid="settings-button"]');
  await session.click('[data-testid="delete-all"]');
  await session.waitFind('[data-testid="delete-all-confirmation"]');
  await session.click('[data-testid="delete-all-confirm"]');
  await session.waitFind('[data-testid="delete-all-done"]');
  await session.click('[data-testid="settings-close"]');
  assert.ok(!existsSync(join(env("CONCLAVE_APP_CONFIG"), "..", "data", "conclave", "history.sqlite3")), "the history is gone");
  await session.clear('[data-testid="link-input"]');
  await session.type('[data-testid="link-input"]', link);
  await session.waitFind('[data-testid="password-input"]');
  assert.equal((await session.findAll('[data-testid="remembered-chip"]')).length, 0, "the keychain entry is gone");
  await session.clear('[data-testid="link-input"]');
});

/** Opens the history (waiting for `expect` in it, if given) and closes it
 * again, waiting each time until the panel is there or gone: a click that
 * comes before the panel is ready is otherwise lost. */
async function openAndCloseHistory(expect) {
  await session.click('[data-testid="history-button"]');
  await session.waitFind('[data-testid="history-panel"]');
  if (expect) await session.waitFind(expect);
  await waitFor("the history closed", async () => {
    if ((await session.findAll('[data-testid="history-panel"]')).length === 0) return true;
    await session.click('[data-testid="history-close"]').catch(() => {});
    return false;
  });
}

test("privacy canaries: clipboard text, a history entry, a chat export and the password are used locally, in a meeting", async () => {
  // Text that is not a meeting, on the clipboard (owned by another program).
  // (-quiet keeps xclip in the foreground, so that it ends with the test.)
  const clip = spawn("xclip", ["-quiet", "-selection", "clipboard"], { stdio: ["pipe", "ignore", "ignore"] });
  clip.stdin.end(canary.clipboard);
  try {
    await leaveIfInMeeting(session);
    // A meeting in the local history from before (the app creates the
    // database when the history is first shown).
    await openAndCloseHistory();
    const historyFile = join(env("CONCLAVE_APP_CONFIG"), "..", "data", "conclave", "history.sqlite3");
    const now = Math.floor(Date.now() / 1000);
    execFileSync("sqlite3", [historyFile,
      `INSERT INTO meetings (room, hosted, started, ended) VALUES ('${canary.historyRoom}', 0, ${now - 3600}, ${now - 600});` +
      `INSERT INTO attendance (meeting, name, joined, left_at) VALUES (last_insert_rowid(), '${canary.historyName}', ${now - 3600}, ${now - 600});`]);
    // The app reads the clipboard when its window gains focus: no offer for text that is not a meeting.
    await session.execute("window.dispatchEvent(new Event('focus'))");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await session.findAll('[data-testid="clipboard-offer"]')).length, 0, "no offer for other text");
    // The history lists the planted meeting.
    await openAndCloseHistory(`[data-testid="history-entry"][data-room="${canary.historyRoom}"]`);

    const room = createMeeting(canary.password);
    planted.push(canary.password, canary.chat, canary.clipboard);
    const guest = new CliPeer(room.link, "Grace (cli)");
    await guest.waitEvent("cli joined", (e) => e.event === "joined");
    await joinFromScreen(session, room.link, auditedNickname);
    await session.click('[data-testid="chat-tab"]');
    await session.type('[data-testid="chat-input"]', canary.chat + Keys.Enter);
    const got = await guest.waitEvent("the chat arrives", (e) => e.event === "chat" && e.text === canary.chat);
    assert.equal(got.encrypted, true, "end-to-end encrypted");

    // Export the chat to a folder of the user's choice, through the native dialog.
    mkdirSync(canary.exportFolder, { recursive: true });
    const exported = join(canary.exportFolder, "chat.md");
    await session.click('[data-testid="export-chat"]');
    await answerSaveDialog(exported);
    await waitFor("the chat file", () => existsSync(exported) && readFileSync(exported, "utf8").includes(canary.chat), 10000);

    // The invitation goes on the clipboard; a clipboard manager keeps it
    // after the app lets go (here: xclip takes it over). On exit the app
    // clears it (the last test checks).
    await session.click('[data-testid="copy-invitation"]');
    const invitation = await waitFor("the invitation on the clipboard", () => {
      const text = clipboardText();
      return text.includes(String(room.room)) ? text : null;
    });
    clip.kill();
    clipboardManager = spawn("xclip", ["-quiet", "-selection", "clipboard"], { stdio: ["pipe", "ignore", "ignore"] });
    clipboardManager.stdin.end(invitation);
    await waitFor("the manager holds it", () => clipboardText() === invitation);
    invitationText = invitation;

    await session.click('[data-testid="leave-button"]');
    await session.waitFind('[data-testid="join-screen"]');
    await guest.stop();
  } finally {
    clip.kill();
  }
});

test("the app's log holds no chat text, passwords or keys; on exit the app clears its invitation from the clipboard", async () => {
  // The app quits as at logout (SIGTERM), and does its exit work.
  const [pid] = appPids(env("CONCLAVE_APP_CONFIG"));
  assert.ok(pid, "the app's process is found");
  process.kill(pid, "SIGTERM");
  await waitFor("the app quits", () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2] === "Z", 10000);
  await session.end().catch(() => {});
  session = null;
  if (invitationText) {
    try {
      await waitFor("the clipboard cleared", () => clipboardText() !== invitationText, 10000);
    } finally {
      clipboardManager?.kill();
    }
  }
  const files = readdirSync(logDir);
  assert.ok(files.length > 0, "the app wrote a log file");
  const log = files.map((f) => readFileSync(join(logDir, f), "utf8")).join("\n");
  assert.match(log, /joining/, "the log covers the meeting");
  // Nor does the local history (it has no place for chat).
  const historyFile = join(env("CONCLAVE_APP_CONFIG"), "..", "data", "conclave", "history.sqlite3");
  const history = readFileSync(historyFile).toString("latin1");
  assert.ok(history.length > 0, "the history exists");
  for (const value of planted) assert.ok(!history.includes(value), "the history holds no planted secret");
  for (const value of planted) {
    assert.ok(value.length > 0);
    assert.ok(!log.includes(value), "the log contains a planted secret");
  }
});
