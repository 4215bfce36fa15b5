"""Checksums and identifiers that make a finding traceable to its software, model and inputs."""

from __future__ import annotations

from pathlib import Path

from neurotriage import __version__
from neurotriage.files import sha256_file
from neurotriage.imaging.io import CaseFiles


def provenance(files: CaseFiles, model_path: Path, model_id: str, postprocess: dict, tta: bool) -> dict:
    """Software version, model id with its SHA-256, flip averaging, post-processing, and every input's SHA-256."""
    inputs = [{"path": str(p.resolve()), "sha256": sha256_file(p)} for p in files.images.values()]
    return {
        "software_version": __version__,
        "model_id": model_id,
        "model_sha256": sha256_file(model_path),
        "tta": tta,
        "postprocess": postprocess,
        "inputs": inputs,
    }
