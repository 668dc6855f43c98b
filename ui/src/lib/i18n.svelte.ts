/**
 * The i18n layer: every UI string goes through `t`. The current locale is
 * reactive state, so switching language re-renders every string.
 */
import en, { type MessageKey } from "./locales/en";
import zhCN from "./locales/zh-CN";

export type { MessageKey };

/** The languages the UI ships. */
export const LOCALES = ["en", "zh-CN"] as const;
/** A supported language tag. */
export type Locale = (typeof LOCALES)[number];

/** Every dictionary, by locale. */
export const dictionaries: Record<Locale, Record<MessageKey, string>> = {
  en,
  "zh-CN": zhCN,
};

/** Native names, shown in the language menu. */
export const LOCALE_NAMES: Record<Locale, string> = { en: "English", "zh-CN": "简体中文" };

/** Picks a supported locale for a language tag such as `zh-Hans-CN` or `en-GB`. */
export function matchLocale(tag: string | null | undefined): Locale {
  const lower = (tag ?? "").toLowerCase();
  if (lower.startsWith("zh")) return "zh-CN";
  return "en";
}

const state = $state<{ locale: Locale }>({
  locale: matchLocale(typeof navigator === "undefined" ? "en" : navigator.language),
});

/** The current locale. */
export function locale(): Locale {
  return state.locale;
}

/** Switches the language of the whole UI. */
export function setLocale(next: Locale): void {
  state.locale = next;
  if (typeof document !== "undefined") document.documentElement.lang = next;
}

/** Translates `key`, replacing `{name}` placeholders with `params`. */
export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  const template = dictionaries[state.locale][key] ?? en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}
