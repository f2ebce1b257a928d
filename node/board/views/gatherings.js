// Gatherings on the Calendar tab: upcoming circles, distributions and meetings, who is
// coming, answering yes / maybe / no, planning one, and calling off one's own.
//
// Counts are the node's read model (GET /v1/gatherings: each person's latest answer).
// The names of who is coming, and this person's own answer, come from the answers
// (`gathering.rsvp`, pod scope) the stream brings, each person's latest by time — the rule
// the read model counts by (docs/gatherings.md); names are shown only when they agree with
// the node's count.
import { lang, t } from "../i18n.js";
import { $, el, fillSelect, getJSON, onEvents, personName, personOf, publish, say, state } from "../core.js";
import { MAX_RECIPIENTS, fieldAad, open as openSealed, seal } from "../seal.js";
import { effectWords } from "./decide.js";
import { fromInput, inputValue, windowWords } from "./time-words.js";

export const KINDS = ["healing_circle", "peer_support", "skill_share", "food_distribution", "meeting", "other"];
const ANSWERS = ["yes", "maybe", "no"];

/** gathering id → person → {answer, ts, id}: each person's latest answer. */
const answers = new Map();
const outcomes = new Map();

function collect(head, body) {
  if (!body || typeof body.gathering !== "string" || !ANSWERS.includes(body.answer)) return;
  if (typeof head.ts !== "number") return;
  const person = personOf(head.author);
  const of = answers.get(body.gathering) ?? new Map();
  const last = of.get(person);
  // The stream gives heads without their ids: two answers of one person in the same
  // millisecond (from two devices) keep the one that arrived last.
  if (!last || last.ts <= head.ts) of.set(person, { answer: body.answer, ts: head.ts });
  answers.set(body.gathering, of);
}

const mine = (key) => key === state.keys?.key || (state.me && key === state.me.key);

function myAnswer(id) {
  const me = state.me?.key ?? state.keys?.key;
  return answers.get(id)?.get(me)?.answer ?? null;
}

function list(items) {
  try {
    return new Intl.ListFormat(lang(), { type: "conjunction" }).format(items);
  } catch {
    return items.join(", ");
  }
}

export const kindWords = (kind) => t(`calendar.kind.${KINDS.includes(kind) ? kind : "other"}`);

const PLACE_AAD = fieldAad("gathering.scheduled", "place_sealed");
/** Sealed places opened here, by gathering id (opening is the slow part of drawing). */
const opened = new Map();

/** A sealed place opened with this device's box key: its text, or null (not sealed to us). */
function openPlace(g) {
  if (!opened.has(g.id)) {
    let place = null;
    const text = state.keys ? openSealed(g.place_sealed, state.keys.box, state.keys.boxKey, PLACE_AAD) : null;
    try {
      const value = text === null ? null : JSON.parse(text);
      if (value && typeof value.place === "string" && value.place) place = value.place;
    } catch {
      place = null;
    }
    opened.set(g.id, place);
  }
  return opened.get(g.id);
}

export function placeWords(g) {
  if (typeof g.place === "string" && g.place) return g.place;
  if (g.place_sealed) {
    const place = openPlace(g);
    return place === null ? t("calendar.place.sealed") : t("calendar.place.private", { place });
  }
  return t("calendar.place.none");
}

function comingWords(g) {
  const yes = Number(g.rsvps?.yes) || 0;
  const maybe = Number(g.rsvps?.maybe) || 0;
  const people = [...(answers.get(g.id) ?? new Map()).entries()]
    .filter(([, a]) => a.answer === "yes")
    .map(([person]) => person);
  // You first, then the others by name; only when the names agree with the node's count.
  people.sort((a, b) => Number(mine(b)) - Number(mine(a)) || personName(a).localeCompare(personName(b), lang()));
  let text = yes === 0 ? t("calendar.coming.none") : t(yes === 1 ? "calendar.coming.one" : "calendar.coming.many", { n: yes });
  const named = people.map((p) => (mine(p) ? t("calendar.coming.you") : personName(p)));
  if (yes > 0 && people.length === yes) text += `: ${list(named)}`;
  if (maybe) text += ` · ${t(maybe === 1 ? "calendar.maybe.one" : "calendar.maybe.many", { n: maybe })}`;
  return text;
}

function card(g) {
  const item = el(
    "li",
    { "data-id": g.id, "data-status": g.status },
    el("h3", {}, g.title),
    el("p", {}, el("span", { class: "badge" }, kindWords(g.kind)), " ", windowWords(g.window.start, g.window.end)),
  );
  const facts = [t("calendar.place", { place: placeWords(g) })];
  if (Number.isInteger(g.capacity)) {
    facts.push(t(g.full ? "calendar.capacity.full" : "calendar.capacity", { n: g.capacity }));
  }
  facts.push(mine(g.organiser) ? t("calendar.organiser.you") : t("calendar.organiser", { who: personName(g.organiser) }));
  item.append(el("p", { class: "meta" }, facts.join(" · ")));
  if (typeof g.details === "string" && g.details) item.append(el("p", {}, g.details));
  item.append(el("p", { class: "coming" }, comingWords(g)));
  const line = el("p", { class: "result", role: "status", "aria-live": "polite" });
  if (g.status === "cancelled") {
    const why = typeof g.cancel_reason === "string" && g.cancel_reason ? g.cancel_reason : null;
    item.append(el("p", { class: "summary outcome" }, why ? t("calendar.cancelled.why", { why }) : t("calendar.cancelled")));
  } else {
    const current = myAnswer(g.id);
    const group = el("div", { class: "answers", role: "group", "aria-label": t("calendar.answer.label", { title: g.title }) });
    for (const answer of ANSWERS) {
      const button = el(
        "button",
        { type: "button", class: current === answer ? null : "secondary", "aria-pressed": String(current === answer), "data-answer": answer },
        t(`calendar.answer.${answer}`),
      );
      button.addEventListener("click", () => rsvp(g, answer, group, line));
      group.append(button);
    }
    item.append(group);
    if (mine(g.organiser)) item.append(cancelForm(g, line));
  }
  const kept = outcomes.get(g.id);
  if (kept) say(line, kept.ok, kept.words());
  item.append(line);
  return item;
}

function cancelForm(g, line) {
  const id = `cancel-${g.id}`;
  const reason = el("input", { id, maxlength: "200", autocomplete: "off" });
  const button = el("button", { type: "button", class: "danger" }, t("calendar.cancel.confirm"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    say(line, true, t("calendar.sending"));
    const body = { gathering: g.id };
    if (reason.value.trim()) body.reason = reason.value.trim();
    const outcome = await publish("gathering.cancelled", body, g.scope === "public" ? "public" : "pod");
    finish(g, line, outcome, () => t("calendar.cancel.done"));
    button.disabled = false;
  });
  return el(
    "details",
    { class: "cancel" },
    el("summary", {}, t("calendar.cancel")),
    el("p", {}, el("label", { for: id }, t("calendar.cancel.reason")), reason),
    el("p", {}, button),
  );
}

/** `done()` says the success in the current language (kept, so a language switch redraws it). */
function finish(g, line, outcome, done) {
  const words = outcome.changed
    ? done
    : outcome.ok
      ? () => t("calendar.stored", { reason: effectWords("calendar", outcome.effect) })
      : () => outcome.text;
  outcomes.set(g.id, { ok: outcome.changed, words });
  say(line, outcome.changed, words());
  refreshNow?.();
}

async function rsvp(g, answer, group, line) {
  for (const b of group.querySelectorAll("button")) b.disabled = true;
  say(line, true, t("calendar.sending"));
  const outcome = await publish("gathering.rsvp", { gathering: g.id, answer });
  for (const b of group.querySelectorAll("button")) b.disabled = false;
  finish(g, line, outcome, () => t(`calendar.answer.done.${answer}`, { title: g.title }));
}

let refreshNow = null;

/** Draw the gatherings (already read and checked by the calendar view). */
export function renderGatherings(gatherings) {
  $("gatherings-list").replaceChildren(...gatherings.map(card));
  $("gatherings-empty").hidden = gatherings.length > 0;
}

// --- planning one -----------------------------------------------------------------------

async function schedule(event) {
  event.preventDefault();
  const result = $("gather-result");
  for (const f of $("gather-form").querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
  const refuse = (field, key) => {
    say(result, false, t(key));
    field.setAttribute("aria-invalid", "true");
    field.focus();
  };
  const title = $("gather-title").value.trim();
  if (!title) return refuse($("gather-title"), "calendar.new.missing-title");
  const start = fromInput($("gather-start").value);
  if (start === null) return refuse($("gather-start"), "calendar.new.missing-start");
  const end = fromInput($("gather-end").value);
  if (end === null) return refuse($("gather-end"), "calendar.new.missing-end");
  if (end <= start) return refuse($("gather-end"), "calendar.new.end-before-start");
  const body = { title, kind: $("gather-kind").value, window: { start, end } };
  const place = $("gather-place").value.trim();
  if (place && $("gather-private").checked) {
    // Sealed to every active member's box key (GET /v1/pods/{pod}/keys), as the node requires.
    const keys = await getJSON(`/v1/pods/${encodeURIComponent(state.info.pod)}/keys`);
    const members = [...new Set(Object.values(keys?.members ?? {}).filter((k) => typeof k === "string"))].sort();
    if (!members.length) return refuse($("gather-private"), "calendar.new.no-keys");
    if (members.length > MAX_RECIPIENTS) return refuse($("gather-private"), "calendar.new.too-many");
    try {
      body.place_sealed = seal(JSON.stringify({ place }), members, PLACE_AAD);
    } catch {
      return refuse($("gather-private"), "calendar.new.no-keys");
    }
  } else if (place) {
    body.place = place;
  }
  const capacityText = $("gather-capacity").value.trim();
  if (capacityText) {
    const capacity = Number(capacityText);
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 10000) return refuse($("gather-capacity"), "calendar.new.bad-capacity");
    body.capacity = capacity;
  }
  const details = $("gather-details").value.trim();
  if (details) body.details = details;
  const button = $("gather-button");
  button.disabled = true;
  say(result, true, t("calendar.sending"));
  try {
    const outcome = await publish("gathering.scheduled", body);
    if (outcome.changed) {
      say(result, true, t("calendar.new.done", { title }));
      $("gather-private").checked = false;
      for (const id of ["gather-title", "gather-start", "gather-end", "gather-place", "gather-capacity", "gather-details"]) $(id).value = "";
    } else {
      say(result, false, outcome.ok ? effectWords("calendar", outcome.effect) : outcome.text);
    }
  } finally {
    button.disabled = false;
  }
}

export function mountGatherings(refresh) {
  refreshNow = refresh;
  onEvents(["gathering.rsvp"], collect);
  $("gather-form").addEventListener("submit", schedule);
  $("gather-start").addEventListener("change", () => {
    const start = fromInput($("gather-start").value);
    const end = fromInput($("gather-end").value);
    if (start !== null && (end === null || end <= start)) {
      $("gather-end").value = inputValue(start + 2 * 3_600_000);
    }
  });
}

export function renderGatheringForm() {
  fillSelect($("gather-kind"), KINDS, kindWords, "healing_circle");
}
