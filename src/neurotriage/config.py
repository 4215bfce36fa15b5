"""Settings from the environment: every NEUROTRIAGE_* variable the package reads, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neurotriage.errors import UserError

DEFAULT_MAX_UPLOAD = 1 << 30  # 1 GiB: a BraTS case is ~40 MB zipped, a multi-case zip far less than this
DEFAULT_JOB_WORKERS = 2
DEFAULT_DB_STATEMENT_TIMEOUT_S = 30  # a PostgreSQL statement or commit longer than this is an error
DEFAULT_DICOM_STABLE_S = 30  # a study is complete once no instance has arrived for this long
AE_TITLE_MAX = 16  # DICOM PS3.5: an AE title is at most 16 characters, no backslash or control characters
DEFAULT_SEND_RETRY_S = 30  # the first wait after a failed send to a PACS; it doubles per failure
DEFAULT_SEND_RETRY_MAX_S = 3600
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `load_settings()`."""

    home: Path
    cache_dir: Path
    database_url: str
    secret_key: str | None  # None: the web app makes a random key per start
    secure_cookies: bool
    max_upload_bytes: int
    job_workers: int
    db_statement_timeout_s: int
    admin_user: str | None  # the first admin, created when the web app starts with no users
    admin_password: str | None
    new_password: str | None  # the password of `user add`, instead of a prompt
    dicom_stable_s: int
    dicom_allowed_aes: tuple[str, ...]  # calling AE titles the DICOM listener accepts; empty: any
    dicom_send_to: str | None  # the default destination of results, AET@host:port (checked where it is used)
    dicom_send_retry_s: int
    dicom_send_retry_max_s: int
    retain_raw_days: int | None  # raw uploads and received DICOM of diagnosed studies go after this; None: kept
    retain_failed_job_days: int | None  # failed jobs' folders go after this; None: kept


def _whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    """A whole number of at least `minimum` from `name`, the default when unset; UserError naming it otherwise."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r}: not a whole number", field=name) from None
    if value < minimum:
        raise UserError(f"{name}={raw!r}: must be at least {minimum}", field=name)
    return value


def _days(env: Mapping[str, str], name: str) -> int | None:
    """A number of days (0 or more) from `name`; None when unset or blank (keep for good)."""
    return _whole_number(env, name, 0, minimum=0) if env.get(name, "").strip() else None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no switch from `name` (1/0, true/false, yes/no, on/off), the default when unset."""
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise UserError(f"{name}={raw!r}: use 1 or 0", field=name)
    return word in TRUE_WORDS


def ae_title(raw: str, field: str) -> str:
    """A DICOM AE title with its padding stripped; UserError naming `field` when it is not a valid one."""
    title = raw.strip()
    if not title or len(title) > AE_TITLE_MAX or "\\" in title or not title.isprintable() or not title.isascii():
        raise UserError(f"{field}={raw!r}: not a DICOM AE title (1 to 16 ASCII characters, no backslash)", field=field)
    return title


def _ae_titles(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """AE titles from `name`, separated by commas (a title may hold spaces); none when unset or blank."""
    return tuple(ae_title(word, name) for word in env.get(name, "").split(",") if word.strip())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from NEUROTRIAGE_* variables of `env` (default: the process environment)."""
    env = os.environ if env is None else env
    home = Path(env.get("NEUROTRIAGE_HOME", Path.home() / ".local" / "share" / "neurotriage"))
    return Settings(
        home=home,
        cache_dir=Path(env.get("NEUROTRIAGE_CACHE", Path.home() / ".cache" / "neurotriage")),
        database_url=env.get("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{home / 'neurotriage.db'}"),
        secret_key=env.get("NEUROTRIAGE_SECRET_KEY") or None,
        # Secure cookies need HTTPS; plain http://127.0.0.1 is allowed only when switched off.
        secure_cookies=_flag(env, "NEUROTRIAGE_SECURE_COOKIES", True),
        max_upload_bytes=_whole_number(env, "NEUROTRIAGE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD),
        job_workers=_whole_number(env, "NEUROTRIAGE_JOB_WORKERS", DEFAULT_JOB_WORKERS, minimum=0),
        db_statement_timeout_s=_whole_number(env, "NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S", DEFAULT_DB_STATEMENT_TIMEOUT_S),
        admin_user=env.get("NEUROTRIAGE_ADMIN_USER") or None,
        admin_password=env.get("NEUROTRIAGE_ADMIN_PASSWORD") or None,
        new_password=env.get("NEUROTRIAGE_NEW_PASSWORD") or None,
        dicom_stable_s=_whole_number(env, "NEUROTRIAGE_DICOM_STABLE_S", DEFAULT_DICOM_STABLE_S),
        dicom_allowed_aes=_ae_titles(env, "NEUROTRIAGE_DICOM_ALLOWED_AES"),
        dicom_send_to=env.get("NEUROTRIAGE_DICOM_SEND_TO") or None,
        dicom_send_retry_s=_whole_number(env, "NEUROTRIAGE_DICOM_SEND_RETRY_S", DEFAULT_SEND_RETRY_S),
        dicom_send_retry_max_s=_whole_number(env, "NEUROTRIAGE_DICOM_SEND_RETRY_MAX_S", DEFAULT_SEND_RETRY_MAX_S),
        retain_raw_days=_days(env, "NEUROTRIAGE_RETAIN_RAW_DAYS"),
        retain_failed_job_days=_days(env, "NEUROTRIAGE_RETAIN_FAILED_JOB_DAYS"),
    )
