// Open needs (this pod's and neighbours'), filters, and asking for help.
//
// A need may carry private details (address, phone, notes) sealed in this browser to the pod's
// active coordinators and the poster (docs/protocol.md §14, aad "need.posted/personal"); the
// node refuses any other recipient. The board opens them only where this device's box key is
// a recipient, so the poster and the coordinators see them and nobody else does.
import { lang, t } from "../i18n.js";
import {
  $, CATEGORIES, URGENCIES, capitalise, categoryWords, debounce, el, fillSelect, getJSON,
  isCoordinator, loadPeople, personName, publish, say, state, when,
} from "../core.js";
import { fieldAad, open, seal } from "../seal.js";
import { actionsFor } from "./need-actions.js";

const PERSONAL_AAD = fieldAad("need.posted", "personal");
const FILTERS_KEY = "kith-needs-filters";
const DAY_MS = 86400000;

let needs = [];
/** need id → its opened private details (an object), null (none for us), or "pending". */
const opened = new Map();

// --- words for times and estimates (offers.js uses them too) ----------------------------

function dayWords(ms) {
  const day = new Date(ms);
  const today = new Date(Date.now());
  const days = Math.round(
    (new Date(day.getFullYear(), day.getMonth(), day.getDate()) -
      new Date(today.getFullYear(), today.getMonth(), today.getDate())) / DAY_MS,
  );
  if (Math.abs(days) <= 1) {
    return capitalise(new Intl.RelativeTimeFormat(lang(), { numeric: "auto" }).format(days, "day"));
  }
  const format = { weekday: "short", day: "numeric", month: "short" };
  if (day.getFullYear() !== today.getFullYear()) format.year = "numeric";
  return capitalise(new Intl.DateTimeFormat(lang(), format).format(day));
}

function clockWords(ms) {
  return new Intl.DateTimeFormat(lang(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(ms));
}

/** A `{start, end}` window in words: "Tomorrow, 10:00–12:00"; "" when it is not one. */
export function windowWords(window) {
  const start = Number(window?.start);
  const end = Number(window?.end);
  if (!Number.isFinite(start) || !Number.isFinite(end) || start >= end) return "";
  const from = dayWords(start);
  const until = dayWords(end - 1);
  if (from === until) return t("needs.window.day", { day: from, from: clockWords(start), to: clockWords(end) });
  return t("needs.window.days", { day: from, from: clockWords(start), day2: dayWords(end), to: clockWords(end) });
}

/** Minutes as a rough estimate in words: "about 1 h", "about 45 min". */
export function estimateWords(minutes) {
  const m = Number(minutes);
  if (!Number.isInteger(m) || m < 1) return "";
  if (m < 60) return t("needs.estimate.min", { n: m });
  const hours = Math.round(m / 30) / 2;
  return t("needs.estimate.h", { n: new Intl.NumberFormat(lang()).format(hours) });
}

/** Read a pair of datetime-local inputs: `{window}` (absent when both are empty) or
 * `{error}` (a catalogue key) with the inputs marked invalid. */
export function readWindow(fromInput, untilInput) {
  for (const input of [fromInput, untilInput]) input.removeAttribute("aria-invalid");
  const a = fromInput.value;
  const b = untilInput.value;
  if (!a && !b && !fromInput.validity.badInput && !untilInput.validity.badInput) return { window: null };
  const start = Date.parse(a);
  const end = Date.parse(b);
  if (!Number.isFinite(start) || !Number.isFinite(end)) {
    const bad = Number.isFinite(start) ? untilInput : fromInput;
    bad.setAttribute("aria-invalid", "true");
    return { error: "needs.bad.window-half", input: bad };
  }
  if (end <= start) {
    untilInput.setAttribute("aria-invalid", "true");
    return { error: "needs.bad.window-order", input: untilInput };
  }
  return { window: { start, end } };
}

// --- who may read private details ---------------------------------------------------------

/** The box keys private details are sealed to: the active coordinators and me. */
function recipients() {
  const keys = state.people
    .filter((p) => p.role === "coordinator" && p.status === "active" && typeof p.box_key === "string")
    .map((p) => p.box_key);
  if (typeof state.me?.box_key === "string") keys.push(state.me.box_key);
  return [...new Set(keys)];
}

function coordinatorNames() {
  return state.people
    .filter((p) => p.role === "coordinator" && p.status === "active" && p.key !== state.me?.key)
    .map((p) => personName(p.key))
    .sort((a, b) => a.localeCompare(b, lang()));
}

function renderWho() {
  const names = coordinatorNames();
  const line = $("needs-private-who");
  if (!line) return;
  line.textContent = names.length
    ? t("needs.private.who", { names: new Intl.ListFormat(lang(), { type: "conjunction" }).format(names) })
    : t("needs.private.who.none");
}

// --- filters ----------------------------------------------------------------------------

function savedFilters() {
  try {
    const saved = JSON.parse(localStorage.getItem(FILTERS_KEY) ?? "{}");
    return saved && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}

function filters() {
  return {
    category: $("needs-f-category").value,
    urgency: $("needs-f-urgency").value,
    area: $("needs-f-area").value,
    pod: $("needs-f-pod").value,
  };
}

function fillFilters() {
  const saved = { ...savedFilters(), ...(($("needs-f-category").options.length && filters()) || {}) };
  const any = (key) => (v) => (v === "" ? t(key) : null);
  const options = (select, values, label, chosen) => {
    select.replaceChildren(...values.map((v) => el("option", { value: v }, label(v))));
    select.value = values.includes(chosen) ? chosen : "";
  };
  options($("needs-f-category"), ["", ...CATEGORIES], (c) => any("needs.f.any-category")(c) ?? capitalise(t(`cat.${c}`)), saved.category);
  options($("needs-f-urgency"), ["", ...URGENCIES], (u) => any("needs.f.any-urgency")(u) ?? t(`urgency.${u}`), saved.urgency);
  const areas = [...new Set(needs.map((n) => n.area).filter((a) => typeof a === "string" && a))];
  if (typeof saved.area === "string" && saved.area && !areas.includes(saved.area)) areas.push(saved.area);
  areas.sort((a, b) => a.localeCompare(b, lang()));
  options($("needs-f-area"), ["", ...areas], (a) => any("needs.f.any-area")(a) ?? a, saved.area);
  options($("needs-f-pod"), ["", "home", "neighbours"], (p) => t(`needs.f.pod.${p || "all"}`), saved.pod);
  // Filters in use are shown, not folded away.
  if (Object.values(filters()).some(Boolean)) $("needs-filter-box").open = true;
}

function keepFilters() {
  localStorage.setItem(FILTERS_KEY, JSON.stringify(filters()));
  render();
}

const knownCategory = (c) => (CATEGORIES.includes(c) ? c : "other");

function shown() {
  const f = filters();
  const home = state.info?.pod;
  return needs.filter(
    (n) =>
      (!f.category || knownCategory(n.category) === f.category) &&
      (!f.urgency || n.urgency === f.urgency) &&
      (!f.area || n.area === f.area) &&
      (!f.pod || (f.pod === "home" ? n.pod === home : n.pod !== home)),
  );
}

// --- the list ---------------------------------------------------------------------------

const mine = (need) => need.author === state.keys.key || (state.me && need.author === state.me.key);

function privateBlock(details) {
  const rows = [];
  for (const field of ["address", "phone", "notes"]) {
    if (typeof details[field] === "string" && details[field]) {
      rows.push(el("dt", {}, t(`needs.${field}`)), el("dd", {}, details[field]));
    }
  }
  if (!rows.length) return null;
  return el(
    "div",
    { class: "private-details" },
    el("p", { class: "private-heading" }, t("needs.private.seen")),
    el("dl", {}, ...rows),
  );
}

function card(need) {
  const what = categoryWords(need.category);
  const line = mine(need) ? t("need.by.you", { what }) : t("need.by", { who: personName(need.author), what });
  const urgency = URGENCIES.includes(need.urgency) ? need.urgency : "normal";
  const item = el(
    "li",
    { "data-urgency": urgency, "data-id": String(need.id) },
    el("h3", {}, String(need.title)),
    el("p", {}, el("span", { class: "badge" }, t(`urgency.${urgency}`)), " ", line),
  );
  if (need.pod !== state.info.pod) item.append(el("p", { class: "from-pod" }, t("needs.neighbour")));
  if (typeof need.details === "string" && need.details) item.append(el("p", { class: "details" }, need.details));
  const facts = [];
  const window = windowWords(need.window);
  if (window) facts.push(window);
  const estimate = estimateWords(need.minutes_estimate);
  if (estimate) facts.push(estimate);
  if (facts.length) item.append(el("p", { class: "when" }, facts.join(" · ")));
  const meta = [t("need.posted", { when: when(need.ts) })];
  if (typeof need.area === "string" && need.area) meta.unshift(t("need.area", { area: need.area }));
  item.append(el("p", { class: "meta" }, meta.join(" · ")));
  const details = opened.get(need.id);
  if (details && typeof details === "object") {
    const block = privateBlock(details);
    if (block) item.append(block);
  }
  const actions = actionsFor(need);
  if (actions) item.append(actions);
  return item;
}

function render() {
  renderWho();
  const list = shown();
  $("needs-list").replaceChildren(...list.map(card));
  $("needs-empty").hidden = list.length > 0;
  $("needs-empty").textContent = needs.length && !list.length ? t("needs.f.none") : t("need.empty");
  const f = filters();
  const filtering = Object.values(f).some(Boolean);
  $("needs-count").textContent = filtering ? t("needs.f.count", { shown: list.length, total: needs.length }) : "";
}

/** Open the private details of the needs whose details this device may hold (its own, or
 * all of this pod's for a coordinator), once each. */
async function openPrivate() {
  const wanted = needs.filter((n) => n.pod === state.info.pod && !opened.has(n.id) && (mine(n) || isCoordinator()));
  if (!wanted.length) return;
  for (const n of wanted) opened.set(n.id, "pending");
  await Promise.all(
    wanted.map(async (n) => {
      let details = null;
      const event = await getJSON(`/v1/events/${encodeURIComponent(n.id)}`);
      try {
        const body = JSON.parse(event?.envelope?.body ?? "null");
        const text = body?.personal ? open(body.personal, state.keys.box, state.keys.boxKey, PERSONAL_AAD) : null;
        const value = text === null ? null : JSON.parse(text);
        details = value && typeof value === "object" && !Array.isArray(value) ? value : null;
      } catch {
        details = null;
      }
      if (event === null) opened.delete(n.id); // not readable now: try again next time
      else opened.set(n.id, details);
    }),
  );
  render();
}

async function refresh() {
  const read = await getJSON("/v1/needs?status=open&limit=200");
  if (!Array.isArray(read)) return;
  needs = read.filter((n) => n && typeof n === "object" && typeof n.id === "string" && typeof n.title === "string");
  needs.sort((a, b) => Number(b.ts) - Number(a.ts));
  fillFilters();
  render();
  await openPrivate();
}

// --- asking for help --------------------------------------------------------------------

function fail(result, key, input) {
  say(result, false, t(key));
  if (input) {
    const folded = input.closest("details");
    if (folded) folded.open = true; // the field in question is shown, not left folded away
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

async function post(event) {
  event.preventDefault();
  const result = $("post-result");
  const title = $("title").value.trim();
  for (const id of ["title", "needs-hours"]) $(id).removeAttribute("aria-invalid");
  if (!title) {
    fail(result, "post.missing-title", $("title"));
    return;
  }
  const when = readWindow($("needs-from"), $("needs-until"));
  if (when.error) {
    fail(result, when.error, when.input);
    return;
  }
  let minutes = null;
  const hoursInput = $("needs-hours");
  if (hoursInput.value || hoursInput.validity.badInput) {
    const hours = Number(hoursInput.value);
    minutes = Math.round(hours * 60);
    if (!Number.isFinite(hours) || minutes < 1 || minutes > 10080) {
      fail(result, "needs.bad.hours", hoursInput);
      return;
    }
  }
  const body = { title, category: $("category").value, urgency: $("urgency").value };
  const details = $("needs-details").value.trim();
  if (details) body.details = details;
  const area = $("needs-area").value.trim();
  if (area) body.area = area;
  if (when.window) body.window = when.window;
  if (minutes !== null) body.minutes_estimate = minutes;
  const personal = {};
  for (const field of ["address", "phone", "notes"]) {
    const value = $(`needs-${field}`).value.trim();
    if (value) personal[field] = value;
  }
  if (Object.keys(personal).length) {
    try {
      body.personal = seal(JSON.stringify(personal), recipients(), PERSONAL_AAD);
    } catch {
      fail(result, "needs.bad.seal", null);
      return;
    }
  }
  const button = $("post-button");
  button.disabled = true;
  say(result, true, t("post.sending"));
  try {
    const outcome = await publish("need.posted", body);
    if (outcome.changed) {
      say(result, true, body.personal ? `${t("post.done")} ${t("needs.done.private")}` : t("post.done"));
      for (const id of ["title", "needs-details", "needs-area", "needs-from", "needs-until", "needs-hours", "needs-address", "needs-phone", "needs-notes"]) {
        $(id).value = "";
      }
    } else {
      say(result, false, outcome.text);
      // Sealed to someone who just left or stopped coordinating: read the roster again, so
      // that posting once more seals to the people the pod has now.
      if (body.personal) await loadPeople().then(renderWho, () => {});
    }
  } finally {
    button.disabled = false;
  }
}

export const view = {
  id: "needs",
  kinds: ["need.*", "claim.*", "fulfilment.*", "event.redacted"],
  mount() {
    $("post-form").addEventListener("submit", post);
    fillFilters();
    $("needs-filters").addEventListener("change", keepFilters);
    $("needs-filters").addEventListener("submit", (e) => e.preventDefault());
    $("needs-f-clear").addEventListener("click", () => {
      for (const id of ["needs-f-category", "needs-f-urgency", "needs-f-area", "needs-f-pod"]) $(id).value = "";
      keepFilters();
    });
  },
  render() {
    fillSelect($("category"), CATEGORIES, (c) => capitalise(t(`cat.${c}`)));
    fillSelect($("urgency"), URGENCIES, (u) => t(`urgency.${u}`), "normal");
    if (state.keys) {
      fillFilters();
      render();
    }
  },
  refresh: debounce(refresh),
};
