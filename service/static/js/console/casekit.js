// What the case list, a case and a rectification record share: their #case-messages texts,
// the unlocked key (or the page says why not), and the replies this browser has shown.
import { errorText as commonErrorText, islandText, showText } from "../common.js";
import { getPrivateKey, initKeyStatus, LockedError } from "./keys.js";

export const t = islandText("case-messages");

export function errorText(error) {
  return commonErrorText(error, t);
}

// The unlocked private key, or null (and the page says why) when the store is locked.
export async function privateKeyOrNull() {
  try {
    const { privateKey } = await getPrivateKey();
    return privateKey;
  } catch (error) {
    await initKeyStatus().catch(() => {});
    const status = document.getElementById("key-status");
    if (status && status.hidden) showText(status, t("locked"));
    if (!(error instanceof LockedError)) console.warn("key store:", error);
    return null;
  }
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
