// A minimal W3C WebDriver client over fetch: just what the app tests need.
// No dependencies, so the UI's npm tree stays the only one.

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(what, probe, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  /** Starts the app through tauri-driver. */
  static async start(base, application, args = []) {
    const value = await call(base, "POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application, args } } },
    });
    return new Session(base, value.sessionId);
  }

  /** Starts a headless Chromium through ChromeDriver. */
  static async startChrome(base, args = []) {
    const value = await call(base, "POST", "/session", {
      capabilities: {
        alwaysMatch: { browserName: "chrome", "goog:chromeOptions": { args }, "goog:loggingPrefs": { browser: "ALL" } },
      },
    });
    return new Session(base, value.sessionId);
  }

  /** The browser console so far (Chromium). */
  async consoleLog() {
    const entries = await this.cmd("POST", "/se/log", { type: "browser" });
    return entries.map((e) => `${e.level} ${e.message}`);
  }

  /** Opens a URL. */
  navigate(url) {
    return this.cmd("POST", "/url", { url });
  }

  /** Runs a script in the page and returns its value. */
  execute(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }

  cmd(method, path, body) {
    return call(this.base, method, `/session/${this.id}${path}`, body);
  }

  async find(css) {
    const v = await this.cmd("POST", "/element", { using: "css selector", value: css });
    return v[ELEMENT];
  }

  async findAll(css) {
    const v = await this.cmd("POST", "/elements", { using: "css selector", value: css });
    return v.map((e) => e[ELEMENT]);
  }

  /** Waits until an element matching `css` exists and returns it. */
  waitFind(css, timeoutMs) {
    return waitFor(css, () => this.find(css), timeoutMs);
  }

  /** Drags the mouse over an element, from and to offsets from its centre. */
  async drag(css, from, to) {
    const origin = { [ELEMENT]: await this.waitFind(css) };
    await this.cmd("POST", "/actions", {
      actions: [{
        type: "pointer", id: "mouse", parameters: { pointerType: "mouse" },
        actions: [
          { type: "pointerMove", duration: 0, origin, x: from[0], y: from[1] },
          { type: "pointerDown", button: 0 },
          { type: "pointerMove", duration: 200, origin, x: to[0], y: to[1] },
          { type: "pointerUp", button: 0 },
        ],
      }],
    });
    await this.cmd("DELETE", "/actions");
  }

  async click(css) {
    try {
      const id = await this.waitFind(css);
      try {
        await this.cmd("POST", `/element/${id}/click`, {});
      } catch (e) {
        if (!/not interactable/.test(String(e.message))) throw e;
        // Below the fold of a scrolling panel: WebKitWebDriver does not
        // scroll there itself.
        await this.execute(`document.querySelector(${JSON.stringify(css)})?.scrollIntoView({ block: "center" })`);
        await this.cmd("POST", `/element/${id}/click`, {});
      }
    } catch (e) {
      if (!/intercepted/.test(String(e.message))) throw e;
      // Say what lies over the element.
      const over = await this.execute(`
        const el = document.querySelector(${JSON.stringify(css)});
        const r = el?.getBoundingClientRect();
        const top = r && document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return (top ? top.outerHTML.slice(0, 300) : "nothing") + " | page: " + (window.__joinErrors ?? []).slice(-40).join(" / ");
      `).catch(() => "?");
      if (process.env.CONCLAVE_SCREENSHOTS) {
        const { writeFileSync } = await import("node:fs");
        writeFileSync(`${process.env.CONCLAVE_SCREENSHOTS}/intercepted-${Date.now()}.png`, await this.screenshot());
      }
      throw new Error(`${e.message}; over ${css}: ${over}`);
    }
  }

  async type(css, text) {
    await this.cmd("POST", `/element/${await this.waitFind(css)}/value`, { text });
  }

  async clear(css) {
    await this.cmd("POST", `/element/${await this.waitFind(css)}/clear`, {});
  }

  async text(css) {
    return this.cmd("GET", `/element/${await this.waitFind(css)}/text`);
  }

  async value(css) {
    return this.property(css, "value");
  }

  async property(css, name) {
    return this.cmd("GET", `/element/${await this.waitFind(css)}/property/${name}`);
  }

  /** The texts of every element matching `css`. */
  async texts(css) {
    const out = [];
    for (const id of await this.findAll(css)) out.push(await this.cmd("GET", `/element/${id}/text`));
    return out;
  }

  /** The DOM text content of every element matching `css` (also for text
   * WebKit's rendered-text algorithm skips, such as ellipsised spans). */
  async textContents(css) {
    const out = [];
    for (const id of await this.findAll(css)) out.push(await this.cmd("GET", `/element/${id}/property/textContent`));
    return out;
  }

  async screenshot() {
    return Buffer.from(await this.cmd("GET", "/screenshot"), "base64");
  }

  async end() {
    await this.cmd("DELETE", "").catch(() => {});
  }
}

async function call(base, method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${method} ${path} -> ${response.status}: ${JSON.stringify(json.value ?? json)}`);
  }
  return json.value;
}

/** WebDriver key codes. */
export const Keys = { Enter: "\uE007" };
