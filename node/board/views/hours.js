// The Hours tab: my balance in words, hours waiting for my confirmation (hours.confirmed),
// hours I logged waiting for the other side, the help I am giving or getting now (with the
// need's actions: mark as done, log the hours), and a short history.
//
// Read from the node: GET /v1/timebank (balances, pending entries, the pod's limit), the
// ledger's events (GET /v1/events?kinds=hours.logged,hours.confirmed: who, how long, for which
// need) and the needs in progress (GET /v1/needs?status=claimed and fulfilled).
import { t } from "../i18n.js";
import { $, debounce, el, getJSON, personName, personOf, publish, say, state, when } from "../core.js";
import { actionsFor, hm, isMine, myself, refusalWords, setLoggedNeeds } from "./need-actions.js";

const HISTORY = 10;

let bank = null; // GET /v1/timebank
let entries = []; // hours.logged events: {id, giver, receiver, minutes, need, ts}
let confirmed = new Set(); // entries the other side confirmed (as the time bank counts them)
let needs = new Map(); // need id → need (claimed and fulfilled ones, for titles and actions)

function parse(event) {
  try {
    const head = JSON.parse(event.envelope.head);
    const body = JSON.parse(event.envelope.body);
    if (!head || !body || typeof body !== "object") return null;
    return { id: String(event.id), head, body };
  } catch {
    return null;
  }
}

function readLedger(page) {
  const logged = [];
  const confirmations = []; // [entry id, the confirming person]
  for (const event of Array.isArray(page?.events) ? page.events : []) {
    const parsed = parse(event);
    if (!parsed || parsed.head.pod !== state.info.pod) continue;
    const { id, head, body } = parsed;
    if (head.kind === "hours.logged" && typeof body.giver === "string" && typeof body.receiver === "string") {
      const minutes = Number(body.minutes);
      if (!Number.isInteger(minutes) || minutes <= 0) continue;
      const need = typeof body.need === "string" ? body.need : null;
      logged.push({ id, giver: body.giver, receiver: body.receiver, minutes, need, ts: Number(head.ts), by: personOf(head.author) });
    } else if (head.kind === "hours.confirmed" && typeof body.entry === "string") {
      confirmations.push([body.entry, personOf(head.author)]);
    }
  }
  // An entry counts once the side that did not log it confirms it (node/projections/timebank.py).
  const byId = new Map(logged.map((e) => [e.id, e]));
  const other = (e) => (personOf(e.giver) === e.by ? personOf(e.receiver) : personOf(e.giver));
  entries = logged;
  confirmed = new Set(
    confirmations.filter(([id, who]) => byId.has(id) && who === other(byId.get(id))).map(([id]) => id),
  );
  setLoggedNeeds(logged.map((e) => e.need).filter(Boolean));
}

/** "You gave Ana 1 h 30 min" / "Bea gave you 45 min". */
function entryWords(entry) {
  const time = hm(entry.minutes);
  if (isMine(entry.giver)) return t("hours.entry.gave", { who: personName(entry.receiver), time });
  return t("hours.entry.got", { who: personName(entry.giver), time });
}

function entryMeta(entry) {
  const need = entry.need ? needs.get(entry.need) : null;
  const parts = [t("hours.entry.when", { when: when(entry.ts) })];
  if (need && typeof need.title === "string") parts.unshift(t("hours.entry.for", { title: need.title }));
  return el("p", { class: "meta" }, parts.join(" · "));
}

function other(entry) {
  return isMine(entry.giver) ? entry.receiver : entry.giver;
}

let notice = null; // the last confirmation's outcome {ok, words()}, said again in a new language

function showNotice() {
  if (notice) say($("hours-notice"), notice.ok, notice.words());
}

async function confirm(entry, button) {
  button.disabled = true;
  notice = { ok: true, words: () => t("hours.sending") };
  showNotice();
  const outcome = await publish("hours.confirmed", { entry: entry.id });
  notice = outcome.changed
    ? { ok: true, words: () => t("hours.confirm.done", { time: hm(entry.minutes), who: personName(other(entry)) }) }
    : { ok: false, words: () => refusalWords(outcome) };
  showNotice();
  button.disabled = false;
  refresh();
}

function renderBalance() {
  const me = bank?.members?.find((m) => m && personOf(m.person) === myself());
  const balance = Number(me?.balance_minutes ?? 0);
  const given = Number(me?.given_minutes ?? 0);
  const received = Number(me?.received_minutes ?? 0);
  let words = t("hours.balance.none");
  if (balance > 0) words = t("hours.balance.plus", { time: hm(balance) });
  else if (balance < 0) words = t("hours.balance.minus", { time: hm(-balance) });
  else if (given > 0) words = t("hours.balance.even");
  $("hours-balance").textContent = words;
  $("hours-balance").dataset.minutes = String(balance);
  $("hours-totals").textContent = t("hours.totals", { given: hm(given), received: hm(received) });
  const limit = bank?.limit_minutes;
  const limitLine = $("hours-limit");
  limitLine.hidden = !(Number(limit) > 0);
  if (Number(limit) > 0) {
    limitLine.textContent = me?.over_limit ? t("hours.limit.over", { time: hm(limit) }) : t("hours.limit", { time: hm(limit) });
    limitLine.dataset.over = String(Boolean(me?.over_limit));
  }
}

function renderEntries() {
  const pending = (Array.isArray(bank?.pending) ? bank.pending : []).filter(
    (p) => p && typeof p.id === "string" && (isMine(p.giver) || isMine(p.receiver)),
  );
  const byId = new Map(entries.map((e) => [e.id, e]));
  const full = (p) => ({ ...p, need: byId.get(p.id)?.need ?? null, minutes: Number(p.minutes) });
  const forMe = pending.filter((p) => !isMine(p.logged_by)).map(full);
  const byMe = pending.filter((p) => isMine(p.logged_by)).map(full);
  $("hours-confirm").replaceChildren(
    ...forMe.map((entry) => {
      const button = el("button", { type: "button", "data-action": "confirm", "data-entry": entry.id }, t("hours.confirm"));
      button.addEventListener("click", () => confirm(entry, button));
      return el("li", {}, el("p", { class: "what" }, entryWords(entry)), entryMeta(entry), el("p", {}, button));
    }),
  );
  $("hours-confirm-empty").hidden = forMe.length > 0;
  $("hours-waiting").replaceChildren(
    ...byMe.map((entry) =>
      el(
        "li",
        {},
        el("p", { class: "what" }, entryWords(entry)),
        el("p", {}, t("hours.waiting.for", { who: personName(other(entry)) })),
        entryMeta(entry),
      ),
    ),
  );
  $("hours-waiting-empty").hidden = byMe.length > 0;
  const waiting = new Set(pending.map((p) => p.id));
  const history = entries
    .filter((e) => (isMine(e.giver) || isMine(e.receiver)) && !waiting.has(e.id) && confirmed.has(e.id))
    .sort((a, b) => b.ts - a.ts)
    .slice(0, HISTORY);
  $("hours-history").replaceChildren(
    ...history.map((entry) => el("li", {}, el("p", { class: "what" }, entryWords(entry)), entryMeta(entry))),
  );
  $("hours-history-empty").hidden = history.length > 0;
}

function renderProgress() {
  const items = [];
  for (const need of [...needs.values()].sort((a, b) => Number(b.ts) - Number(a.ts))) {
    if (!(isMine(need.author) || isMine(need.helper))) continue;
    const actions = actionsFor(need);
    if (!actions) continue;
    // A need in progress says who helps in its actions; a done one says it here.
    const line =
      need.status !== "fulfilled"
        ? null
        : isMine(need.author)
          ? el("p", {}, t("hours.progress.yours.done", { who: personName(need.helper) }))
          : el("p", {}, t("hours.progress.theirs.done", { who: personName(need.author) }));
    items.push(el("li", { "data-id": need.id }, el("h3", {}, String(need.title)), line, actions));
  }
  $("hours-progress").replaceChildren(...items);
  $("hours-progress-empty").hidden = items.length > 0;
}

function render() {
  if (!state.member || !state.info) return;
  renderBalance();
  renderEntries();
  renderProgress();
  showNotice();
}

async function refresh() {
  if (!state.member) return;
  const [read, ledger, claimed, fulfilled] = await Promise.all([
    getJSON("/v1/timebank"),
    getJSON("/v1/events?kinds=hours.logged,hours.confirmed&limit=1000"),
    getJSON("/v1/needs?status=claimed&limit=200"),
    getJSON("/v1/needs?status=fulfilled&limit=200"),
  ]);
  if (!read || typeof read !== "object") return; // keep what is shown; the stream reads again
  bank = read;
  if (ledger) readLedger(ledger);
  if (Array.isArray(claimed) && Array.isArray(fulfilled)) {
    needs = new Map(
      [...claimed, ...fulfilled]
        .filter((n) => n && typeof n.id === "string" && n.pod === state.info.pod)
        .map((n) => [n.id, n]),
    );
  }
  render();
}

export const view = {
  id: "hours",
  kinds: ["hours.*", "claim.*", "fulfilment.*"],
  render,
  refresh: debounce(refresh),
};
