// A reward record for a finance officer: the sealed claim (payout method, maybe identity) is
// fetched on the officer's click (the server records the look as it answers) and opened here
// with the officer's own key from the key store; the server only ever holds it sealed.
// Shown through textContent only.
import { b64uDecode, openClaimKey, openItem } from "../crypto/index.js";
import { islandText, showText } from "../common.js";
import { consoleFetch, getPrivateKey, LockedError } from "./keys.js";

const dataNode = document.getElementById("reward-data");
const data = dataNode ? JSON.parse(dataNode.textContent) : null;
const t = islandText("reward-messages");

async function openClaim(button, fields, error) {
  showText(error, "");
  let privateKey;
  try {
    ({ privateKey } = await getPrivateKey());
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
    const key = await openClaimKey(b64uDecode(sealed.slot), privateKey, data.reward_id);
    claim = await openItem(key, data.reward_id, sealed.item_id, "claim",
      b64uDecode(sealed.blob));
  } catch {
    showText(error, t("decrypt_failed"));
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
