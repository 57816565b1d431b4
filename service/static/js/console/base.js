// Run by every console page: the notice (and unlock form) when the key store is locked.
import { clearKeys, initKeyStatus } from "./keys.js";

// Signing out empties the key store first, then lets the form go to the server.
function watchLogout() {
  for (const form of document.querySelectorAll('form[action="/console/logout"]')) {
    if (form.dataset.keysWatched) continue;
    form.dataset.keysWatched = "1";
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearKeys()
        .catch(() => {})
        .finally(() => HTMLFormElement.prototype.submit.call(form));
    });
  }
}

function start() {
  watchLogout();
  initKeyStatus().catch(() => {});
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
