// The reward form: what the reviewer's browser read in the decrypted report (whether the
// reporter works in the enterprise) arrives in the URL fragment from the case page, never
// in a request, and is filled in here with a note to check it.
function prefill() {
  const match = /(?:^|[#&])insider=(yes|no)(?:&|$)/.exec(window.location.hash);
  const box = document.getElementById("r-insider");
  if (!match || !box) return;
  box.checked = match[1] === "yes";
  const note = document.getElementById("insider-prefilled");
  if (note) note.hidden = match[1] !== "yes";
}

prefill();
window.addEventListener("hashchange", prefill);
