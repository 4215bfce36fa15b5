"""The export key: a secret kept outside every export, which makes pseudonyms stable across exports.

It is 32 random bytes written as hex to a file of mode 0600, created on first use. Anyone holding it
and the database can link pseudonyms back to patients, so it never travels with an export.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.files import fsync_path

KEY_FILE = "export-key"
KEY_BYTES = 32


def default_key_path() -> Path:
    """Where the export key lives unless another file is named: NEUROTRIAGE_HOME/export-key."""
    return load_settings().home / KEY_FILE


def load_key(path: Path, *, create_parent: bool = False) -> bytes:
    """The key in `path`, created there (mode 0600) when the file does not exist yet."""
    if not path.exists() and not path.is_symlink():
        return _create(path, create_parent)
    mode, text = _read(path)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        open_to = f"open to other users (mode {stat.S_IMODE(mode):04o})"
        raise UserError(f"{path}: the export key is {open_to}; make it its owner's only (chmod 600)", field="key_file")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise UserError(f"{path}: not an export key (expected {2 * KEY_BYTES} hex digits)", field="key_file")
    return key


def _read(path: Path) -> tuple[int, str]:
    """The key file's mode and text."""
    try:
        return path.stat().st_mode, path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise UserError(f"{path}: the export key cannot be read ({exc.strerror})", field="key_file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not an export key (not text)", field="key_file") from None


def _create(path: Path, create_parent: bool) -> bytes:
    """Write a new random key to `path`, readable by its owner only; an existing file is never replaced."""
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise UserError(f"{path}: its folder does not exist", field="key_file")
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another export created it first: use that one
        return load_key(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the export key ({exc.strerror})", field="key_file") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_path(path.parent)
    return key


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key, so two exports can be seen to share it."""
    return hmac.new(key, b"neurotriage export key id", hashlib.sha256).hexdigest()[:16]
