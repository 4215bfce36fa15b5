"""The two BraTS file-naming schemes and the conversion of their label values.

Files use the label values of their naming (imaging/labels.py): BraTS 2020 writes enhancing
as 4, BraTS 2023 as 3. Conversion to the internal labels happens once, at the edge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from neurotriage.errors import UserError
from neurotriage.imaging.labels import BACKGROUND, EDEMA, ENHANCING, ENHANCING_IN_FILE, NECROTIC_CORE

SEQUENCES = ("flair", "t1", "t1ce", "t2")
SEQUENCE_TITLES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}
# The names other tools give the sequences (MONAI bundles, nnU-Net datasets, the Medical Segmentation
# Decathlon), in lower-case letters and digits; both BraTS namings' suffixes are among them.
SEQUENCE_ALIASES = {
    "flair": ("flair", "t2f", "t2flair"),
    "t1": ("t1", "t1n", "t1w"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1wce", "t1post"),
    "t2": ("t2", "t2w"),
}


def sequence_from_name(name: str) -> str | None:
    """The sequence key ('flair'...) that another tool's channel name ('FLAIR', 'T1c', 't2w'...) means, or None."""
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return next((sequence for sequence, names in SEQUENCE_ALIASES.items() if key in names), None)


@dataclass(frozen=True)
class Naming:
    """One BraTS naming scheme: separator, per-sequence suffixes and the enhancing label."""

    name: str
    sep: str
    suffixes: dict[str, str]
    enhancing_label: int

    def filename(self, case_id: str, key: str, ext: str = ".nii.gz") -> str:
        """File name for a sequence key ('flair'...) or 'seg' of a case."""
        return f"{case_id}{self.sep}{self.suffixes.get(key, key)}{ext}"

    @property
    def allowed_labels(self) -> frozenset[int]:
        """The label values a segmentation file in this scheme may contain."""
        return frozenset({BACKGROUND, NECROTIC_CORE, EDEMA, self.enhancing_label})


BRATS2020 = Naming(
    "brats2020", "_", {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"}, ENHANCING_IN_FILE["brats2020"]
)
BRATS2023 = Naming(
    "brats2023", "-", {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}, ENHANCING_IN_FILE["brats2023"]
)
NAMINGS = {n.name: n for n in (BRATS2020, BRATS2023)}


def split_name(filename: str) -> tuple[Naming, str, str] | None:
    """Parse '<ID><sep><suffix>.nii[.gz]' into (naming, case id, key), or None if not BraTS-like."""
    stem = filename
    for ext in (".nii.gz", ".nii"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    else:
        return None
    for naming in (BRATS2023, BRATS2020):
        case_id, sep, suffix = stem.rpartition(naming.sep)
        if not sep or not case_id:
            continue
        for key, sfx in [*naming.suffixes.items(), ("seg", "seg")]:
            if suffix == sfx:
                return naming, case_id, key
    return None


def to_internal(labels: np.ndarray, naming: Naming, source: str) -> np.ndarray:
    """Map a file's labels to the internal 0-3 scheme; reject values outside the scheme."""
    values = set(np.unique(labels).tolist())
    bad = sorted(values - naming.allowed_labels)
    if bad:
        allowed = sorted(naming.allowed_labels)
        # An image passed as a label map has thousands of values: name a few and the count.
        many = len(bad) > 5
        shown = ", ".join(map(str, bad[:5])) + (f", ... ({len(bad)} values)" if many else "")
        hint = "; is this an image rather than a label map?" if many else ""
        raise UserError(f"{source}: segmentation labels [{shown}] are outside the {naming.name} scheme {allowed}{hint}")
    out = labels.astype(np.uint8)
    if naming.enhancing_label != ENHANCING:
        out[labels == naming.enhancing_label] = ENHANCING
    return out


def from_internal(labels: np.ndarray, naming: Naming) -> np.ndarray:
    """Map internal 0-3 labels back to a file scheme (enhancing 4 for BraTS 2020)."""
    out = labels.astype(np.uint8)
    if naming.enhancing_label != ENHANCING:
        out[labels == ENHANCING] = naming.enhancing_label
    return out


def naming_from_values(labels: np.ndarray) -> Naming:
    """Guess a label map's scheme from its values: 4 present means BraTS 2020, else 2023."""
    return BRATS2020 if bool((labels == BRATS2020.enhancing_label).any()) else BRATS2023
