"""NIfTI files rewritten with nothing but the image: the header's text fields emptied, header
extensions (which may carry whole DICOM headers) left out, the voxels and the affine kept byte for byte.

The result is gzip-compressed with no file name and no time stamp in the gzip header.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import nibabel as nib

from neurotriage.errors import UserError
from neurotriage.files import CHUNK
from neurotriage.imaging.io import check_declared_size, check_readable_file, read_nifti_header

# Free-text fields of the NIfTI-1 and -2 headers (db_name and data_type are NIfTI-1's old Analyze ones).
TEXT_FIELDS = ("descrip", "aux_file", "db_name", "intent_name", "data_type")


def open_nifti(path: Path) -> BinaryIO:
    """The file's uncompressed bytes as a stream."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115


def voxel_span(header: nib.Nifti1Header) -> tuple[int, int]:
    """Where the voxels start in the uncompressed file and how many bytes they take."""
    count = math.prod(int(n) for n in header.get_data_shape())
    return int(header["vox_offset"]), count * header.get_data_dtype().itemsize


def scrubbed_header(header: nib.Nifti1Header) -> bytes:
    """The header with its text fields emptied, followed by the flag that says no extension follows.

    `header` comes from `read_nifti_header`, which never reads extensions, so none is written."""
    clean = header.copy()
    for name in TEXT_FIELDS:
        if name in clean:
            clean[name] = b""
    clean["vox_offset"] = 0  # nibabel then puts the voxels right after the header and the flag
    out = io.BytesIO()
    clean.write_to(out)
    return out.getvalue()


def _copy(stream: BinaryIO, out: BinaryIO, size: int) -> int:
    """Copy `size` bytes (fewer when the stream ends first); returns how many were copied."""
    left = size
    while left:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)
    return size - left


def write_scrubbed(source: Path, target: Path) -> None:
    """Write `source` to `target` (.nii.gz) with a scrubbed header and the same voxels."""
    check_readable_file(source)
    try:
        with open_nifti(source) as stream, open(target, "wb") as raw:
            header = read_nifti_header(stream, str(source))
            check_declared_size(header, source)
            offset, size = voxel_span(header)
            stream.seek(offset)
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as out:
                out.write(scrubbed_header(header))
                copied = _copy(stream, out, size)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{source}: truncated or corrupt gzip data ({exc})") from None
    if copied != size:
        raise UserError(f"{source}: truncated ({copied} of {size} bytes of voxels)")
