"""The process's current keyring, reloaded from the key file when it changes.

Rotation writes the key file with the new key first and the old ones after it, then re-wraps
data keys. A running gateway keeps working through that without a restart: it re-reads the file
before wrapping a new data key (so nothing new is wrapped under a key about to be dropped) and
when it meets a key id it does not know (a row another process already re-wrapped).
With ``BASTION_MASTER_KEY`` there is no file to re-read: the operator deploys the new key as
active with the old one in ``vault.previous_keys`` (see docs/VAULT.md).
"""

from __future__ import annotations

import os

import structlog

from bastion.config.settings import Settings
from bastion.vault.crypto import Keyring
from bastion.vault.keys import key_file_path, load_keyring

log = structlog.get_logger("bastion.vault")


class KeyringSource:
    def __init__(self, settings: Settings, keyring: Keyring | None = None) -> None:
        self.settings = settings
        self._keyring = keyring
        self._stamp: tuple[int, int] | None = None

    @property
    def file_mode(self) -> bool:
        return self.settings.master_key is None

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            self.load()
        assert self._keyring is not None
        return self._keyring

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(key_file_path(self.settings))
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def load(self) -> Keyring:
        """(Re)load from settings; generates the embedded default key file on first use."""
        stamp = self._file_stamp() if self.file_mode else None
        self._keyring = load_keyring(self.settings)
        self._stamp = self._file_stamp() if self.file_mode else stamp
        return self._keyring

    def refresh(self) -> bool:
        """Reload if the key file changed since it was read (one ``stat``). True if reloaded."""
        if not self.file_mode or self._keyring is None:
            return False
        if self._file_stamp() == self._stamp:
            return False
        before = self._keyring.active.key_id
        self.load()
        log.info("vault_keyring_reloaded", active_key_id=self.keyring.active.key_id, previous_active=before)
        return True

    def reload_for(self, key_id: str) -> bool:
        """Met an unknown key id: re-read the key file once. True if the key is now known."""
        if not self.file_mode:
            return False
        try:
            self.load()
        except Exception as exc:  # a half-written or unreadable file: keep what we had
            log.warning("vault_keyring_reload_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return key_id in self.keyring
