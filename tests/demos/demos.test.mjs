// Janus's own demo pages (Debian's janus-demos: videoroomtest and
// textroomtest) in headless Chromium with fake camera and microphone,
// against the meeting server under test (CONCLAVE_TEST_SERVER, Janus or
// conclave-server): one page publishes, a second page subscribes to it and
// shows its video, a conclave-cli participant (sending the test pattern and
// a tone) sees the publisher in its roster and decodes its audio and video,
// the second page decodes the cli's video too, and chat goes both ways
// between the textroom page and the cli.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { readFile, writeFile, readdir, mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { waitFor, Keys } from "../webdriver/webdriver.mjs";
import { DemoPages } from "./pages.mjs";

const SERVER = process.env.CONCLAVE_TEST_SERVER;
const CLI = process.env.CONCLAVE_CLI;
let pages, room;
const chrome = () => pages.chrome();
const joinDemo = (s, page, name) => pages.join(s, page, room, name);
const sessions = { entries: () => pages.sessions.entries() };

/** A conclave-cli participant sending the test pattern and a tone and
 * saving what it receives; its JSON events, and a way to type chat lines. */
function cli(name, saveDir) {
  const child = spawn(CLI, ["join", String(room), "--server", SERVER, "--name", name, "--json", "--stdin",
    "--camera", "synthetic", "--mic", "tone", "--save-received", saveDir],
    { stdio: ["pipe", "pipe", "inherit"] });
  const events = [];
  createInterface({ input: child.stdout }).on("line", (l) => { try { events.push(JSON.parse(l)); } catch {} });
  return { child, events, say: (t) => child.stdin.write(`${t}\n`) };
}

before(async () => {
  assert.ok(SERVER && CLI, "CONCLAVE_TEST_SERVER and CONCLAVE_CLI must be set (run scripts/e2e)");
  const created = JSON.parse(execFileSync(CLI, ["create-room", "--server", SERVER, "--json"]).toString().trim().split("\n").pop());
  room = created.room;
  pages = new DemoPages(SERVER);
  await pages.start();
});

after(async () => {
  await pages?.stop();
});

test("Janus demo pages publish, subscribe and chat with a conclave-cli participant", async () => {
  const saveDir = await mkdtemp(join(tmpdir(), "conclave-demo-rx-"));
  const member = cli("Cli", saveDir);
  try {
    await waitFor("the cli joined", async () => member.events.some((e) => e.event === "joined"), 20000);

    // A videoroom page publishes the fake camera and microphone.
    const publisher = await chrome();
    await joinDemo(publisher, "videoroomtest.html", "Pub");
    await waitFor("the publisher's local video", async () =>
      publisher.execute("const v = document.querySelector('#videolocal video'); return !!v && v.videoWidth > 0"), 20000);

    // The cli sees it and receives its audio and video.
    await waitFor("Pub in the cli's roster", async () =>
      member.events.some((e) => e.event === "participant_joined" && e.nickname === "Pub"), 20000);
    for (const kind of ["audio", "video"]) {
      await waitFor(`the cli receiving ${kind}`, async () =>
        member.events.some((e) => e.event === "track_added" && e.nickname === "Pub" && e.kind === kind), 20000);
    }

    // The cli decodes the page's VP8 video and Opus audio.
    await waitFor("the cli decoding Pub's video and audio", async () => {
      const files = await readdir(saveDir);
      const csv = files.find((f) => f.endsWith("-video.csv"));
      const wav = files.find((f) => f.endsWith("-audio.wav"));
      if (!csv || !wav) return false;
      const rows = (await readFile(join(saveDir, csv), "utf8")).trim().split("\n").length - 1;
      const audio = (await readFile(join(saveDir, wav))).length - 44;
      return rows >= 10 && audio > 48000;
    }, 20000);

    // A second videoroom page subscribes to the page and to the cli, and
    // decodes both videos (the cli's is the test pattern, in VP8).
    const viewer = await chrome();
    await joinDemo(viewer, "videoroomtest.html", "View");
    await waitFor("the viewer showing Pub's and Cli's video", async () =>
      viewer.execute(`const shown = [...document.querySelectorAll('[id^=videoremote] video')]
        .filter(v => v.videoWidth > 0 && v.currentTime > 0);
        return shown.length >= 2`), 30000);
    await waitFor("the viewer hearing audio tracks", async () =>
      viewer.execute(`return [...document.querySelectorAll('[id^=videoremote] audio')]
        .filter(a => a.srcObject && a.srcObject.getAudioTracks().some(t => t.readyState === 'live')).length >= 2`), 20000);

    if (process.env.CONCLAVE_SCREENSHOTS) {
      const kind = process.env.CONCLAVE_TEST_BACKEND ?? "server";
      await mkdir(process.env.CONCLAVE_SCREENSHOTS, { recursive: true });
      await writeFile(join(process.env.CONCLAVE_SCREENSHOTS, `janus-demo-viewer-${kind}.png`),
        await viewer.screenshot());
    }

    // Chat: the textroom page and the cli, both ways.
    const chat = await chrome();
    await joinDemo(chat, "textroomtest.html", "Chatter");
    await waitFor("the textroom page joined", async () =>
      chat.execute("return !document.querySelector('#datasend').disabled"), 20000);
    member.say("hello from the cli");
    await waitFor("the cli's message on the page", async () =>
      chat.execute("return document.querySelector('#chatroom').textContent.includes('hello from the cli')"), 20000);
    await chat.type("#datasend", "hello from the demo");
    await chat.type("#datasend", Keys.Enter);
    await waitFor("the page's message at the cli", async () =>
      member.events.some((e) => e.event === "chat" && e.text === "hello from the demo"), 20000);
  } catch (e) {
    for (const [i, s] of sessions.entries()) {
      const text = await s.execute("return document.body.innerText").catch(() => "?");
      console.error(`page ${i} text: ${String(text).replace(/\s+/g, " ").slice(-300)}`);
      if (process.env.CONCLAVE_SCREENSHOTS) {
        await writeFile(join(process.env.CONCLAVE_SCREENSHOTS, `failed-page-${i}.png`), await s.screenshot()).catch(() => {});
      }
      const log = await s.consoleLog().catch(() => []);
      console.error(`page ${i} console\n${log.filter((l) => !l.startsWith("DEBUG")).map((l) => l.slice(0, 300)).slice(-25).join("\n")}`);
    }
    console.error(`cli events\n${member.events.map((e) => JSON.stringify(e)).join("\n")}`);
    throw e;
  } finally {
    member.child.stdin.end();
    member.child.kill();
    await rm(saveDir, { recursive: true, force: true });
  }
});
