// A Chromium participant that publishes and nothing else, for running
// inside a namespace of scripts/netns-client (its chromedriver and page
// server on that namespace's own loopback):
//
//   node tests/bench/chromium-sender.mjs SERVER ROOM SOUND.wav WIDTH HEIGHT
//
// Publishes a WIDTHxHEIGHT canvas at 30 frames/s and SOUND looped, prints
// `publishing` once it does (or `error: …`), and leaves at the end of its
// standard input.
import { createInterface } from "node:readline";
import { waitFor } from "../webdriver/webdriver.mjs";
import { peerPages } from "./peers.mjs";

const [server, room, sound, w, h] = process.argv.slice(2);
const pages = await peerPages({ files: { "/sound.wav": sound } });
let code = 0;
try {
  const page = await pages.open();
  await page.navigate(pages.url({ server, room, role: "send", name: "sender", audio: "/sound.wav", w, h }));
  const state = await waitFor("the Chromium sender publishing", async () => {
    const s = await page.execute("return window.bench && window.bench.state");
    return s === "publishing" || String(s).startsWith("error") ? s : null;
  }, 30000);
  console.log(state);
  if (state !== "publishing") code = 1;
  else {
    await new Promise((r) => createInterface({ input: process.stdin }).on("close", r));
    // Its own counters, for the benchmark's notes.
    console.log(`stats ${JSON.stringify(await page.execute("return window.sendStats()"))}`);
    if (process.env.NETWORK_SDP) console.log(await page.execute("return window.sdps()"));
  }
} catch (e) {
  console.log(`error: ${e.message}`);
  code = 1;
} finally {
  await pages.stop();
}
process.exit(code);
