"""Where the master keys come from.

In order: ``BASTION_MASTER_KEY`` (64 hex characters, the active key) with optional
``vault.previous_keys``; else a key file (``vault.key_file``); else, on the embedded default, a key
file generated once in the data directory with owner-only permissions. A key file holds one key
per line, active first; older lines are keys still needed to unwrap data keys not yet rotated.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

from bastion.config.settings import Settings
from bastion.vault.crypto import Keyring, MasterKey, VaultError

log = structlog.get_logger("bastion.vault")

DEFAULT_KEY_FILE = "master.key"


def key_file_path(settings: Settings) -> Path:
    return Path(settings.vault.key_file or Path(settings.data_dir) / DEFAULT_KEY_FILE)


def read_key_file(path: Path) -> list[MasterKey]:
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise VaultError(f"cannot read master key file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise VaultError(f"master key file {path} is not a text file of hex keys") from None
    keys = [MasterKey.from_hex(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not keys:
        raise VaultError(f"master key file {path} holds no key")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("master_key_file_permissions", path=str(path), hint="chmod 600 the file")
    return keys


def write_key_file(path: Path, keys: list[MasterKey]) -> None:
    """Write atomically with owner-only permissions (the file never exists readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    body = "# Bastion master keys: the first is active. Back this file up; without it prompts are lost.\n"
    body += "".join(key.to_hex() + "\n" for key in keys)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, body.encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def load_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """The keyring for this process; generates the embedded default key file on first use."""
    previous = [MasterKey.from_hex(value) for value in settings.vault.previous_keys]
    if settings.master_key:
        return Keyring(MasterKey.from_hex(settings.master_key.get_secret_value()), previous)
    path = key_file_path(settings)
    if not path.exists():
        if settings.vault.key_file is not None or not create:
            raise VaultError(f"master key file {path} does not exist")
        key = MasterKey.generate()
        write_key_file(path, [key])
        log.warning(
            "master_key_generated",
            path=str(path),
            key_id=key.key_id,
            hint="back this file up: prompts cannot be decrypted without it",
        )
    keys = read_key_file(path)
    return Keyring(keys[0], [*keys[1:], *previous])
