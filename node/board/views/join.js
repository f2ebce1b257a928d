// For someone not in the pod yet: join with an invite link (`#join/<code>`), or give this
// device's keys to a coordinator by hand.
//
// Redeeming sends the code, this device's key and box key, and a token signed by that key
// (proof that this browser holds it) to POST /v1/invites/redeem. The name typed here is kept
// in this browser until the device is a member, then signed as `profile.set {name}`.
import { t } from "../i18n.js";
import { $, copyText, publish, reasonWords, say, state, token } from "../core.js";
import { rejoin } from "../stream.js";

const NAME = "kith.join.name";
const WAIT_MS = 15_000;
const REASONS = ["unknown", "used", "revoked", "expired", "already-member", "too-many"];

let code = null;
let waiting = null;

async function copyCommand() {
  const copied = await copyText($("my-command").textContent, $("my-command"));
  $("copy-result").textContent = t(copied ? "me.copied" : "me.copy-failed");
}

function refusal(answer) {
  const reason = String(answer?.reason ?? "");
  const short = reason.startsWith("invite:") ? reason.slice(7) : "";
  if (REASONS.includes(short)) return t(`join.refused.${short}`);
  return reasonWords(reason, answer?.message ?? answer?.detail);
}

/** Ask the node to let this device in with the code; `quiet` when asking again while waiting. */
async function redeem(quiet = false) {
  const line = $("join-result");
  const button = $("join-button");
  const name = $("join-name").value.trim().slice(0, 80);
  if (!quiet) {
    if (name) localStorage.setItem(NAME, name);
    else localStorage.removeItem(NAME);
    button.disabled = true;
  }
  const body = { code, key: state.keys.key, box_key: state.keys.boxKey };
  if (name) body.name = name;
  let answer = null;
  let ok = false;
  try {
    const response = await fetch("/v1/invites/redeem", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Kith ${token("http")}` },
      body: JSON.stringify(body),
    });
    answer = await response.json().catch(() => ({}));
    ok = response.ok;
  } catch {
    if (quiet) return; // the node restarts or the phone sleeps: ask again next time
    say(line, false, t("reason.network"));
    button.disabled = false;
    return;
  }
  if (state.member) return;
  if (ok && answer?.status === "added") {
    stopWaiting();
    say(line, true, t("join.welcome", { pod: podName() }));
    $("join-name").disabled = true;
    rejoin(); // read again as a member: the board opens
    return;
  }
  if (ok && answer?.status === "pending") {
    say(line, true, t("join.waiting"));
    $("join-name").disabled = true;
    if (!waiting) waiting = setInterval(() => redeem(true), WAIT_MS);
    return;
  }
  // Asking again while waiting: a busy address (invite:too-many) just waits for the next turn.
  if (quiet && answer?.reason === "invite:too-many") return;
  stopWaiting();
  button.disabled = false;
  $("join-name").disabled = false;
  say(line, false, refusal(answer));
}

function stopWaiting() {
  if (waiting) clearInterval(waiting);
  waiting = null;
}

function podName() {
  return state.info?.name ? String(state.info.name) : "Kith";
}

/** Once this device is a member: sign the name given when joining, if any. */
async function signName() {
  const name = localStorage.getItem(NAME);
  if (!state.member || !name) return;
  localStorage.removeItem(NAME); // once: a second tab must not sign it again
  const result = await publish("profile.set", { name: name.slice(0, 80) }, "pod");
  if (!result.ok) localStorage.setItem(NAME, name);
}

export const view = {
  id: "join",
  outsiderOnly: true,
  kinds: [],
  mount() {
    $("copy").addEventListener("click", copyCommand);
    $("join-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (code && state.keys) redeem();
    });
    if (state.member) signName();
  },
  render() {
    if (!state.keys) return;
    $("my-key").textContent = state.keys.key;
    $("my-box").textContent = state.keys.boxKey;
    $("my-command").textContent = `kith member add --key ${state.keys.key} --box-key ${state.keys.boxKey}`;
    $("join-invite-heading").textContent = t("join.invite.heading", { pod: podName() });
  },
  refresh() {
    if (state.member) {
      stopWaiting();
      signName();
      // The code is spent: keep it out of the address bar and the history entry.
      if (location.hash.startsWith("#join/")) history.replaceState(null, "", location.pathname);
    }
  },
  open(rest) {
    const given = /^[A-Za-z0-9_-]{16,128}$/.test(rest ?? "") ? rest : null;
    code = given;
    $("join-invite").hidden = !given;
    $("join").hidden = Boolean(given);
    if (given && state.keys) $("join-invite-heading").textContent = t("join.invite.heading", { pod: podName() });
  },
};
