"""Chuishao protocol v1 and v2: the cryptography shared by the service, the CLI and the vectors.

v2 differs only in key slots: HPKE with the hybrid KEM MLKEM768-X25519 (X-Wing).

Byte-exact specification: docs/PROTOCOL.md. Every failure to open anything raises OpenError.
Functions that draw randomness take `rng` (a callable n -> n bytes) only for test vectors.
"""

from ._claim import (
    claim_code_hash,
    derive_claim_code,
    format_claim_code,
    normalize_claim_code,
    open_claim_key,
    open_claim_key_v2,
    open_claim_slot,
    seal_claim_key,
    seal_claim_key_v2,
    seal_claim_slot,
)
from ._encoding import B32_ALPHABET, b32_decode, b32_encode, b64u_decode, b64u_encode
from ._errors import OpenError
from ._files import CHUNK_SIZE, open_file, seal_file
from ._items import open_item, padme, seal_item
from ._keys import (
    format_fingerprint,
    generate_keypair,
    key_id,
    keyset_fingerprint,
    new_id,
    new_key,
    public_key,
)
from ._password import (
    XWING_WRAP_VERSION,
    XWING_WRAPPED_SIZE,
    PasswordKeys,
    derive_password,
    hash_auth_secret,
    unwrap_private_key,
    unwrap_xwing_seed,
    verify_auth_secret,
    wrap_private_key,
    wrap_xwing_seed,
)
from ._receipt import (
    ReceiptKeys,
    ReceiptMistyped,
    damm_check_digit,
    derive_receipt,
    format_receipt,
    new_receipt,
    normalize_receipt,
)
from ._recovery import decode_recovery_secret, encode_recovery_secret
from ._scratch import SCRATCH_TAG, ScratchKey
from ._signing import (
    generate_signing_key,
    sign,
    signing_fingerprint,
    signing_public_key,
    verify_signature,
)
from ._slots import (
    SLOT_SIZE,
    SLOT_SIZE_V2,
    SUITE,
    SUITE_V2,
    SUITES,
    open_key,
    open_key_v2,
    open_slot,
    seal_key,
    seal_key_v2,
    seal_slot,
)
from ._tokens import open_token, seal_token, token_key
from ._xwing import PUBLIC_SIZE as XWING_PUBLIC_SIZE
from ._xwing import generate_keypair as generate_xwing_keypair
from ._xwing import public_key as xwing_public_key

__all__ = [
    "CHUNK_SIZE",
    "SLOT_SIZE",
    "SLOT_SIZE_V2",
    "SUITE",
    "SUITES",
    "SUITE_V2",
    "XWING_PUBLIC_SIZE",
    "XWING_WRAPPED_SIZE",
    "XWING_WRAP_VERSION",
    "OpenError",
    "SCRATCH_TAG",
    "ScratchKey",
    "PasswordKeys",
    "ReceiptKeys",
    "ReceiptMistyped",
    "B32_ALPHABET",
    "b32_decode",
    "b32_encode",
    "b64u_decode",
    "b64u_encode",
    "claim_code_hash",
    "damm_check_digit",
    "decode_recovery_secret",
    "derive_claim_code",
    "derive_password",
    "derive_receipt",
    "encode_recovery_secret",
    "format_claim_code",
    "format_fingerprint",
    "format_receipt",
    "generate_keypair",
    "generate_signing_key",
    "generate_xwing_keypair",
    "hash_auth_secret",
    "key_id",
    "keyset_fingerprint",
    "new_id",
    "new_key",
    "new_receipt",
    "normalize_claim_code",
    "normalize_receipt",
    "open_claim_key",
    "open_claim_key_v2",
    "open_claim_slot",
    "open_file",
    "open_item",
    "open_key",
    "open_key_v2",
    "open_slot",
    "padme",
    "public_key",
    "seal_claim_key",
    "seal_claim_key_v2",
    "seal_claim_slot",
    "seal_file",
    "seal_item",
    "seal_key",
    "seal_key_v2",
    "seal_slot",
    "sign",
    "signing_fingerprint",
    "signing_public_key",
    "unwrap_private_key",
    "unwrap_xwing_seed",
    "verify_auth_secret",
    "verify_signature",
    "wrap_private_key",
    "wrap_xwing_seed",
    "open_token",
    "seal_token",
    "token_key",
    "xwing_public_key",
]
