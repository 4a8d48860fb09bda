"""Envelope encryption for prompt text: AES-256-GCM under a random data key per prompt version,
the data key wrapped (also AES-256-GCM) by a master key named by its key id.

Associated data binds every ciphertext to where it belongs (tenant, prompt, version, field), so a
ciphertext copied into another row, or a wrapped key swapped between versions, fails to decrypt
instead of yielding another prompt's text.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class VaultError(Exception):
    """A vault operation failed; the message is safe to show (it never contains prompt text)."""


class DecryptionFailed(VaultError):
    pass


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    secret: bytes

    @classmethod
    def from_hex(cls, value: str) -> MasterKey:
        value = value.strip()
        try:
            secret = bytes.fromhex(value)
        except ValueError:
            raise VaultError("master key must be 64 hexadecimal characters") from None
        if len(secret) != KEY_BYTES:
            raise VaultError(f"master key must be 64 hexadecimal characters (got {len(value)})")
        return cls(key_id=key_id_for(secret), secret=secret)

    @classmethod
    def generate(cls) -> MasterKey:
        secret = os.urandom(KEY_BYTES)
        return cls(key_id=key_id_for(secret), secret=secret)

    def to_hex(self) -> str:
        return self.secret.hex()

    def __repr__(self) -> str:  # never print the secret
        return f"MasterKey(key_id={self.key_id!r})"


def key_id_for(secret: bytes) -> str:
    """A public name for a master key: identifies it without revealing it."""
    return hashlib.sha256(b"bastion-master-key-id:" + secret).hexdigest()[:16]


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionFailed("ciphertext is truncated")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionFailed("ciphertext does not authenticate (wrong key or moved data)") from None


def field_aad(context: str, field: str) -> bytes:
    return f"bastion-vault|{context}|{field}".encode()


class Keyring:
    """The master keys this process knows: one active (new wraps use it) and older ones that can
    still unwrap data keys until ``bastion vault rotate`` has re-wrapped everything."""

    def __init__(self, active: MasterKey, previous: list[MasterKey] | None = None) -> None:
        self.active = active
        self._keys = {key.key_id: key for key in [*(previous or []), active]}

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def get(self, key_id: str) -> MasterKey:
        key = self._keys.get(key_id)
        if key is None:
            raise DecryptionFailed(f"master key {key_id} is not available to this process")
        return key

    # -- data keys ---------------------------------------------------------------------------

    def new_data_key(self, context: str) -> tuple[bytes, bytes, str]:
        """A fresh data key, wrapped by the active master key: (data_key, wrapped, key_id)."""
        data_key = os.urandom(KEY_BYTES)
        return data_key, self.wrap(data_key, context), self.active.key_id

    def wrap(self, data_key: bytes, context: str, key: MasterKey | None = None) -> bytes:
        key = key or self.active
        return _seal(key.secret, data_key, field_aad(context, f"dek:{key.key_id}"))

    def unwrap(self, wrapped: bytes, key_id: str, context: str) -> bytes:
        return _open(self.get(key_id).secret, wrapped, field_aad(context, f"dek:{key_id}"))

    def rewrap(self, wrapped: bytes, key_id: str, context: str) -> tuple[bytes, str]:
        """Re-wrap a data key under the active master key (rotation)."""
        data_key = self.unwrap(wrapped, key_id, context)
        return self.wrap(data_key, context), self.active.key_id


def encrypt_field(data_key: bytes, plaintext: str, context: str, field: str) -> bytes:
    return _seal(data_key, plaintext.encode("utf-8"), field_aad(context, field))


def decrypt_field(data_key: bytes, sealed: bytes, context: str, field: str) -> str:
    return _open(data_key, sealed, field_aad(context, field)).decode("utf-8")
