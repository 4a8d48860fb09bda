"""API key material: generation, the stored hash, the listed prefix, and the format check.

A key is ``bst_`` followed by 40 characters of URL-safe randomness (30 random bytes, 240 bits).
Only its SHA-256 is stored. A fast, unsalted hash is the right choice here, unlike for passwords:
the key is uniformly random with 240 bits of entropy, so there is no dictionary to attack and a
brute-force search of the key space is hopeless whatever the hash costs; salting or stretching
would only make every request's lookup slower (a slow hash would cost milliseconds per request,
and a salt would make the hash unusable as an index). The hash is therefore a safe database key.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "bst_"
#: 30 random bytes encode to exactly 40 URL-safe base64 characters (no padding).
KEY_RANDOM_BYTES = 30
KEY_BODY_LENGTH = 40
KEY_LENGTH = len(KEY_PREFIX) + KEY_BODY_LENGTH
#: Characters of the key shown in listings ("bst_" + 8): enough to tell keys apart, useless to guess.
LISTED_PREFIX_LENGTH = 12

_KEY_FORMAT = re.compile(r"bst_[A-Za-z0-9_-]{40}")


def generate_key() -> str:
    """A new random API key; the caller shows it once and stores only ``hash_key`` of it."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """The hex SHA-256 stored in ``api_keys.key_hash``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def listed_prefix(key: str) -> str:
    return key[:LISTED_PREFIX_LENGTH]


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has the shape of a Bastion key (checked before any lookup)."""
    return len(key) == KEY_LENGTH and _KEY_FORMAT.fullmatch(key) is not None
