"""Password-derived keys, wrapped private keys and the stored authentication hash."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

import crypto
from crypto import OpenError, _password

SALT = bytes(range(16))


def test_derive_password_matches_definition_and_nfc() -> None:
    keys = crypto.derive_password("Caf\u00e9 安全", SALT, iterations=1000)
    master = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=64,
        salt=b"chuishao/v1/password\x00" + SALT,
        iterations=1000,
    ).derive("Caf\u00e9 安全".encode())
    assert (keys.auth_secret, keys.kek) == (master[:32], master[32:])
    # NFD input ("e" + combining acute) derives the same keys.
    assert crypto.derive_password("Cafe\u0301 安全", SALT, iterations=1000) == keys
    with pytest.raises(ValueError):
        crypto.derive_password("x", bytes(15), iterations=1000)


def test_wrap_unwrap_and_pkcs8() -> None:
    kek = crypto.new_key()
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    blob = crypto.wrap_private_key(kek, private, kid)
    assert len(blob) == 77 and blob[0] == 1
    assert crypto.unwrap_private_key(kek, blob, kid) == private
    # The wrapped plaintext is exactly the PKCS#8 DER that WebCrypto imports.
    der = x25519.X25519PrivateKey.from_private_bytes(private).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der == _password.PKCS8_X25519_PREFIX + private
    with pytest.raises(ValueError):
        crypto.wrap_private_key(kek, private, bytes(16))


def test_unwrap_failures() -> None:
    kek = crypto.new_key()
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    blob = crypto.wrap_private_key(kek, private, kid)
    for args in [
        (crypto.new_key(), blob, kid),
        (kek, blob, bytes(16)),
        (kek, b"\x02" + blob[1:], kid),
        (kek, blob[:-1], kid),
        (kek, blob + b"\x00", kid),
        (kek[:16], blob, kid),
    ]:
        with pytest.raises(OpenError):
            crypto.unwrap_private_key(*args)


def test_auth_hash_round_trip_and_format() -> None:
    secret = crypto.new_key()
    stored = crypto.hash_auth_secret(secret, n=2**10, r=8, p=1)
    parts = stored.split("$")
    assert parts[:4] == ["scrypt", "1024", "8", "1"] and len(parts) == 6
    assert len(parts[4]) == 22 and len(parts[5]) == 43 and "=" not in stored
    assert crypto.verify_auth_secret(secret, stored)
    assert not crypto.verify_auth_secret(crypto.new_key(), stored)


def test_auth_hash_malformed_is_false() -> None:
    secret = crypto.new_key()
    stored = crypto.hash_auth_secret(secret, n=2**10)
    head, salt, digest = stored.rsplit("$", 2)
    for bad in [
        "",
        "scrypt",
        stored + "$",
        stored.replace("scrypt", "argon2"),
        stored.replace("$1024$", "$1000$"),
        stored.replace("$1024$", "$0$"),
        stored.replace("$1024$", f"${2**30}$"),
        f"{head}${salt}=${digest}",
        f"{head}${salt}${digest[:-1]}",
        f"{head}${salt[:-2]}${digest}",
        f"{head}${salt}${digest}!",
        stored.replace("$8$", "$999$"),
    ]:
        assert not crypto.verify_auth_secret(secret, bad)
    assert not crypto.verify_auth_secret(secret, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        crypto.hash_auth_secret(secret, n=1000)
