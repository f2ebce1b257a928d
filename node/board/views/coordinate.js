// The coordinators' tab: overflow between pods, reports and blocks, the roster, erasure.
//
// Everything here reads the node's own read models (GET /v1/overflow, /v1/moderation,
// /v1/members, /v1/erasures) and acts either through the node's routes with this device's
// coordinator token (overflow moves: the node signs them with its node key) or by signing in
// this browser with the coordinator's own key (blocks, resolutions, erasures: the log then says
// who did it, docs/moderation.md). Pods are shown by name, people by their profile name.
import { has, t } from "../i18n.js";
import {
  $, capitalise, categoryWords, debounce, el, getJSON, isCoordinator, loadPeople, personName,
  personOf, postJSON, publish, say, state, when,
} from "../core.js";
import { MAX_RECIPIENTS, fieldAad, open as openSealed, seal } from "../seal.js";

/** Why a coordinator blocks, unblocks or removes someone: one word each (protocol/kinds.py). */
const REASONS = ["harassment", "abuse", "threats", "fraud", "spam", "safety", "left", "asked", "resolved", "mistake", "other"];
/** The words a block advice to neighbours may carry (protocol/kinds.py AdvisoryReason). */
const ADVISORY_REASONS = ["harassment", "abuse", "threats", "fraud", "spam", "other"];
const SCOPES = ["pod", "peers", "public"];
const SECTIONS = ["overflow", "reports", "members", "erasure"];

const data = {
  overflow: { outgoing: [], incoming: [] },
  moderation: { reports: [], advisories: [], actions: [] },
  erasures: { erasures: [], peers: [] },
  needs: [], // this pod's open needs (to refer)
  erasable: [], // [{id, kind, label}] needs, offers, profiles that still hold a body
  podNames: new Map(), // pod id → its name, from its pod.created
  open: null, // the confirmation panel open now: "<action>:<id>"
  choice: new Map(), // "<action>:<id>" → the reason word chosen there
};

// --- words ------------------------------------------------------------------------------

function podName(pod) {
  if (pod === state.info?.pod) return state.info?.name ? String(state.info.name) : t("coordinate.pod.this");
  return data.podNames.get(pod) ?? t("coordinate.pod.neighbour");
}

/** The node's refusal in words: this view's own catalogue first, else core's. */
function refusal(result) {
  const reason = String(result?.answer?.reason ?? "");
  const family = reason.split(":").slice(0, 2).join(":");
  for (const key of [`coordinate.reason.${reason}`, `coordinate.reason.${family}`]) {
    if (reason && has(key)) return t(key, { message: String(result.answer?.message ?? "") });
  }
  return result?.text || t("coordinate.failed");
}

const isMe = (key) => Boolean(state.me && key && personOf(key) === state.me.key);

const reasonWord = (r) => (REASONS.includes(r) ? t(`coordinate.why.${r}`) : t("coordinate.why.none"));

function summaryOf(referral) {
  const parts = [capitalise(categoryWords(referral.category))];
  const urgency = ["low", "normal", "high", "urgent"].includes(referral.urgency) ? referral.urgency : null;
  if (urgency) parts.push(t(`urgency.${urgency}`));
  if (referral.area) parts.push(t("need.area", { area: String(referral.area) }));
  if (referral.window?.start) parts.push(t("coordinate.overflow.window", { start: when(referral.window.start), end: when(referral.window.end) }));
  if (Number.isInteger(referral.minutes_estimate)) parts.push(t("coordinate.overflow.estimate", { minutes: referral.minutes_estimate }));
  return parts.join(" · ");
}

function kindWords(kind) {
  const family = String(kind ?? "").split(".")[0];
  return t(has(`coordinate.kind.${family}`) ? `coordinate.kind.${family}` : "coordinate.kind.other");
}

// --- reading ----------------------------------------------------------------------------

async function loadPodNames(pods) {
  const unknown = [...new Set(pods)].filter((p) => p && p !== state.info.pod && !data.podNames.has(p));
  if (!unknown.length) return;
  const page = await getJSON(`/v1/events?kinds=pod.created&pods=${unknown.map(encodeURIComponent).join(",")}`);
  for (const event of Array.isArray(page?.events) ? page.events : []) {
    try {
      const head = JSON.parse(event.envelope.head);
      const body = JSON.parse(event.envelope.body);
      if (typeof body?.name === "string" && body.name) data.podNames.set(head.pod, body.name.slice(0, 80));
    } catch {
      // a malformed or erased body: the pod stays "a neighbouring pod"
    }
  }
}

async function loadErasable() {
  const pod = state.info.pod;
  const [needs, offers, profiles] = await Promise.all([
    getJSON(`/v1/needs?limit=200&pod=${encodeURIComponent(pod)}`),
    getJSON(`/v1/offers?limit=200&pod=${encodeURIComponent(pod)}`),
    getJSON(`/v1/events?kinds=profile.set&pods=${encodeURIComponent(pod)}&limit=500`),
  ]);
  const items = [];
  for (const n of Array.isArray(needs) ? needs : []) {
    if (n && n.pod === pod && !n.redacted && typeof n.id === "string") items.push({ ids: [n.id], kind: "need", label: String(n.title) });
  }
  for (const o of Array.isArray(offers) ? offers : []) {
    if (o && o.pod === pod && !o.redacted && typeof o.id === "string") items.push({ ids: [o.id], kind: "offer", label: String(o.title ?? "") });
  }
  const byPerson = new Map(); // a profile is every profile.set of the person that still has a body
  for (const event of Array.isArray(profiles?.events) ? profiles.events : []) {
    try {
      if (typeof event.envelope.body !== "string") continue;
      const person = personOf(JSON.parse(event.envelope.head).author);
      byPerson.set(person, [...(byPerson.get(person) ?? []), event.id]);
    } catch {
      // not a profile we can name
    }
  }
  for (const [person, ids] of byPerson) items.push({ ids, kind: "profile", label: t("coordinate.erase.profile-of", { who: personName(person) }) });
  data.erasable = items;
}

async function refresh() {
  if (!state.member || !isCoordinator()) return;
  const [overflow, moderation, erasures, needs] = await Promise.all([
    getJSON("/v1/overflow?limit=200"),
    getJSON("/v1/moderation"),
    getJSON("/v1/erasures?limit=200"),
    getJSON("/v1/needs?status=open&limit=200"),
  ]);
  if (overflow) data.overflow = { outgoing: overflow.outgoing ?? [], incoming: overflow.incoming ?? [] };
  if (moderation) data.moderation = { reports: moderation.reports ?? [], advisories: moderation.advisories ?? [], actions: moderation.actions ?? [] };
  if (erasures) data.erasures = { erasures: erasures.erasures ?? [], peers: erasures.peers ?? [] };
  if (Array.isArray(needs)) data.needs = needs.filter((n) => n && n.pod === state.info.pod);
  const pods = [];
  for (const item of [...data.overflow.outgoing, ...data.overflow.incoming]) {
    const r = item?.referral ?? {};
    pods.push(r.pod, r.assignment?.to_pod, ...(r.offers ?? []).map((o) => o.pod));
  }
  pods.push(...data.moderation.advisories.map((a) => a.pod), ...data.erasures.peers);
  for (const e of data.erasures.erasures) pods.push(...(e.confirmed ?? []), ...(e.pending ?? []));
  await Promise.all([loadPodNames(pods), loadErasable()]);
  render();
}

// --- small pieces -----------------------------------------------------------------------

function button(label, onClick, attrs = {}) {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

/** Run `work` with `trigger` disabled, saying "Sending…" then the outcome on `line`. */
async function act(trigger, line, work) {
  trigger.disabled = true;
  say(line, true, t("coordinate.sending"));
  try {
    const [ok, text] = await work();
    say(line, ok, text);
    if (ok) {
      data.open = null;
      for (const key of [...data.choice.keys()]) if (key.startsWith("field:")) data.choice.delete(key);
    }
  } finally {
    trigger.disabled = false;
    await refresh();
  }
}

/** An input whose value outlives a re-render (the lists are redrawn when anything changes). */
function kept(input) {
  const key = `field:${input.id}`;
  if (data.choice.has(key)) input.value = data.choice.get(key);
  input.addEventListener("input", () => data.choice.set(key, input.value));
  return input;
}

function reasonSelect(id, choiceKey, words = REASONS, fallback = "other") {
  const select = el("select", { id });
  select.append(...words.map((r) => el("option", { value: r }, t(`coordinate.why.${r}`))));
  select.value = data.choice.get(choiceKey) ?? fallback;
  select.addEventListener("change", () => data.choice.set(choiceKey, select.value));
  return select;
}

/** A confirmation step: `text`, maybe a reason select, "Yes, …" and "Cancel". */
function confirmPanel(key, text, yesLabel, onYes, { reasons = true, fallback = "other", advise = false } = {}) {
  const id = `coord-why-${key.replace(/[^\w-]/g, "_")}`;
  const panel = el("div", { class: "coord-confirm", role: "group", "aria-label": yesLabel }, el("p", {}, text));
  let select = null;
  if (reasons) {
    select = reasonSelect(id, key, REASONS, fallback);
    panel.append(el("p", {}, el("label", { for: id }, t("coordinate.why.label")), select));
  }
  let tell = null;
  if (advise) {
    tell = el("input", { id: `${id}-advise`, type: "checkbox" });
    tell.checked = data.choice.get(`${key}:advise`) === "yes";
    tell.addEventListener("change", () => data.choice.set(`${key}:advise`, tell.checked ? "yes" : "no"));
    panel.append(el("p", { class: "coord-check" }, tell, " ", el("label", { for: tell.id }, t("coordinate.advise.label"))));
  }
  const yes = button(yesLabel, (ev) => onYes(ev.currentTarget, select?.value ?? null, Boolean(tell?.checked)), { class: "danger" });
  const no = button(t("coordinate.cancel"), () => {
    data.open = null;
    render();
  }, { class: "secondary" });
  panel.append(el("p", { class: "coord-actions" }, yes, " ", no));
  return panel;
}

function opener(key, label) {
  return button(label, () => {
    data.open = key;
    render();
    document.querySelector(`[data-panel="${CSS.escape(key)}"] button, [data-panel="${CSS.escape(key)}"] select`)?.focus();
  }, { class: "secondary", "aria-expanded": data.open === key ? "true" : "false" });
}

// --- moderation acts (signed with this coordinator's own key) -----------------------------

/** `effective` from now: each of the person's logs' next seq, as `kith member block` does. */
async function fromNow(key) {
  const effective = {};
  for (const scope of SCOPES) {
    const head = await getJSON(`/v1/logs/${encodeURIComponent(state.info.pod)}/${encodeURIComponent(key)}/${scope}`);
    if (!head || !Number.isInteger(head.seq)) throw new Error("log head");
    effective[scope] = head.seq + 1;
  }
  return effective;
}

const rosterScope = () => String(state.info?.roster_scope ?? "public");

async function rosterAct(kind, key, reason, extra = {}) {
  let effective;
  try {
    effective = await fromNow(key);
  } catch {
    return { ok: false, changed: false, text: t("reason.network") };
  }
  const body = { key, effective, ...extra };
  if (reason) body.reason = reason;
  return publish(kind, body, rosterScope());
}

async function resolveReport(reportId, note, action) {
  const body = { report: reportId };
  if (note) body.note = note.slice(0, 500);
  if (action) body.action = action;
  return publish("report.resolved", body, "pod");
}

// --- overflow ---------------------------------------------------------------------------

function outgoingState(item) {
  const r = item.referral ?? {};
  switch (item.state) {
    case "referred": return t("coordinate.overflow.waiting");
    case "offered": return t("coordinate.overflow.can-help", { pods: (r.offers ?? []).map((o) => podName(o.pod)).join(", ") });
    case "assigned": return t("coordinate.overflow.assigned", { pod: podName(r.assignment?.to_pod) });
    case "fulfilled": return r.closing?.minutes ? t("coordinate.overflow.done-minutes", { pod: podName(r.closing.pod), minutes: r.closing.minutes }) : t("coordinate.overflow.done");
    case "returned": return t("coordinate.overflow.returned", { pod: podName(r.closing?.pod) });
    case "lapsed": return t("coordinate.overflow.expired");
    default: return t("coordinate.overflow.unknown");
  }
}

function incomingState(item) {
  const r = item.referral ?? {};
  const ours = r.assignment?.to_pod === state.info.pod;
  switch (item.state) {
    case "referred":
    case "offered":
      return (r.offers ?? []).some((o) => o.pod === state.info.pod) ? t("coordinate.overflow.we-offered") : t("coordinate.overflow.asks");
    case "assigned": return ours ? t("coordinate.overflow.ours") : t("coordinate.overflow.other-took", { pod: podName(r.assignment?.to_pod) });
    case "fulfilled": return t("coordinate.overflow.done");
    case "returned": return ours ? t("coordinate.overflow.we-returned") : t("coordinate.overflow.returned", { pod: podName(r.closing?.pod) });
    case "lapsed": return t("coordinate.overflow.expired");
    default: return t("coordinate.overflow.unknown");
  }
}

async function refer(trigger, need) {
  await act(trigger, $("coord-overflow-result"), async () => {
    const result = await postJSON("/v1/overflow/refer", { need: need.id });
    if (!result.ok) return [false, refusal(result)];
    return [true, t("coordinate.overflow.referred", { title: String(need.title) })];
  });
}

/** The need's words and private details, opened on this device and sealed to `pod`'s
 * coordinators only (`overflow.assigned.details`, as `kith overflow assign` does). Answers
 * `{details}`, or `{details: null, why}` when they cannot be sent from here. */
async function sealedDetails(item, pod) {
  const keys = [...new Set((item.box_keys?.[pod] ?? []).filter((k) => typeof k === "string"))];
  if (!keys.length) return { details: null, why: "no-keys" };
  const page = await getJSON(`/v1/events?ids=${encodeURIComponent(item.referral.need)}`);
  let body = null;
  try {
    body = JSON.parse(page?.events?.[0]?.envelope?.body ?? "null");
  } catch {
    body = null;
  }
  if (!body || typeof body !== "object") return { details: null, why: "no-need" };
  const details = {};
  for (const name of ["title", "details"]) if (typeof body[name] === "string") details[name] = body[name];
  if (body.personal) {
    const plain = openSealed(body.personal, state.keys.box, state.keys.boxKey, fieldAad("need.posted", "personal"));
    let personal = null;
    try {
      personal = plain === null ? null : JSON.parse(plain);
    } catch {
      personal = null;
    }
    if (!personal || typeof personal !== "object") return { details: null, why: "not-mine" };
    Object.assign(details, personal);
  }
  try {
    return { details: seal(JSON.stringify(details), keys.slice(0, MAX_RECIPIENTS), fieldAad("overflow.assigned", "details")) };
  } catch {
    return { details: null, why: "no-keys" };
  }
}

async function assign(trigger, item, pod) {
  await act(trigger, $("coord-overflow-result"), async () => {
    const { details, why } = await sealedDetails(item, pod);
    const body = details ? { to_pod: pod, details } : { to_pod: pod };
    const result = await postJSON(`/v1/overflow/${encodeURIComponent(item.referral.id)}/assign`, body);
    if (!result.ok) return [false, refusal(result)];
    const said = t("coordinate.overflow.assigned-done", { pod: podName(pod) });
    return [true, `${said} ${t(details ? "coordinate.overflow.sealed" : `coordinate.overflow.not-sealed.${why}`)}`];
  });
}

async function offer(trigger, item) {
  await act(trigger, $("coord-overflow-result"), async () => {
    const result = await postJSON(`/v1/overflow/${encodeURIComponent(item.referral.id)}/offer`, {});
    if (!result.ok) return [false, refusal(result)];
    return [true, t("coordinate.overflow.offered", { pod: podName(item.referral.pod) })];
  });
}

async function done(trigger, item, input) {
  const line = $("coord-overflow-result");
  const minutes = Number(input.value);
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
    input.setAttribute("aria-invalid", "true");
    say(line, false, t("coordinate.overflow.minutes-missing"));
    input.focus();
    return;
  }
  if (!item.local_need) {
    say(line, false, t("coordinate.overflow.no-local-need"));
    return;
  }
  await act(trigger, line, async () => {
    const outcome = await publish("fulfilment.recorded", { need: item.local_need, minutes }, "pod");
    if (!outcome.changed) return [false, outcome.text];
    return [true, t("coordinate.overflow.fulfilled", { minutes, pod: podName(item.referral.pod) })];
  });
}

async function giveBack(trigger, item, input) {
  await act(trigger, $("coord-overflow-result"), async () => {
    const reason = input.value.trim().slice(0, 200);
    const result = await postJSON(`/v1/overflow/${encodeURIComponent(item.referral.id)}/return`, reason ? { reason } : {});
    if (!result.ok) return [false, refusal(result)];
    return [true, t("coordinate.overflow.given-back", { pod: podName(item.referral.pod) })];
  });
}

function renderOverflow() {
  const active = new Set(
    data.overflow.outgoing.filter((i) => ["referred", "offered", "assigned", "fulfilled"].includes(i.state)).map((i) => i.referral?.need),
  );
  const referable = data.needs.filter((n) => !n.redacted && !n.referral && !active.has(n.id));
  $("coord-refer-empty").hidden = referable.length > 0;
  $("coord-refer-list").replaceChildren(
    ...referable.map((need) =>
      el("li", { "data-id": String(need.id) },
        el("h4", {}, String(need.title)),
        el("p", { class: "meta" }, t("need.by", { who: personName(need.author), what: categoryWords(need.category) })),
        el("p", {}, button(t("coordinate.overflow.refer"), (ev) => refer(ev.currentTarget, need), { "aria-label": t("coordinate.overflow.refer-this", { title: String(need.title) }) })),
      ),
    ),
  );

  $("coord-out-empty").hidden = data.overflow.outgoing.length > 0;
  $("coord-out-list").replaceChildren(
    ...data.overflow.outgoing.map((item) => {
      const r = item.referral ?? {};
      const li = el("li", { "data-id": String(r.id), "data-state": String(item.state) },
        el("h4", {}, summaryOf(r)),
        el("p", { class: "coord-state" }, outgoingState(item)),
        el("p", { class: "meta" }, t("coordinate.overflow.sent", { when: when(r.ts) })),
      );
      if (item.state === "offered") {
        const actions = el("p", { class: "coord-actions" });
        for (const o of r.offers ?? []) {
          actions.append(button(t("coordinate.overflow.assign", { pod: podName(o.pod) }), (ev) => assign(ev.currentTarget, item, o.pod)), " ");
          if (o.note) li.append(el("p", {}, t("coordinate.overflow.offer-note", { pod: podName(o.pod), note: String(o.note) })));
        }
        li.append(actions, el("p", { class: "hint" }, t("coordinate.overflow.no-details")));
      }
      return li;
    }),
  );

  $("coord-in-empty").hidden = data.overflow.incoming.length > 0;
  $("coord-in-list").replaceChildren(
    ...data.overflow.incoming.map((item) => {
      const r = item.referral ?? {};
      const li = el("li", { "data-id": String(r.id), "data-state": String(item.state) },
        el("h4", {}, t("coordinate.overflow.from", { pod: podName(r.pod), what: summaryOf(r) })),
        el("p", { class: "coord-state" }, incomingState(item)),
      );
      if (item.flag) li.append(el("p", { class: "hint" }, t("coordinate.overflow.flag")));
      const offered = (r.offers ?? []).some((o) => o.pod === state.info.pod);
      if (["referred", "offered"].includes(item.state) && !offered) {
        li.append(el("p", {}, button(t("coordinate.overflow.offer"), (ev) => offer(ev.currentTarget, item))));
      }
      if (item.state === "assigned" && r.assignment?.to_pod === state.info.pod) {
        const safe = String(r.id).replace(/[^\w-]/g, "_");
        const minutes = kept(el("input", { id: `coord-min-${safe}`, type: "number", min: "1", max: "1440", inputmode: "numeric" }));
        const why = kept(el("input", { id: `coord-ret-${safe}`, maxlength: "200", autocomplete: "off" }));
        li.append(
          el("p", {}, el("label", { for: minutes.id }, t("coordinate.overflow.minutes")), minutes),
          el("p", {}, button(t("coordinate.overflow.done-button"), (ev) => done(ev.currentTarget, item, minutes))),
          el("p", {}, el("label", { for: why.id }, t("coordinate.overflow.return-why")), why),
          el("p", {}, button(t("coordinate.overflow.return"), (ev) => giveBack(ev.currentTarget, item, why), { class: "secondary" })),
        );
      }
      return li;
    }),
  );
}

// --- reports and advice -----------------------------------------------------------------

function member(key) {
  const person = personOf(key);
  return state.people.find((p) => p.key === person) ?? null;
}

/** Tell direct peers of a block just made (`block.advised`, peers scope): a key, a word, an id. */
async function advise(key, reason, blocked, said) {
  const word = ADVISORY_REASONS.includes(reason) ? reason : "other";
  const outcome = await publish("block.advised", { key, reason: word, blocked }, "peers");
  if (!outcome.changed) return [false, t("coordinate.advise.failed", { said, reason: outcome.text })];
  return [true, `${said} ${t("coordinate.advise.done")}`];
}

async function blockFromReport(trigger, report, reason, note, tell = false) {
  await act(trigger, $("coord-reports-result"), async () => {
    const key = report.about_person ?? personOf(report.about);
    const blocked = await rosterAct("member.blocked", key, reason);
    if (!blocked.changed) return [false, blocked.text];
    const resolved = await resolveReport(report.id, note || reasonWord(reason), blocked.id);
    const who = personName(key);
    if (!resolved.changed) return [false, t("coordinate.reports.blocked-not-resolved", { who, reason: resolved.text })];
    const said = t("coordinate.reports.blocked", { who });
    return tell ? advise(key, reason, blocked.id, said) : [true, said];
  });
}

async function resolve(trigger, report, note) {
  await act(trigger, $("coord-reports-result"), async () => {
    const outcome = await resolveReport(report.id, note, null);
    if (!outcome.changed) return [false, outcome.text];
    return [true, t("coordinate.reports.resolved")];
  });
}

async function unblock(trigger, key, line) {
  await act(trigger, line, async () => {
    const outcome = await rosterAct("member.unblocked", key, "resolved");
    if (!outcome.changed) return [false, outcome.text];
    await refreshPeople();
    const still = member(key)?.status === "blocked";
    return still ? [false, t("coordinate.members.still-blocked", { who: personName(key) })] : [true, t("coordinate.members.unblocked", { who: personName(key) })];
  });
}

async function adopt(trigger, advice) {
  await act(trigger, $("coord-reports-result"), async () => {
    const outcome = await rosterAct("member.blocked", advice.key, advice.reason, { advisory: advice.id });
    if (!outcome.changed) return [false, outcome.text];
    return [true, t("coordinate.advice.adopted", { who: personName(advice.key) })];
  });
}

const refreshPeople = () => loadPeople();

function aboutWords(report) {
  if (report.about_person || report.about) return t("coordinate.reports.about", { who: personName(report.about_person ?? report.about) });
  return t("coordinate.reports.about-post");
}

function renderReports() {
  const reports = data.moderation.reports.filter((r) => r && r.status === "open");
  $("coord-reports-empty").hidden = reports.length > 0;
  $("coord-reports-list").replaceChildren(
    ...reports.map((report) => {
      const safe = String(report.id).replace(/[^\w-]/g, "_");
      const text = report.text === null || report.text === undefined ? t("coordinate.reports.erased") : String(report.text);
      const li = el("li", { "data-id": String(report.id) },
        el("h4", {}, t(isMe(report.by) ? "coordinate.reports.by.you" : "coordinate.reports.by", { who: personName(report.by), about: aboutWords(report) })),
        el("blockquote", {}, text),
        el("p", { class: "meta" }, when(report.ts)),
      );
      if (report.sealed) li.append(el("p", { class: "hint" }, t("coordinate.reports.sealed")));
      const note = kept(el("input", { id: `coord-note-${safe}`, maxlength: "500", autocomplete: "off" }));
      li.append(
        el("p", {}, el("label", { for: note.id }, t("coordinate.reports.note")), note),
        el("p", { class: "coord-actions" }, button(t("coordinate.reports.resolve"), (ev) => resolve(ev.currentTarget, report, note.value.trim()))),
      );
      const subject = report.about_person ?? (report.about ? personOf(report.about) : null);
      const who = subject ? member(subject) : null;
      if (who && who.status === "active" && who.key !== state.me?.key) {
        const key = `block-report:${report.id}`;
        const panel = el("div", { "data-panel": key });
        if (data.open === key) {
          panel.append(confirmPanel(key, t("coordinate.members.block-confirm", { who: personName(who.key) }), t("coordinate.members.block-yes", { who: personName(who.key) }), (b, reason, tell) => blockFromReport(b, report, reason, note.value.trim(), tell), { advise: true }));
        } else {
          panel.append(opener(key, t("coordinate.reports.block", { who: personName(who.key) })));
        }
        li.append(panel);
      } else if (who && who.status === "blocked") {
        li.append(el("p", { class: "coord-actions" }, el("span", {}, t("coordinate.members.is-blocked", { who: personName(who.key) })), " ",
          button(t("coordinate.members.unblock"), (ev) => unblock(ev.currentTarget, who.key, $("coord-reports-result")), { class: "secondary" })));
      }
      return li;
    }),
  );
  const resolved = data.moderation.reports.filter((r) => r && r.status === "resolved").slice(0, 20);
  $("coord-resolved").hidden = resolved.length === 0;
  $("coord-resolved-list").replaceChildren(
    ...resolved.map((r) => el("li", {}, t(isMe(r.resolved_by) ? "coordinate.reports.was.you" : "coordinate.reports.was", { who: personName(r.by), about: aboutWords(r), by: personName(r.resolved_by), note: r.note ? String(r.note) : t("coordinate.reports.no-note") }))),
  );

  const advice = data.moderation.advisories.filter((a) => a && a.direction === "incoming");
  $("coord-advice").hidden = advice.length === 0;
  $("coord-advice-list").replaceChildren(
    ...advice.map((a) => {
      const whom = a.member_here ? personName(a.key) : t("coordinate.advice.not-here");
      const li = el("li", { "data-id": String(a.id) },
        el("p", {}, t("coordinate.advice.line", { pod: podName(a.pod), who: whom, reason: reasonWord(a.reason) })),
      );
      if (a.status === "open") {
        li.append(el("p", { class: "hint" }, t("coordinate.advice.never-applied")));
        li.append(el("p", {}, button(t("coordinate.advice.adopt"), (ev) => adopt(ev.currentTarget, a))));
      } else {
        li.append(el("p", { class: "coord-state" }, t("coordinate.advice.was-adopted")));
      }
      return li;
    }),
  );
}

// --- members ----------------------------------------------------------------------------

async function memberAct(trigger, kind, who, reason, tell = false) {
  await act(trigger, $("coord-members-result"), async () => {
    const outcome = await rosterAct(kind, who.key, reason);
    if (!outcome.changed) return [false, outcome.text];
    await refreshPeople();
    const said = t(kind === "member.removed" ? "coordinate.members.removed" : "coordinate.members.blocked", { who: personName(who.key) });
    return tell ? advise(who.key, reason, outcome.id, said) : [true, said];
  });
}

function renderMembers() {
  const people = state.people.filter((p) => p && typeof p.key === "string");
  $("coord-members-list").replaceChildren(
    ...people.map((p) => {
      const role = ["coordinator", "member"].includes(p.role) ? p.role : "other";
      const status = ["active", "blocked", "removed"].includes(p.status) ? p.status : "active";
      // the key they joined with, unless revoked, and each linked device still valid
      const devices = (p.primary_revoked ? 0 : 1) + (Array.isArray(p.devices) ? p.devices.filter((d) => d && !d.revoked && d.key !== p.key).length : 0);
      const li = el("li", { "data-status": status },
        el("h4", {}, personName(p.key)),
        el("p", {}, t(`coordinate.members.role.${role}`), " · ", el("strong", {}, t(`coordinate.members.status.${status}`)), " · ", t(devices === 1 ? "coordinate.members.devices.one" : "coordinate.members.devices", { n: devices })),
      );
      if (p.key === state.me?.key || status === "removed") return li;
      const panelKey = data.open?.endsWith(`:${p.key}`) && data.open.startsWith("member-") ? data.open : null;
      const panel = el("div", { "data-panel": panelKey ?? "" });
      if (panelKey === `member-block:${p.key}`) {
        panel.append(confirmPanel(panelKey, t("coordinate.members.block-confirm", { who: personName(p.key) }), t("coordinate.members.block-yes", { who: personName(p.key) }), (b, reason, tell) => memberAct(b, "member.blocked", p, reason, tell), { advise: true }));
      } else if (panelKey === `member-remove:${p.key}`) {
        panel.append(confirmPanel(panelKey, t("coordinate.members.remove-confirm", { who: personName(p.key) }), t("coordinate.members.remove-yes", { who: personName(p.key) }), (b, reason) => memberAct(b, "member.removed", p, reason), { fallback: "left" }));
      } else {
        const actions = el("p", { class: "coord-actions" });
        if (status === "active") actions.append(opener(`member-block:${p.key}`, t("coordinate.members.block", { who: personName(p.key) })), " ");
        else actions.append(button(t("coordinate.members.unblock-who", { who: personName(p.key) }), (ev) => unblock(ev.currentTarget, p.key, $("coord-members-result")), { class: "secondary" }), " ");
        actions.append(opener(`member-remove:${p.key}`, t("coordinate.members.remove", { who: personName(p.key) })));
        panel.append(actions);
      }
      li.append(panel);
      return li;
    }),
  );
}

// --- erasure ----------------------------------------------------------------------------

function erasureWords(e) {
  if (e.status === "waiting") return t("coordinate.erasure.waiting");
  if (e.status === "not-redactable") return t("coordinate.erasure.not-redactable");
  if (e.status === "not-allowed") return t("coordinate.erasure.not-allowed");
  if (e.scope === "pod") return t("coordinate.erasure.pod-only");
  if (!e.neighbours) return t("coordinate.erasure.no-neighbours");
  const done = (e.confirmed ?? []).filter((p) => !(e.pending ?? []).includes(p)).length;
  let words = t("coordinate.erasure.confirmed", { n: Math.min(done, e.neighbours), of: e.neighbours });
  if (e.pending?.length) words += " " + t("coordinate.erasure.pending", { pods: e.pending.map(podName).join(", ") });
  return words;
}

async function erase(trigger, item) {
  await act(trigger, $("coord-erase-result"), async () => {
    for (const id of item.ids) {
      const found = await getJSON(`/v1/events/${encodeURIComponent(id)}`);
      let scope = "pod";
      try {
        scope = JSON.parse(found.envelope.head).scope;
      } catch {
        return [false, t("coordinate.erase.gone")];
      }
      const outcome = await publish("event.redacted", { target: id }, scope);
      if (!outcome.changed) return [false, outcome.text];
    }
    $("coord-erase-select").value = "";
    return [true, t("coordinate.erase.done", { what: item.label })];
  });
}

function renderErasure() {
  const select = $("coord-erase-select");
  const chosen = select.value;
  const groups = ["need", "offer", "profile"].map((kind) => {
    const group = el("optgroup", { label: t(`coordinate.erase.group.${kind}`) });
    data.erasable.forEach((item, i) => {
      if (item.kind === kind) group.append(el("option", { value: String(i) }, item.label));
    });
    return group;
  }).filter((g) => g.children.length);
  select.replaceChildren(el("option", { value: "" }, t("coordinate.erase.choose")), ...groups);
  select.value = data.erasable[Number(chosen)] ? chosen : "";
  const panel = $("coord-erase-confirm");
  const item = data.erasable[Number(select.value)];
  const open = data.open === "erase" && select.value !== "" && item;
  panel.replaceChildren();
  if (open) {
    panel.append(el("div", { "data-panel": "erase" }, confirmPanel("erase", t("coordinate.erase.confirm", { what: item.label }), t("coordinate.erase.yes"), (b) => erase(b, item), { reasons: false })));
  }
  $("coord-erase-button").hidden = Boolean(open);

  const list = data.erasures.erasures.filter((e) => e && typeof e.id === "string");
  $("coord-erasures-empty").hidden = list.length > 0;
  $("coord-erasures-list").replaceChildren(
    ...list.map((e) =>
      el("li", { "data-id": e.id, "data-target": String(e.target) },
        el("h4", {}, t(isMe(e.erased_by) ? "coordinate.erasure.line.you" : "coordinate.erasure.line", { what: kindWords(e.target_kind), who: personName(e.erased_by), when: when(e.at) })),
        el("p", { class: "coord-state" }, erasureWords(e)),
      ),
    ),
  );
}

// --- the tab ----------------------------------------------------------------------------

let lastRest = null;

function render() {
  if (!state.member || !isCoordinator() || !state.info) return;
  // Redrawing replaces the lists: keep the focus (and the caret) where the person was.
  const active = document.activeElement;
  const inside = active && $("view-coordinate").contains(active);
  const focused = inside && active.id ? active.id : null;
  const caret = focused && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
  // a button without an id: found again by its list, its item and its words
  const row = inside && !focused ? active.closest("li[data-id]") : null;
  const spot = row ? { list: row.parentElement?.id, id: row.dataset.id, words: active.textContent } : null;
  $("coord-menu").replaceChildren(
    ...SECTIONS.map((s) => el("a", { href: `#coordinate/${s}` }, t(`coordinate.${s}.heading`))),
  );
  for (const fn of [renderOverflow, renderReports, renderMembers, renderErasure]) {
    try {
      fn();
    } catch {
      // one section's trouble with odd data must not blank the others
    }
  }
  let again = focused ? $(focused) : null;
  if (spot?.list) {
    const item = [...($(spot.list)?.children ?? [])].find((li) => li.dataset.id === spot.id);
    again = [...(item?.querySelectorAll("button") ?? [])].find((b) => b.textContent === spot.words) ?? null;
  }
  if (again && again !== document.activeElement) {
    again.focus({ preventScroll: true });
    if (caret) {
      try {
        again.setSelectionRange(...caret);
      } catch {
        // number inputs have no caret
      }
    }
  }
}

export const view = {
  id: "coordinate",
  coordinator: true,
  kinds: ["overflow.*", "clearing.*", "report.*", "block.advised", "member.*", "event.redacted", "erasure.confirmed", "need.*", "offer.*", "fulfilment.*", "profile.set"],
  mount() {
    $("coord-erase-button").addEventListener("click", () => {
      if ($("coord-erase-select").value === "") {
        say($("coord-erase-result"), false, t("coordinate.erase.pick"));
        $("coord-erase-select").focus();
        return;
      }
      data.open = "erase";
      renderErasure();
      document.querySelector("#coord-erase-confirm button")?.focus();
    });
    $("coord-erase-select").addEventListener("change", () => {
      if (data.open === "erase") data.open = null;
      renderErasure();
    });
  },
  render,
  refresh: debounce(refresh),
  open(rest) {
    if (rest !== lastRest && SECTIONS.includes(rest)) {
      const heading = $(`coord-${rest}-heading`);
      heading?.scrollIntoView();
      heading?.focus({ preventScroll: true });
    }
    lastRest = rest;
  },
};
