"""Web settings from NEUROTRIAGE_* environment variables, with safe defaults."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from neurotriage.config import load_settings
from neurotriage.errors import UserError

DEFAULT_MAX_UPLOAD = 1 << 30  # 1 GiB: a BraTS case is ~40 MB zipped, a multi-case zip far less than this


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r}: not a whole number") from None
    if value <= 0:
        raise UserError(f"{name}={raw!r}: must be positive")
    return value


@dataclass(frozen=True)
class WebSettings:
    """What the web app may vary: secrets, cookie policy, upload limit, job concurrency, storage."""

    secret_key: str
    secure_cookies: bool
    max_upload_bytes: int
    job_workers: int
    data_dir: Path
    database_url: str


def load_web_settings(**overrides) -> WebSettings:
    """Read the web settings; keyword arguments override the environment (tests, `serve` flags)."""
    base = load_settings()
    values = {
        # Without a configured key, sessions last until the server restarts (a fresh random key).
        "secret_key": os.environ.get("NEUROTRIAGE_SECRET_KEY") or secrets.token_urlsafe(32),
        # Secure cookies need HTTPS; plain http://127.0.0.1 is allowed only when switched off.
        "secure_cookies": os.environ.get("NEUROTRIAGE_SECURE_COOKIES", "1") != "0",
        "max_upload_bytes": _int_env("NEUROTRIAGE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD),
        "job_workers": _int_env("NEUROTRIAGE_JOB_WORKERS", 2),
        "data_dir": base.home / "web",
        "database_url": base.database_url,
    }
    return WebSettings(**(values | overrides))
