// Account creation from an invitation: a fresh salt and X25519 key pair made here, and an
// X-Wing pair (protocol v2) where the browser has the hybrid; the private keys leave this
// browser only wrapped with the password's kek. Without the hybrid the account starts
// classical and gains its X-Wing pair at a sign-in in a browser that has it.
import {
  b64uEncode,
  bytesToHex,
  derivePassword,
  generateKeyPair,
  generateXWing,
  keyId,
  supportsHybrid,
  wrapPrivateKey,
  wrapXWingSeed,
} from "../crypto/index.js";
import { hasX25519, showText, UserError } from "../common.js";
import { consoleFetch, errorText, t } from "./keys.js";

const form = document.getElementById("invite-form");

async function create() {
  const username = document.getElementById("i-username").value.trim().toLowerCase();
  const displayName = document.getElementById("i-display").value.trim();
  const password = document.getElementById("i-password").value;
  const again = document.getElementById("i-password2").value;
  const minimum = Number(form.dataset.minPassword || 10);
  if ([...password].length < minimum) throw new UserError(t("too_short", { count: minimum }));
  if (password !== again) throw new UserError(t("mismatch"));
  const progress = document.getElementById("progress-text");
  showText(progress, t("deriving"));
  const userSalt = crypto.getRandomValues(new Uint8Array(16));
  const { authSecret, kek } = await derivePassword(password, userSalt,
    Number(form.dataset.iterations));
  showText(progress, t("generating"));
  const pair = await generateKeyPair();
  const id = await keyId(pair.publicKey);
  const wrapped = await wrapPrivateKey(kek, pair.privateKey, id);
  pair.privateKey.fill(0);
  const hybrid = {};
  if (await supportsHybrid()) {
    const xwing = await generateXWing(true);
    const xwingId = bytesToHex(await keyId(xwing.publicKey));
    hybrid.xwing_public_key = b64uEncode(xwing.publicKey);
    hybrid.xwing_key_id = xwingId;
    hybrid.wrapped_xwing_seed = b64uEncode(await wrapXWingSeed(kek, xwing.seed, xwingId));
    xwing.seed.fill(0);
  }
  kek.fill(0);
  showText(progress, t("sending"));
  const answer = await consoleFetch("POST", form.dataset.action, {
    username,
    display_name: displayName,
    user_salt: b64uEncode(userSalt),
    auth_secret: b64uEncode(authSecret),
    public_key: b64uEncode(pair.publicKey),
    wrapped_private_key: b64uEncode(wrapped),
    ...hybrid,
  });
  authSecret.fill(0);
  window.location.assign(answer.next);
}

if (form) {
  const button = document.getElementById("invite-submit");
  const error = document.getElementById("form-error");
  hasX25519().then((ok) => {
    if (ok) button.disabled = false;
    else showText(error, t("no_crypto"));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showText(error, "");
    button.disabled = true;
    try {
      await create();
    } catch (problem) {
      showText(document.getElementById("progress-text"), "");
      showText(error, errorText(problem));
      button.disabled = false;
    }
  });
}
