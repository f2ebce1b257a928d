// This device and its person: the keys it made, which never leave this browser.
import { $, state } from "../core.js";

export const view = {
  id: "me",
  kinds: [],
  render() {
    if (!state.keys) return;
    $("me-key").textContent = state.keys.key;
    $("me-box").textContent = state.keys.boxKey;
  },
};
