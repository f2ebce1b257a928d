// The pod board: open needs, live from /v1/stream, and posting a need signed in this browser.
//
// The node's read model (GET /v1/needs) is the truth shown; the stream says when to re-read it
// and carries the members' profile names. Everything from the node is shown with textContent.
import { deviceKeys } from "./keys.js";
import { has, lang, names, preferred, setLang, t, translatePage } from "./i18n.js";
import { makeToken, signEvent } from "./sign.js";

const CATEGORIES = [
  "food", "groceries", "ride", "errand", "repair", "housing", "childcare", "eldercare", "health",
  "health_accompaniment", "emotional_support", "peer_support", "information", "navigation",
  "advocacy", "goods", "money", "tech", "translation", "pets", "other",
];
const URGENCIES = ["low", "normal", "high", "urgent"];
const WATCHED = ["pod.*", "member.*", "profile.set", "need.*", "claim.*", "fulfilment.*", "event.redacted"];
const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  keys: null,
  clockOffset: 0, // node clock − this clock, from the Date header (tokens and ts follow the node)
  member: false,
  needs: [],
  names: new Map(), // person key → display name from their latest profile.set
  nameTs: new Map(),
  cursor: null,
  socket: null,
  everLive: false,
  lost: false,
  wasLost: false,
  rejoining: false,
  backTimer: null,
  retry: 500,
  refreshing: null,
};

const nowMs = () => Date.now() + state.clockOffset;

function token(purpose, nonce = null) {
  return makeToken(state.keys.seed, { purpose, nodeKey: state.info.node_key, nowMs: nowMs(), nonce });
}

async function api(path) {
  // A key the roster does not know yet gets 401 with a token: read as anyone until it does.
  return fetch(path, state.member ? { headers: { authorization: `Kith ${token("http")}` } } : {});
}

// --- what is shown ----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child); // strings become text nodes, never markup
  return node;
}

function personName(key) {
  return state.names.get(key) ?? t("person.someone");
}

function categoryWords(category) {
  return t(has(`cat.${category}`) ? `cat.${category}` : "cat.other");
}

function renderNeeds() {
  const list = $("needs-list");
  const when = new Intl.DateTimeFormat(lang(), { dateStyle: "medium", timeStyle: "short" });
  list.replaceChildren(
    ...state.needs.map((need) => {
      const what = categoryWords(need.category);
      const line =
        need.author === state.keys.key
          ? t("need.by.you", { what })
          : t("need.by", { who: personName(need.author), what });
      const urgency = URGENCIES.includes(need.urgency) ? need.urgency : "normal";
      const item = el(
        "li",
        { "data-urgency": urgency, "data-id": String(need.id) },
        el("h3", {}, String(need.title)),
        el("p", {}, el("span", { class: "badge" }, t(`urgency.${urgency}`)), " ", line),
      );
      const meta = [t("need.posted", { when: when.format(new Date(Number(need.ts) || 0)) })];
      if (need.area) meta.unshift(t("need.area", { area: String(need.area) }));
      item.append(el("p", { class: "meta" }, meta.join(" · ")));
      return item;
    }),
  );
  $("needs-empty").hidden = state.needs.length > 0;
}

function renderStatic() {
  translatePage();
  const pod = state.info?.name ? String(state.info.name) : "Kith";
  $("pod-name").textContent = pod;
  document.title = t("title.page", { pod });
  fillSelect($("category"), CATEGORIES, (c) => capitalise(t(`cat.${c}`)));
  fillSelect($("urgency"), URGENCIES, (u) => t(`urgency.${u}`), "normal");
  if (state.keys) {
    $("my-key").textContent = state.keys.key;
    $("my-box").textContent = state.keys.boxKey;
    $("my-command").textContent = `kith member add --key ${state.keys.key} --box-key ${state.keys.boxKey}`;
  }
  $("join").hidden = state.member;
  $("post").hidden = !state.member;
  showConnection();
  renderNeeds();
}

function capitalise(text) {
  return text.charAt(0).toLocaleUpperCase(lang()) + text.slice(1);
}

function fillSelect(select, values, label, fallback) {
  const chosen = select.value || fallback || values[0];
  select.replaceChildren(...values.map((v) => el("option", { value: v }, label(v))));
  select.value = chosen;
}

function showConnection() {
  const conn = $("conn");
  const live = state.socket?.readyState === WebSocket.OPEN && state.everLive;
  const which = state.lost ? "lost" : live ? "live" : "connecting";
  conn.dataset.state = which;
  conn.textContent = t(which === "live" && state.wasLost ? "conn.back" : `conn.${which}`);
}

// --- reading ----------------------------------------------------------------------------

function refreshSoon() {
  // Many events in a burst (a backfill) cost one read.
  if (state.refreshing) return;
  state.refreshing = setTimeout(async () => {
    state.refreshing = null;
    try {
      const response = await api("/v1/needs?status=open&limit=200");
      if (!response.ok) return;
      const needs = await response.json();
      if (Array.isArray(needs)) {
        state.needs = needs.filter((n) => n && typeof n === "object" && n.pod === state.info.pod);
        state.needs.sort((a, b) => Number(b.ts) - Number(a.ts));
        renderNeeds();
      }
    } catch {
      // the stream's reconnect reads again
    }
  }, 50);
}

function onEvent(envelope) {
  let head;
  let body = null;
  try {
    head = JSON.parse(envelope.head);
    if (typeof envelope.body === "string") body = JSON.parse(envelope.body);
  } catch {
    return; // a malformed event changes nothing shown
  }
  if (!head || typeof head.kind !== "string") return;
  if (head.kind === "profile.set") {
    const name = body && typeof body.name === "string" ? body.name.slice(0, 80) : null;
    if (name && (state.nameTs.get(head.author) ?? -1) <= head.ts) {
      state.names.set(head.author, name);
      state.nameTs.set(head.author, head.ts);
      renderNeeds();
    }
  } else if (head.kind === "member.added" && body?.key === state.keys.key && !state.member) {
    // Just added: read again as a member, from the start (pod events were hidden so far).
    state.cursor = null;
    state.rejoining = true;
    state.socket?.close();
  } else if (!head.kind.startsWith("pod.") && !head.kind.startsWith("member.")) {
    refreshSoon();
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  state.socket = socket;
  socket.onmessage = (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!Array.isArray(frame)) return;
    const [verb, ...rest] = frame;
    if (verb === "CHALLENGE" && typeof rest[0] === "string") {
      socket.send(JSON.stringify(["AUTH", token("stream", rest[0])]));
      const sub = { filters: [{ kinds: WATCHED }], after: state.cursor };
      socket.send(JSON.stringify(["SUB", "board", sub]));
    } else if (verb === "NOTICE" && typeof rest[0] === "string") {
      if (rest[0].startsWith("auth: ok")) setMember(true);
      else if (rest[0].startsWith("auth-failed:")) setMember(false);
    } else if (verb === "EVENT" && rest[0] === "board" && rest[1] && typeof rest[1] === "object") {
      if (Number.isInteger(rest[2])) state.cursor = Math.max(state.cursor ?? 0, rest[2]);
      onEvent(rest[1]);
    } else if (verb === "LIVE" && rest[0] === "board") {
      if (Number.isInteger(rest[1])) state.cursor = Math.max(state.cursor ?? 0, rest[1]);
      if (state.lost) {
        // "back" for a while, then the plain "up to date"
        state.wasLost = true;
        clearTimeout(state.backTimer);
        state.backTimer = setTimeout(() => {
          state.wasLost = false;
          showConnection();
        }, 8000);
      }
      state.lost = false;
      state.everLive = true;
      state.retry = 500;
      refreshSoon();
      showConnection();
    } else if (verb === "CLOSED" && rest[0] === "board") {
      socket.close(); // "slow: resume after <c>" and the like: resume from our cursor
    }
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    if (state.rejoining) {
      state.rejoining = false; // our own close, to read again as a member: not a lost link
      connect();
      return;
    }
    state.lost = state.everLive;
    showConnection();
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 8000);
  };
}

function setMember(member) {
  if (state.member === member) return;
  state.member = member;
  renderStatic();
}

// --- posting ----------------------------------------------------------------------------

async function logHead() {
  const { pod } = state.info;
  const response = await api(`/v1/logs/${pod}/${state.keys.key}/pod`);
  if (response.status === 401) return null;
  return response.json();
}

function say(ok, text) {
  const result = $("post-result");
  result.dataset.ok = String(ok);
  result.textContent = text;
}

function reasonWords(reason, message) {
  const words = String(reason ?? "");
  const family = words.split(":").slice(0, 2).join(":");
  const vars = { message: String(message ?? words), reason: words };
  for (const key of [`reason.${words}`, `reason.${family}`, `reason.${words.split(":")[0]}`]) {
    if (has(key)) return t(key, vars);
  }
  return t("reason.other", vars);
}

async function postNeed(event) {
  event.preventDefault();
  const title = $("title").value.trim();
  if (!title) {
    say(false, t("post.missing-title"));
    $("title").setAttribute("aria-invalid", "true");
    $("title").focus();
    return;
  }
  $("title").removeAttribute("aria-invalid");
  const button = $("post-button");
  button.disabled = true;
  say(true, t("post.sending"));
  const body = { title, category: $("category").value, urgency: $("urgency").value };
  try {
    let head = await logHead();
    if (head === null) {
      say(false, t("reason.unauthorized"));
      return;
    }
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const envelope = signEvent(state.keys.seed, {
        pod: state.info.pod,
        scope: "pod",
        seq: head.seq + 1,
        prev: head.id,
        ts: Math.max(nowMs(), head.ts ?? 0),
        kind: "need.posted",
        body,
      });
      const response = await fetch("/v1/events", { method: "POST", body: JSON.stringify(envelope) });
      const answer = await response.json();
      const result = answer?.results?.[0] ?? answer;
      if (result?.reason === "fork" && result.head && attempt === 0) {
        head = result.head;
        continue;
      }
      if (result?.ok) {
        const effect = result.effect;
        if (!effect || effect.ok) {
          say(true, t("post.done"));
          $("title").value = "";
        } else {
          say(false, t("post.stored", { reason: reasonWords(effect.reason, effect.message) }));
        }
      } else {
        say(false, reasonWords(result?.reason, result?.message ?? result?.detail));
      }
      return;
    }
  } catch {
    say(false, t("reason.network"));
  } finally {
    button.disabled = false;
  }
}

// --- start ------------------------------------------------------------------------------

async function copyCommand() {
  const text = $("my-command").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copy-result").textContent = t("me.copied");
  } catch {
    // plain-http pages have no clipboard API: select the text for a manual copy
    getSelection().selectAllChildren($("my-command"));
    $("copy-result").textContent = t("me.copy-failed");
  }
}

async function start() {
  await setLang(preferred());
  const select = $("lang");
  select.replaceChildren(...(await names()).map(([code, name]) => el("option", { value: code }, name)));
  select.value = lang();
  select.addEventListener("change", async () => {
    await setLang(select.value, true);
    renderStatic();
  });
  renderStatic();
  const response = await fetch("/.well-known/kith");
  const served = Date.parse(response.headers.get("date") ?? "");
  // The Date header has whole seconds: only a clear difference is taken as the node's clock.
  if (Number.isFinite(served) && Math.abs(served - Date.now()) > 5000) state.clockOffset = served - Date.now();
  state.info = await response.json();
  try {
    state.keys = await deviceKeys();
  } catch {
    // No key, no board: say so where the connection line stands (the form is not shown yet).
    $("conn").dataset.state = "lost";
    $("conn").textContent = t("keys.failed");
    return;
  }
  $("post-form").addEventListener("submit", postNeed);
  $("copy").addEventListener("click", copyCommand);
  renderStatic();
  connect();
  // Time to interactive (the tests' figure): keys made, page drawn, stream opening.
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "true";
}

start();
