// Shared by the benchmarks: our Chromium peer page (peer.html) served on
// 127.0.0.1 with chromedriver, and meetings created with conclave-cli.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Session, waitFor } from "../webdriver/webdriver.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));

/** Creates a meeting on `server`; returns its ID. */
export function newRoom(cli, server) {
  const out = execFileSync(cli, ["create-room", "--server", server, "--json"]).toString().trim().split("\n").pop();
  return JSON.parse(out).room;
}

/** The peer page and a chromedriver: `url(query)`, `open()` a headless
 * Chromium, `stop()` everything. `driverPid` roots Chromium's processes.
 * With `cpu`, the driver and every Chromium it starts run on that core.
 * `files` maps more paths the page may load (e.g. `/speech.wav`) to files. */
export async function peerPages({ cpu, files = {} } = {}) {
  const page = await readFile(join(HERE, "peer.html"));
  const http = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (files[path]) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(await readFile(files[path]));
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(page);
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${http.address().port}/peer.html`;
  const port = 9515 + Math.floor(Math.random() * 400);
  const driverArgs = [`--port=${port}`];
  const driverProcess = cpu === undefined
    ? spawn("chromedriver", driverArgs, { stdio: "ignore" })
    : spawn("taskset", ["-c", String(cpu), "chromedriver", ...driverArgs], { stdio: "ignore" });
  const driver = `http://127.0.0.1:${port}`;
  const sessions = [];
  await waitFor("chromedriver", async () => (await fetch(`${driver}/status`)).ok);
  return {
    driverPid: driverProcess.pid,
    url: (query) => `${base}?${new URLSearchParams(query)}`,
    async open() {
      const s = await Session.startChrome(driver, ["--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
        "--disable-features=WebRtcHideLocalIpsWithMdns", "--window-size=800,600"]);
      sessions.push(s);
      return s;
    },
    async stop() {
      for (const s of sessions) await s.end().catch(() => {});
      driverProcess.kill();
      http.close();
    },
  };
}
