// Coordinators: invite someone with a one-time link and QR code, see every invite's status,
// and approve or decline who waits (docs/invites.md).
//
// The code is made here, in this browser: the node gets only its hash (`invite.created`), and
// the link carries the code in the fragment (`#join/<code>`), which never reaches a server log.
import { t } from "../i18n.js";
import { $, copyText, el, fillSelect, getJSON, nowMs, personName, personOf, publish, say, state, when } from "../core.js";
import { b64e, sha256B64 } from "../sign.js";

const HOUR = 3_600_000;
const EXPIRES = { "1h": HOUR, "1d": 24 * HOUR, "3d": 72 * HOUR, "7d": 168 * HOUR };
const APPROVE = ["coordinator", "auto"];
const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 5000;

let listing = null; // GET /v1/invites: {roster_scope, invites, requests}

/** base64url(SHA-256("kith-invite/1\n" + code)), as node/projections/invites.py. */
export function inviteHash(code) {
  return sha256B64(new TextEncoder().encode(`kith-invite/1\n${code}`));
}

/** Draw `text` as a QR code: an SVG of one path, built with DOM calls (no markup strings). */
async function drawQr(box, text) {
  const { encode } = await import("../vendor/uqr/index.js");
  const qr = encode(text, { ecc: "M", border: 4 });
  let d = "";
  qr.data.forEach((row, y) => {
    row.forEach((dark, x) => {
      if (dark) d += `M${x} ${y}h1v1h-1z`;
    });
  });
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${qr.size} ${qr.size}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("invite.qr.label"));
  svg.setAttribute("shape-rendering", "crispEdges");
  const back = document.createElementNS(SVG, "rect");
  back.setAttribute("width", String(qr.size));
  back.setAttribute("height", String(qr.size));
  back.setAttribute("fill", "#fff");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(back, path);
  box.replaceChildren(svg);
}

async function create(event) {
  event.preventDefault();
  const button = $("invite-button");
  const line = $("invite-result");
  button.disabled = true;
  try {
    const code = b64e(crypto.getRandomValues(new Uint8Array(16)));
    const expires = EXPIRES[$("invite-expires").value] ?? EXPIRES["3d"];
    const approve = $("invite-approve").value === "auto" ? "auto" : "coordinator";
    const body = { code_hash: inviteHash(code), expires_at: nowMs() + expires, approve };
    const result = await publish("invite.created", body, "pod");
    if (!result.ok) {
      say(line, false, result.text);
      return;
    }
    const link = `${location.origin}/#join/${code}`;
    $("invite-link").textContent = link;
    $("invite-made").hidden = false;
    $("invite-copy-result").textContent = "";
    say(line, true, t(approve === "auto" ? "invite.made.auto" : "invite.made.coordinator", { when: when(body.expires_at) }));
    await drawQr($("invite-qr"), link);
    refresh();
  } finally {
    button.disabled = false;
  }
}

async function copyLink() {
  const copied = await copyText($("invite-link").textContent, $("invite-link"));
  $("invite-copy-result").textContent = t(copied ? "invite.copied" : "invite.copy-failed");
}

async function act(line, button, kind, body, scope, words) {
  button.disabled = true;
  const result = await publish(kind, body, scope);
  button.disabled = false;
  say(line, result.ok && result.changed !== false, result.ok ? result.text || words : result.text);
  refresh();
}

function requestItem(request) {
  const name = typeof request.name === "string" && request.name ? request.name : null;
  const who = name ?? t("invite.request.noname");
  const line = $("invite-requests-result");
  const approve = el("button", { type: "button" }, t("invite.request.approve"));
  const decline = el("button", { type: "button", class: "secondary" }, t("invite.request.decline"));
  approve.addEventListener("click", () =>
    act(line, approve, "member.added", {
      key: request.key, role: "member", box_key: request.box_key, invite: request.invite,
    }, listing?.roster_scope === "peers" ? "peers" : "public", t("invite.request.approved", { name: who })),
  );
  decline.addEventListener("click", () =>
    act(line, decline, "invite.revoked", { invite: request.invite }, "pod", t("invite.request.declined", { name: who })),
  );
  return el(
    "li",
    {},
    el("h3", {}, t("invite.request.title", { name: who })),
    el("p", { class: "meta" }, t("invite.request.when", { when: when(request.at) })),
    el("p", { class: "actions" }, approve, " ", decline),
  );
}

function inviteItem(invite) {
  const status = ["open", "pending", "used", "expired", "revoked"].includes(invite.status) ? invite.status : "open";
  const parts = [
    el("h3", {}, el("span", { class: "badge" }, t(`invite.status.${status}`)), " ",
      t(invite.approve === "auto" ? "invite.item.auto" : "invite.item.coordinator")),
    el("p", { class: "meta" }, personOf(String(invite.by)) === state.me?.key
      ? t("invite.item.made.you", { when: when(invite.at) })
      : t("invite.item.made", { name: personName(String(invite.by)), when: when(invite.at) })),
  ];
  if (status === "used" && typeof invite.member === "string") {
    parts.push(el("p", {}, t("invite.item.joined", { name: personName(invite.member) })));
  } else if (status === "open" || status === "pending") {
    parts.push(el("p", { class: "meta" }, t("invite.item.expires", { when: when(invite.expires_at) })));
    const withdraw = el("button", { type: "button", class: "secondary" }, t("invite.withdraw"));
    withdraw.addEventListener("click", () =>
      act($("invite-all-result"), withdraw, "invite.revoked", { invite: invite.id }, "pod", t("invite.withdrawn")),
    );
    parts.push(el("p", { class: "actions" }, withdraw));
  }
  return el("li", { "data-status": status }, ...parts);
}

function render() {
  fillSelect($("invite-expires"), Object.keys(EXPIRES), (v) => t(`invite.expires.${v}`), "3d");
  fillSelect($("invite-approve"), APPROVE, (v) => t(`invite.approve.${v}`), "coordinator");
  const requests = Array.isArray(listing?.requests) ? listing.requests.filter((r) => r && typeof r.key === "string") : [];
  const invites = Array.isArray(listing?.invites) ? listing.invites.filter((i) => i && typeof i.id === "string") : [];
  $("invite-requests-list").replaceChildren(...requests.map(requestItem));
  $("invite-requests-empty").hidden = requests.length > 0;
  $("invite-all-list").replaceChildren(...invites.map(inviteItem));
  $("invite-all-empty").hidden = invites.length > 0;
}

async function refresh() {
  if (!state.member || state.me?.role !== "coordinator") return;
  const answer = await getJSON("/v1/invites");
  if (answer && typeof answer === "object") listing = answer;
  render();
}

export const view = {
  id: "invite",
  coordinator: true,
  kinds: ["invite.*", "member.added"],
  mount() {
    $("invite-form").addEventListener("submit", create);
    $("invite-copy").addEventListener("click", copyLink);
    // Join requests are not events: while this tab is open, ask the node now and then.
    setInterval(() => {
      if (!$("view-invite").hidden && !document.hidden) refresh();
    }, POLL_MS);
  },
  render,
  refresh,
  open() {
    refresh();
  },
};
