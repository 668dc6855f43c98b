import { describe, expect, it, vi } from "vitest";
import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import RecordControl from "./RecordControl.svelte";
import { fromJoined, type MeetingState } from "../meeting";
import { fakeCommands } from "../test-commands";
import { setLocale } from "../i18n.svelte";

function meeting(extra: Partial<MeetingState> = {}): MeetingState {
  return {
    ...fromJoined(
      {
        type: "joined",
        room: "123456789",
        self_id: "1",
        nickname: "Me",
        chat_encrypted: true,
        participants: [{ id: "1", nickname: "Me", is_self: true }],
        topic: null,
        recording_allowed: true,
        several_presenters: false,
      },
      0,
    ),
    ...extra,
  };
}

describe("record button", () => {
  setLocale("en");

  it("asks for the attendees' consent and shows the folder before recording", async () => {
    const commands = fakeCommands();
    render(RecordControl, { meeting: meeting(), commands, onsaved: vi.fn(), onerror: vi.fn() });
    await userEvent.click(screen.getByTestId("record-button"));
    expect((await screen.findByTestId("record-folder")).textContent).toBe("/home/you/Videos");
    const start = screen.getByTestId("record-start") as HTMLButtonElement;
    expect(start.disabled).toBe(true);
    expect(commands.startRecording).not.toHaveBeenCalled();
    await userEvent.click(screen.getByTestId("record-agreed"));
    expect(start.disabled).toBe(false);
    await userEvent.click(start);
    expect(commands.startRecording).toHaveBeenCalledWith(true, expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d\.\d\d$/));
    expect(screen.queryByTestId("record-consent")).toBeNull();
  });

  it("is off, with the reason, where the host forbids recording", () => {
    render(RecordControl, { meeting: meeting({ recordingAllowed: false }), commands: fakeCommands(), onsaved: vi.fn(), onerror: vi.fn() });
    const button = screen.getByTestId("record-button") as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    expect(button.title).toBe("The host does not allow recording this meeting");
  });

  it("pauses, resumes and stops a running recording", async () => {
    const commands = fakeCommands({ stopRecording: vi.fn(async () => "/home/you/Videos/M.webm") });
    const onsaved = vi.fn();
    const recording = meeting({ recorders: [{ id: "1", nickname: "Me", state: "recording" }] });
    const view = render(RecordControl, { meeting: recording, commands, onsaved, onerror: vi.fn() });
    await userEvent.click(screen.getByTestId("record-pause"));
    expect(commands.pauseRecording).toHaveBeenCalledWith(true);
    await view.rerender({ meeting: meeting({ recorders: [{ id: "1", nickname: "Me", state: "paused" }] }) });
    await userEvent.click(screen.getByTestId("record-resume"));
    expect(commands.pauseRecording).toHaveBeenCalledWith(false);
    await userEvent.click(screen.getByTestId("record-stop"));
    expect(onsaved).toHaveBeenCalledWith("/home/you/Videos/M.webm");
  });

  it("reports a refusal from the app", async () => {
    const onerror = vi.fn();
    const commands = fakeCommands({
      startRecording: vi.fn(async () => {
        throw "Could not start recording in /full: no space";
      }),
    });
    render(RecordControl, { meeting: meeting(), commands, onsaved: vi.fn(), onerror });
    await userEvent.click(screen.getByTestId("record-button"));
    await userEvent.click(await screen.findByTestId("record-agreed"));
    await userEvent.click(screen.getByTestId("record-start"));
    expect(onerror).toHaveBeenCalledWith("Could not start recording in /full: no space");
    expect(screen.queryByTestId("record-consent")).not.toBeNull();
  });
});
