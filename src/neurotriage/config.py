"""Settings from the environment: where data, caches and the database live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `load_settings()`."""

    home: Path
    cache_dir: Path
    database_url: str


def load_settings() -> Settings:
    """Read settings from NEUROTRIAGE_* environment variables, with embedded defaults."""
    home = Path(os.environ.get("NEUROTRIAGE_HOME", Path.home() / ".local" / "share" / "neurotriage"))
    cache = Path(os.environ.get("NEUROTRIAGE_CACHE", Path.home() / ".cache" / "neurotriage"))
    url = os.environ.get("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{home / 'neurotriage.db'}")
    return Settings(home=home, cache_dir=cache, database_url=url)
