// RFC 9180 HPKE, base mode, on WebCrypto. KEMs: DHKEM(X25519, HKDF-SHA256),
// DHKEM(P-256, HKDF-SHA256) and MLKEM768-X25519 (X-Wing, suite v2); KDF:
// HKDF-SHA256; AEADs: AES-128-GCM, AES-256-GCM and (for the published X-Wing
// vectors) ChaCha20-Poly1305. Intermediate values are exposed for the vectors.
// WebCrypto has KEMs but no HPKE: the key schedule below is computed here for
// every KEM alike; X-Wing's shared secret enters it as is (no ExtractAndExpand).
import { ascii, b64uDecode, concat, i2osp, toBytes } from "./encodings.js";
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  chachaDecrypt,
  chachaEncrypt,
  hkdfExpand,
  hkdfExtract,
} from "./primitives.js";
import { XWING_ENC_LENGTH, XWING_PUBLIC_LENGTH, xwingDecap, xwingEncap } from "./xwing.js";
import {
  asX25519Private,
  generateP256,
  generateX25519,
  importP256Private,
  importX25519Private,
  p256,
  p256PublicRaw,
  x25519,
  x25519PrivateRaw,
  x25519PublicRaw,
} from "./keys.js";

export const KEM_X25519 = 0x0020;
export const KEM_P256 = 0x0010;
export const KEM_XWING = 0x647a;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES128GCM = 0x0001;
export const AEAD_AES256GCM = 0x0002;
export const AEAD_CHACHA20POLY1305 = 0x0003;

const MODE_BASE = 0x00;
const VERSION = ascii("HPKE-v1");
const EMPTY = new Uint8Array(0);
const P256_ORDER = BigInt(
  "0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
);

const AEADS = {
  [AEAD_AES128GCM]: { Nk: 16, Nn: 12, Nt: 16, seal: aesGcmEncrypt, open: aesGcmDecrypt },
  [AEAD_AES256GCM]: { Nk: 32, Nn: 12, Nt: 16, seal: aesGcmEncrypt, open: aesGcmDecrypt },
  [AEAD_CHACHA20POLY1305]: { Nk: 32, Nn: 12, Nt: 16, seal: chachaEncrypt, open: chachaDecrypt },
};

export async function labeledExtract(suiteId, salt, label, ikm) {
  return hkdfExtract(salt, concat(VERSION, suiteId, ascii(label), ikm));
}

export async function labeledExpand(suiteId, prk, label, info, length) {
  const labeled = concat(i2osp(length, 2), VERSION, suiteId, ascii(label), info);
  return hkdfExpand(prk, labeled, length);
}

function kemSuiteId(kemId) {
  return concat(ascii("KEM"), i2osp(kemId, 2));
}

function bytesToBigInt(b) {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

// Each KEM: sizes, DeriveKeyPair, DH, key generation, public-from-private.
const KEMS = {
  [KEM_X25519]: {
    Nsecret: 32,
    Nenc: 32,
    Npk: 32,
    async deriveKeyPair(ikm, extractable) {
      const sid = kemSuiteId(KEM_X25519);
      const prk = await labeledExtract(sid, EMPTY, "dkp_prk", ikm);
      const sk = await labeledExpand(sid, prk, "sk", EMPTY, 32);
      const privateKey = await importX25519Private(sk, extractable);
      return { privateKey, privateRaw: sk, publicKey: await x25519PublicRaw(privateKey) };
    },
    async asPrivate(key) {
      return asX25519Private(key);
    },
    generate: () => generateX25519(false),
    publicOf: x25519PublicRaw,
    dh: x25519,
    async privateRaw(key) {
      return x25519PrivateRaw(key);
    },
  },
  [KEM_P256]: {
    Nsecret: 32,
    Nenc: 65,
    Npk: 65,
    async deriveKeyPair(ikm) {
      const sid = kemSuiteId(KEM_P256);
      const prk = await labeledExtract(sid, EMPTY, "dkp_prk", ikm);
      for (let counter = 0; counter < 256; counter++) {
        const bytes = await labeledExpand(sid, prk, "candidate", i2osp(counter, 1), 32);
        const sk = bytesToBigInt(bytes);
        if (sk !== 0n && sk < P256_ORDER) {
          const privateKey = await importP256Private(bytes, true);
          return { privateKey, privateRaw: bytes, publicKey: await p256PublicRaw(privateKey) };
        }
      }
      throw new Error("DeriveKeyPairError");
    },
    async asPrivate(key) {
      if (key instanceof CryptoKey) return key;
      return importP256Private(key, true);
    },
    generate: generateP256,
    publicOf: p256PublicRaw,
    dh: p256,
    async privateRaw(key) {
      const jwk = await globalThis.crypto.subtle.exportKey("jwk", key);
      return b64uDecode(jwk.d);
    },
  },
};

// X-Wing is not a DHKEM: WebCrypto's encapsulateBits / decapsulateBits give
// the KEM's shared secret, used as is. The encapsulation randomness cannot be
// injected, so deterministic options are refused rather than ignored.
KEMS[KEM_XWING] = {
  Nsecret: 32,
  Nenc: XWING_ENC_LENGTH,
  Npk: XWING_PUBLIC_LENGTH,
};

function getKem(kemId) {
  const kem = KEMS[kemId];
  if (!kem) throw new TypeError("unsupported KEM");
  return kem;
}

export async function deriveKeyPair(kemId, ikm, extractable = true) {
  return getKem(kemId).deriveKeyPair(toBytes(ikm), extractable);
}

async function extractAndExpand(kemId, dh, kemContext) {
  const sid = kemSuiteId(kemId);
  const prk = await labeledExtract(sid, EMPTY, "eae_prk", dh);
  return labeledExpand(sid, prk, "shared_secret", kemContext, getKem(kemId).Nsecret);
}

// Encap(pkR). The ephemeral key is random unless given: opts.ikmE (run
// through DeriveKeyPair) or opts.ephemeral (raw private key bytes or CryptoKey).
export async function encap(kemId, pkRm, opts = {}) {
  const kem = getKem(kemId);
  const pkR = toBytes(pkRm);
  if (pkR.length !== kem.Npk) throw new TypeError("bad recipient public key");
  if (kemId === KEM_XWING) {
    if (opts.ikmE !== undefined || opts.ephemeral !== undefined || opts.rng !== undefined) {
      throw new TypeError("X-Wing encapsulation cannot be made deterministic here");
    }
    return xwingEncap(pkR);
  }
  let eph;
  if (opts.ikmE !== undefined) {
    eph = await kem.deriveKeyPair(toBytes(opts.ikmE), false);
  } else if (opts.ephemeral !== undefined) {
    const privateKey = await kem.asPrivate(opts.ephemeral);
    eph = { privateKey, publicKey: await kem.publicOf(privateKey) };
  } else {
    eph = await kem.generate();
  }
  const dh = await kem.dh(eph.privateKey, pkR);
  const enc = eph.publicKey;
  const sharedSecret = await extractAndExpand(kemId, dh, concat(enc, pkR));
  return { sharedSecret, enc, dh };
}

// Decap(enc, skR). skR is a CryptoKey or raw private bytes; pkRm is computed
// from it when not given.
export async function decap(kemId, enc, skR, pkRm) {
  const kem = getKem(kemId);
  const e = toBytes(enc);
  if (e.length !== kem.Nenc) throw new TypeError("bad enc");
  if (kemId === KEM_XWING) return xwingDecap(skR, e);
  const sk = await kem.asPrivate(skR);
  const pkR = pkRm === undefined ? await kem.publicOf(sk) : toBytes(pkRm);
  const dh = await kem.dh(sk, e);
  return extractAndExpand(kemId, dh, concat(e, pkR));
}

export function hpkeSuiteId(kemId, kdfId, aeadId) {
  return concat(ascii("HPKE"), i2osp(kemId, 2), i2osp(kdfId, 2), i2osp(aeadId, 2));
}

export async function keyScheduleBase(kemId, kdfId, aeadId, sharedSecret, info) {
  if (kdfId !== KDF_HKDF_SHA256) throw new TypeError("unsupported KDF");
  const aead = AEADS[aeadId];
  if (!aead) throw new TypeError("unsupported AEAD");
  const sid = hpkeSuiteId(kemId, kdfId, aeadId);
  const pskIdHash = await labeledExtract(sid, EMPTY, "psk_id_hash", EMPTY);
  const infoHash = await labeledExtract(sid, EMPTY, "info_hash", toBytes(info));
  const keyScheduleContext = concat(new Uint8Array([MODE_BASE]), pskIdHash, infoHash);
  const secret = await labeledExtract(sid, toBytes(sharedSecret), "secret", EMPTY);
  const key = await labeledExpand(sid, secret, "key", keyScheduleContext, aead.Nk);
  const baseNonce = await labeledExpand(sid, secret, "base_nonce", keyScheduleContext, aead.Nn);
  const exporterSecret = await labeledExpand(sid, secret, "exp", keyScheduleContext, 32);
  return { keyScheduleContext, secret, key, baseNonce, exporterSecret };
}

export function computeNonce(baseNonce, seq) {
  const s = i2osp(seq, baseNonce.length);
  const out = new Uint8Array(baseNonce.length);
  for (let i = 0; i < out.length; i++) out[i] = baseNonce[i] ^ s[i];
  return out;
}

function context(ks, aeadId) {
  const aead = AEADS[aeadId];
  return {
    ...ks,
    nonce: (seq) => computeNonce(ks.baseNonce, seq),
    seal: (aad, pt, seq = 0) =>
      aead.seal(ks.key, computeNonce(ks.baseNonce, seq), toBytes(pt), toBytes(aad)),
    open: (aad, ct, seq = 0) =>
      aead.open(ks.key, computeNonce(ks.baseNonce, seq), toBytes(ct), toBytes(aad)),
  };
}

export async function setupBaseS(suite, pkRm, info, opts = {}) {
  const { kemId, kdfId, aeadId } = suite;
  const { sharedSecret, enc } = await encap(kemId, pkRm, opts);
  const ks = await keyScheduleBase(kemId, kdfId, aeadId, sharedSecret, info);
  return context({ enc, sharedSecret, ...ks }, aeadId);
}

export async function setupBaseR(suite, enc, skR, info, pkRm) {
  const { kemId, kdfId, aeadId } = suite;
  const sharedSecret = await decap(kemId, enc, skR, pkRm);
  const ks = await keyScheduleBase(kemId, kdfId, aeadId, sharedSecret, info);
  return context({ enc: toBytes(enc), sharedSecret, ...ks }, aeadId);
}

// Single-shot seal (sequence number 0): returns enc || ct.
export async function sealBase(suite, pkRm, info, aad, pt, opts = {}) {
  const ctx = await setupBaseS(suite, pkRm, info, opts);
  return concat(ctx.enc, await ctx.seal(aad, pt, 0));
}

// Single-shot open of enc || ct. Throws on failure (callers map to OpenError).
export async function openBase(suite, data, skR, info, aad) {
  const kem = getKem(suite.kemId);
  const d = toBytes(data);
  if (d.length < kem.Nenc + AEADS[suite.aeadId].Nt) throw new TypeError("too short");
  const ctx = await setupBaseR(suite, d.subarray(0, kem.Nenc), skR, info);
  return ctx.open(aad, d.subarray(kem.Nenc), 0);
}

export async function privateRaw(kemId, key) {
  if (kemId === KEM_XWING) throw new TypeError("X-Wing private keys are seeds");
  return getKem(kemId).privateRaw(key);
}

export const SUITE_X25519_AES256 = {
  kemId: KEM_X25519,
  kdfId: KDF_HKDF_SHA256,
  aeadId: AEAD_AES256GCM,
};

export const SUITE_XWING_AES256 = {
  kemId: KEM_XWING,
  kdfId: KDF_HKDF_SHA256,
  aeadId: AEAD_AES256GCM,
};
