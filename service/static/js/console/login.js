// Sign-in: the password is turned into { authSecret, kek } here; only authSecret is sent.
// After the server accepts it (with the TOTP code), the wrapped private key is opened with
// kek into a non-extractable CryptoKey and kept for this session only (keys.js), with the
// X-Wing key (made and sent now if the account has none and this browser has the hybrid).
// Every attempt carries a proof-of-work stamp; the server asks for more work after failed
// attempts on the same username (instead of pausing the account), so this may take longer.
import { b64uDecode, b64uEncode, unwrapPrivateKey } from "../crypto/index.js";
import { solve } from "../pow.js";
import { ApiError, showText } from "../common.js";
import {
  clearKeys,
  consoleFetch,
  deriveFromPassword,
  errorText,
  settleXWing,
  signInChallenge,
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
  const { authSecret, kek, pow } = await deriveFromPassword(username, password);
  let answer;
  try {
    let challenge = pow;
    for (let attempt = 0; ; attempt++) {
      showText(progress, t("pow"));
      const stamp = await solve(challenge.challenge, challenge.difficulty, {
        onProgress: ({ solved, puzzles }) => showText(progress, t("pow_progress", {
          percent: Math.floor((100 * solved) / puzzles),
        })),
      });
      showText(progress, t("signing_in"));
      try {
        answer = await consoleFetch("POST", "/console/login", {
          username,
          auth_secret: b64uEncode(authSecret),
          totp: code,
          pow: stamp,
        });
        break;
      } catch (error) {
        // Failed attempts on this name raised the price meanwhile: pay the new one, once.
        if (!(error instanceof ApiError) || error.code !== "pow_invalid" || attempt > 0) throw error;
        challenge = await signInChallenge(username);
      }
    }
  } finally {
    authSecret.fill(0);
  }
  try {
    const key = await unwrapPrivateKey(kek, b64uDecode(answer.wrapped_private_key), answer.key_id);
    // The page still shows the signed-out handle; the key belongs to the new session's.
    document.querySelector('meta[name="key-handle"]').setAttribute("content", answer.key_handle);
    document.querySelector('meta[name="csrf-token"]').setAttribute("content", answer.csrf_token);
    await clearKeys();
    await storePrivateKey(key, answer.key_id);
    // The X-Wing key too; an account without one gains it here where the browser can.
    await settleXWing(kek, answer);
  } finally {
    kek.fill(0);
  }
  showText(progress, "");
  if (answer.failed_attempts > 0) {
    // Tell the owner before going on: someone may be guessing their password.
    const box = document.getElementById("failed-notice");
    showText(document.getElementById("failed-text"), answer.failed_notice);
    document.getElementById("failed-continue").setAttribute("href", answer.next);
    box.hidden = false;
    form.hidden = true;
    return;
  }
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
