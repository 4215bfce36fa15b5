"""The check every export passes before it is moved into place: no file in it, and no file name, holds
a name, MRN, birth date or city of a patient it exports.

Text is compared folded: case, accents and punctuation do not matter ('ZOE_ANGSTROM' and 'Ångström^Zoë'
both match 'Zoë Ångström'), and an identifier must appear as whole words, so that a short MRN is not
found inside a SHA-256 digest or a pseudonym. A name is matched whole: as written, reversed, or
with its first or last word moved to the other end, each space kept or left out ('OHara_John'). Birth
dates are matched as ISO, DICOM (YYYYMMDD), dd/mm/yyyy and mm/dd/yyyy.
A NIfTI file is checked outside its voxels (its header, extensions, trailing bytes and the gzip header's
fields): among millions of voxel bytes any short string turns up by chance.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from neurotriage.export.nifti import open_nifti, voxel_span
from neurotriage.export.plan import PatientRecord
from neurotriage.folding import fold as fold_name
from neurotriage.imaging.io import read_nifti_header

DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y")
# Letters that Unicode does not decompose into a base letter and an accent.
GZIP_HEAD_BYTES = 1 << 16
FEXTRA, FNAME, FCOMMENT = 4, 8, 16


@dataclass(frozen=True)
class Identifier:
    """One folded form of an identifier, and what kind of identifier it is."""

    kind: str
    words: str


@dataclass(frozen=True)
class Hit:
    """An identifier found in the export: the file (relative to the export) and the identifier's kind."""

    path: str
    kind: str


def fold(text: str) -> str:
    """Folded (neurotriage.folding) with punctuation as spaces: 'Zoë ÅNGSTRÖM^x-1' -> 'zoe angstrom x 1'."""
    return re.sub(r"[\W_]+", " ", fold_name(text)).strip()


def _joinings(words: list[str]) -> Iterator[str]:
    """The words with each gap between them kept or closed: 'o hara john', 'ohara john' ... 'oharajohn'."""
    for gaps in itertools.product((" ", ""), repeat=len(words) - 1):
        yield words[0] + "".join(gap + word for gap, word in zip(gaps, words[1:], strict=True))


def _name_forms(name: str) -> set[str]:
    words = fold(name).split()
    if not words:
        return set()
    # As written, reversed, and with the first or the last word moved to the other end (family name first).
    orders = (words, words[::-1], words[1:] + words[:1], words[-1:] + words[:-1])
    return {form for order in orders for form in _joinings(order)}


def identifiers(patient: PatientRecord) -> list[Identifier]:
    """The folded forms of the patient's name, MRN, birth date and city."""
    forms = [("name", form) for form in _name_forms(patient.name)]
    if patient.mrn:
        forms.append(("MRN", fold(patient.mrn)))
    if patient.birth_date:
        forms += [("birth date", fold(patient.birth_date.strftime(f))) for f in DATE_FORMATS]
    if patient.city:
        forms.append(("city", fold(patient.city)))
    return [Identifier(kind, words) for kind, words in forms if words]


def found_in(data: bytes | str, wanted: Iterable[Identifier]) -> str | None:
    """The kind of the first identifier in `data` (bytes read as UTF-8 and as Latin-1), None when none is."""
    if isinstance(data, str):
        texts = [data]
    else:
        texts = [data.decode("utf-8", errors="replace")] + ([data.decode("latin-1")] if not data.isascii() else [])
    folded = [f" {fold(text)} " for text in texts]
    for identifier in wanted:
        if any(f" {identifier.words} " in text for text in folded):
            return identifier.kind
    return None


def gzip_fields(head: bytes) -> bytes:
    """The optional fields of a gzip header (extra data, original file name, comment)."""
    if len(head) < 10 or head[:2] != b"\x1f\x8b":
        return b""
    flags, pos, fields = head[3], 10, []
    if flags & FEXTRA:
        size = int.from_bytes(head[pos : pos + 2], "little")
        fields.append(head[pos + 2 : pos + 2 + size])
        pos += 2 + size
    for flag in (FNAME, FCOMMENT):
        if flags & flag:
            end = head.find(b"\0", pos)
            end = len(head) if end < 0 else end
            fields.append(head[pos:end])
            pos = end + 1
    return b"\n".join(fields)


def _nifti_text(path: Path) -> Iterator[bytes]:
    """A NIfTI file's bytes outside its voxels."""
    with open_nifti(path) as stream:
        header = read_nifti_header(stream, str(path))
        offset, size = voxel_span(header)
        stream.seek(0)
        yield stream.read(offset)
        stream.seek(offset + size)
        yield stream.read()


def text_parts(path: Path) -> Iterator[bytes]:
    """The parts of a file that can hold text: all of it, or for a NIfTI file all but its voxels."""
    if path.name.endswith(".nii.gz"):
        with open(path, "rb") as f:
            yield gzip_fields(f.read(GZIP_HEAD_BYTES))
    if path.name.endswith((".nii", ".nii.gz")):
        yield from _nifti_text(path)
    else:
        yield path.read_bytes()


def find_identifiers(root: Path, patients: Iterable[PatientRecord]) -> Hit | None:
    """The first file under `root` whose name or content holds an identifier of one of `patients`."""
    wanted = [identifier for patient in patients for identifier in identifiers(patient)]
    for path in sorted(p for p in root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        kind = found_in(relative, wanted)
        if kind is None and path.is_file():
            kind = next((k for part in text_parts(path) if (k := found_in(part, wanted))), None)
        if kind is not None:
            return Hit(relative, kind)
    return None
