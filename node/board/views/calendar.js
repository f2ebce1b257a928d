// The Calendar tab: the pod's gatherings (with answering, planning, calling off — in
// gatherings.js), an agenda of the coming weeks grouped by day, and the member's private
// calendar feed for a phone's calendar app.
//
// The node's calendar read model is iCalendar only (GET /v1/calendar.ics, docs/calendar.md),
// so the agenda is drawn from the JSON read models it is built from: /v1/gatherings,
// /v1/needs (their time windows) and /v1/offers (their availability windows).
import { t } from "../i18n.js";
import { $, api, categoryWords, copyText, debounce, el, getJSON, nowMs, personName, postJSON, say, state } from "../core.js";
import { kindWords, mountGatherings, renderGatheringForm, renderGatherings } from "./gatherings.js";
import { clock, dateTime as when, dayWords, startOfDay } from "./time-words.js";

/** How far ahead the agenda looks. */
const WEEKS = 4;
let gatherings = [];
let entries = { needs: [], offers: [] };
let feeds = [];

const mine = (key) => key === state.keys?.key || (state.me !== null && key === state.me.key);
const str = (v) => (typeof v === "string" ? v : "");
const windowOf = (w) =>
  w && typeof w === "object" && Number.isFinite(w.start) && Number.isFinite(w.end) && w.end > w.start ? { start: w.start, end: w.end } : null;
const ours = (x) => x && typeof x === "object" && typeof x.id === "string" && x.pod === state.info.pod;

function gatheringOf(g) {
  if (!ours(g)) return null;
  const window = windowOf(g.window);
  if (!window) return null;
  return { ...g, title: str(g.title), window, status: g.status === "cancelled" ? "cancelled" : "scheduled" };
}

/** One agenda line: {start, end, what, title, line, cancelled}. */
function agendaEntries(now, horizon) {
  const out = [];
  const within = (w) => w && w.end > now && w.start < horizon;
  for (const g of gatherings) {
    if (within(g.window)) out.push({ ...g.window, what: "gathering", title: g.title, line: kindWords(g.kind), cancelled: g.status === "cancelled" });
  }
  for (const n of entries.needs) {
    const w = windowOf(n.window);
    if (!within(w)) continue;
    out.push({ ...w, what: "need", title: str(n.title), line: mine(n.author) ? t("need.by.you", { what: categoryWords(n.category) }) : t("need.by", { who: personName(n.author), what: categoryWords(n.category) }) });
  }
  for (const o of entries.offers) {
    const windows = Array.isArray(o.windows) ? o.windows.map(windowOf).filter(within) : [];
    for (const w of windows) {
      out.push({ ...w, what: "offer", title: str(o.title), line: mine(o.author) ? t("calendar.agenda.offer.you") : t("calendar.agenda.offer", { who: personName(o.author) }) });
    }
  }
  return out.sort((a, b) => a.start - b.start || a.title.localeCompare(b.title));
}

function renderAgenda() {
  const now = nowMs();
  const today = startOfDay(now);
  const items = agendaEntries(now, today + WEEKS * 7 * 86_400_000);
  const days = new Map();
  for (const item of items) {
    const day = Math.max(startOfDay(item.start), today); // under way since before today: today
    if (!days.has(day)) days.set(day, []);
    days.get(day).push(item);
  }
  $("agenda-days").replaceChildren(
    ...[...days.entries()].map(([day, list]) =>
      el(
        "section",
        { class: "day", "aria-label": dayWords(day) },
        el("h3", {}, dayWords(day)),
        el(
          "ul",
          { class: "agenda" },
          ...list.map((item) => {
            const sameDay = startOfDay(item.end - 1) === startOfDay(item.start);
            const time = sameDay && item.start >= day ? `${clock(item.start)}–${clock(item.end)}` : t("calendar.agenda.until", { when: when(item.end) });
            return el(
              "li",
              { "data-what": item.what, "data-cancelled": String(Boolean(item.cancelled)) },
              el("span", { class: "time" }, time),
              " ",
              el("span", { class: "badge" }, t(`calendar.agenda.${item.what}.badge`)),
              " ",
              el("strong", {}, item.title),
              item.cancelled ? ` (${t("calendar.agenda.cancelled")})` : null,
              el("span", { class: "hint" }, item.line),
            );
          }),
        ),
      ),
    ),
  );
  $("agenda-empty").hidden = items.length > 0;
}

function render() {
  renderGatheringForm();
  if (!state.info) return;
  const now = nowMs();
  renderGatherings(gatherings.filter((g) => g.window.end > now).sort((a, b) => a.window.start - b.window.start));
  renderAgenda();
  renderFeeds();
}

async function refresh() {
  const [upcoming, cancelled, needs, offers] = await Promise.all([
    getJSON("/v1/gatherings?upcoming=true&limit=200"),
    getJSON("/v1/gatherings?state=cancelled&limit=50"),
    getJSON("/v1/needs?limit=500"),
    getJSON("/v1/offers?limit=500"),
  ]);
  if (Array.isArray(upcoming)) {
    const gone = Array.isArray(cancelled) ? cancelled : [];
    gatherings = [...upcoming, ...gone].map(gatheringOf).filter(Boolean);
  }
  entries = {
    needs: (Array.isArray(needs) ? needs : []).filter((n) => ours(n) && (n.status === "open" || n.status === "claimed")),
    offers: (Array.isArray(offers) ? offers : []).filter((o) => ours(o) && o.status === "open"),
  };
  render();
}

// --- the calendar feed ------------------------------------------------------------------

function renderFeeds() {
  const live = feeds.filter((f) => f && typeof f.id === "string" && f.revoked_ms === null);
  $("feed-count").replaceChildren();
  if (!live.length) return;
  $("feed-count").append(t(live.length === 1 ? "calendar.feed.count.one" : "calendar.feed.count.many", { n: live.length }));
  const list = el("ul", { class: "feeds" });
  for (const f of live) {
    const button = el("button", { type: "button", class: "secondary" }, t("calendar.feed.revoke"));
    button.setAttribute("aria-label", t("calendar.feed.revoke.label", { when: when(f.created_ms) }));
    button.addEventListener("click", () => revoke(f, button));
    list.append(el("li", {}, t("calendar.feed.made", { when: when(f.created_ms) }), " ", button));
  }
  $("feed-count").append(list);
}

async function readFeeds() {
  if (!state.member) return;
  const read = await getJSON("/v1/calendar/feeds");
  if (Array.isArray(read)) feeds = read;
  renderFeeds();
}

async function revoke(feed, button) {
  button.disabled = true;
  try {
    const response = await api(`/v1/calendar/feeds/${encodeURIComponent(feed.id)}`, { method: "DELETE" });
    say($("feed-result"), response.ok, response.ok ? t("calendar.feed.revoked") : t("calendar.feed.failed"));
  } catch {
    say($("feed-result"), false, t("reason.network"));
  }
  await readFeeds();
}

async function makeFeed() {
  const button = $("feed-button");
  button.disabled = true;
  say($("feed-result"), true, t("calendar.sending"));
  const outcome = await postJSON("/v1/calendar/feeds", {});
  button.disabled = false;
  const url = str(outcome.answer?.url);
  if (!outcome.ok || !/^https?:\/\//.test(url)) {
    say($("feed-result"), false, outcome.text || t("calendar.feed.failed"));
    return;
  }
  $("feed-url").value = url;
  $("feed-open").setAttribute("href", url.replace(/^https?:/, "webcal:"));
  $("feed-made").hidden = false;
  say($("feed-result"), true, t("calendar.feed.done"));
  await readFeeds();
}

async function copyFeed() {
  const copied = await copyText($("feed-url").value, $("feed-url"));
  say($("feed-copied"), copied, t(copied ? "calendar.feed.copied" : "calendar.feed.copy-failed"));
}

export const view = {
  id: "calendar",
  kinds: ["gathering.*", "need.*", "offer.*"],
  mount() {
    mountGatherings(() => view.refresh());
    $("feed-button").addEventListener("click", makeFeed);
    $("feed-copy").addEventListener("click", copyFeed);
  },
  render,
  refresh: debounce(async () => {
    await refresh();
    await readFeeds();
  }),
};
