"""The weights shipped inside the package: where they live, and the SHA-256 recorded beside them
that is checked every time they are loaded."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from neurotriage.errors import UserError
from neurotriage.files import sha256_file, write_text_atomic

SHA_SUFFIX = ".sha256"
DEFAULT_NAME = "default.pt"
SCRIPTED_SUFFIX = ".ts"  # a network saved as TorchScript (segmentation.scripted)
SCRIPTED_NAME = "default" + SCRIPTED_SUFFIX


def package_weights_dir() -> Path:
    """The folder the shipped weights live in (inside the installed package)."""
    return Path(str(resources.files("neurotriage") / "weights"))


def default_model_path() -> Path | None:
    """The checkpoint shipped inside the package (for fine-tuning and evaluation), if one is installed."""
    path = package_weights_dir() / DEFAULT_NAME
    return path if path.is_file() else None


def default_scripted_path() -> Path | None:
    """The shipped network as TorchScript (what inference loads by default), if one is installed."""
    path = package_weights_dir() / SCRIPTED_NAME
    return path if path.is_file() else None


def record_sha256(path: Path) -> Path:
    """Write `path`'s SHA-256 beside it (`<name>.sha256`, in `sha256sum` format)."""
    return write_text_atomic(_record(path), f"{sha256_file(path)}  {path.name}\n")


def verify_sha256(path: Path) -> str:
    """Refuse weights whose SHA-256 differs from the one recorded beside them; returns the SHA-256."""
    record = _record(path)
    if not record.is_file():
        raise UserError(f"{path}: no recorded checksum ({record.name} is missing); reinstall neurotriage")
    expected = record.read_text().split()[0]
    actual = sha256_file(path)
    if actual != expected:
        raise UserError(
            f"{path}: SHA-256 {actual[:12]}... does not match the recorded {expected[:12]}...; "
            "the file is damaged or was replaced: reinstall neurotriage"
        )
    return actual


def _record(path: Path) -> Path:
    return path.with_name(path.name + SHA_SUFFIX)
