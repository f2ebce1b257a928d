// Sealed fields in the browser, byte for byte as protocol/sealed.py (docs/protocol.md §14).
//
// One ciphertext, the content key wrapped once per recipient:
//   CEK = 32 random bytes, N = 12 random bytes, e = 32 random bytes, E = X25519(e, 9)
//   ct  = ChaCha20-Poly1305(CEK).encrypt(N, plaintext, aad)
//   KEK = HKDF-SHA256(ikm = X25519(e, R), salt = E ‖ R, info = "kith-seal/1", length = 32)
//   W   = ChaCha20-Poly1305(KEK).encrypt(12 zero bytes, CEK, aad)
// Random bytes are drawn in that order (CEK, N, e), as Python draws them, so a test can inject
// them and compare with the reference. Kith binds each field to its place: aad = "<kind>/<field>"
// (`fieldAad`). A seal does not say who sealed it: the event's signature does.
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { b64e } from "./sign.js";

export const ALG = "x25519-hkdf-sha256-chacha20poly1305";
export const MAX_RECIPIENTS = 32;
const INFO = new TextEncoder().encode("kith-seal/1");
const WRAP_NONCE = new Uint8Array(12);
const utf8 = new TextEncoder();

/** The aad of a sealed field of `kind` at `field`: "need.posted/personal" (field_aad). */
export function fieldAad(kind, field) {
  return `${kind}/${field}`;
}

const randomBytes = (n) => crypto.getRandomValues(new Uint8Array(n));

function aadBytes(aad) {
  if (aad === undefined || aad === null) return new Uint8Array(0);
  return typeof aad === "string" ? utf8.encode(aad) : aad;
}

/** Bytes of canonical unpadded base64url, of `length` bytes when given; null otherwise. */
function b64dStrict(text, length = null) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) return null;
  let bytes;
  try {
    const std = text.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(std + "===".slice((std.length + 3) % 4));
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
  if (b64e(bytes) !== text) return null; // not canonical (stray bits, wrong length)
  if (length !== null && bytes.length !== length) return null;
  return bytes;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// §14: "no other fields anywhere" (the node's schema refuses them too).
function onlyFields(obj, names) {
  return Object.keys(obj).every((k) => names.includes(k));
}

/** KEK for one (ephemeral, recipient) pair; throws on a small-order peer key. */
function kek(secret, peer, salt) {
  return hkdf(sha256, x25519.getSharedSecret(secret, peer), salt, INFO, 32);
}

/**
 * Seal `plaintext` (a string, sealed as its UTF-8) to `recipients` (base64url X25519 box keys).
 * Returns the §14 object. `aad` is a string (UTF-8) or bytes. `rng(n)` gives n random bytes
 * (injected only by tests). Throws for 0 or more than 32 recipients, a repeated or malformed
 * key, or a small-order key.
 */
export function seal(plaintext, recipients, aad = "", rng = randomBytes) {
  if (!Array.isArray(recipients) || recipients.length < 1 || recipients.length > MAX_RECIPIENTS) {
    throw new Error(`a sealed field needs 1..${MAX_RECIPIENTS} recipients`);
  }
  const keys = recipients.map((r, i) => {
    const k = b64dStrict(r, 32);
    if (!k) throw new Error(`recipient #${i} is not a 32-byte base64url key`);
    return k;
  });
  if (new Set(recipients).size !== recipients.length) throw new Error("a recipient is named twice");
  const ad = aadBytes(aad);
  const draw = (n) => {
    const b = rng(n);
    if (!(b instanceof Uint8Array) || b.length !== n) throw new Error(`rng gave not ${n} bytes`);
    return b;
  };
  const cek = draw(32);
  const nonce = draw(12);
  const e = draw(32);
  const epk = x25519.getPublicKey(e);
  const to = keys.map((key, i) => {
    let k;
    try {
      k = kek(e, key, concat(epk, key));
    } catch {
      throw new Error(`recipient #${i} is a small-order X25519 key`);
    }
    const wrapped = chacha20poly1305(k, WRAP_NONCE, ad).encrypt(cek);
    return { key: recipients[i], wrapped: b64e(wrapped) };
  });
  const ct = chacha20poly1305(cek, nonce, ad).encrypt(utf8.encode(String(plaintext)));
  return { alg: ALG, epk: b64e(epk), nonce: b64e(nonce), ct: b64e(ct), to };
}

/**
 * Open `sealed` with this member's X25519 secret (bytes) and box key (base64url; derived from
 * the secret when omitted). Returns the plaintext string, or null when it does not open for
 * any reason: not a recipient, altered, wrong aad, malformed shape, not UTF-8. Never throws.
 */
export function open(sealed, myBoxSecret, myBoxKey = null, aad = "") {
  try {
    if (!sealed || typeof sealed !== "object" || sealed.alg !== ALG) return null;
    if (!onlyFields(sealed, ["alg", "epk", "nonce", "ct", "to"])) return null;
    const epk = b64dStrict(sealed.epk, 32);
    const nonce = b64dStrict(sealed.nonce, 12);
    const ct = b64dStrict(sealed.ct);
    if (!epk || !nonce || !ct || ct.length < 16) return null;
    const to = sealed.to;
    if (!Array.isArray(to) || to.length < 1 || to.length > MAX_RECIPIENTS) return null;
    const seen = new Set();
    let wrapped = null;
    const me = myBoxKey ?? b64e(x25519.getPublicKey(myBoxSecret));
    for (const entry of to) {
      if (!entry || typeof entry !== "object" || !onlyFields(entry, ["key", "wrapped"])) return null;
      const key = b64dStrict(entry.key, 32);
      const w = b64dStrict(entry.wrapped, 48);
      if (!key || !w || seen.has(entry.key)) return null;
      seen.add(entry.key);
      if (entry.key === me) wrapped = w;
    }
    if (!wrapped) return null;
    const ad = aadBytes(aad);
    const k = kek(myBoxSecret, epk, concat(epk, b64dStrict(me, 32)));
    const cek = chacha20poly1305(k, WRAP_NONCE, ad).decrypt(wrapped);
    const plain = chacha20poly1305(cek, nonce, ad).decrypt(ct);
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    return null;
  }
}
