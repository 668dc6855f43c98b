// The privacy audit's canaries, in one place: values the app meets on this
// machine that must never reach a meeting server. The app's tests plant them
// (tests/webdriver/app.test.mjs, "privacy canaries"); tests/privacy/audit.test.mjs
// then reads everything conclave-server received (`--audit FILE`) and asserts
// that none of them is there, while the nickname is.
//
// A feature that keeps something on the device adds its canary here, plants it
// in the app's tests, and names the test in docs/privacy.md.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";

/** Shared by the planting tests and the audit (scripts/e2e sets it per run). */
const seed = process.env.CONCLAVE_CANARY_SEED ?? "local";
const tmp = process.env.TMPDIR ?? "/tmp";

/** Values the tests plant, each unique to this run. */
export const planted = {
  /** Text on the clipboard that is not a meeting (J2: read locally, never kept or sent). */
  clipboard: `clipboard-canary-${seed} call Mr Example on +1 555 0100`,
  /** The folder a chat export is written to (chat export stays local). */
  exportFolder: join(tmp, `chat-export-canary-${seed}`),
  /** A meeting in the local history, and a name in its attendance (D1). */
  historyRoom: `history-room-canary-${seed}`,
  historyName: `history-name-canary-${seed}`,
  /** The folder recordings are saved to (R1: a recording never leaves the device). */
  recordingFolder: join(tmp, `recording-canary-${seed}`),
  /** The folder annotated screenshots are saved to (M4). */
  screenshotFolder: join(tmp, `screenshot-canary-${seed}`),
  /** The meeting password: only a PIN derived from it goes to the server. */
  password: `password-canary-${seed}`,
  /** Chat text in an end-to-end encrypted meeting. */
  chat: `chat-canary-${seed} the quarterly numbers are bad`,
  /** A background picture the user adds (V1: kept in the app's data
   * directory, never uploaded): its file's path and the text inside it. */
  backgroundPicture: join(tmp, `background-canary-${seed}.png`),
  backgroundText: `background-text-canary-${seed} taken at 12 Example Road`,
  /** The title of a window on screen, listed by the share picker. */
  windowTitle: "Conclave test pattern",
};

/** The nickname the audited meeting uses: the one personal datum sent (D6). */
export const nickname = `Ada Audit ${seed}`;

function macAddresses() {
  const macs = new Set();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) macs.add(i.mac);
  }
  try {
    for (const dev of readdirSync("/sys/class/net")) {
      macs.add(readFileSync(join("/sys/class/net", dev, "address"), "utf8").trim());
    }
  } catch {
    // Not Linux: os.networkInterfaces() is all there is.
  }
  macs.delete("00:00:00:00:00:00");
  macs.delete("");
  // As written with colons, dashes or nothing between the bytes.
  return [...macs].flatMap((m) => [m, m.replaceAll(":", "-"), m.replaceAll(":", "")]);
}

function osName() {
  try {
    const release = readFileSync("/etc/os-release", "utf8");
    return release.match(/^PRETTY_NAME="?([^"\n]+)"?/m)?.[1];
  } catch {
    return undefined;
  }
}

/** The audio devices' names and descriptions (PulseAudio), if it runs. */
function audioDevices() {
  try {
    const names = [];
    for (const kind of ["sinks", "sources"]) {
      const out = execFileSync("pactl", ["list", "short", kind], { encoding: "utf8", timeout: 5000 });
      for (const line of out.split("\n")) if (line.trim()) names.push(line.split("\t")[1]);
    }
    return names;
  } catch {
    return [];
  }
}

/**
 * Every canary as `{ what, value }`: the planted values, and what identifies
 * this machine and its user (D6: hostname, MACs, OS version, user, home
 * folder, device names).
 */
export function canaries() {
  const list = Object.entries(planted).map(([what, value]) => ({ what, value }));
  list.push({ what: "hostname", value: os.hostname() });
  for (const mac of macAddresses()) list.push({ what: "MAC address", value: mac });
  list.push({ what: "kernel release", value: os.release() });
  const name = osName();
  if (name) list.push({ what: "OS name and version", value: name });
  list.push({ what: "user name", value: os.userInfo().username });
  list.push({ what: "home folder", value: os.homedir() });
  for (const device of audioDevices()) list.push({ what: "audio device name", value: device });
  return list.filter((c) => c.value);
}

/**
 * Whether `text` contains `value`, ignoring case. Short values (a hostname
 * like "vm", a user like "root") count only as whole words, so that they are
 * not found by chance inside random identifiers.
 */
export function contains(text, value) {
  const haystack = text.toLowerCase();
  const needle = value.toLowerCase();
  if (needle.length >= 8) return haystack.includes(needle);
  const escaped = needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^a-z0-9_+/=-])${escaped}($|[^a-z0-9_+/=-])`).test(haystack);
}
