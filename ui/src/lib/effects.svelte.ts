/**
 * The camera effects chosen (virtual background, touch-up), shared by the
 * background picker and the meeting's background toggle. The app keeps
 * them in its settings and applies each change at once.
 */
import type { Commands } from "./bindings";

/** The chosen effects. */
export interface EffectsChoice {
  /** `blur`, `blur-light` or `picture:<id>`. */
  background: string;
  /** Whether the background is on. */
  enabled: boolean;
  /** Face touch-up. */
  touchUp: boolean;
}

/** The effects as last loaded or set. */
export const effects = $state<EffectsChoice>({ background: "blur", enabled: false, touchUp: false });

/** Loads the effects from the settings. */
export async function loadEffects(commands: Commands): Promise<void> {
  const settings = await commands.getSettings();
  effects.background = settings.background || "blur";
  effects.enabled = settings.background_enabled;
  effects.touchUp = settings.touch_up;
}

/** Applies a change; on an error (thrown) the previous choice stays. */
export async function changeEffects(commands: Commands, change: Partial<EffectsChoice>): Promise<void> {
  const wanted = { ...effects, ...change };
  await commands.setVideoEffects(wanted.background, wanted.enabled, wanted.touchUp);
  Object.assign(effects, wanted);
}
