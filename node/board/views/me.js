// You, in this pod: your profile, the people of the pod, and your devices (issue 13 items 2, 3;
// issue 9, docs/recovery.md).
//
// One key per device, never copied: a second device makes its own key and shows it as a
// "device code"; a device already in the pod signs `member.key_added {member, key}` for it.
// Someone not in the pod yet sees only the device code (this view is `outsider`).
import { LANGS, lang, t } from "../i18n.js";
import { $, api, copyText, el, getJSON, onEvents, publish, say, state } from "../core.js";
import { fieldAad, open as openSealed, seal } from "../seal.js";

const SCOPES = ["pod", "peers", "public"];
const KEY = /[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]/g;
/** What the node takes as a language tag (protocol/kinds.py LanguageTag); the board asks a
 * little more of what a person types: a 2–3 letter language first, as ISO 639 has. */
const TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/;
/** Languages whose names the languages field understands, besides any tag typed as a tag. */
const COMMON = [
  "en", "es", "pt", "fr", "de", "it", "nl", "ca", "eu", "gl", "ar", "fa", "ur", "hi", "bn", "pa",
  "ta", "zh", "ja", "ko", "vi", "tl", "ru", "uk", "pl", "ro", "tr", "el", "he", "sw", "am", "so",
  "ti", "ht", "qu", "gn", "ase", "bfi", "ssp",
];
const LIMITS = { name: 80, pronouns: 40, about: 500, contact: 500 };
const CONTACT_AAD = fieldAad("profile.set", "contact");

/** Public notes of device links seen on the stream: device key → its `reason` (a label). */
const notes = new Map();
/** The device waiting for "yes, remove the device I am using". */
let confirming = null;
/** The profile form holds typing not saved yet (never overwritten by what the stream brings). */
let dirty = false;
/** The profile the form was last filled from. */
let filled = null;
/** The language the form was filled in (languages are shown by name: refilled on a switch). */
let filledLang = null;
/** Your sealed contact as this device finds it: "none", "open" (shown) or "closed" (sealed to
 * another device's box key: kept as it is unless you type a new one). */
let contactState = "none";

// --- reading what others wrote (never trusted) -----------------------------------------

const text = (value, max) => (typeof value === "string" ? value.slice(0, max) : "");

function languagesOf(profile) {
  const list = Array.isArray(profile?.languages) ? profile.languages : [];
  return list.filter((tag) => typeof tag === "string" && tag.length <= 35).slice(0, 8);
}

function languageName(tag) {
  try {
    const name = new Intl.DisplayNames([lang()], { type: "language" }).of(tag);
    return name || tag;
  } catch {
    return tag;
  }
}

const fold = (words) => words.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase().trim();

/** The languages field's words as tags: names ("Spanish", "español") or tags ("pt-BR"). */
function parseLanguages(typed, known) {
  const byName = new Map();
  for (const tag of [...COMMON, ...known]) {
    byName.set(fold(languageName(tag)), tag);
    byName.set(fold(tag), tag);
    for (const other of LANGS) {
      try {
        byName.set(fold(new Intl.DisplayNames([other], { type: "language" }).of(tag) ?? tag), tag);
      } catch {
        // a tag this browser cannot name is still found by its tag
      }
    }
  }
  const tags = [];
  for (const item of typed.split(/[,;\n]/)) {
    const words = item.trim();
    if (!words) continue;
    let tag = byName.get(fold(words)) ?? null;
    if (!tag && TAG.test(words)) {
      try {
        tag = Intl.getCanonicalLocales(words)[0];
      } catch {
        tag = null;
      }
    }
    if (!tag || tag.length > 35) return { error: t("me.profile.language-unknown", { words }) };
    if (!tags.includes(tag)) tags.push(tag);
  }
  if (tags.length > 8) return { error: t("me.profile.languages-many") };
  return { tags };
}

// --- your profile --------------------------------------------------------------------------

function myProfile() {
  const profile = state.me ? state.profiles.get(state.me.key) : null;
  return profile && typeof profile === "object" && !Array.isArray(profile) ? profile : {};
}

/** Fill the form from the latest profile, unless it holds typing not saved yet. */
function fillProfile() {
  const latest = myProfile();
  if (dirty || (latest === filled && lang() === filledLang)) return;
  filled = latest;
  filledLang = lang();
  fillFrom(latest);
}

function fillFrom(profile) {
  $("me-name").value = text(profile.name, LIMITS.name);
  $("me-pronouns").value = text(profile.pronouns, LIMITS.pronouns);
  $("me-languages").value = languagesOf(profile).map(languageName).join(", ");
  $("me-about").value = text(profile.about, LIMITS.about);
  contactState = "none";
  let contact = "";
  if (profile.contact) {
    const opened = openSealed(profile.contact, state.keys.box, state.keys.boxKey, CONTACT_AAD);
    try {
      const value = opened === null ? null : JSON.parse(opened);
      contact = typeof value?.text === "string" ? value.text : typeof value === "string" ? value : "";
      contactState = opened === null ? "closed" : "open";
    } catch {
      contactState = "closed";
    }
  }
  $("me-contact").value = contact.slice(0, LIMITS.contact);
  $("me-contact-closed").hidden = contactState !== "closed";
}

function refuse(line, field, words) {
  say(line, false, words);
  $(field).setAttribute("aria-invalid", "true");
  $(field).focus();
}

async function saveProfile(event) {
  event.preventDefault();
  const line = $("me-profile-result");
  for (const id of ["me-name", "me-pronouns", "me-languages", "me-about", "me-contact"]) $(id).removeAttribute("aria-invalid");
  const name = $("me-name").value.trim();
  const pronouns = $("me-pronouns").value.trim();
  const about = $("me-about").value.trim();
  const contact = $("me-contact").value.trim();
  for (const [field, value] of [["name", name], ["pronouns", pronouns], ["about", about], ["contact", contact]]) {
    if (value.length > LIMITS[field]) {
      refuse(line, `me-${field}`, t(`me.profile.${field}-long`, { max: LIMITS[field], count: value.length }));
      return;
    }
  }
  const old = myProfile();
  const parsed = parseLanguages($("me-languages").value, languagesOf(old));
  if (parsed.error) {
    refuse(line, "me-languages", parsed.error);
    return;
  }
  // A profile replaces the one before: keep what this form does not edit (a sealed contact,
  // fields of a newer board), and leave out what is now empty.
  const body = { ...old };
  for (const field of ["name", "pronouns", "languages", "about"]) delete body[field];
  if (name) body.name = name;
  if (pronouns) body.pronouns = pronouns;
  if (parsed.tags.length) body.languages = parsed.tags;
  if (about) body.about = about;
  if (contact) {
    const sealed = await sealContact(contact);
    if (!sealed) {
      refuse(line, "me-contact", t("me.profile.contact-unsealed"));
      return;
    }
    body.contact = sealed;
  } else if (contactState !== "closed") {
    delete body.contact; // emptied here: no contact any more (one this device cannot open stays)
  }
  const button = $("me-profile-save");
  button.disabled = true;
  say(line, true, t("me.sending"));
  try {
    const outcome = await publish("profile.set", body, "pod");
    if (!outcome.changed) {
      say(line, false, outcome.text);
      return;
    }
    dirty = false;
    filled = myProfile(); // what the stream brings next refills the form; until then, as saved
    fillFrom(body);
    const shown = name ? (pronouns ? `${name} (${pronouns})` : name) : t("person.someone");
    say(line, true, t("me.profile.saved", { name: shown }));
  } finally {
    button.disabled = false;
  }
}

/** Your contact, sealed in this browser to the pod's coordinators and you (your person's box
 * key, the one the roster holds): `{text}` as JSON, aad `profile.set/contact`. */
async function sealContact(contact) {
  const keys = await getJSON(`/v1/pods/${state.info.pod}/keys`);
  const coordinators = Array.isArray(keys?.coordinators) ? keys.coordinators.filter((k) => typeof k === "string") : [];
  const recipients = [...new Set([state.me.box_key, ...coordinators].filter(Boolean))].slice(0, 32);
  try {
    return seal(JSON.stringify({ text: contact }), recipients, CONTACT_AAD);
  } catch {
    return null;
  }
}

// --- people in the pod -------------------------------------------------------------------

function renderPeople() {
  const people = state.people.filter((p) => p.status === "active" || p.status === undefined);
  // You first, then everyone with a name (by name), then those with none yet.
  const order = (p) => [state.me && p.key === state.me.key ? 0 : state.names.has(p.key) ? 1 : 2, state.names.get(p.key) ?? ""];
  people.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    return x[0] - y[0] || x[1].localeCompare(y[1], lang());
  });
  $("me-people-list").replaceChildren(
    ...people.map((person) => {
      const profile = state.profiles.get(person.key) ?? {};
      const name = state.names.get(person.key);
      const you = state.me && person.key === state.me.key;
      const heading = el("strong", {}, name ?? t("me.people.no-name"));
      const item = el("li", { "data-person": you ? "you" : null }, heading);
      const pronouns = text(profile.pronouns, LIMITS.pronouns);
      if (pronouns) item.append(" ", el("span", { class: "me-pronouns" }, `(${pronouns})`));
      if (you) item.append(" ", el("span", { class: "badge" }, t("me.people.you")));
      if (person.role === "coordinator") item.append(" ", el("span", { class: "badge" }, t("me.people.coordinator")));
      const languages = languagesOf(profile).map(languageName);
      if (languages.length) item.append(el("p", { class: "meta" }, t("me.people.speaks", { languages: languages.join(", ") })));
      return item;
    }),
  );
  $("me-people-empty").hidden = people.length > 0;
}

// --- your devices --------------------------------------------------------------------------

function myDevices() {
  if (!state.me) return [];
  const first = { key: state.me.key, revoked: Boolean(state.me.primary_revoked), primary: true };
  const linked = (state.me.devices ?? []).filter((d) => d && typeof d.key === "string");
  return [first, ...linked.map((d) => ({ key: d.key, revoked: Boolean(d.revoked), primary: false }))];
}

function renderDevices() {
  const devices = myDevices();
  $("me-device-list").replaceChildren(
    ...devices.map((device, index) => {
      const here = device.key === state.keys.key;
      const label = notes.get(device.key) || t(device.primary ? "me.devices.first" : "me.devices.other", { n: index + 1 });
      const item = el("li", { "data-key": device.key, "data-revoked": String(device.revoked) }, el("strong", {}, label));
      if (here) item.append(" ", el("span", { class: "badge" }, t("me.devices.this")));
      item.append(
        el("p", { class: "meta" }, t(device.revoked ? "me.devices.removed" : "me.devices.active")),
        el("p", { class: "meta" }, t("me.devices.key"), " ", el("code", {}, device.key)),
      );
      if (device.revoked) return item;
      if (device.primary) {
        item.append(el("p", { class: "hint" }, t("me.devices.first-hint")));
        return item;
      }
      const button = el("button", { type: "button", class: "me-remove", "aria-describedby": null }, t(here ? "me.devices.remove-this" : "me.devices.remove"));
      button.addEventListener("click", () => askRemove(device.key, here));
      item.append(el("p", {}, button));
      if (confirming === device.key) item.append(confirmBlock(device.key));
      return item;
    }),
  );
}

function confirmBlock(key) {
  const yes = el("button", { type: "button", id: "me-remove-yes", class: "me-danger" }, t("me.devices.confirm-yes"));
  const no = el("button", { type: "button", id: "me-remove-no", class: "me-secondary" }, t("me.devices.confirm-no"));
  yes.addEventListener("click", () => remove(key));
  no.addEventListener("click", () => {
    confirming = null;
    renderDevices();
    say($("me-devices-result"), true, t("me.devices.kept"));
  });
  return el(
    "div",
    { class: "me-confirm", role: "group", "aria-labelledby": "me-confirm-text" },
    el("p", { id: "me-confirm-text" }, t("me.devices.confirm")),
    el("p", {}, yes, " ", no),
  );
}

function askRemove(key, here) {
  if (!here) {
    remove(key);
    return;
  }
  confirming = key; // the device in use: only after a clear "yes"
  renderDevices();
  $("me-remove-no")?.focus();
}

/** The last seq of each of `key`'s logs in this pod, as the node shows them (0: empty). */
async function heads(key) {
  const through = {};
  for (const scope of SCOPES) {
    const response = await api(`/v1/logs/${state.info.pod}/${key}/${scope}`);
    if (!response.ok) throw new Error(`log head: ${response.status}`);
    const head = await response.json();
    through[scope] = Number.isInteger(head?.seq) ? head.seq : 0;
  }
  return through;
}

async function remove(key) {
  confirming = null;
  const line = $("me-devices-result");
  say(line, true, t("me.sending"));
  let through;
  try {
    through = await heads(key);
  } catch {
    say(line, false, t("reason.network"));
    renderDevices();
    return;
  }
  const outcome = await publish("member.key_revoked", { key, valid_through: through }, rosterScope());
  renderDevices();
  if (!outcome.changed) {
    say(line, false, outcome.text);
    return;
  }
  say(line, true, t(key === state.keys.key ? "me.devices.removed-this" : "me.devices.removed-done"));
}

const rosterScope = () => (state.info?.roster_scope === "peers" ? "peers" : "public");

async function link(event) {
  event.preventDefault();
  const line = $("me-link-result");
  const field = $("me-code-in");
  field.removeAttribute("aria-invalid");
  const keys = field.value.match(KEY) ?? [];
  const key = keys[0];
  if (!key) {
    refuse(line, "me-code-in", t("me.link.bad-code"));
    return;
  }
  const known = state.people.some((p) => p.key === key || (p.devices ?? []).some((d) => d.key === key));
  if (key === state.keys.key || known) {
    refuse(line, "me-code-in", t("me.link.already"));
    return;
  }
  const note = $("me-note").value.trim();
  if (note.length > 500) {
    refuse(line, "me-note", t("me.link.note-long"));
    return;
  }
  const body = { member: state.me.key, key };
  if (note) body.reason = note;
  const button = $("me-link-button");
  button.disabled = true;
  say(line, true, t("me.sending"));
  try {
    const outcome = await publish("member.key_added", body, rosterScope());
    if (!outcome.changed) {
      say(line, false, outcome.text);
      return;
    }
    field.value = "";
    $("me-note").value = "";
    say(line, true, t("me.link.done"));
  } finally {
    button.disabled = false;
  }
}

// --- the device code (for a device not in the pod yet) -------------------------------------

const deviceCode = () => `kith-device ${state.keys.key} ${state.keys.boxKey}`;

async function copyCode() {
  const copied = await copyText(deviceCode(), $("me-code"));
  say($("me-copy-result"), true, t(copied ? "me.code.copied" : "me.code.copy-by-hand"));
}

// --- the view ----------------------------------------------------------------------------

let renderedLang = null;

function render() {
  if (!state.keys) return;
  if (renderedLang !== lang()) {
    // an outcome said in the language before the switch would be left half translated
    for (const id of ["me-profile-result", "me-devices-result", "me-link-result", "me-copy-result"]) say($(id), true, "");
    renderedLang = lang();
  }
  const member = Boolean(state.member && state.me);
  $("me-link").hidden = member;
  $("me-member").hidden = !member;
  $("me-key").textContent = state.keys.key;
  $("me-box").textContent = state.keys.boxKey;
  $("me-code").textContent = deviceCode();
  if (!member) return;
  fillProfile();
  renderPeople();
  renderDevices();
}

export const view = {
  id: "me",
  outsider: true,
  kinds: [], // the roster and profiles come with every stream (app.js ALWAYS): render() follows them
  mount() {
    $("me-profile-form").addEventListener("submit", saveProfile);
    $("me-profile-form").addEventListener("input", () => {
      dirty = true;
    });
    $("me-link-form").addEventListener("submit", link);
    $("me-copy").addEventListener("click", copyCode);
    onEvents(["member.key_added"], (head, body) => {
      if (body && typeof body.key === "string" && typeof body.reason === "string" && body.reason.trim()) {
        notes.set(body.key, body.reason.trim().slice(0, 60));
      }
    });
  },
  render,
  refresh() {
    render();
  },
};
