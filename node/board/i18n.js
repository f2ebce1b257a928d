// Message catalogues: every string the board shows comes from i18n/<lang>.json.
// A pod adds a language by adding a catalogue and its code to LANGS.
export const LANGS = ["en", "es"];
const FALLBACK = "en";
const catalogues = {};
let current = FALLBACK;

async function load(lang) {
  if (!catalogues[lang]) {
    const response = await fetch(`/board/i18n/${lang}.json`);
    catalogues[lang] = response.ok ? await response.json() : {};
  }
  return catalogues[lang];
}

/** The language to start in: the one chosen here before, else the browser's first we have. */
export function preferred() {
  const saved = localStorage.getItem("kith-lang");
  if (LANGS.includes(saved)) return saved;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGS.includes(base)) return base;
  }
  return FALLBACK;
}

/** Switch to `lang` (loading its catalogue and the fallback). */
export async function setLang(lang, remember = false) {
  current = LANGS.includes(lang) ? lang : FALLBACK;
  await Promise.all([load(FALLBACK), load(current)]);
  document.documentElement.lang = current;
  if (remember) localStorage.setItem("kith-lang", current);
}

export function lang() {
  return current;
}

/** The names of all languages, each in itself (for the switcher). */
export async function names() {
  const all = await Promise.all(LANGS.map(load));
  return LANGS.map((code, i) => [code, all[i]["lang.name"] ?? code]);
}

/** The message `key` with `{name}` placeholders filled in (values are plain text). */
export function t(key, vars = {}) {
  const text = catalogues[current]?.[key] ?? catalogues[FALLBACK]?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Whether `key` is in a catalogue. */
export function has(key) {
  return key in (catalogues[current] ?? {}) || key in (catalogues[FALLBACK] ?? {});
}

/** Fill every `[data-i18n]` element's text, and every `[data-i18n-label]` element's
 * `aria-label`, from the catalogue. */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}
