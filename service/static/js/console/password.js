// Password change: the private key is opened with the old kek as an EXTRACTABLE key only for
// the moment it takes to wrap it again with the new kek (new salt). The result is opened
// once more with the new kek before it is sent, so a broken wrap can never replace a good one.
// The X-Wing seed (protocol v2), where the account has one, likewise: left under the old kek
// it would be lost with the old password, and the server refuses the change without it.
import {
  b64uDecode,
  b64uEncode,
  derivePassword,
  hexToBytes,
  OpenError,
  supportsHybrid,
  unwrapPrivateKey,
  unwrapXWingSeed,
  wrapPrivateKey,
  wrapXWingSeed,
} from "../crypto/index.js";
import { showText, UserError } from "../common.js";
import { consoleFetch, deriveFromPassword, errorText, t } from "./keys.js";

const form = document.getElementById("password-form");

function wrapAad(keyIdHex) {
  const label = new TextEncoder().encode("chuishao/v1/wrapped-key");
  const out = new Uint8Array(label.length + 1 + 16);
  out.set(label, 0);
  out.set(hexToBytes(keyIdHex), label.length + 1);
  return out;
}

// Protocol section 9: 0x01 || nonce (12) || AES-256-GCM(kek, nonce, PKCS#8, aad).
async function unwrapExtractable(kek, blob, keyIdHex) {
  try {
    if (blob.length !== 77 || blob[0] !== 0x01) throw new OpenError();
    const aes = await crypto.subtle.importKey("raw", kek, { name: "AES-GCM" }, false,
      ["unwrapKey"]);
    return await crypto.subtle.unwrapKey("pkcs8", blob.subarray(13), aes,
      { name: "AES-GCM", iv: blob.subarray(1, 13), additionalData: wrapAad(keyIdHex) },
      { name: "X25519" }, true, ["deriveBits"]);
  } catch {
    throw new OpenError();
  }
}

async function change() {
  const username = form.dataset.username;
  const old = document.getElementById("p-old").value;
  const fresh = document.getElementById("p-new").value;
  const again = document.getElementById("p-new2").value;
  const minimum = Number(form.dataset.minPassword || 10);
  if ([...fresh].length < minimum) throw new UserError(t("too_short", { count: minimum }));
  if (fresh !== again) throw new UserError(t("mismatch"));
  const progress = document.getElementById("progress-text");
  showText(progress, t("deriving"));
  const before = await deriveFromPassword(username, old);
  const current = await consoleFetch("GET", "/console/api/me/key");
  const blob = b64uDecode(current.wrapped_private_key);
  let extractable = await unwrapExtractable(before.kek, blob, current.key_id);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const after = await derivePassword(fresh, salt, Number(form.dataset.iterations));
  const wrapped = await wrapPrivateKey(after.kek, extractable, current.key_id);
  extractable = null; // dropped at once; only the wrapped form remains
  await unwrapPrivateKey(after.kek, wrapped, current.key_id); // throws if the wrap is bad
  const hybrid = {};
  if (current.wrapped_xwing_seed) {
    // Without the hybrid the seed cannot be re-wrapped here (and would be lost).
    if (!(await supportsHybrid())) throw new UserError(t("no_hybrid"));
    const id = current.xwing_key_id;
    const key = await unwrapXWingSeed(before.kek, b64uDecode(current.wrapped_xwing_seed), id,
      { extractable: true });
    const seed = new Uint8Array(await crypto.subtle.exportKey("raw-seed", key));
    const again = await wrapXWingSeed(after.kek, seed, id);
    seed.fill(0);
    await unwrapXWingSeed(after.kek, again, id); // throws if the wrap is bad
    hybrid.new_wrapped_xwing_seed = b64uEncode(again);
  }
  before.kek.fill(0);
  after.kek.fill(0);
  showText(progress, t("sending"));
  const answer = await consoleFetch("POST", "/console/api/account/password", {
    old_auth_secret: b64uEncode(before.authSecret),
    new_user_salt: b64uEncode(salt),
    new_auth_secret: b64uEncode(after.authSecret),
    new_wrapped_private_key: b64uEncode(wrapped),
    ...hybrid,
  });
  window.location.assign(answer.next);
}

if (form) {
  const button = document.getElementById("password-submit");
  const error = document.getElementById("form-error");
  button.disabled = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showText(error, "");
    button.disabled = true;
    try {
      await change();
    } catch (problem) {
      showText(document.getElementById("progress-text"), "");
      showText(error, errorText(problem));
      button.disabled = false;
    }
  });
}
