// A reward record for a finance officer: the sealed claim (payout method, maybe identity) is
// fetched on the officer's click (the server records the look as it answers) and opened here
// with the officer's own key from the key store (the X-Wing key for a v2 slot); the server
// only ever holds it sealed.
// Shown through textContent only.
import { b64uDecode, OpenError, openClaimSlot, openItem, SUITE, SUITE_V2 } from "../crypto/index.js";
import { islandText, showText } from "../common.js";
import { consoleFetch, getPrivateKey, getXWingKey, LockedError } from "./keys.js";

const dataNode = document.getElementById("reward-data");
const data = dataNode ? JSON.parse(dataNode.textContent) : null;
const t = islandText("reward-messages");

// The claim key from the officer's slots as the server hands them (base64url, "" where
// none): the v2 slot with the session's X-Wing key where both are there, else the v1 slot
// (PROTOCOL 15, 17.7). OpenError when neither opens; NeedsHybrid for a v2-only claim in a
// session without the X-Wing key (a browser without the hybrid).
class NeedsHybrid extends Error {}

async function claimKey(sealed, privateKey, xwing) {
  if (sealed.slot_v2 && xwing) {
    try {
      return await openClaimSlot(SUITE_V2, b64uDecode(sealed.slot_v2), xwing, data.reward_id);
    } catch {
      // a damaged v2 slot: the v1 one, if there is one
    }
  }
  if (sealed.slot) return openClaimSlot(SUITE, b64uDecode(sealed.slot), privateKey, data.reward_id);
  if (sealed.slot_v2 && !xwing) throw new NeedsHybrid();
  throw new OpenError();
}

async function openClaim(button, fields, error) {
  showText(error, "");
  let privateKey;
  let xwing;
  try {
    ({ privateKey } = await getPrivateKey());
    const kept = await getXWingKey();
    xwing = kept ? kept.privateKey : null;
  } catch (problem) {
    showText(error, problem instanceof LockedError ? t("locked") : t("failed", { message: String(problem) }));
    return;
  }
  // The claim is not on the page: the server hands it out only here, and records the look
  // in the same transaction.
  let sealed;
  try {
    sealed = await consoleFetch("POST", `/console/rewards/${data.reward_id}/claim`, {});
  } catch (problem) {
    showText(error, problem.message || t("network"));
    return;
  }
  let claim;
  try {
    const key = await claimKey(sealed, privateKey, xwing);
    claim = await openItem(key, data.reward_id, sealed.item_id, "claim",
      b64uDecode(sealed.blob));
  } catch (problem) {
    showText(error, t(problem instanceof NeedsHybrid ? "needs_hybrid" : "decrypt_failed"));
    return;
  }
  const rows = [
    ["label_method", Object.hasOwn(claim, "method") ? t(`method.${claim.method}`) : ""],
    ["label_account", claim.account],
    ["label_name", claim.name],
    ["label_contact", claim.contact],
    ["label_note", claim.note],
  ];
  fields.replaceChildren();
  for (const [label, value] of rows) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = t(label);
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dd.dataset.field = label.replace("label_", "");
    fields.append(dt, dd);
  }
  const note = document.createElement("dd");
  note.className = "hint";
  note.textContent = t("logged");
  fields.append(note);
  fields.hidden = false;
  button.hidden = true;
}

function start() {
  const button = document.getElementById("claim-open");
  const fields = document.getElementById("claim-fields");
  const error = document.getElementById("claim-error");
  if (!data || !button || !fields || !error) return;
  button.addEventListener("click", () => {
    button.disabled = true;
    openClaim(button, fields, error).finally(() => {
      button.disabled = false;
    });
  });
}

start();
