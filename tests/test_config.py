"""Settings: every NEUROTRIAGE_* variable read in one place, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurotriage.config import DEFAULT_MAX_UPLOAD, load_settings
from neurotriage.errors import UserError


def test_defaults_put_the_database_in_home() -> None:
    settings = load_settings({"NEUROTRIAGE_HOME": "/data/nt"})
    assert settings.database_url == "sqlite:////data/nt/neurotriage.db"
    assert settings.max_upload_bytes == DEFAULT_MAX_UPLOAD and settings.secure_cookies
    assert settings.secret_key is None and settings.admin_user is None and settings.new_password is None


def test_every_variable_is_read() -> None:
    settings = load_settings({
        "NEUROTRIAGE_HOME": "/h", "NEUROTRIAGE_CACHE": "/c", "NEUROTRIAGE_DATABASE_URL": "sqlite:///x.db",
        "NEUROTRIAGE_SECRET_KEY": "k", "NEUROTRIAGE_SECURE_COOKIES": "0", "NEUROTRIAGE_MAX_UPLOAD_BYTES": "1000",
        "NEUROTRIAGE_JOB_WORKERS": "3", "NEUROTRIAGE_ADMIN_USER": "root", "NEUROTRIAGE_ADMIN_PASSWORD": "pw",
        "NEUROTRIAGE_NEW_PASSWORD": "new",
    })  # fmt: skip
    assert (settings.home, settings.cache_dir, settings.database_url) == (Path("/h"), Path("/c"), "sqlite:///x.db")
    assert (settings.secret_key, settings.secure_cookies, settings.max_upload_bytes) == ("k", False, 1000)
    assert (settings.job_workers, settings.admin_user, settings.admin_password) == (3, "root", "pw")
    assert settings.new_password == "new"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("NEUROTRIAGE_MAX_UPLOAD_BYTES", "1GB", "not a whole number"),
        ("NEUROTRIAGE_JOB_WORKERS", "-1", "must be at least 0"),
        ("NEUROTRIAGE_MAX_UPLOAD_BYTES", "0", "must be at least 1"),
        ("NEUROTRIAGE_SECURE_COOKIES", "maybe", "use 1 or 0"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(UserError, match=f"^{name}='{value}': {problem}$") as caught:
        load_settings({name: value})
    assert caught.value.field == name


def test_zero_job_workers_leaves_diagnosing_to_separate_workers() -> None:
    assert load_settings({"NEUROTRIAGE_JOB_WORKERS": "0"}).job_workers == 0


def test_retention_keeps_everything_unless_a_period_is_set() -> None:
    assert (load_settings({}).retain_raw_days, load_settings({}).retain_failed_job_days) == (None, None)
    settings = load_settings({"NEUROTRIAGE_RETAIN_RAW_DAYS": "0", "NEUROTRIAGE_RETAIN_FAILED_JOB_DAYS": " 30 "})
    assert (settings.retain_raw_days, settings.retain_failed_job_days) == (0, 30)
    assert load_settings({"NEUROTRIAGE_RETAIN_RAW_DAYS": ""}).retain_raw_days is None
    with pytest.raises(UserError, match="NEUROTRIAGE_RETAIN_RAW_DAYS='-1': must be at least 0"):
        load_settings({"NEUROTRIAGE_RETAIN_RAW_DAYS": "-1"})
