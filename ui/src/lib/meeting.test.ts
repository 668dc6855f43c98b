import { describe, expect, it } from "vitest";
import type { ChatMessage, EngineEvent, Participant } from "./bindings";
import { applyEvent, formatElapsed, fromJoined, groupMessages, hueFor, initials, qualityOf } from "./meeting";

const me: Participant = { id: "1", nickname: "Me", is_self: true };
const ada: Participant = { id: "2", nickname: "Ada", is_self: false };
const bob: Participant = { id: "3", nickname: "Bob", is_self: false };

function joined(participants: Participant[]) {
  return fromJoined(
    { type: "joined", room: "123456789", self_id: "1", nickname: "Me", chat_encrypted: true, participants, topic: null, recording_allowed: true, several_presenters: false },
    0,
  );
}

const msg = (from: Participant, text: string, at_ms = 0, to: Participant | null = null): ChatMessage => ({
  from: from.id,
  from_name: from.nickname,
  to: to?.id ?? null,
  to_name: to?.nickname ?? null,
  text,
  encrypted: true,
  at_ms,
});

describe("meeting state", () => {
  it("keeps who records, tells when others start and stop, and forgets those who leave", () => {
    let s = joined([me, ada, bob]);
    const rec = (who: Participant, state: "recording" | "paused" | "stopped"): EngineEvent => ({
      type: "recording",
      participant: who.id,
      nickname: who.nickname,
      state,
    });
    let r = applyEvent(s, rec(ada, "recording"));
    expect(r.state.recorders).toEqual([{ id: "2", nickname: "Ada", state: "recording" }]);
    expect(r.notice).toEqual({ kind: "warning", key: "record.startedToast", params: { name: "Ada" } });
    r = applyEvent(r.state, rec(ada, "paused"));
    expect(r.state.recorders[0].state).toBe("paused");
    expect(r.notice).toBeNull();
    r = applyEvent(r.state, rec(me, "recording"));
    expect(r.notice).toBeNull();
    expect(r.state.recorders.map((x) => x.id)).toEqual(["2", "1"]);
    r = applyEvent(r.state, rec(ada, "stopped"));
    expect(r.notice?.key).toBe("record.stoppedToast");
    expect(r.state.recorders.map((x) => x.id)).toEqual(["1"]);
    s = applyEvent(r.state, rec(bob, "recording")).state;
    s = applyEvent(s, { type: "participant_left", participant: bob }).state;
    expect(s.recorders.map((x) => x.id)).toEqual(["1"]);
    // A stop for someone not recording says nothing.
    expect(applyEvent(s, rec(ada, "stopped")).notice).toBeNull();
  });

  it("starts with the roster, self first", () => {
    const s = joined([bob, me, ada]);
    expect(s.participants.map((p) => p.id)).toEqual(["1", "2", "3"]);
    expect(s.status).toBe("live");
  });

  it("adds and removes participants once, with notices", () => {
    let s = joined([me]);
    let r = applyEvent(s, { type: "participant_joined", participant: ada });
    expect(r.notice?.key).toBe("meeting.joinedToast");
    s = applyEvent(r.state, { type: "participant_joined", participant: ada }).state;
    expect(s.participants).toHaveLength(2);
    r = applyEvent(s, { type: "participant_left", participant: ada });
    expect(r.state.participants).toEqual([me]);
    expect(r.notice?.params).toEqual({ name: "Ada" });
    expect(applyEvent(r.state, { type: "participant_left", participant: ada }).notice).toBeNull();
  });

  it("keeps chat in order and ends on disconnect", () => {
    let s = joined([me, ada]);
    s = applyEvent(s, { type: "chat", message: msg(ada, "one") }).state;
    s = applyEvent(s, { type: "chat", message: msg(me, "two") }).state;
    expect(s.messages.map((m) => m.text)).toEqual(["one", "two"]);
    const r = applyEvent(s, { type: "disconnected", message: "The server went away" });
    expect(r.state.status).toBe("disconnected");
    expect(r.state.endReason).toBe("The server went away");
    expect(r.state.messages).toHaveLength(2);
  });

  it("shows reconnecting while the network is gone, and stays in the meeting", () => {
    let s = joined([me, ada]);
    expect(s.reconnecting).toBe(false);
    s = applyEvent(s, { type: "reconnecting", active: true }).state;
    expect(s.reconnecting).toBe(true);
    expect(s.status).not.toBe("disconnected");
    expect(s.participants).toHaveLength(2);
    s = applyEvent(s, { type: "reconnecting", active: false }).state;
    expect(s.reconnecting).toBe(false);
  });

  it("keeps each participant's connection quality, forgets it when they leave", () => {
    let s = joined([me, ada, bob]);
    expect(qualityOf(s, ada.id)).toBe("good");
    s = applyEvent(s, { type: "connection_quality", participant: ada.id, quality: "poor" }).state;
    s = applyEvent(s, { type: "connection_quality", participant: bob.id, quality: "bad" }).state;
    expect(qualityOf(s, ada.id)).toBe("poor");
    expect(qualityOf(s, bob.id)).toBe("bad");
    s = applyEvent(s, { type: "connection_quality", participant: ada.id, quality: "good" }).state;
    expect(qualityOf(s, ada.id)).toBe("good");
    s = applyEvent(s, { type: "participant_left", participant: bob }).state;
    expect(qualityOf(s, bob.id)).toBe("good");
    expect(Object.keys(s.quality)).not.toContain(bob.id);
  });

  it("turns warnings and errors into notices without changing state", () => {
    const s = joined([me]);
    const w: EngineEvent = { type: "warning", message: "A message could not be decrypted" };
    expect(applyEvent(s, w)).toEqual({ state: s, notice: { kind: "warning", text: w.message } });
  });
});

describe("chat grouping", () => {
  it("groups consecutive messages from one sender to one audience", () => {
    const groups = groupMessages(
      [msg(ada, "a", 0), msg(ada, "b", 1000), msg(ada, "c", 2000, me), msg(me, "d", 3000), msg(ada, "e", 4000)],
      "1",
    );
    expect(groups.map((g) => g.messages.map((m) => m.text).join(""))).toEqual(["ab", "c", "d", "e"]);
    expect(groups[2].mine).toBe(true);
    expect(groups[1].to).toBe("1");
  });

  it("starts a new group after a pause", () => {
    const groups = groupMessages([msg(ada, "a", 0), msg(ada, "b", 10 * 60 * 1000)], "1");
    expect(groups).toHaveLength(2);
  });
});

describe("helpers", () => {
  it("makes initials", () => {
    expect(initials("Ada Lovelace")).toBe("AL");
    expect(initials("bob")).toBe("BO");
    expect(initials("李雷")).toBe("李雷");
    expect(initials("  ")).toBe("?");
    expect(initials("Ada (app)")).toBe("AA");
    expect(initials("(cli)")).toBe("CL");
  });
  it("keeps hues stable and in range", () => {
    expect(hueFor("42")).toBe(hueFor("42"));
    for (const id of ["1", "2", "123456789", ""]) {
      expect(hueFor(id)).toBeGreaterThanOrEqual(0);
      expect(hueFor(id)).toBeLessThan(360);
    }
  });
  it("formats elapsed time", () => {
    expect(formatElapsed(0)).toBe("00:00");
    expect(formatElapsed(65_000)).toBe("01:05");
    expect(formatElapsed(3_725_000)).toBe("1:02:05");
  });
});
