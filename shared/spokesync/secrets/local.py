"""The embedded SecretStore: one Fernet-encrypted file, mode 0600, outside the repository.

The key comes from SPOKESYNC_SECRET_KEY or a key file generated on first use
(also 0600). Without the key the file is unreadable; with it, every read and
write decrypts/encrypts the whole (small) file under a lock.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

from spokesync.ports import SecretNotFound

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class LocalSecretStore:
    def __init__(self, path: str, key: bytes) -> None:
        self.path = Path(path)
        self._fernet = Fernet(key)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, key: str = "", key_file: str = "") -> LocalSecretStore:
        if key:
            return cls(path, key.encode())
        kf = Path(key_file or str(Path(path).with_suffix(".key")))
        if not kf.exists():
            _write_private(kf, Fernet.generate_key())
        return cls(path, kf.read_bytes().strip())

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            raw = self._fernet.decrypt(self.path.read_bytes())
        except InvalidToken:
            raise RuntimeError(f"the secret file {self.path} cannot be decrypted with the configured key") from None
        return dict(json.loads(raw))

    def _save(self, data: dict[str, str]) -> None:
        _write_private(self.path, self._fernet.encrypt(json.dumps(data).encode()))

    def put(self, name: str, value: str) -> str:
        with self._lock:
            data = self._load()
            data[name] = value
            self._save(data)
        return name

    def get(self, name: str) -> str:
        with self._lock:
            data = self._load()
        if name not in data:
            raise SecretNotFound(name)
        return data[name]

    def delete(self, name: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(name, None) is not None:
                self._save(data)


def from_config(config: Config, ctx: Context | None = None) -> LocalSecretStore:
    return LocalSecretStore.open(config.secrets_file, config.secret_key, config.secrets_key_file)
