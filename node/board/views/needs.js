// Open needs, and asking for help.
import { t } from "../i18n.js";
import {
  $, CATEGORIES, URGENCIES, capitalise, categoryWords, debounce, el, fillSelect, getJSON,
  personName, publish, say, state, when,
} from "../core.js";
import { actionsFor } from "./need-actions.js";

let needs = [];

function render() {
  const list = $("needs-list");
  list.replaceChildren(
    ...needs.map((need) => {
      const what = categoryWords(need.category);
      const line =
        need.author === state.keys.key || (state.me && need.author === state.me.key)
          ? t("need.by.you", { what })
          : t("need.by", { who: personName(need.author), what });
      const urgency = URGENCIES.includes(need.urgency) ? need.urgency : "normal";
      const item = el(
        "li",
        { "data-urgency": urgency, "data-id": String(need.id) },
        el("h3", {}, String(need.title)),
        el("p", {}, el("span", { class: "badge" }, t(`urgency.${urgency}`)), " ", line),
      );
      const meta = [t("need.posted", { when: when(need.ts) })];
      if (need.area) meta.unshift(t("need.area", { area: String(need.area) }));
      item.append(el("p", { class: "meta" }, meta.join(" · ")));
      const actions = actionsFor(need);
      if (actions) item.append(actions);
      return item;
    }),
  );
  $("needs-empty").hidden = needs.length > 0;
}

async function refresh() {
  const read = await getJSON("/v1/needs?status=open&limit=200");
  if (!Array.isArray(read)) return;
  needs = read.filter((n) => n && typeof n === "object" && n.pod === state.info.pod);
  needs.sort((a, b) => Number(b.ts) - Number(a.ts));
  render();
}

async function post(event) {
  event.preventDefault();
  const title = $("title").value.trim();
  const result = $("post-result");
  if (!title) {
    say(result, false, t("post.missing-title"));
    $("title").setAttribute("aria-invalid", "true");
    $("title").focus();
    return;
  }
  $("title").removeAttribute("aria-invalid");
  const button = $("post-button");
  button.disabled = true;
  say(result, true, t("post.sending"));
  try {
    const body = { title, category: $("category").value, urgency: $("urgency").value };
    const outcome = await publish("need.posted", body);
    if (outcome.changed) {
      say(result, true, t("post.done"));
      $("title").value = "";
    } else {
      say(result, false, outcome.text);
    }
  } finally {
    button.disabled = false;
  }
}

export const view = {
  id: "needs",
  kinds: ["need.*", "claim.*", "fulfilment.*", "event.redacted"],
  mount() {
    $("post-form").addEventListener("submit", post);
  },
  render() {
    fillSelect($("category"), CATEGORIES, (c) => capitalise(t(`cat.${c}`)));
    fillSelect($("urgency"), URGENCIES, (u) => t(`urgency.${u}`), "normal");
    render();
  },
  refresh: debounce(refresh),
};
