// Sign-in: the password is turned into { authSecret, kek } here; only authSecret is sent.
// After the server accepts it (with the TOTP code), the wrapped private key is opened with
// kek into a non-extractable CryptoKey and kept for this session only (keys.js).
import { b64uDecode, b64uEncode, unwrapPrivateKey } from "../crypto/index.js";
import {
  clearKeys,
  consoleFetch,
  deriveFromPassword,
  errorText,
  showText,
  storePrivateKey,
  t,
} from "./keys.js";

const form = document.getElementById("login-form");

async function signIn() {
  const username = document.getElementById("l-username").value.trim();
  const password = document.getElementById("l-password").value;
  const code = document.getElementById("l-code").value.replace(/\s/g, "");
  const progress = document.getElementById("progress-text");
  showText(progress, t("deriving"));
  const { authSecret, kek } = await deriveFromPassword(username, password);
  showText(progress, t("signing_in"));
  let answer;
  try {
    answer = await consoleFetch("POST", "/console/login", {
      username,
      auth_secret: b64uEncode(authSecret),
      totp: code,
    });
  } finally {
    authSecret.fill(0);
  }
  try {
    const key = await unwrapPrivateKey(kek, b64uDecode(answer.wrapped_private_key), answer.key_id);
    // The page still shows the signed-out handle; the key belongs to the new session's.
    document.querySelector('meta[name="key-handle"]').setAttribute("content", answer.key_handle);
    await clearKeys();
    await storePrivateKey(key, answer.key_id);
  } finally {
    kek.fill(0);
  }
  showText(progress, "");
  window.location.assign(answer.next);
}

if (form) {
  const button = document.getElementById("login-submit");
  button.disabled = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("form-error");
    showText(error, "");
    button.disabled = true;
    try {
      await signIn();
    } catch (problem) {
      showText(document.getElementById("progress-text"), "");
      showText(error, errorText(problem));
      document.getElementById("l-code").value = "";
      button.disabled = false;
    }
  });
}
