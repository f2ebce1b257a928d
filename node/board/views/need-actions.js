// What a member can do with a need: offer help (claim.made), take the offer back
// (claim.withdrawn), accept a helper (claim.accepted), mark it done and log the hours
// (fulfilment.recorded, then hours.logged). Used by the needs list and the Hours tab.
//
// The lists are redrawn whenever the stream brings news, so each need's outcome line is kept
// here (by need id) and drawn again; when the need has left the list (an accepted need is no
// longer open) the outcome goes to the view's notice line instead.
import { has, t } from "../i18n.js";
import { $, el, getJSON, personName, personOf, publish, say, state } from "../core.js";
import { MAX_RECIPIENTS, fieldAad, open as openSealed, seal } from "../seal.js";

/** need id → the last outcome {ok, text}, kept across redraws. */
const outcomes = new Map();
/** need id → the outcome lines drawn for it (some may be gone from the page). */
const lines = new Map();
/** notice line → the outcome it shows, said again when the lists are redrawn (a new language). */
const notices = new Map();
/** Needs whose hours someone has logged (from the Hours view's read of the ledger). */
let logged = new Set();

/** The Hours view says which needs have hours logged: those get no "Log the hours". */
export function setLoggedNeeds(ids) {
  logged = new Set(ids);
}

/** This device's person (its member key), or its own key until the roster is read. */
export const myself = () => state.me?.key ?? state.keys?.key;
export const isMine = (key) => typeof key === "string" && personOf(key) === myself();

/** Minutes in words: "3 h 30 min", "45 min", "2 h". */
export function hm(minutes) {
  const total = Math.abs(Math.round(Number(minutes) || 0));
  const h = Math.floor(total / 60);
  const m = total % 60;
  if (h && m) return t("hours.hm", { h, m });
  return h ? t("hours.h", { h }) : t("hours.m", { m });
}

/** What an outcome of `publish` says when it did not change anything: the effect's reason in
 * words ("Nothing changed: these hours were already confirmed."), else the node's reason. */
export function refusalWords(outcome) {
  const reason = String(outcome?.effect?.reason ?? "");
  if (outcome?.ok && reason.startsWith("effect:")) {
    const key = `hours.effect.${reason.slice("effect:".length)}`;
    if (has(key)) return t("hours.nothing", { reason: t(key) });
  }
  return outcome?.text || t("reason.other", { message: reason });
}

/** The notice line of `view` (the Hours tab has one; the needs view gets one above its list). */
function noticeFor(view) {
  if (view?.id === "view-hours") return $("hours-notice");
  let notice = $("need-actions-result");
  const list = $("needs-list");
  if (!notice && list) {
    notice = el("p", { id: "need-actions-result", class: "result", role: "status", "aria-live": "polite" });
    list.before(notice);
  }
  return notice;
}

/** An outcome's words, now (in the language and with the names of the moment). */
const words = (outcome) => (typeof outcome.text === "function" ? outcome.text() : String(outcome.text ?? ""));

/** Show `outcome` on every line drawn for `needId`, or on the view's notice line when there is
 * none (or when the action moves the need off this list: `away`). */
function show(needId, outcome, view, away = false) {
  if (away) outcomes.delete(needId);
  else outcomes.set(needId, outcome);
  const drawn = [...(lines.get(needId) ?? [])].filter((line) => line.isConnected);
  lines.set(needId, new Set(drawn));
  for (const line of drawn) say(line, outcome.ok, away ? "" : words(outcome));
  if (away || !drawn.length) {
    const notice = noticeFor(view);
    if (notice) {
      say(notice, outcome.ok, words(outcome));
      notices.set(notice, outcome);
    }
  }
}

/** Run `work` (answering {ok, text}) for `need`, saying "Sending…" first. The outcome stays
 * shown while the need's status is the one it had, or one of `then` (where the action takes
 * it); `away`: when it goes well the need leaves an open-needs list, so say it on the notice. */
async function act(need, box, work, { then = [], away = false } = {}) {
  const view = box.closest(".view");
  const statuses = [need.status, ...then];
  for (const button of box.querySelectorAll("button")) button.disabled = true;
  show(need.id, { ok: true, text: () => t("hours.sending"), statuses }, view);
  let outcome;
  try {
    outcome = await work();
  } catch {
    outcome = { ok: false, text: () => t("reason.network") };
  }
  show(need.id, { ...outcome, statuses }, view, away && outcome.ok && view?.id === "view-needs");
  for (const button of box.querySelectorAll("button")) button.disabled = false;
}

/** A publish outcome that changed nothing, as an outcome to show. */
const refused = (outcome) => ({ ok: false, text: () => refusalWords(outcome) });

// --- the helpers' notes (claim.made's `note`, not in the needs read model: read by id) -----

const notes = new Map(); // claim id → its note ("" when none)
const noteSpans = new Map(); // claim id → the spans drawn while it was being read
const wanted = new Set();
let noteTimer = null;

function sayNote(span, note) {
  span.textContent = note ? t("hours.claim.said", { note }) : "";
  span.hidden = !note;
}

/** A span with claim `id`'s note, filled in once read (one request for all that are new). */
function noteFor(id) {
  const span = el("span", { class: "note", hidden: true });
  if (notes.has(id)) {
    sayNote(span, notes.get(id));
    return span;
  }
  if (!noteSpans.has(id)) noteSpans.set(id, []);
  noteSpans.get(id).push(span);
  wanted.add(id);
  noteTimer ??= setTimeout(readNotes, 0);
  return span;
}

async function readNotes() {
  noteTimer = null;
  const ids = [...wanted].slice(0, 50);
  for (const id of ids) wanted.delete(id);
  if (wanted.size) noteTimer = setTimeout(readNotes, 0);
  const page = await getJSON(`/v1/events?ids=${ids.map(encodeURIComponent).join(",")}`);
  if (!page) return; // read again at the next redraw
  for (const id of ids) notes.set(id, "");
  for (const event of Array.isArray(page.events) ? page.events : []) {
    try {
      const body = JSON.parse(event.envelope.body);
      if (typeof body?.note === "string") notes.set(String(event.id), body.note.slice(0, 200));
    } catch {
      // a malformed event has no note to show
    }
  }
  for (const id of ids) {
    for (const span of noteSpans.get(id) ?? []) sayNote(span, notes.get(id));
    noteSpans.delete(id);
  }
}

function button(text, attrs, onClick) {
  const node = el("button", { type: "button", ...attrs }, text);
  node.addEventListener("click", onClick);
  return node;
}

/** Two fields, hours and minutes, for the time a need took; `value()` answers whole minutes. */
function timeFields(needId, minutes) {
  const start = Math.min(Math.max(Number(minutes) || 60, 1), 24 * 60);
  const id = `na-${needId}`;
  const hours = el("input", { id: `${id}-h`, type: "number", min: 0, max: 24, step: 1, inputmode: "numeric", value: Math.floor(start / 60) });
  const mins = el("input", { id: `${id}-m`, type: "number", min: 0, max: 59, step: 5, inputmode: "numeric", value: start % 60 });
  const fieldset = el(
    "fieldset",
    { class: "time" },
    el("legend", {}, t("hours.time.legend")),
    el("p", {}, el("label", { for: hours.id }, t("hours.time.hours")), hours),
    el("p", {}, el("label", { for: mins.id }, t("hours.time.minutes")), mins),
  );
  const value = () => Math.round(Number(hours.value || 0)) * 60 + Math.round(Number(mins.value || 0));
  return { fieldset, value };
}

function badTime(minutes) {
  return !Number.isFinite(minutes) || minutes < 1 || minutes > 24 * 60;
}

/** Log `minutes` for the accepted help on `need`: the helper gave, the need's author received. */
async function logHours(need, minutes) {
  const body = { giver: personOf(need.helper), receiver: personOf(need.author), minutes, need: need.id };
  const outcome = await publish("hours.logged", body);
  const other = isMine(need.author) ? need.helper : need.author;
  if (!outcome.changed) return refused(outcome);
  return { ok: true, text: () => t("hours.log.done", { time: hm(minutes), who: personName(other) }) };
}

function claimForm(need, box) {
  const note = el("input", { id: `na-${need.id}-note`, maxlength: 200, autocomplete: "off" });
  const send = button(t("hours.claim.send"), { "data-action": "claim" }, () =>
    act(need, box, async () => {
      const body = { need: need.id };
      if (note.value.trim()) body.note = note.value.trim();
      const outcome = await publish("claim.made", body);
      if (!outcome.changed) return refused(outcome);
      return { ok: true, text: () => t("hours.claim.done", { who: personName(need.author) }) };
    }),
  );
  return el(
    "details",
    { class: "claim" },
    el("summary", {}, t("hours.claim.open")),
    el("p", {}, el("label", { for: note.id }, t("hours.claim.note")), note),
    el("p", {}, send),
  );
}

function withdrawButton(need, claim, box) {
  return button(t("hours.withdraw"), { "data-action": "withdraw", class: "secondary" }, () =>
    act(need, box, async () => {
      const outcome = await publish("claim.withdrawn", { claim: claim.id });
      if (!outcome.changed) return refused(outcome);
      return { ok: true, text: () => t("hours.withdraw.done", { who: personName(need.author) }) };
    }, { then: ["open"] }),
  );
}

function doneForm(need, box, record) {
  const time = timeFields(need.id, need.fulfilment?.minutes ?? need.minutes_estimate);
  const label = record ? t("hours.done.submit") : t("hours.log.submit");
  const submit = button(label, { "data-action": record ? "done" : "log" }, () =>
    act(need, box, async () => {
      const minutes = time.value();
      if (badTime(minutes)) return { ok: false, text: () => t("hours.time.bad") };
      if (record) {
        const body = { need: need.id, minutes };
        if (typeof need.accepted_claim === "string") body.claim = need.accepted_claim;
        const done = await publish("fulfilment.recorded", body);
        if (!done.changed) return refused(done);
        const hours = await logHours(need, minutes);
        if (!hours.ok) return { ok: false, text: () => t("hours.done.no-hours", { reason: words(hours) }) };
        const other = isMine(need.author) ? need.helper : need.author;
        return { ok: true, text: () => t("hours.done.done", { time: hm(minutes), who: personName(other) }) };
      }
      return logHours(need, minutes);
    }, { then: ["fulfilled"] }),
  );
  return el("div", { class: "done" }, time.fieldset, el("p", {}, submit));
}

// --- what each person can do, by the need's status and who they are to it ----------------

// --- the need's private details, re-sealed to the helper on accepting ------------------

/** The need's sealed `personal` details, opened on this device and sealed again to the
 * accepted helper and the pod's coordinators (docs/protocol.md §14: `claim.accepted.personal`).
 * Answers `{personal}` (null when the need has none), or `{personal: null, missing}` when they
 * cannot be passed on from here: this device cannot open them, or the helper has no box key. */
async function resealed(need, helper) {
  const page = await getJSON(`/v1/events?ids=${encodeURIComponent(need.id)}`);
  let body = null;
  try {
    body = JSON.parse(page?.events?.[0]?.envelope?.body ?? "null");
  } catch {
    body = null;
  }
  if (!body?.personal) return { personal: null };
  const plain = openSealed(body.personal, state.keys.box, state.keys.boxKey, fieldAad("need.posted", "personal"));
  if (plain === null) return { personal: null, missing: true };
  const keys = await getJSON(`/v1/pods/${encodeURIComponent(state.info.pod)}/keys`);
  const helperBox = keys?.members?.[personOf(helper)];
  if (typeof helperBox !== "string") return { personal: null, missing: true };
  const coordinators = Array.isArray(keys.coordinators) ? keys.coordinators.filter((k) => typeof k === "string") : [];
  const recipients = [...new Set([helperBox, ...coordinators])].slice(0, MAX_RECIPIENTS);
  return { personal: seal(plain, recipients, fieldAad("claim.accepted", "personal")) };
}

function acceptList(need, claims, box) {
  const pending = claims.filter((c) => c.status === "pending");
  if (!pending.length) return [];
  const accept = (claim) =>
    button(t("hours.accept"), { "data-action": "accept" }, () =>
      act(need, box, async () => {
        const { personal, missing } = await resealed(need, claim.person);
        const body = { claim: claim.id, need: need.id };
        if (personal) body.personal = personal;
        const outcome = await publish("claim.accepted", body);
        if (!outcome.changed) return refused(outcome);
        const done = personal ? "hours.accept.done.private" : missing ? "hours.accept.done.no-private" : "hours.accept.done";
        return { ok: true, text: () => t(done, { who: personName(claim.person) }) };
      }, { then: ["claimed"], away: true }),
    );
  const item = (claim) =>
    el("li", {}, el("span", {}, t("hours.can-help", { who: personName(claim.person) })), noteFor(claim.id), accept(claim));
  return [el("ul", { class: "claims" }, ...pending.map(item))];
}

function offerOrWait(need, claims, box) {
  const mine = claims.find((c) => c.status === "pending" && isMine(c.person));
  if (!mine) return [claimForm(need, box)];
  return [
    el("p", {}, t("hours.claimed.waiting", { who: personName(need.author) })),
    el("p", {}, withdrawButton(need, mine, box)),
  ];
}

function helpingAuthor(need, _claims, box) {
  return [el("p", {}, t("hours.helping.you", { who: personName(need.helper) })), doneForm(need, box, true)];
}

function helpingHelper(need, claims, box) {
  const accepted = claims.find((c) => c.id === need.accepted_claim);
  return [
    el("p", {}, t("hours.helping.them", { who: personName(need.author) })),
    doneForm(need, box, true),
    accepted ? el("p", {}, withdrawButton(need, accepted, box)) : null,
  ];
}

function logPrompt(need, _claims, box) {
  if (!need.helper || logged.has(need.id)) return [];
  const other = isMine(need.author) ? need.helper : need.author;
  return [el("p", {}, t("hours.log.prompt", { who: personName(other) })), doneForm(need, box, false)];
}

/** status → who this member is to the need → the controls it gets (none when missing). */
const CONTROLS = {
  open: { author: acceptList, other: offerOrWait },
  claimed: { author: helpingAuthor, helper: helpingHelper },
  fulfilled: { author: logPrompt, helper: logPrompt },
};

function relation(need) {
  if (isMine(need.author)) return "author";
  return isMine(need.helper) ? "helper" : "other";
}

/** The controls for `need` on a list, or `null` when this member can do nothing with it. */
export function actionsFor(need) {
  for (const [notice, outcome] of notices) if (notice.isConnected) say(notice, outcome.ok, words(outcome));
  if (!need || typeof need !== "object" || typeof need.id !== "string") return null;
  if (!state.member || !state.keys || need.pod !== state.info?.pod) return null; // another pod's need: its pod acts on it
  const claims = (Array.isArray(need.claims) ? need.claims : []).filter(
    (c) => c && typeof c.id === "string" && typeof c.person === "string",
  );
  const box = el("div", { class: "need-actions" });
  const controls = (CONTROLS[need.status]?.[relation(need)]?.(need, claims, box) ?? []).filter(Boolean);
  const shown = outcomes.get(need.id);
  const showing = Boolean(shown?.statuses?.includes(need.status));
  if (!controls.length && !showing) return null;
  box.append(...controls);
  const line = el("p", { class: "result", role: "status", "aria-live": "polite" });
  if (showing) say(line, shown.ok, words(shown));
  if (!lines.has(need.id)) lines.set(need.id, new Set());
  lines.get(need.id).add(line);
  box.append(line);
  return box;
}
