// This browser's device identity: an Ed25519 key pair kept in IndexedDB, made once. With
// WebCrypto's Ed25519 (current Chromium, Firefox, Safari) the private key is a non-extractable
// CryptoKey that no script can read out; where the browser lacks it, the vendored, audited
// noble-ed25519 signs instead (loaded only then). The device id is sha256 of the raw public key,
// as OpenClaw's devices compute it.

const DB = "pincer-console";
const STORE = "identity";
const KEY = "device";

const b64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function openDb() {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) {
      reject(new Error("this browser keeps no IndexedDB here (a private window?); the console needs it to remember its key"));
      return;
    }
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error || new Error("cannot open IndexedDB"));
  });
}

function tx(db, mode, fn) {
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error("IndexedDB transaction aborted"));
  });
}

async function webcryptoKey() {
  try {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { kind: "webcrypto", privateKey: pair.privateKey, publicKey: raw };
  } catch {
    return null; // No Ed25519 in this browser's WebCrypto.
  }
}

async function nobleKey() {
  const ed = await import("/console/vendor/noble-ed25519.js");
  const secret = ed.utils.randomPrivateKey();
  return { kind: "noble", secret, publicKey: await ed.getPublicKeyAsync(secret) };
}

/** Signs with a stored key. */
async function signWith(stored, bytes) {
  if (stored.kind === "webcrypto") {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, stored.privateKey, bytes));
  }
  const ed = await import("/console/vendor/noble-ed25519.js");
  return ed.signAsync(bytes, stored.secret);
}

/**
 * Loads (or makes, once) this browser's identity: `{deviceId, publicKey, kind, sign(text)}`, where
 * `publicKey` is the raw key in base64url and `sign` answers a base64url signature.
 */
export async function loadIdentity() {
  if (!globalThis.crypto?.subtle) {
    throw new Error("this page is not in a secure context, so the browser offers no WebCrypto; open it as http://127.0.0.1:<port>/ or over https");
  }
  const db = await openDb();
  let stored = await tx(db, "readonly", (s) => s.get(KEY));
  if (!stored) {
    stored = (await webcryptoKey()) || (await nobleKey());
    await tx(db, "readwrite", (s) => s.put(stored, KEY));
  }
  db.close();
  const publicKey = new Uint8Array(stored.publicKey);
  const deviceId = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", publicKey)));
  return {
    deviceId,
    kind: stored.kind,
    publicKey: b64url(publicKey),
    sign: async (text) => b64url(await signWith(stored, new TextEncoder().encode(text))),
  };
}

export { b64url };
