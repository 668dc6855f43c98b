// The privacy audit: everything conclave-server received while the app's
// suite ran (scripts/e2e starts it with `--audit FILE` and sets
// CONCLAVE_AUDIT_FILE) holds none of the canaries, and does hold the nickname.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { canaries, contains, nickname } from "./canaries.mjs";

const file = process.env.CONCLAVE_AUDIT_FILE;
if (!file) throw new Error("CONCLAVE_AUDIT_FILE is not set; run scripts/e2e");
const received = readFileSync(file, "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));
// The suite also has Chromium in a meeting (Janus's demo pages): a browser,
// known by its user agent, is not what is audited. Its connections, and the
// plugin handles they opened, are set aside.
const browsers = new Set(received.filter((l) => l.kind === "handshake" && /^user-agent:.*Mozilla/im.test(l.data)).map((l) => l.on));
const browserHandles = new Set(
  received
    .filter((l) => l.kind === "signaling" && browsers.has(l.on))
    .map((l) => {
      try {
        return JSON.parse(l.data).handle_id;
      } catch {
        return undefined;
      }
    })
    .filter(Boolean),
);
const lines = received.filter((l) => (l.kind === "datachannel" ? !browserHandles.has(l.on) : !browsers.has(l.on)));
const all = lines.map((l) => l.data).join("\n");
/** The SDPs our clients sent (inside the signaling JSON). */
const sdps = lines.flatMap((l) => {
  try {
    const sdp = JSON.parse(l.data).jsep?.sdp;
    return sdp ? [sdp] : [];
  } catch {
    return [];
  }
});

test("the audit saw the meetings: handshakes, signaling with SDPs, data-channel messages", () => {
  const kinds = new Set(lines.map((l) => l.kind));
  assert.ok(lines.length > 20, `${lines.length} messages audited (${received.length - lines.length} from browsers set aside)`);
  for (const kind of ["handshake", "signaling", "datachannel"]) assert.ok(kinds.has(kind), `audited ${kind}`);
  assert.ok(sdps.length > 0, "SDPs are in the audit");
});

test("the nickname reaches the server: it is the one personal datum sent", () => {
  assert.ok(all.includes(nickname), "the audited meeting's nickname is there");
});

test("no canary reaches the server", () => {
  const found = canaries().filter((c) => contains(all, c.value));
  assert.deepEqual(found, [], `found on the server: ${JSON.stringify(found)}`);
});

test("identifiers (D6): SDP origins and CNAMEs name no person or machine; no user agent", () => {
  const origins = new Set([...sdps.join("\n").matchAll(/^o=(\S+) \d+ \d+ IN IP4 (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`));
  assert.ok(origins.size > 0);
  for (const origin of origins) assert.match(origin, /^(str0m-[\d.]+|-) (0\.0\.0\.0|127\.0\.0\.1)$/, `origin ${origin}`);
  const cnames = new Set([...sdps.join("\n").matchAll(/a=ssrc:\d+ cname:(\S+)/g)].map((m) => m[1]));
  for (const cname of cnames) assert.match(cname, /^conclave-?\d+(-[a-z-]+)?$/, `CNAME ${cname}`);
  for (const l of lines.filter((l) => l.kind === "handshake")) {
    assert.doesNotMatch(l.data, /^user-agent:/im, "the app's WebSocket sends no user agent");
  }
});
