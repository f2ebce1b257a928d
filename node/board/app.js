// The pod board: start-up, the views' tabs, and the live link that keeps them current.
//
// Each tab is a view module (views/*.js, see core.js); the hash names the open one (`#needs`,
// `#join/<code>` …) so a link can open a view, and the browser's back button works.
import { names, lang, preferred, setLang, t, translatePage } from "./i18n.js";
import { deviceKeys } from "./keys.js";
import { $, el, isCoordinator, loadPeople, onEvents, personOf, state } from "./core.js";
import { connect, rejoin, showConnection } from "./stream.js";
import { view as needs } from "./views/needs.js";
import { view as offers } from "./views/offers.js";
import { view as hours } from "./views/hours.js";
import { view as decide } from "./views/decide.js";
import { view as calendar } from "./views/calendar.js";
import { view as coordinate } from "./views/coordinate.js";
import { view as invite } from "./views/invite.js";
import { view as me } from "./views/me.js";
import { view as join } from "./views/join.js";

/** Every view, in tab order; a view may be `null` while it is being built. */
// `join` before `me`: someone not in the pod yet opens on joining (`me` shows them only the
// device code, for a device of someone who is a member already).
const VIEWS = [needs, offers, hours, decide, calendar, coordinate, invite, join, me].filter(Boolean);
/** What the stream follows besides the views' kinds: the roster and names. */
const ALWAYS = ["pod.*", "member.*", "profile.set"];

/** The views this device may open now: members see the pod's, coordinators theirs too;
 * someone not in the pod yet sees only those marked `outsider`. */
function available() {
  return VIEWS.filter((v) =>
    state.member ? !v.outsiderOnly && (!v.coordinator || isCoordinator()) : v.outsider || v.outsiderOnly,
  );
}

function current() {
  const [id, ...rest] = location.hash.replace(/^#/, "").split("/");
  const views = available();
  return { view: views.find((v) => v.id === id) ?? views[0], rest: rest.join("/") };
}

function renderNav() {
  const { view: open } = current();
  const nav = $("tabs");
  nav.replaceChildren(
    ...available().map((v) =>
      el("a", { href: `#${v.id}`, "aria-current": v === open ? "page" : null }, t(`nav.${v.id}`)),
    ),
  );
  nav.hidden = available().length < 2;
}

function show() {
  const { view: open, rest } = current();
  for (const v of VIEWS) $(`view-${v.id}`).hidden = v !== open;
  renderNav();
  open?.open?.(rest);
}

/** Draw everything in the current language. */
function renderAll() {
  translatePage();
  const pod = state.info?.name ? String(state.info.name) : "Kith";
  $("pod-name").textContent = pod;
  document.title = t("title.page", { pod });
  for (const v of VIEWS) v.render?.();
  show();
  showConnection();
}

async function setMember(member) {
  const changed = state.member !== member;
  state.member = member; // first: the roster is read with this device's token
  if (member) await loadPeople();
  renderAll();
  if (!changed) return;
  for (const v of VIEWS) v.refresh?.();
}

function onRoster(head, body) {
  if (head.kind === "profile.set") {
    const name = body && typeof body.name === "string" ? body.name.slice(0, 80) : null;
    const person = personOf(head.author);
    if ((state.nameTs.get(person) ?? -1) <= head.ts) {
      state.nameTs.set(person, head.ts);
      state.profiles.set(person, body ?? {});
      if (name) state.names.set(person, name);
      else state.names.delete(person);
      for (const v of VIEWS) v.render?.();
    }
  } else if (
    (head.kind === "member.added" || head.kind === "member.key_added") &&
    body?.key === state.keys.key &&
    !state.member
  ) {
    rejoin(); // just added, or linked as a device of a member: read again as a member, from the start
  } else if (head.kind.startsWith("member.") && state.member) {
    loadPeople().then(renderAll);
  }
}

async function start() {
  await setLang(preferred());
  const select = $("lang");
  select.replaceChildren(...(await names()).map(([code, name]) => el("option", { value: code }, name)));
  select.value = lang();
  select.addEventListener("change", async () => {
    await setLang(select.value, true);
    renderAll();
  });
  const response = await fetch("/.well-known/kith");
  const served = Date.parse(response.headers.get("date") ?? "");
  // The Date header has whole seconds: only a clear difference is taken as the node's clock.
  if (Number.isFinite(served) && Math.abs(served - Date.now()) > 5000) state.clockOffset = served - Date.now();
  state.info = await response.json();
  renderAll();
  try {
    state.keys = await deviceKeys();
  } catch {
    // No key, no board: say so where the connection line stands.
    $("conn").dataset.state = "lost";
    $("conn").textContent = t("keys.failed");
    return;
  }
  for (const v of VIEWS) {
    v.mount?.($(`view-${v.id}`));
    if (v.kinds?.length) {
      ALWAYS.push(...v.kinds);
      if (v.refresh) onEvents(v.kinds, () => v.refresh());
    }
  }
  onEvents(["profile.set", "member.*"], onRoster);
  window.addEventListener("hashchange", show);
  renderAll();
  connect({
    kinds: [...new Set(ALWAYS)],
    onLive: () => {
      for (const v of VIEWS) v.refresh?.();
    },
    onMember: (member) => setMember(member),
  });
  // Time to interactive (the tests' figure): keys made, page drawn, stream opening.
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "true";
}

start();
