// Offers of help: what people in the pod (and neighbouring pods) can do, offering, withdrawing.
import { has, t } from "../i18n.js";
import {
  $, CATEGORIES, capitalise, debounce, el, fillSelect, getJSON, personName, publish, say,
  state, when,
} from "../core.js";
import { readWindow, windowWords } from "./needs.js";

const MAX_WINDOWS = 16;
let offers = [];
let windowCount = 0;

const mine = (offer) => offer.author === state.keys.key || (state.me && offer.author === state.me.key);

function canWords(category) {
  const c = CATEGORIES.includes(category) ? category : "other";
  return t(has(`offers.can.${c}`) ? `offers.can.${c}` : "offers.can.other");
}

/** "Bea can drive people, Tomorrow, 18:00–20:00" — who, what, and when, in words. */
function offerLine(offer) {
  const what = canWords(offer.category);
  const times = (Array.isArray(offer.windows) ? offer.windows : []).map(windowWords).filter(Boolean);
  const vars = { who: personName(offer.author), what, when: times.join("; ") };
  const who = mine(offer) ? "you" : "other";
  return t(times.length ? `offers.line.${who}` : `offers.line.${who}.anytime`, vars);
}

async function withdraw(offer, button) {
  const line = $("offers-list-result");
  button.disabled = true;
  say(line, true, t("post.sending"));
  const outcome = await publish("offer.withdrawn", { offer: offer.id });
  button.disabled = false;
  if (outcome.changed) say(line, true, t("offers.withdrawn", { title: String(offer.title) }));
  else say(line, false, outcome.text);
}

function card(offer) {
  const item = el(
    "li",
    { "data-id": String(offer.id) },
    el("h3", {}, String(offer.title)),
    el("p", { class: "offer-line" }, offerLine(offer)),
  );
  if (offer.pod !== state.info.pod) item.append(el("p", { class: "from-pod" }, t("offers.neighbour")));
  if (typeof offer.details === "string" && offer.details) item.append(el("p", { class: "details" }, offer.details));
  const meta = [];
  const capacity = Number(offer.capacity);
  if (Number.isInteger(capacity) && capacity > 1) meta.push(t("offers.capacity.many", { n: capacity }));
  if (typeof offer.area === "string" && offer.area) meta.push(t("need.area", { area: offer.area }));
  meta.push(t("offers.posted", { when: when(offer.ts) }));
  item.append(el("p", { class: "meta" }, meta.join(" · ")));
  if (mine(offer) && offer.pod === state.info.pod) {
    const button = el("button", { type: "button", class: "quiet", "aria-label": t("offers.withdraw.label", { title: String(offer.title) }) }, t("offers.withdraw"));
    button.addEventListener("click", () => withdraw(offer, button));
    item.append(el("p", {}, button));
  }
  return item;
}

function render() {
  $("offers-list").replaceChildren(...offers.map(card));
  $("offers-empty").hidden = offers.length > 0;
}

async function refresh() {
  const read = await getJSON("/v1/offers?limit=200");
  if (!Array.isArray(read)) return;
  offers = read.filter(
    (o) => o && typeof o === "object" && typeof o.id === "string" && typeof o.title === "string" && o.status === "open",
  );
  offers.sort((a, b) => Number(b.ts) - Number(a.ts));
  render();
}

// --- the form ---------------------------------------------------------------------------

function addWindow() {
  if (windowCount >= MAX_WINDOWS) return;
  windowCount += 1;
  const n = windowCount;
  const row = el(
    "div",
    { class: "window-row", "data-window": String(n) },
    el("p", {}, el("label", { for: `offers-from-${n}` }, t("offers.post.from", { n })), el("input", { id: `offers-from-${n}`, type: "datetime-local" })),
    el("p", {}, el("label", { for: `offers-until-${n}` }, t("offers.post.until", { n })), el("input", { id: `offers-until-${n}`, type: "datetime-local" })),
  );
  $("offers-windows").append(row);
  $("offers-add-window").hidden = windowCount >= MAX_WINDOWS;
  return row;
}

function relabelWindows() {
  for (let n = 1; n <= windowCount; n += 1) {
    const from = document.querySelector(`label[for="offers-from-${n}"]`);
    const until = document.querySelector(`label[for="offers-until-${n}"]`);
    if (from) from.textContent = t("offers.post.from", { n });
    if (until) until.textContent = t("offers.post.until", { n });
  }
}

function fail(result, key, input) {
  say(result, false, t(key));
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

async function post(event) {
  event.preventDefault();
  const result = $("offers-result");
  const title = $("offers-title").value.trim();
  for (const id of ["offers-title", "offers-capacity"]) $(id).removeAttribute("aria-invalid");
  if (!title) {
    fail(result, "offers.bad.title", $("offers-title"));
    return;
  }
  const windows = [];
  for (let n = 1; n <= windowCount; n += 1) {
    const read = readWindow($(`offers-from-${n}`), $(`offers-until-${n}`));
    if (read.error) {
      fail(result, read.error, read.input);
      return;
    }
    if (read.window) windows.push(read.window);
  }
  const capacityInput = $("offers-capacity");
  const capacity = capacityInput.value === "" && !capacityInput.validity.badInput ? 1 : Number(capacityInput.value);
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 100) {
    fail(result, "offers.bad.capacity", capacityInput);
    return;
  }
  const body = { title, category: $("offers-category").value, windows, capacity };
  const details = $("offers-details").value.trim();
  if (details) body.details = details;
  const area = $("offers-area").value.trim();
  if (area) body.area = area;
  const button = $("offers-button");
  button.disabled = true;
  say(result, true, t("post.sending"));
  try {
    const outcome = await publish("offer.posted", body);
    if (outcome.changed) {
      say(result, true, t("offers.done"));
      for (const id of ["offers-title", "offers-details", "offers-area"]) $(id).value = "";
      $("offers-capacity").value = "1";
      $("offers-windows").replaceChildren();
      windowCount = 0;
      addWindow();
    } else {
      say(result, false, outcome.text);
    }
  } finally {
    button.disabled = false;
  }
}

export const view = {
  id: "offers",
  kinds: ["offer.*", "event.redacted"],
  mount() {
    addWindow();
    $("offers-add-window").addEventListener("click", () => addWindow()?.querySelector("input")?.focus());
    $("offers-form").addEventListener("submit", post);
  },
  render() {
    fillSelect($("offers-category"), CATEGORIES, (c) => capitalise(t(`cat.${c}`)));
    relabelWindows();
    if (state.keys && state.info) render();
  },
  refresh: debounce(refresh),
};
