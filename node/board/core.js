// The board's core: its state, reading and signing for the views, and what every view shares.
//
// A view is a module in views/ exporting `view = {id, kinds, coordinator?, mount(section),
// refresh()}`: `kinds` are the event kinds (prefixes with "*") whose arrival on the stream
// calls its `refresh`; `mount` builds its part of the page once. The node's read models are
// the truth shown; everything from the node is put on the page as text, never as markup.
import { has, lang, t } from "./i18n.js";
import { makeToken, signEvent } from "./sign.js";

export const CATEGORIES = [
  "food", "groceries", "ride", "errand", "repair", "housing", "childcare", "eldercare", "health",
  "health_accompaniment", "emotional_support", "peer_support", "information", "navigation",
  "advocacy", "goods", "money", "tech", "translation", "pets", "other",
];
export const URGENCIES = ["low", "normal", "high", "urgent"];
export const $ = (id) => document.getElementById(id);

export const state = {
  info: null, // /.well-known/kith
  keys: null, // this device's {seed, box, key, boxKey}
  clockOffset: 0, // node clock − this clock, from the Date header (tokens and ts follow the node)
  member: false, // the node took this device's stream token as a member's
  people: [], // GET /v1/members (members only): [{key, role, status, box_key, devices}]
  me: null, // this device's person in `people`: {key, role, ...}
  names: new Map(), // person key → display name from their latest profile.set
  nameTs: new Map(),
  profiles: new Map(), // person key → their latest profile.set body
};

export const nowMs = () => Date.now() + state.clockOffset;

export function token(purpose, nonce = null) {
  return makeToken(state.keys.seed, { purpose, nodeKey: state.info.node_key, nowMs: nowMs(), nonce });
}

/** fetch() with this device's token once it is a member (a key the roster does not know yet
 * gets 401 with a token, so until then it reads as anyone). */
export function api(path, options = {}) {
  const headers = { ...(options.headers ?? {}) };
  if (state.member) headers.authorization = `Kith ${token("http")}`;
  return fetch(path, { ...options, headers });
}

/** GET `path` as JSON, or `null` when the node says no or cannot be reached. */
export async function getJSON(path) {
  try {
    const response = await api(path);
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/** POST `body` as JSON to a route; answers `{ok, answer, text}` with the node's reason in words. */
export async function postJSON(path, body) {
  try {
    const response = await api(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return { ok: true, answer, text: "" };
    return { ok: false, answer, text: reasonWords(answer?.reason, answer?.message ?? answer?.detail) };
  } catch {
    return { ok: false, answer: null, text: t("reason.network") };
  }
}

// --- people -----------------------------------------------------------------------------

/** The person a key belongs to (a device key folds into its member). */
export function personOf(key) {
  for (const p of state.people) {
    if (p.key === key || (p.devices ?? []).some((d) => d.key === key)) return p.key;
  }
  return key;
}

export function personName(key) {
  const person = personOf(key);
  if (state.me && person === state.me.key) return t("person.you");
  return state.names.get(person) ?? t("person.someone");
}

export const isCoordinator = () => state.me?.role === "coordinator";

/** Read the roster (members only) and find this device's person in it. */
export async function loadPeople() {
  const people = await getJSON("/v1/members");
  if (!Array.isArray(people)) return;
  state.people = people.filter((p) => p && typeof p.key === "string");
  state.me = state.people.find((p) => p.key === state.keys.key || (p.devices ?? []).some((d) => d.key === state.keys.key)) ?? null;
}

// --- words ------------------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child); // strings become text
  return node;
}

export function categoryWords(category) {
  return t(has(`cat.${category}`) ? `cat.${category}` : "cat.other");
}

export function capitalise(text) {
  return text.charAt(0).toLocaleUpperCase(lang()) + text.slice(1);
}

export function fillSelect(select, values, label, fallback) {
  const chosen = select.value || fallback || values[0];
  select.replaceChildren(...values.map((v) => el("option", { value: v }, label(v))));
  select.value = chosen;
}

/** A time in the reader's language. */
export function when(ms) {
  const format = new Intl.DateTimeFormat(lang(), { dateStyle: "medium", timeStyle: "short" });
  return format.format(new Date(Number(ms) || 0));
}

/** A node's reason (`invalid:ts:skew`, `overflow:expired` …) in words: the most specific
 * catalogue entry, else the node's own message. */
export function reasonWords(reason, message) {
  const words = String(reason ?? "");
  const family = words.split(":").slice(0, 2).join(":");
  const vars = { message: String(message ?? words), reason: words };
  for (const key of [`reason.${words}`, `reason.${family}`, `reason.${words.split(":")[0]}`]) {
    if (has(key)) return t(key, vars);
  }
  return t("reason.other", vars);
}

/** Show an outcome in a `role=status` line. */
export function say(line, ok, text) {
  line.dataset.ok = String(ok);
  line.textContent = text;
}

// --- signing ----------------------------------------------------------------------------

async function logHead(scope) {
  const response = await api(`/v1/logs/${state.info.pod}/${state.keys.key}/${scope}`);
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`log head: ${response.status}`);
  return response.json();
}

/** Where this device's logs stand after its last accepted post, per scope: the next post
 * signs on from it without asking the node first (a stale one is answered `fork` with the
 * real head, and signed once more). */
const heads = new Map();

/** Sign `kind` with `body` in this browser and post it. Answers `{ok, changed, id, text,
 * effect}`: `ok` when the node stored it, `changed` when it also changed what it should
 * (its effect), `text` the node's answer in words (empty when all went well). */
export async function publish(kind, body, scope = "pod") {
  // A member's device the node no longer takes (blocked, removed, revoked): say so, not "join first".
  const refused = () => t(state.member ? "reason.not-active" : "reason.unauthorized");
  try {
    let head = heads.get(scope) ?? (await logHead(scope));
    if (head === null) return { ok: false, changed: false, text: refused() };
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const seq = head.seq + 1;
      const ts = Math.max(nowMs(), head.ts ?? 0);
      const envelope = signEvent(state.keys.seed, { pod: state.info.pod, scope, seq, prev: head.id, ts, kind, body });
      const response = await fetch("/v1/events", { method: "POST", body: JSON.stringify(envelope) });
      const answer = await response.json();
      const result = answer?.results?.[0] ?? answer;
      if (result?.reason === "fork" && result.head && attempt === 0) {
        head = result.head; // another tab or device posted first: once more, at the next position
        continue;
      }
      if (!result?.ok) {
        heads.delete(scope);
        if (["unauthorized", "blocked"].includes(result?.reason)) return { ok: false, changed: false, text: refused() };
        return { ok: false, changed: false, text: reasonWords(result?.reason, result?.message ?? result?.detail) };
      }
      heads.set(scope, { seq, id: result.id, ts });
      const effect = result.effect ?? null;
      if (effect && !effect.ok) {
        return { ok: true, changed: false, id: result.id, effect, text: t("post.stored", { reason: reasonWords(effect.reason, effect.message) }) };
      }
      return { ok: true, changed: true, id: result.id, effect, text: "" };
    }
  } catch {
    return { ok: false, changed: false, text: t("reason.network") };
  }
  return { ok: false, changed: false, text: t("reason.fork") };
}

// --- the stream's events, for the views -------------------------------------------------

const listeners = [];

/** Call `fn(head, body)` for each event from the stream whose kind matches one of `kinds`. */
export function onEvents(kinds, fn) {
  listeners.push({ kinds, fn });
}

export function matches(kinds, kind) {
  return kinds.some((k) => (k.endsWith("*") ? kind.startsWith(k.slice(0, -1)) : kind === k));
}

/** One event from the stream (already parsed): to every listener that wants its kind. */
export function dispatch(head, body) {
  for (const { kinds, fn } of listeners) {
    if (!matches(kinds, head.kind)) continue;
    try {
      fn(head, body);
    } catch {
      // one view's trouble with one event must not stop the others
    }
  }
}

/** A function that runs `fn` once, `ms` after the first of a burst of calls. Calls while `fn`
 * runs make it run once more when it is done, never twice at once: an older read can never land
 * after a newer one. 10 ms (was 50): a burst of frames still makes one read, and a post shows on
 * the other screen ~40 ms sooner (bench/board_bench.py). */
export function debounce(fn, ms = 10) {
  let timer = null;
  let running = false;
  let again = false;
  const schedule = () => {
    if (running) {
      again = true;
      return;
    }
    if (timer) return;
    timer = setTimeout(async () => {
      timer = null;
      running = true;
      try {
        await fn();
      } catch {
        // the stream's reconnect reads again
      } finally {
        running = false;
      }
      if (again) {
        again = false;
        schedule();
      }
    }, ms);
  };
  return schedule;
}

const COPY_WAIT_MS = 2000;

/** Copy `text` to the clipboard; true if it went there. Otherwise (plain-http pages have no
 * clipboard API, and a browser waiting on a permission prompt may never answer) `node` is
 * selected for a copy by hand and the answer is false, within COPY_WAIT_MS either way. */
export async function copyText(text, node) {
  const select = () => {
    if (node instanceof HTMLInputElement || node instanceof HTMLTextAreaElement) node.select();
    else getSelection().selectAllChildren(node);
  };
  if (!navigator.clipboard?.writeText) {
    select();
    return false;
  }
  let timer = null;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), COPY_WAIT_MS);
  });
  const copied = navigator.clipboard.writeText(text).then(
    () => true,
    () => false,
  );
  const ok = await Promise.race([copied, late]);
  clearTimeout(timer);
  if (!ok) select();
  return ok;
}
