import { describe, expect, it, vi } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import BackgroundPicker from "./BackgroundPicker.svelte";
import { fakeCommands } from "../test-commands";
import { setLocale } from "../i18n.svelte";

const picture = { id: "0123456789abcdef", thumbnail: "data:image/png;base64,AAAA" };

describe("background picker", () => {
  setLocale("en");

  it("applies a choice at once and shows it as chosen", async () => {
    const commands = fakeCommands({ listBackgrounds: vi.fn(async () => [picture]) });
    render(BackgroundPicker, { commands });
    const off = await screen.findByTestId("background-off");
    await waitFor(() => expect(off.getAttribute("aria-checked")).toBe("true"));
    await userEvent.click(screen.getByTestId("background-blur-light"));
    expect(commands.setVideoEffects).toHaveBeenLastCalledWith("blur-light", true, false);
    expect(screen.getByTestId("background-blur-light").getAttribute("aria-checked")).toBe("true");
    await userEvent.click(await screen.findByTestId("background-picture"));
    expect(commands.setVideoEffects).toHaveBeenLastCalledWith(`picture:${picture.id}`, true, false);
    await userEvent.click(screen.getByTestId("touch-up"));
    expect(commands.setVideoEffects).toHaveBeenLastCalledWith(`picture:${picture.id}`, true, true);
    await userEvent.click(screen.getByTestId("background-off"));
    expect(commands.setVideoEffects).toHaveBeenLastCalledWith(`picture:${picture.id}`, false, true);
  });

  it("says why a picture was refused and keeps the gallery and the choice", async () => {
    const commands = fakeCommands({
      listBackgrounds: vi.fn(async () => [picture]),
      addBackground: vi.fn(async () => {
        throw "The picture is damaged: unexpected end of file";
      }),
    });
    render(BackgroundPicker, { commands });
    await screen.findByTestId("background-picture");
    await userEvent.click(screen.getByTestId("background-add"));
    expect((await screen.findByTestId("background-error")).textContent).toMatch(/damaged/);
    expect(screen.getAllByTestId("background-picture")).toHaveLength(1);
    expect(commands.setVideoEffects).not.toHaveBeenCalled();
  });

  it("adds a picture and chooses it; removing it takes it out of the gallery", async () => {
    const added = { id: "fedcba9876543210", thumbnail: "data:image/png;base64,BBBB" };
    const commands = fakeCommands({ addBackground: vi.fn(async () => added) });
    render(BackgroundPicker, { commands });
    await userEvent.click(await screen.findByTestId("background-add"));
    const tile = await screen.findByTestId("background-picture");
    expect(commands.setVideoEffects).toHaveBeenLastCalledWith(`picture:${added.id}`, true, false);
    expect(tile.getAttribute("aria-checked")).toBe("true");
    await userEvent.click(screen.getByTestId("background-remove"));
    expect(commands.removeBackground).toHaveBeenCalledWith(added.id);
    await waitFor(() => expect(screen.queryAllByTestId("background-picture")).toHaveLength(0));
  });

  it("shows what the effects cost, and when masks come less often", async () => {
    const commands = fakeCommands();
    const { rerender } = render(BackgroundPicker, { commands, cost: { us_per_frame: 4300, mask_every: 1 } });
    expect((await screen.findByTestId("effects-cost")).textContent).toBe("Effects: 4.3 ms a frame");
    await rerender({ commands, cost: { us_per_frame: 5100, mask_every: 4 } });
    expect(screen.getByTestId("effects-cost").textContent).toMatch(/every 4 frames/);
  });
});
