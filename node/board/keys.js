// The device's keys, kept in this browser's IndexedDB and nowhere else.
//
// One record: the Ed25519 seed (signs events and tokens) and the X25519 secret (opens what is
// sealed to this member). Both are made here with noble's CSPRNG (crypto.getRandomValues, which
// plain-http pages have; WebCrypto's Ed25519 needs a secure context). Nothing sends them
// anywhere: only public keys and signatures leave this browser.
import { boxPublicKey, newKeys, publicKey } from "./sign.js";

const DB = "kith-board";
const STORE = "keys";
const ID = "device";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function request(db, mode, act) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = act(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
  });
}

/** This device's keys: `{seed, box, key, boxKey}`, made and stored on first use. */
export async function deviceKeys() {
  const db = await open();
  try {
    let record = await request(db, "readonly", (s) => s.get(ID));
    if (!record) {
      const fresh = newKeys();
      // `add`, not `put`: two tabs opening at once keep whichever key was stored first.
      try {
        await request(db, "readwrite", (s) => s.add({ seed: fresh.seed, box: fresh.box }, ID));
      } catch {
        // another tab won the race: read its key below
      }
      record = await request(db, "readonly", (s) => s.get(ID));
    }
    const seed = new Uint8Array(record.seed);
    const box = new Uint8Array(record.box);
    return { seed, box, key: publicKey(seed), boxKey: boxPublicKey(box) };
  } finally {
    db.close();
  }
}
