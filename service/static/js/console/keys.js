// The console's key store: the reviewer's unlocked private keys, kept in this browser only.
//
// Contract for every console script:
//   IndexedDB database "chuishao-console", object store "keys", records keyed by the page's
//   <meta name="key-handle"> value: { privateKey: CryptoKey (X25519, non-extractable),
//   keyId: hex, xwing?: { unwrapper, blob, iv, keyId } }. The handle is derived from the
//   session, so a key never outlives it.
//
//   The X-Wing key (protocol v2) cannot be kept itself: Chromium stores an MLKEM768-X25519
//   CryptoKey as null (the whole record with it). So its seed is kept wrapped, inside
//   WebCrypto, by a random AES-GCM key made for this session (never the password's kek, which
//   would also open the X25519 key), and each page unwraps it into a non-extractable key:
//   the seed never appears in JavaScript. docs/THREAT-MODEL.md weighs this.
//
//   storePrivateKey(cryptoKey, keyIdHex)  store under the current handle, drop all others
//   getPrivateKey() -> { privateKey, keyId }  or throws LockedError
//   getXWingKey() -> { privateKey, keyId } or null (no X-Wing key in this session);
//                                         throws LockedError as getPrivateKey does
//   settleXWing(kek, wrapped)             after sign-in or unlock: keep the account's X-Wing
//                                         key, making and sending the pair first if the
//                                         account has none and this browser has the hybrid
//   clearKeys()                           remove every stored key
//   unlockWithPassword(username, password) re-derive the key for this session (new tab,
//                                         restarted browser) from the password
//   initKeyStatus()                       show p#key-status with an unlock form when locked
//
// Also shared by the console scripts: t() for the #console-messages texts, consoleFetch() for
// calls with the CSRF header, deriveFromPassword(). A library with no effect of its own:
// console/base.js is the script every console page runs.
import { ApiError, errorText as commonErrorText, fetchApi, islandText, showText } from "../common.js";
import {
  b64uDecode,
  b64uEncode,
  bytesToHex,
  derivePassword,
  generateXWing,
  keyId as publicKeyId,
  OpenError,
  supportsHybrid,
  unwrapPrivateKey,
  unwrapXWingSeed,
  wrapXWingSeed,
} from "../crypto/index.js";

const DB_NAME = "chuishao-console";
const STORE = "keys";

export class LockedError extends Error {
  constructor() {
    super("the private key is not unlocked in this browser");
    this.name = "LockedError";
  }
}

// ------------------------------------------------------------------------------ messages

// For the texts a page's #console-messages island lacks (pages of other console modules).
const FALLBACK = {
  zh: {
    locked: "您的私钥尚未在此浏览器中解锁，因此无法解密案件。请输入密码解锁。",
    unlock: "解锁",
    password: "密码",
    wrong_password: "密码不正确。",
    network: "无法连接服务器。请检查网络后重试。",
    failed: "出现错误：{message}",
  },
  en: {
    locked: "Your private key is not unlocked in this browser, so cases cannot be decrypted. " +
      "Enter your password to unlock it.",
    unlock: "Unlock",
    password: "Password",
    wrong_password: "The password is not correct.",
    network: "The server could not be reached. Check your connection and try again.",
    failed: "Something went wrong: {message}",
  },
};

export const t = islandText("console-messages",
  FALLBACK[(document.documentElement.lang || "zh-CN").toLowerCase().startsWith("en") ? "en" : "zh"]);

// ------------------------------------------------------------------------------ requests

function meta(name) {
  const node = document.querySelector(`meta[name="${name}"]`);
  return node ? node.getAttribute("content") || "" : "";
}

export function keyHandle() {
  return meta("key-handle");
}

// JSON (with `binary`, bytes) to and from the console, with the page's CSRF token; `raw`
// sends bytes. Every console script requests through this; `text` words its own failures.
export function consoleFetch(method, path, json, { binary = false, raw, text = t } = {}) {
  const headers = {
    Accept: binary ? "application/octet-stream" : "application/json",
    "X-CSRF-Token": meta("csrf-token"),
  };
  return fetchApi(path, { method, headers, json, raw, as: binary ? "bytes" : "json", t: text });
}

export function errorText(error) {
  return error instanceof OpenError ? t("wrong_password") : commonErrorText(error, t);
}

// { salt, iterations, pow } from the server (a made-up salt for an unknown name), then
// PBKDF2. `pow` is the sign-in's proof-of-work challenge (login.js solves it).
export async function deriveFromPassword(username, password) {
  const pre = await consoleFetch("POST", "/console/api/prelogin", { username });
  const keys = await derivePassword(password, b64uDecode(pre.salt), pre.iterations);
  return { ...keys, pow: pre.pow };
}

// A fresh sign-in challenge, priced on the name's failures as they are now.
export async function signInChallenge(username) {
  const pre = await consoleFetch("POST", "/console/api/prelogin", { username });
  return pre.pow;
}

// ------------------------------------------------------------------------------ IndexedDB

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error("key store blocked by another tab"));
  });
}

async function withStore(mode, work) {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("key store transaction aborted"));
    });
    const result = await work(tx.objectStore(STORE));
    await done;
    return result;
  } finally {
    db.close();
  }
}

export async function storePrivateKey(cryptoKey, keyIdHex) {
  const handle = keyHandle();
  if (!handle) throw new LockedError();
  if (!(cryptoKey instanceof CryptoKey) || cryptoKey.extractable) {
    // A key that could be exported must never be kept: it would outlive its purpose.
    throw new TypeError("only a non-extractable CryptoKey can be stored");
  }
  await withStore("readwrite", async (store) => {
    const handles = await request(store.getAllKeys());
    for (const other of handles) if (other !== handle) store.delete(other);
    store.put({ privateKey: cryptoKey, keyId: String(keyIdHex) }, handle);
  });
}

export async function getPrivateKey() {
  const handle = keyHandle();
  if (!handle) throw new LockedError();
  const record = await withStore("readonly", (store) => request(store.get(handle)));
  if (!record || !(record.privateKey instanceof CryptoKey)) throw new LockedError();
  return { privateKey: record.privateKey, keyId: record.keyId };
}

const XWING = { name: "MLKEM768-X25519" };
const STORE_AAD = new TextEncoder().encode("chuishao/console-key-store/xwing");

// Keep an EXTRACTABLE X-Wing key for this session: wrapped at once by a fresh session key,
// of which only an unwrap-only, non-extractable copy is kept. Then the key may go.
async function storeXWing(xwingKey, keyIdHex) {
  const handle = keyHandle();
  if (!handle) throw new LockedError();
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const wrapper = await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false,
    ["wrapKey"]);
  const unwrapper = await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false,
    ["unwrapKey"]);
  raw.fill(0);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const blob = new Uint8Array(await crypto.subtle.wrapKey("raw-seed", xwingKey, wrapper,
    { name: "AES-GCM", iv, additionalData: STORE_AAD }));
  await withStore("readwrite", async (store) => {
    const record = await request(store.get(handle));
    if (!record) throw new LockedError();
    store.put({ ...record, xwing: { unwrapper, blob, iv, keyId: String(keyIdHex) } }, handle);
  });
}

export async function getXWingKey() {
  const handle = keyHandle();
  if (!handle) throw new LockedError();
  const record = await withStore("readonly", (store) => request(store.get(handle)));
  if (!record || !(record.privateKey instanceof CryptoKey)) throw new LockedError();
  const kept = record.xwing;
  if (!kept || !(kept.unwrapper instanceof CryptoKey)) return null;
  try {
    const privateKey = await crypto.subtle.unwrapKey("raw-seed", kept.blob, kept.unwrapper,
      { name: "AES-GCM", iv: kept.iv, additionalData: STORE_AAD }, XWING, false,
      ["decapsulateBits"]);
    return { privateKey, keyId: kept.keyId };
  } catch {
    return null; // a browser that lost the hybrid since: the v1 slot, where there is one
  }
}

// `wrapped`: the sign-in answer or /console/api/me/key. Never throws: without an X-Wing key
// the session goes on classical (cases open through their v1 slots).
export async function settleXWing(kek, wrapped) {
  try {
    let blob = wrapped.wrapped_xwing_seed;
    let id = wrapped.xwing_key_id;
    if (!blob) {
      if (!(await supportsHybrid())) return null;
      const pair = await generateXWing(true);
      id = bytesToHex(await publicKeyId(pair.publicKey));
      const made = await wrapXWingSeed(kek, pair.seed, id);
      pair.seed.fill(0);
      let answer;
      try {
        answer = await consoleFetch("POST", "/console/api/account/xwing-key", {
          xwing_public_key: b64uEncode(pair.publicKey),
          xwing_key_id: id,
          wrapped_xwing_seed: b64uEncode(made),
        });
      } catch (error) {
        // Another tab signed in at the same moment and added its pair: keep that one.
        if (!(error instanceof ApiError) || error.code !== "xwing_key_exists") throw error;
        answer = await consoleFetch("GET", "/console/api/me/key");
      }
      blob = answer.wrapped_xwing_seed;
      id = answer.xwing_key_id;
    }
    const key = await unwrapXWingSeed(kek, b64uDecode(blob), id, { extractable: true });
    await storeXWing(key, id);
    return id;
  } catch {
    return null;
  }
}

export async function clearKeys() {
  await withStore("readwrite", async (store) => {
    store.clear();
  });
}

// Unlock for the current session from the password alone: the wrapped key comes from the
// server; only this browser can open it.
export async function unlockWithPassword(username, password) {
  const wrapped = await consoleFetch("GET", "/console/api/me/key");
  const { kek } = await deriveFromPassword(username || wrapped.username, password);
  const key = await unwrapPrivateKey(kek, b64uDecode(wrapped.wrapped_private_key), wrapped.key_id);
  try {
    await storePrivateKey(key, wrapped.key_id);
    await settleXWing(kek, wrapped);
  } finally {
    kek.fill(0);
  }
  document.dispatchEvent(new CustomEvent("chuishao:unlocked", { detail: { keyId: wrapped.key_id } }));
  return { privateKey: key, keyId: wrapped.key_id };
}

// ------------------------------------------------------------------------------ page helper

let statusShown = false;

function unlockForm(status) {
  const form = document.createElement("form");
  form.id = "unlock-form";
  form.className = "inline";
  const label = document.createElement("label");
  label.htmlFor = "unlock-password";
  label.textContent = t("password") + " ";
  const input = document.createElement("input");
  input.id = "unlock-password";
  input.type = "password";
  input.autocomplete = "current-password";
  input.required = true;
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = t("unlock");
  const error = document.createElement("span");
  error.className = "error-box";
  error.setAttribute("role", "alert");
  error.hidden = true;
  form.append(" ", label, input, " ", button, " ", error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    showText(error, "");
    try {
      await unlockWithPassword(null, input.value);
      input.value = "";
      status.hidden = true;
      status.replaceChildren();
      statusShown = false;
    } catch (problem) {
      showText(error, errorText(problem));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// On a signed-in console page: say so (and offer to unlock) when the key is missing.
export async function initKeyStatus() {
  const status = document.getElementById("key-status");
  if (!keyHandle()) {
    // Signed out: nothing may stay behind.
    await clearKeys().catch(() => {});
    return false;
  }
  try {
    await getPrivateKey();
    return true;
  } catch (error) {
    if (!(error instanceof LockedError) || !status || statusShown) return false;
    statusShown = true;
    const text = document.createElement("span");
    text.textContent = t("locked");
    status.replaceChildren(text, unlockForm(status));
    status.hidden = false;
    return false;
  }
}
