// The reporter's reward, on the follow-up page opened with the receipt: the approved amount,
// and a claim sealed on this device for the finance office only. The claim code is derived
// from the receipt's lookup secret (PROTOCOL.md section 15), so nothing new must be kept; the
// server receives only its SHA-256. Text reaches the page through textContent only.
import { claimCodeHash, deriveClaimCode, formatClaimCode, sealClaimSlot } from "./crypto/claim.js";
import {
  b64uEncode, bytesToHex, newId, newKey, recipientKey, sealItem, supportsHybrid,
} from "./crypto/core.js";
import { el, showText, UserError } from "./common.js";
import { api, errorText, t } from "./ui.js";

const METHODS = ["bank", "alipay", "wechat", "cash"];
const LIMITS = { account: 100, name: 100, contact: 100, note: 500 };

function field(id, labelKey, attrs = {}) {
  const input = el("input", { attrs: { id, name: id.split("-")[1], ...attrs } });
  return [el("label", { text: t(labelKey), attrs: { for: id } }), input];
}

function codeBlock(code) {
  return el("div", { cls: "claim-code" }, [
    el("p", { text: t("claim_done") }),
    el("p", { cls: "receipt", text: formatClaimCode(code), attrs: { id: "claim-code" } }),
    el("p", { cls: "hint", text: t("claim_code_hint") }),
  ]);
}

function clean(value, limit) {
  return String(value || "").split(/\s+/).filter(Boolean).join(" ").slice(0, limit);
}

async function sendClaim(reward, ctx, values) {
  const rewardId = reward.id;
  const code = await deriveClaimCode(ctx.lookupSecret, rewardId);
  const claimKey = newKey();
  const itemId = newId();
  const blob = await sealItem(claimKey, rewardId, itemId, "claim", { v: 1, ...values });
  // The policy of the report's own slots: v2 to each X-Wing key where this browser has the
  // hybrid, v1 to the rest (PROTOCOL 15, 17.7).
  const hybrid = await supportsHybrid();
  const slots = [];
  for (const recipient of reward.recipients) {
    const { suite, publicKey, keyId } = await recipientKey(recipient, hybrid);
    const slot = await sealClaimSlot(suite, claimKey, publicKey, rewardId);
    slots.push({ suite, key_id: keyId, slot: b64uEncode(slot) });
  }
  claimKey.fill(0);
  await api("POST", `/followup/rewards/${rewardId}/claim`, {
    token: ctx.token,
    json: {
      claim_hash: bytesToHex(await claimCodeHash(code)),
      item: { id: bytesToHex(itemId), kind: "claim", blob: b64uEncode(blob) },
      slots,
    },
  });
  return code;
}

function claimForm(reward, ctx, box) {
  const n = reward.id.slice(0, 8);
  const select = el("select", { attrs: { id: `claim-method-${n}`, name: "method" } },
    METHODS.map((m) => el("option", { text: t(`method.${m}`), attrs: { value: m } })));
  const [accountLabel, account] = field(`claim-account-${n}`, "claim_account", { maxlength: 100 });
  const [nameLabel, name] = field(`claim-name-${n}`, "claim_name", { maxlength: 100 });
  const [contactLabel, contact] = field(`claim-contact-${n}`, "claim_contact", { maxlength: 100 });
  const [noteLabel, note] = field(`claim-note-${n}`, "claim_note", { maxlength: 500 });
  const error = el("p", { cls: "error-box", attrs: { role: "alert" } });
  error.hidden = true;
  const progress = el("p", { attrs: { "aria-live": "polite" } });
  const send = el("button", { text: t("claim_send"), attrs: { type: "submit" } });
  const form = el("form", { cls: "claim-form", attrs: { id: `claim-form-${n}` } }, [
    el("p", { cls: "hint", text: t("claim_intro") }),
    el("label", { text: t("claim_method"), attrs: { for: select.id } }), select,
    accountLabel, account,
    reward.identity_required ? el("p", { cls: "hint", text: t("claim_identity") }) : null,
    nameLabel, name, contactLabel, contact, noteLabel, note, error, progress, send,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    showText(error, "");
    try {
      const values = {
        method: select.value,
        account: clean(account.value, LIMITS.account),
        name: clean(name.value, LIMITS.name),
        contact: clean(contact.value, LIMITS.contact),
        note: clean(note.value, LIMITS.note),
      };
      if (values.method !== "cash" && !values.account) throw new UserError(t("claim_account_missing"));
      if (reward.identity_required && !(values.name && values.contact)) {
        throw new UserError(t("claim_identity_missing"));
      }
      progress.textContent = t("sealing");
      const code = await sendClaim(reward, ctx, values);
      progress.textContent = "";
      box.replaceChildren(el("p", { text: t("reward_amount", { amount: reward.amount }) }),
        codeBlock(code));
    } catch (problem) {
      progress.textContent = "";
      showText(error, errorText(problem));
      send.disabled = false;
    }
  });
  return form;
}

// Fill `section` with the case's rewards; ctx = { token, lookupSecret }.
export async function showRewards(section, ctx) {
  const data = await api("GET", "/followup/rewards", { token: ctx.token });
  const rewards = Array.isArray(data.rewards) ? data.rewards : [];
  if (!rewards.length) {
    section.hidden = true;
    return;
  }
  section.replaceChildren(el("h2", { text: t("reward_title") }));
  for (const reward of rewards) {
    const box = el("div", { cls: "reward", attrs: { "data-reward-id": reward.id } }, [
      el("p", { cls: "reward-amount", text: t("reward_amount", { amount: reward.amount }) }),
    ]);
    if (reward.status === "lapsed") {
      box.append(el("p", { cls: "hint", text: t("claim_lapsed") }));
    } else if (reward.status === "approved") {
      if (reward.claim_due) box.append(el("p", { cls: "hint", text: t("claim_due", { date: reward.claim_due }) }));
      box.append(claimForm(reward, ctx, box));
    } else {
      if (reward.status === "paid") box.append(el("p", { cls: "notice", text: t("claim_paid") }));
      else box.append(codeBlock(await deriveClaimCode(ctx.lookupSecret, reward.id)));
    }
    section.append(box);
  }
  section.hidden = false;
}
