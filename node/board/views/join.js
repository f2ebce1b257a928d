// For someone not in the pod yet: this device's keys, and how a coordinator adds them.
import { t } from "../i18n.js";
import { $, state } from "../core.js";

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

export const view = {
  id: "join",
  outsiderOnly: true,
  kinds: [],
  mount() {
    $("copy").addEventListener("click", copyCommand);
  },
  render() {
    if (!state.keys) return;
    $("my-key").textContent = state.keys.key;
    $("my-box").textContent = state.keys.boxKey;
    $("my-command").textContent = `kith member add --key ${state.keys.key} --box-key ${state.keys.boxKey}`;
  },
};
