import { describe, expect, it } from "vitest";
import { dictionaries, LOCALES, matchLocale, setLocale, t } from "./i18n.svelte";

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("i18n", () => {
  it("every language has every key, with the same placeholders", () => {
    const keys = Object.keys(dictionaries.en).sort();
    for (const locale of LOCALES) {
      const dict = dictionaries[locale];
      expect(Object.keys(dict).sort()).toEqual(keys);
      for (const key of keys as (keyof typeof dict)[]) {
        expect(dict[key].trim(), `${locale} ${key}`).not.toBe("");
        expect(placeholders(dict[key]), `${locale} ${key}`).toEqual(placeholders(dictionaries.en[key]));
      }
    }
  });

  it("substitutes parameters and switches language", () => {
    setLocale("en");
    expect(t("meeting.participantCount", { count: 3 })).toBe("3 in the meeting");
    setLocale("zh-CN");
    expect(t("meeting.participantCount", { count: 3 })).toBe("3 人在会议中");
    expect(t("meeting.transitOnly")).toBe("仅传输加密");
    setLocale("en");
    expect(t("meeting.transitOnly")).toBe("Encrypted in transit only");
  });

  it("matches language tags", () => {
    expect(matchLocale("zh-Hans-CN")).toBe("zh-CN");
    expect(matchLocale("zh")).toBe("zh-CN");
    expect(matchLocale("en-GB")).toBe("en");
    expect(matchLocale("fr")).toBe("en");
    expect(matchLocale(null)).toBe("en");
  });
});
