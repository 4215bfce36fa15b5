"""What the web app may vary, derived from the package settings (`neurotriage.config`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from neurotriage.config import load_settings


@dataclass(frozen=True)
class WebSettings:
    """Secrets, cookie policy, upload limit, job concurrency, storage and the first admin."""

    secret_key: str
    secure_cookies: bool
    max_upload_bytes: int
    job_workers: int
    data_dir: Path
    database_url: str
    admin_user: str | None = None
    admin_password: str | None = None


def load_web_settings(**overrides) -> WebSettings:
    """The web settings from `load_settings()`; keyword arguments override them (tests, `serve` flags)."""
    base = load_settings()
    values = {
        # Without a configured key, sessions last until the server restarts (a fresh random key).
        "secret_key": base.secret_key or secrets.token_urlsafe(32),
        "secure_cookies": base.secure_cookies,
        "max_upload_bytes": base.max_upload_bytes,
        "job_workers": base.job_workers,
        "data_dir": base.home / "web",
        "database_url": base.database_url,
        "admin_user": base.admin_user,
        "admin_password": base.admin_password,
    }
    return WebSettings(**(values | overrides))
