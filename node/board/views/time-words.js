// Times in words, for the Decide and Calendar tabs: "today 18:00", "Friday 18:00",
// "Friday 11 December, 18:00–20:00". Local time of this device, in the reader's language.
import { lang, t } from "../i18n.js";
import { nowMs } from "../core.js";

const DAY = 86_400_000;

export function startOfDay(ms) {
  const day = new Date(Number(ms) || 0);
  day.setHours(0, 0, 0, 0);
  return day.getTime();
}

/** Whole days from today to the day of `ms` (0 today, 1 tomorrow, −1 yesterday). */
export function daysFromToday(ms) {
  return Math.round((startOfDay(ms) - startOfDay(nowMs())) / DAY);
}

/** The browser's own locale when it is of the board's language ("en-GB" for English: 24-hour
 * times), else the language itself. */
export function locale() {
  const base = lang();
  for (const tag of navigator.languages ?? [navigator.language]) {
    if (String(tag).toLowerCase().split("-")[0] === base) return String(tag);
  }
  return base;
}

function format(ms, options) {
  return new Intl.DateTimeFormat(locale(), options).format(new Date(Number(ms) || 0));
}

export const dateTime = (ms) => format(ms, { dateStyle: "medium", timeStyle: "short" });
export const clock = (ms) => format(ms, { hour: "2-digit", minute: "2-digit" });

/** A day as a heading: "Today", "Tomorrow", "Friday 11 December". */
export function dayWords(ms) {
  const days = daysFromToday(ms);
  const date = format(ms, { weekday: "long", day: "numeric", month: "long" });
  if (days === 0) return t("decide.time.today-date", { date });
  if (days === 1) return t("decide.time.tomorrow-date", { date });
  return date.charAt(0).toLocaleUpperCase(locale()) + date.slice(1);
}

/** A moment in a sentence: "today 18:00", "tomorrow 9:00", "Friday 18:00", "11 Dec 2026, 18:00". */
export function atWords(ms) {
  const days = daysFromToday(ms);
  const time = clock(ms);
  if (days === 0) return t("decide.time.today", { time });
  if (days === 1) return t("decide.time.tomorrow", { time });
  if (days === -1) return t("decide.time.yesterday", { time });
  if (days > 1 && days < 7) return t("decide.time.weekday", { day: format(ms, { weekday: "long" }), time });
  return format(ms, { dateStyle: "medium", timeStyle: "short" });
}

/** A window: "Friday 11 December, 18:00–20:00" (or across days, both ends). */
export function windowWords(start, end) {
  const f = new Intl.DateTimeFormat(locale(), {
    weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit",
  });
  const a = new Date(Number(start) || 0);
  const b = new Date(Math.max(Number(end) || 0, a.getTime()));
  try {
    return f.formatRange(a, b);
  } catch {
    return `${f.format(a)} – ${f.format(b)}`;
  }
}

/** A `datetime-local` input's value for `ms` (local time), and back. */
export function inputValue(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromInput(value) {
  const ms = new Date(String(value)).getTime();
  return Number.isFinite(ms) ? ms : null;
}
