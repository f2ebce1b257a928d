// The live link: /v1/stream, resumed with `after` from the last cursor, and the connection line.
import { t } from "./i18n.js";
import { $, dispatch, state, token } from "./core.js";

const link = {
  socket: null,
  cursor: null,
  kinds: [],
  everLive: false,
  lost: false,
  wasLost: false,
  rejoining: false,
  backTimer: null,
  retry: 500,
  onLive: () => {},
  onMember: () => {},
};

export function showConnection() {
  const conn = $("conn");
  const live = link.socket?.readyState === WebSocket.OPEN && link.everLive;
  const which = link.lost ? "lost" : live ? "live" : "connecting";
  conn.dataset.state = which;
  conn.textContent = t(which === "live" && link.wasLost ? "conn.back" : `conn.${which}`);
}

/** Read again from the start (this device just became a member: pod events were hidden). */
export function rejoin() {
  link.cursor = null;
  link.rejoining = true;
  link.socket?.close();
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
  if (!head || typeof head.kind !== "string" || typeof head.author !== "string") return;
  if (body !== null && typeof body !== "object") return;
  dispatch(head, body);
}

/** Follow the stream for `kinds`; `onLive()` after each (re)connection has caught up,
 * `onMember(bool)` when the node says whether this device is a member. */
export function connect({ kinds, onLive, onMember }) {
  link.kinds = kinds;
  link.onLive = onLive;
  link.onMember = onMember;
  open();
}

function open() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  link.socket = socket;
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
      const sub = { filters: [{ kinds: link.kinds }], after: link.cursor };
      socket.send(JSON.stringify(["SUB", "board", sub]));
    } else if (verb === "NOTICE" && typeof rest[0] === "string") {
      if (rest[0].startsWith("auth: ok")) link.onMember(true);
      else if (rest[0].startsWith("auth-failed:")) link.onMember(false);
    } else if (verb === "EVENT" && rest[0] === "board" && rest[1] && typeof rest[1] === "object") {
      if (Number.isInteger(rest[2])) link.cursor = Math.max(link.cursor ?? 0, rest[2]);
      onEvent(rest[1]);
    } else if (verb === "LIVE" && rest[0] === "board") {
      if (Number.isInteger(rest[1])) link.cursor = Math.max(link.cursor ?? 0, rest[1]);
      if (link.lost) {
        // "back" for a while, then the plain "up to date"
        link.wasLost = true;
        clearTimeout(link.backTimer);
        link.backTimer = setTimeout(() => {
          link.wasLost = false;
          showConnection();
        }, 8000);
      }
      link.lost = false;
      link.everLive = true;
      link.retry = 500;
      link.onLive();
      showConnection();
    } else if (verb === "CLOSED" && rest[0] === "board") {
      socket.close(); // "slow: resume after <c>" and the like: resume from our cursor
    }
  };
  socket.onclose = () => {
    if (link.socket !== socket) return;
    if (link.rejoining) {
      link.rejoining = false; // our own close, to read again as a member: not a lost link
      open();
      return;
    }
    link.lost = link.everLive;
    showConnection();
    setTimeout(open, link.retry);
    link.retry = Math.min(link.retry * 2, 8000);
  };
}
