// Signing in the browser, byte for byte as protocol/envelope.py and protocol/tokens.py do.
//
// The head is compact JSON with its ten fields in the documented order (docs/protocol.md §6):
// JSON.stringify of an object built in that order writes exactly what msgspec writes, because
// every string in a head (keys, kind, scope, base64url) is ASCII with nothing to escape.
// The signature covers the head's UTF-8 bytes; the id is base64url(SHA-256(head bytes)).
// Tokens sign `kith-auth/1\n<purpose>\n<node_key>\n<nonce>\n<expiry_ms>` (§15).
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";

const utf8 = new TextEncoder();

/** Unpadded base64url of bytes. */
export function b64e(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of unpadded base64url (no canonical check: only our own keys pass through here). */
export function b64d(text) {
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(std + "===".slice((std.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** base64url(SHA-256(bytes)). */
export function sha256B64(bytes) {
  return b64e(sha256(bytes));
}

/** The Ed25519 public key (base64url) of a 32-byte seed. */
export function publicKey(seed) {
  return b64e(ed25519.getPublicKey(seed));
}

/** The X25519 public key (base64url) of a 32-byte box secret. */
export function boxPublicKey(secret) {
  return b64e(x25519.getPublicKey(secret));
}

/** Fresh key material: an Ed25519 seed and an X25519 secret, 32 random bytes each. */
export function newKeys() {
  return { seed: ed25519.utils.randomSecretKey(), box: x25519.utils.randomSecretKey() };
}

/** Compact head text with the fields in the documented order (build_head). */
export function buildHead({ pod, author, scope, seq, prev, ts, kind, bodyText }) {
  let bodyHash = null;
  let bodySize = 0;
  if (bodyText !== null && bodyText !== undefined) {
    const bytes = utf8.encode(bodyText);
    bodyHash = sha256B64(bytes);
    bodySize = bytes.length;
  }
  return JSON.stringify({
    v: 1,
    pod,
    author,
    scope,
    seq,
    prev,
    ts,
    kind,
    body_hash: bodyHash,
    body_size: bodySize,
  });
}

/** An event's id: base64url(SHA-256(head bytes)). */
export function eventId(headText) {
  return sha256B64(utf8.encode(headText));
}

/** Build and sign an event (sign_event); `body` is an object (encoded compactly) or exact text. */
export function signEvent(seed, { pod, scope, seq, prev, ts, kind, body = null }) {
  const bodyText = body === null || typeof body === "string" ? body : JSON.stringify(body);
  const head = buildHead({ pod, author: publicKey(seed), scope, seq, prev, ts, kind, bodyText });
  const sig = b64e(ed25519.sign(utf8.encode(head), seed));
  return { head, sig, body: bodyText };
}

/** The exact bytes a token signs (auth_message). */
export function authMessage(purpose, nodeKey, nonce, expiryMs) {
  return utf8.encode(`kith-auth/1\n${purpose}\n${nodeKey}\n${nonce}\n${expiryMs}`);
}

/** A token (make_token): `kith1.<purpose>.<author>.<node_key>.<nonce>.<expiry_ms>.<sig>`. */
export function makeToken(seed, { purpose, nodeKey, nowMs, ttlMs = 120000, nonce = null }) {
  const n = nonce ?? b64e(crypto.getRandomValues(new Uint8Array(16)));
  const expiry = nowMs + ttlMs;
  const sig = b64e(ed25519.sign(authMessage(purpose, nodeKey, n, expiry), seed));
  return ["kith1", purpose, publicKey(seed), nodeKey, n, String(expiry), sig].join(".");
}
