// Janus's demo pages (Debian's janus-demos) in headless Chromium, for tests:
// a local web server for the pages, a Chromium launcher with fake camera and
// microphone, and joining a demo page's room.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, normalize, extname } from "node:path";
import { Session, waitFor } from "../webdriver/webdriver.mjs";

const DEMOS = "/usr/share/janus/demos";
const JAVASCRIPT = "/usr/share/javascript";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
  ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".svg": "image/svg+xml", ".ico": "image/x-icon" };

/** Chromium with Janus's demo pages, talking to `server`. */
export class DemoPages {
  constructor(server) {
    this.server = server;
    this.sessions = [];
  }

  /** Starts the page server and chromedriver. */
  async start() {
    [this.http, this.base] = await this.#serve();
    const port = 9515 + Math.floor(Math.random() * 400);
    this.driverProcess = spawn("chromedriver", [`--port=${port}`], { stdio: "ignore" });
    this.driver = `http://127.0.0.1:${port}`;
    await waitFor("chromedriver", async () => (await fetch(`${this.driver}/status`)).ok);
  }

  /** Ends every browser and the servers. */
  async stop() {
    for (const s of this.sessions) await s.end().catch(() => {});
    this.driverProcess?.kill();
    this.http?.close();
  }

  /** Serves the demos, Debian's shared JavaScript libraries, and a settings.js naming our server. */
  #serve() {
    const server = this.server;
    return new Promise((resolve) => {
      const http = createServer(async (req, res) => {
        const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
        if (path === "/settings.js") {
          res.writeHead(200, { "content-type": "text/javascript" });
          res.end(`var server = ${JSON.stringify(server)};\nvar iceServers = [];\nvar token = null;\nvar apisecret = null;\n`);
          return;
        }
        const root = path.startsWith("/javascript/") ? JAVASCRIPT : DEMOS;
        const rel = path.startsWith("/javascript/") ? path.slice("/javascript".length) : path;
        const file = normalize(join(root, rel === "/" ? "/index.html" : rel));
        if (!file.startsWith(root)) { res.writeHead(403); res.end(); return; }
        try {
          const body = await readFile(file);
          res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
          res.end(body);
        } catch {
          res.writeHead(404); res.end();
        }
      });
      // Pages from 127.0.0.1 are a secure context (camera access); the
      // meeting server is reached on the test network.
      http.listen(0, "127.0.0.1", () => resolve([http, `http://127.0.0.1:${http.address().port}`]));
    });
  }

  /** A new headless Chromium with fake camera and microphone. */
  async chrome() {
    const s = await Session.startChrome(this.driver, [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
      "--window-size=1280,1500",
    ]);
    this.sessions.push(s);
    return s;
  }

  /** Opens a demo page and joins `room` under `name`. */
  async join(s, page, room, name) {
    // The Start button works once janus.js has initialised. A fresh network
    // namespace can make Chromium abort loads (ERR_NETWORK_CHANGED): retry.
    for (let attempt = 1; ; attempt++) {
      await s.navigate(`${this.base}/${page}?room=${room}`);
      try {
        await waitFor(`${page} loaded`, async () => s.execute("return typeof Janus !== 'undefined' && Janus.initDone === true"), 5000);
        break;
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    await s.click("#start");
    try {
      await waitFor(`${page} asks for a name`, async () =>
        s.execute("return !!document.querySelector('#username') && !document.querySelector('#username').disabled && $('#username').is(':visible')"));
    } catch (e) {
      const text = await s.execute("return document.body.innerText").catch(() => "?");
      const log = await s.consoleLog().catch(() => []);
      console.error(log.slice(-30).join("\n"));
      throw new Error(`${e.message}; the page says: ${String(text).replace(/\s+/g, " ").slice(-600)}`);
    }
    await s.type("#username", name);
    await s.click("#register");
  }
}
