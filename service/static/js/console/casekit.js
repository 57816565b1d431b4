// What the case list, a case and a rectification record share: their #case-messages texts,
// the unlocked keys (or the page says why not), opening and sealing key slots of either
// suite, and the replies this browser has shown.
import {
  b64uDecode,
  b64uEncode,
  OpenError,
  openKey,
  openKeyV2,
  recipientKey,
  sealSlot,
  supportsHybrid,
} from "../crypto/index.js";
import { errorText as commonErrorText, islandText, showText } from "../common.js";
import { getPrivateKey, getXWingKey, initKeyStatus, LockedError } from "./keys.js";

export const t = islandText("case-messages");

export function errorText(error) {
  return commonErrorText(error, t);
}

// The unlocked keys { x25519, xwing } (xwing null in a classical session), or null (and the
// page says why) when the store is locked.
export async function sessionKeysOrNull() {
  try {
    const { privateKey } = await getPrivateKey();
    const xwing = await getXWingKey();
    return { x25519: privateKey, xwing: xwing ? xwing.privateKey : null };
  } catch (error) {
    await initKeyStatus().catch(() => {});
    const status = document.getElementById("key-status");
    if (status && status.hidden) showText(status, t("locked"));
    if (!(error instanceof LockedError)) console.warn("key store:", error);
    return null;
  }
}

// A key from this user's slots (base64url; "" where none): the v2 slot with the session's
// X-Wing key where both are there, else the v1 slot. OpenError when neither opens.
export async function openSlots(keys, v1, v2, caseId, purpose = "case") {
  if (v2 && keys.xwing) {
    try {
      return await openKeyV2(b64uDecode(v2), keys.xwing, caseId, purpose);
    } catch {
      // a damaged v2 slot: the v1 one, if the case has it
    }
  }
  if (v1) return openKey(b64uDecode(v1), keys.x25519, caseId, purpose);
  throw new OpenError();
}

// One slot for a recipient as the server lists it ({ key_id, public_key, and xwing_key_id,
// xwing_public_key where it has an X-Wing key }): v2 where it has one and this browser has
// the hybrid, v1 otherwise (PROTOCOL 17.7). The key id must name the key, or nothing is sealed.
export async function sealFor(entry, key, caseId, purpose) {
  const { suite, publicKey, keyId } = await recipientKey(entry, await supportsHybrid());
  return { purpose, suite, key_id: keyId,
    slot: b64uEncode(await sealSlot(suite, key, publicKey, caseId, purpose)) };
}

// Run `work` now and again whenever the key store is unlocked on this page.
export function whenUnlocked(work) {
  document.addEventListener("chuishao:unlocked", () => {
    work().catch((error) => console.warn(error));
  });
  return work();
}

// How many of the reporter's replies this browser has shown for a case: kept here, in this
// browser only, so the server learns nothing about who read what.
const SEEN = "chuishao.replies-seen.";

export function repliesSeen(caseId) {
  try {
    const value = window.localStorage.getItem(SEEN + caseId);
    return value === null ? null : Number(value);
  } catch {
    return null;
  }
}

export function markRepliesSeen(caseId, count) {
  try {
    window.localStorage.setItem(SEEN + caseId, String(count));
  } catch {
    // Storage refused (private mode): the marker simply does not show.
  }
}
