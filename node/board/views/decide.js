// Deciding together: open questions with their choices and tally, voting (the last vote
// counts), asking the pod a question, and what was decided.
//
// The tally, who may vote and whether a vote counted are the node's read model
// (GET /v1/proposals, docs/proposals.md): one count per person, never per key. This view
// only shows it; a vote's effect (counted, changed, or why not) is the node's answer.
import { has, lang, t } from "../i18n.js";
import { $, debounce, el, getJSON, nowMs, personName, publish, say, state } from "../core.js";
import { atWords, fromInput, inputValue } from "./time-words.js";

const MIN_OPTIONS = 2;
const MAX_OPTIONS = 10;
/** How many decided questions are shown (the latest first, as the node lists them). */
const DECIDED_SHOWN = 20;
let proposals = [];
let closing = null;
/** How long after a question's closing time the board reads it again. */
const CLOSE_GRACE_MS = 10_000;
/** Outcome lines of votes, by proposal id, kept across re-renders. */
const outcomes = new Map();

const isMe = (key) => key === state.keys?.key || (state.me !== null && key === state.me.key);
const str = (v) => (typeof v === "string" ? v : "");
const count = (v) => (Number.isInteger(v) && v >= 0 ? v : 0);

function list(items) {
  try {
    return new Intl.ListFormat(lang(), { type: "conjunction" }).format(items);
  } catch {
    return items.join(", ");
  }
}

/** A node's "no effect" reason for a vote (effect:proposal-closed …) in words. */
export function effectWords(prefix, effect) {
  const what = str(effect?.reason).replace(/^effect:/, "");
  const key = `${prefix}.effect.${what}`;
  return has(key) ? t(key) : t(`${prefix}.effect.other`, { message: str(effect?.message) || what });
}

function votesWords(n) {
  return t(n === 1 ? "decide.votes.one" : "decide.votes.many", { n });
}

function outcomeWords(p) {
  const options = p.options;
  const leading = (Array.isArray(p.leading) ? p.leading : []).filter((i) => Number.isInteger(i) && i < options.length);
  if (!count(p.voters) || !leading.length) return t("decide.outcome.none");
  const names = leading.map((i) => `“${options[i]}”`);
  if (names.length === 1) {
    return t("decide.outcome.chosen", { choice: names[0], votes: votesWords(count(p.tally[leading[0]])), voters: count(p.voters) });
  }
  return t("decide.outcome.tie", { choices: list(names), votes: votesWords(count(p.tally[leading[0]])) });
}

function choiceRow(p, i, open) {
  const option = p.options[i];
  const votes = count(p.tally[i]);
  const mine = p.your_choice === i;
  const share = count(p.voters) ? Math.round((votes / count(p.voters)) * 100) : 0;
  const row = el(
    "li",
    { "data-option": String(i), "data-mine": String(mine) },
    el("span", { class: "choice" }, option),
    " ",
    el("span", { class: "tally" }, votesWords(votes)),
    mine ? el("span", { class: "badge mine" }, t("decide.your-vote")) : null,
    el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: null, "data-share": String(share) })),
  );
  const fill = row.querySelector(".bar > span");
  fill.style.width = `${share}%`; // a CSSOM property, not an inline style attribute (CSP)
  if (open && !mine) {
    const button = el("button", { type: "button", "aria-label": t("decide.vote.for", { choice: option }) }, t("decide.vote"));
    button.addEventListener("click", () => vote(p, i, button));
    row.append(el("span", { class: "vote" }, button));
  }
  return row;
}

function card(p) {
  const open = p.status === "open";
  const item = el("li", { "data-id": p.id, "data-status": open ? "open" : "closed" }, el("h3", {}, p.title));
  if (p.details) item.append(el("p", {}, p.details));
  const asked = isMe(p.author) ? t("decide.asked-by.you") : t("decide.asked-by", { who: personName(p.author) });
  const closes = open ? t("decide.closes", { when: atWords(p.closes_at) }) : t("decide.closed-at", { when: atWords(p.closes_at) });
  item.append(el("p", { class: "meta" }, `${asked} · ${closes}`));
  item.append(el("ol", { class: "choices tallied" }, ...p.options.map((_, i) => choiceRow(p, i, open))));
  const voters = count(p.voters);
  const summary = [t(voters === 1 ? "decide.voters.one" : "decide.voters.many", { n: voters })];
  if (open) {
    summary.push(p.you_voted ? t("decide.you-voted", { choice: `“${p.options[p.your_choice] ?? ""}”` }) : t("decide.not-voted"));
  } else {
    summary.splice(0, 1, outcomeWords(p));
  }
  item.append(el("p", { class: open ? "summary" : "summary outcome" }, summary.join(" ")));
  if (open) item.append(el("p", { class: "hint" }, t("decide.change-hint")));
  const line = el("p", { class: "result", role: "status", "aria-live": "polite" });
  const kept = outcomes.get(p.id);
  if (kept) say(line, kept.ok, kept.words());
  item.append(line);
  return item;
}

function render() {
  const open = proposals.filter((p) => p.status === "open");
  const closed = proposals.filter((p) => p.status !== "open").slice(0, DECIDED_SHOWN);
  $("proposals-list").replaceChildren(...open.map(card));
  $("proposals-empty").hidden = open.length > 0;
  $("decided-list").replaceChildren(...closed.map(card));
  $("decided-empty").hidden = closed.length > 0;
  for (const [i, row] of [...$("propose-option-list").children].entries()) {
    row.querySelector("label").textContent = t("decide.new.option", { n: i + 1 });
    row.querySelector("button").textContent = t("decide.new.remove");
    row.querySelector("button").setAttribute("aria-label", t("decide.new.remove.label", { n: i + 1 }));
  }
}

/** A proposal from the node, checked: anything malformed is left out, never thrown on. */
function wellFormed(p) {
  if (!p || typeof p !== "object" || typeof p.id !== "string" || p.pod !== state.info.pod) return null;
  const options = Array.isArray(p.options) ? p.options.map(str) : [];
  if (options.length < MIN_OPTIONS) return null;
  return {
    ...p,
    title: str(p.title),
    details: str(p.details),
    options,
    tally: Array.isArray(p.tally) ? p.tally : [],
    closes_at: Number(p.closes_at) || 0,
    your_choice: Number.isInteger(p.your_choice) ? p.your_choice : null,
  };
}

async function refresh() {
  const read = await getJSON("/v1/proposals");
  if (!Array.isArray(read)) return;
  proposals = read.map(wellFormed).filter(Boolean);
  render();
  // A question closes by the clock, not by an event: read again a little after the soonest
  // closes (the node decides "closed" when read), so the screen shows the outcome by itself.
  clearTimeout(closing);
  const soonest = Math.min(...proposals.filter((p) => p.status === "open").map((p) => p.closes_at));
  const wait = soonest - nowMs() + CLOSE_GRACE_MS;
  if (Number.isFinite(wait) && wait < 2 ** 31 - 1) closing = setTimeout(() => view.refresh(), Math.max(wait, 1000));
}

async function vote(p, option, button) {
  const line = button.closest("li[data-id]").querySelector(".result");
  const choice = `“${p.options[option]}”`;
  const before = p.you_voted;
  for (const b of button.closest("ol").querySelectorAll("button")) b.disabled = true;
  say(line, true, t("decide.vote.sending"));
  const outcome = await publish("vote.cast", { proposal: p.id, option });
  // Kept as a function of the language, so switching it redraws the line in the new one.
  let words;
  if (outcome.changed) words = () => t(before ? "decide.vote.changed" : "decide.vote.counted", { choice });
  else if (outcome.ok) words = () => t("decide.vote.stored", { reason: effectWords("decide", outcome.effect) });
  else words = () => outcome.text;
  outcomes.set(p.id, { ok: outcome.changed, words });
  say(line, outcome.changed, words());
  for (const b of button.closest("ol")?.querySelectorAll("button") ?? []) b.disabled = false;
  await refresh(); // the tally as the node now counts it
}

// --- asking the pod ---------------------------------------------------------------------

function optionRow(value = "") {
  const n = $("propose-option-list").children.length + 1;
  const id = `propose-option-${crypto.randomUUID?.() ?? `${Date.now()}-${n}`}`;
  const input = el("input", { id, maxlength: "120", autocomplete: "off", value });
  const remove = el("button", { type: "button", class: "secondary" });
  remove.addEventListener("click", () => {
    if ($("propose-option-list").children.length <= MIN_OPTIONS) return;
    const next = remove.closest("li").nextElementSibling ?? remove.closest("li").previousElementSibling;
    remove.closest("li").remove();
    optionsChanged();
    next?.querySelector("input")?.focus();
  });
  return el("li", {}, el("label", { for: id }, t("decide.new.option", { n })), el("span", { class: "option-row" }, input, remove));
}

function optionsChanged() {
  const rows = $("propose-option-list").children.length;
  $("propose-add").disabled = rows >= MAX_OPTIONS;
  for (const row of $("propose-option-list").children) row.querySelector("button").hidden = rows <= MIN_OPTIONS;
  render();
}

function resetForm() {
  $("propose-title").value = "";
  $("propose-details").value = "";
  $("propose-option-list").replaceChildren(optionRow(), optionRow());
  const inTwoDays = new Date(nowMs() + 2 * 86_400_000);
  inTwoDays.setMinutes(0, 0, 0);
  inTwoDays.setHours(18);
  $("propose-closes").value = inputValue(inTwoDays.getTime());
  optionsChanged();
}

function refuse(result, field, key) {
  say(result, false, t(key));
  field.setAttribute("aria-invalid", "true");
  field.focus();
}

async function propose(event) {
  event.preventDefault();
  const result = $("propose-result");
  for (const f of $("propose-form").querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
  const title = $("propose-title").value.trim();
  if (!title) return refuse(result, $("propose-title"), "decide.new.missing-title");
  const inputs = [...$("propose-option-list").querySelectorAll("input")];
  const options = inputs.map((i) => i.value.trim());
  const empty = inputs.find((i) => !i.value.trim());
  if (empty) return refuse(result, empty, "decide.new.missing-option");
  const twice = inputs.find((input, i) => options.indexOf(options[i]) !== i);
  if (twice) return refuse(result, twice, "decide.new.same-option");
  const closes = fromInput($("propose-closes").value);
  if (closes === null) return refuse(result, $("propose-closes"), "decide.new.missing-closes");
  if (closes <= nowMs()) return refuse(result, $("propose-closes"), "decide.new.past-closes");
  const body = { title, options, closes_at: closes };
  const details = $("propose-details").value.trim();
  if (details) body.details = details;
  const button = $("propose-button");
  button.disabled = true;
  say(result, true, t("decide.new.sending"));
  try {
    const outcome = await publish("proposal.opened", body);
    if (outcome.changed) {
      say(result, true, t("decide.new.done", { when: atWords(closes) }));
      resetForm();
    } else {
      say(result, false, outcome.ok ? effectWords("decide", outcome.effect) : outcome.text);
    }
  } finally {
    button.disabled = false;
  }
}

export const view = {
  id: "decide",
  kinds: ["proposal.*", "vote.*"],
  mount() {
    $("propose-form").addEventListener("submit", propose);
    $("propose-add").addEventListener("click", () => {
      if ($("propose-option-list").children.length >= MAX_OPTIONS) return;
      const row = optionRow();
      $("propose-option-list").append(row);
      optionsChanged();
      row.querySelector("input").focus();
    });
    resetForm();
  },
  render,
  refresh: debounce(refresh),
};
