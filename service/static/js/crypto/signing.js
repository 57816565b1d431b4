// Ed25519 signature verification (installation signing key, raw 32-byte
// public keys, signatures over exact bytes).
import { toBytes } from "./encodings.js";

export async function verifySignature(publicRaw, data, signature) {
  try {
    const pub = toBytes(publicRaw);
    const sig = toBytes(signature);
    if (pub.length !== 32 || sig.length !== 64) return false;
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, sig, toBytes(data));
  } catch {
    return false;
  }
}
