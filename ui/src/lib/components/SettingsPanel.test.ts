import { describe, expect, it, vi } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import SettingsPanel from "./SettingsPanel.svelte";
import { fakeCommands } from "../test-commands";
import { setLocale } from "../i18n.svelte";
import type { Settings } from "../bindings";

describe("connection settings", () => {
  setLocale("en");

  it("adds a relay with its password, shows it without the password and removes it", async () => {
    let settings: Settings | null = null;
    const commands = fakeCommands();
    const base = await commands.getSettings();
    settings = base;
    commands.getSettings = vi.fn(async () => settings as Settings);
    commands.addRelay = vi.fn(async (url: string, username: string) => {
      settings = { ...(settings as Settings), relays: [{ url, username }] };
      return settings;
    });
    commands.removeRelay = vi.fn(async () => {
      settings = { ...(settings as Settings), relays: [] };
      return settings;
    });
    commands.recordingFolder = vi.fn(async () => "/home/you/Videos");
    render(SettingsPanel, { commands, onclose: vi.fn() });
    const only = (await screen.findByTestId("relay-only")) as HTMLInputElement;
    expect(only.disabled).toBe(true);
    await userEvent.type(screen.getByTestId("relay-url"), "turn:relay.example.org?transport=tcp");
    await userEvent.type(screen.getByTestId("relay-username"), "ada");
    await userEvent.type(screen.getByTestId("relay-password"), "s3cret");
    await userEvent.click(screen.getByTestId("relay-add"));
    expect(commands.addRelay).toHaveBeenCalledWith("turn:relay.example.org?transport=tcp", "ada", "s3cret");
    const entry = await screen.findByTestId("relay-entry");
    expect(entry.textContent).toContain("turn:relay.example.org?transport=tcp");
    expect(entry.textContent).toContain("ada");
    expect(document.body.textContent).not.toContain("s3cret");
    expect((screen.getByTestId("relay-password") as HTMLInputElement).value).toBe("");
    expect((screen.getByTestId("relay-only") as HTMLInputElement).disabled).toBe(false);
    await userEvent.click(screen.getByTestId("relay-remove"));
    await waitFor(() => expect(screen.queryByTestId("relay-entry")).toBeNull());
  });

  it("shows why a relay was refused and keeps what was typed", async () => {
    const commands = fakeCommands();
    commands.recordingFolder = vi.fn(async () => "/home/you/Videos");
    commands.addRelay = vi.fn(async () => {
      throw "“http://x” is not a turn:, turns: or stun: address";
    });
    render(SettingsPanel, { commands, onclose: vi.fn() });
    await userEvent.type(await screen.findByTestId("relay-url"), "http://x");
    await userEvent.click(screen.getByTestId("relay-add"));
    expect((await screen.findByTestId("relay-error")).textContent).toContain("is not a turn:");
    expect((screen.getByTestId("relay-url") as HTMLInputElement).value).toBe("http://x");
  });

  it("asks no user name or password for a STUN server", async () => {
    const commands = fakeCommands();
    commands.recordingFolder = vi.fn(async () => "/home/you/Videos");
    render(SettingsPanel, { commands, onclose: vi.fn() });
    await userEvent.type(await screen.findByTestId("relay-url"), "stun:stun.example.org");
    expect((screen.getByTestId("relay-username") as HTMLInputElement).disabled).toBe(true);
    expect((screen.getByTestId("relay-password") as HTMLInputElement).disabled).toBe(true);
  });
});
