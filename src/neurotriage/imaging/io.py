"""BraTS case discovery, loading with validation, and safe NIfTI writing.

Every problem with a user's file becomes a one-line `UserError` naming the file.
Orientation is carried as the NIfTI affine; nothing here reorders array axes.
"""

from __future__ import annotations

import math
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np

from neurotriage.errors import UserError
from neurotriage.files import atomic_path
from neurotriage.imaging.naming import SEQUENCE_TITLES, SEQUENCES, Naming, split_name, to_internal

AFFINE_TOLERANCE = 1e-3  # mm; headers written by different tools differ in float noise only
# radians: a tilt this small is float noise (it moves a voxel 0.1 mm at 10 cm from the origin)
OBLIQUE_TOLERANCE = 1e-3
# The most one volume may declare, in NIfTI or DICOM headers: checked before any voxel is read, so a
# small file whose header claims a huge grid (a gzip bomb) is refused without allocating anything.
MAX_VOXELS = 1024**3
MAX_BYTES = 2 * 1024**3
NIFTI2_HEADER_BYTES = 540


@dataclass(frozen=True)
class CaseFiles:
    """The files of one BraTS case on disk."""

    case_id: str
    folder: Path
    naming: Naming
    images: dict[str, Path]
    seg: Path | None = None


@dataclass
class Case:
    """One loaded case: four float32 sequences on one grid, optional internal-label seg."""

    files: CaseFiles
    affine: np.ndarray
    header: nib.Nifti1Header
    images: dict[str, np.ndarray]
    seg: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        """The BraTS case identifier."""
        return self.files.case_id

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxel grid shape."""
        return tuple(next(iter(self.images.values())).shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm, from the affine."""
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Orientation codes of the array axes, e.g. ('L', 'P', 'S') for BraTS."""
        return nib.aff2axcodes(self.affine)


@contextmanager
def _folder_access(folder: Path) -> Iterator[None]:
    """Turn a folder that cannot be looked into (no permission, I/O error) into a one-line UserError."""
    try:
        yield
    except PermissionError as exc:
        raise UserError(f"{exc.filename or folder}: permission denied") from None
    except OSError as exc:
        raise UserError(f"{exc.filename or folder}: cannot be read ({exc.strerror or exc})") from None


def _nifti_files(folder: Path) -> list[Path]:
    """Entries named like NIfTI files, whatever they are: reading one that is not a file says what it is."""
    with _folder_access(folder):
        return sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")))


def find_case(folder: Path | str) -> CaseFiles:
    """Identify the BraTS case in one folder; every sequence must be present."""
    folder = Path(folder)
    with _folder_access(folder):
        if not folder.is_dir():
            raise UserError(f"{folder}: not a folder (expected a BraTS case folder)")
    found: dict[str, tuple[Naming, str, Path]] = {}
    for path in _nifti_files(folder):
        parsed = split_name(path.name)
        if parsed is None:
            continue
        naming, case_id, key = parsed
        if key in found:
            other = found[key][2]
            raise UserError(f"{path}: second {key} file in the folder (also {other.name})")
        found[key] = (naming, case_id, path)
    if not found:
        raise UserError(f"{folder}: no BraTS NIfTI files found (expected <ID>_flair.nii.gz or <ID>-t2f.nii.gz ...)")
    naming, case_id, _ = next(iter(found.values()))
    for other_naming, other_id, path in found.values():
        if other_id != case_id or other_naming is not naming:
            raise UserError(f"{path}: case ID or naming differs from {case_id} ({naming.name}) in the same folder")
    for key in SEQUENCES:
        if key not in found:
            expected = naming.filename(case_id, key)
            raise UserError(f"{folder}: missing {SEQUENCE_TITLES[key]} sequence (expected {expected})")
    seg = found["seg"][2] if "seg" in found else None
    return CaseFiles(case_id, folder, naming, {k: found[k][2] for k in SEQUENCES}, seg)


def discover_cases(root: Path | str, failed: dict[str, str] | None = None) -> list[CaseFiles]:
    """Find cases under `root`: the folder itself if it is a case, else its sub-folders.

    With `failed`, a sub-folder that is not a valid case (or reuses a case ID) is recorded there by
    folder name, with the reason, and the others are still found; without it, it stops the search."""
    root = Path(root)
    with _folder_access(root):
        if not root.is_dir():
            raise UserError(f"{root}: not a folder")
    if _nifti_files(root):
        return [find_case(root)]
    cases: dict[str, CaseFiles] = {}
    with _folder_access(root):
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in subs:
        try:
            if not _nifti_files(sub):
                continue
            case = find_case(sub)
            if case.case_id in cases:
                raise UserError(f"{sub}: case ID {case.case_id} is already used by {cases[case.case_id].folder}")
        except UserError as exc:
            if failed is None:
                raise
            failed[sub.name] = str(exc)
            continue
        cases[case.case_id] = case
    if not cases and not failed:
        raise UserError(f"{root}: no BraTS cases found (empty folder or no NIfTI files)")
    return list(cases.values())


def check_readable_file(path: Path) -> None:
    """Refuse, naming it, all but a readable regular file; a FIFO is never opened (it would block)."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb"):
                return
    except FileNotFoundError:
        if path.is_symlink():
            raise UserError(f"{path}: dangling symbolic link (its target {os.readlink(path)} does not exist)") from None
        raise UserError(f"{path}: cannot be read (no such file)") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a special file"
    raise UserError(f"{path}: is {kind}, not a NIfTI file")


def check_declared_size(header: nib.Nifti1Header, name: Path | str, field: str | None = None) -> None:
    """Refuse a NIfTI whose header declares more voxels or bytes than one volume may hold."""
    shape = tuple(int(n) for n in header.get_data_shape())
    if any(n < 1 for n in shape):
        raise UserError(f"{name}: the header declares an empty grid {shape}", field)
    dtype = header.get_data_dtype()
    voxels = math.prod(shape)
    declared = f"{'x'.join(map(str, shape))} {dtype.name} ({voxels * dtype.itemsize / 1024**3:.1f} GB)"
    if voxels > MAX_VOXELS:
        raise UserError(f"{name}: the header declares {declared}, over 1024x1024x1024 voxels", field)
    if voxels * dtype.itemsize > MAX_BYTES:
        raise UserError(f"{name}: the header declares {declared}, over 2 GB of data", field)


def read_nifti_header(stream: BinaryIO, name: str) -> nib.Nifti1Header:
    """The NIfTI-1 or -2 header at the start of an uncompressed `stream`, read without its voxels."""
    raw = stream.read(NIFTI2_HEADER_BYTES)
    for klass, size in ((nib.Nifti1Header, 348), (nib.Nifti2Header, NIFTI2_HEADER_BYTES)):
        if len(raw) >= size and size in (int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big")):
            try:
                header = klass(raw[:size], check=False)
                header.get_data_dtype()
            except nib.spatialimages.HeaderDataError as exc:
                raise UserError(f"{name}: not a readable NIfTI header ({exc})") from None
            return header
    raise UserError(f"{name}: not a NIfTI file")


def read_nifti(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Open a NIfTI file, check its header's declared size, then read its voxels; any fault is a UserError."""
    check_readable_file(path)
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise UserError(f"{path}: not a NIfTI image")
        check_declared_size(img.header, path)
        data = np.asanyarray(img.dataobj)
    except UserError:
        raise
    except (EOFError, zlib.error) as exc:
        raise UserError(f"{path}: truncated or corrupt gzip data ({exc})") from None
    except nib.filebasedimages.ImageFileError:
        raise UserError(f"{path}: not a NIfTI file") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as NIfTI ({str(exc).splitlines()[0]})") from None
    return img, data


def check_volume(data: np.ndarray, path: Path, *, allow_empty: bool = False) -> None:
    """Reject non-3D, non-finite or (unless allowed) all-zero volumes."""
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UserError(f"{path}: expected a 3D volume, got {data.ndim}D with shape {tuple(data.shape)}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise UserError(f"{path}: {n_bad} voxels are NaN or infinite")
    if not allow_empty and not data.any():
        raise UserError(f"{path}: volume is all zero")


def check_affine(affine: np.ndarray, path: Path) -> None:
    """Refuse a degenerate affine (not finite, a zero-length or dependent voxel axis) or an oblique one:
    a BraTS case lies axis-aligned on the SRI24 grid, its axes a permutation of the world axes."""
    matrix = affine[:3, :3]
    if not np.isfinite(affine).all():
        raise UserError(f"{path}: degenerate affine in the header (NaN or infinite values)")
    zooms = np.sqrt((matrix**2).sum(axis=0))
    if zooms.min() <= AFFINE_TOLERANCE:
        raise UserError(f"{path}: degenerate affine in the header (a voxel size of {zooms.min():.3g} mm)")
    if abs(np.linalg.det(matrix / zooms)) <= AFFINE_TOLERANCE:
        raise UserError(f"{path}: degenerate affine in the header (voxel axes that are not independent)")
    tilt = float(nib.affines.obliquity(affine).max())
    if tilt > OBLIQUE_TOLERANCE:
        raise UserError(
            f"{path}: oblique orientation (voxel axes tilted {np.degrees(tilt):.2f}° from the world axes); "
            "a BraTS case must be axis-aligned on the SRI24 grid"
        )


def _squeeze3d(data: np.ndarray) -> np.ndarray:
    return data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data


def same_grid(a_shape, a_affine, b_shape, b_affine) -> bool:
    """True when two volumes share shape and affine (within float noise)."""
    return tuple(a_shape) == tuple(b_shape) and np.allclose(a_affine, b_affine, atol=AFFINE_TOLERANCE)


def load_case(source: Path | str | CaseFiles, *, with_seg: bool = True) -> Case:
    """Load and validate one case: four sequences (float32) on one grid, plus its seg if present."""
    files = source if isinstance(source, CaseFiles) else find_case(source)
    images: dict[str, np.ndarray] = {}
    ref: nib.Nifti1Image | None = None
    for key in SEQUENCES:
        path = files.images[key]
        img, data = read_nifti(path)
        check_affine(img.affine, path)
        check_volume(data, path)
        data = _squeeze3d(data)
        if ref is None:
            ref = img
        elif not same_grid(data.shape, img.affine, images[SEQUENCES[0]].shape, ref.affine):
            raise UserError(
                f"{path}: shape {data.shape} / affine differ from {files.images[SEQUENCES[0]].name} "
                f"(shape {images[SEQUENCES[0]].shape}); all sequences must share one grid "
                "(a raw study: run `neurotriage ingest` first)"
            )
        images[key] = np.asarray(data, dtype=np.float32)
    seg = None
    if with_seg and files.seg is not None:
        seg = load_seg(files.seg, files.naming, expect_shape=ref.shape[:3], expect_affine=ref.affine)
    return Case(files, ref.affine.copy(), ref.header.copy(), images, seg)


def load_seg(path: Path, naming: Naming, *, expect_shape=None, expect_affine=None) -> np.ndarray:
    """Load a label map in `naming`'s scheme and return it in internal labels (uint8)."""
    img, data = read_nifti(path)
    data = _squeeze3d(data)
    check_volume(data, path, allow_empty=True)
    if expect_shape is not None and not same_grid(data.shape, img.affine, expect_shape, expect_affine):
        raise UserError(f"{path}: segmentation grid {data.shape} / affine differ from the case's images")
    if np.issubdtype(data.dtype, np.floating) and not np.array_equal(data, np.round(data)):
        raise UserError(f"{path}: segmentation has non-integer labels")
    return to_internal(np.asarray(data), naming, str(path))


def write_nifti(
    data: np.ndarray, affine: np.ndarray, path: Path | str, header=None, scale: float | None = None
) -> Path:
    """Write a NIfTI atomically (temp file + rename), so a crash never leaves half a file; with `scale`, the
    stored values times `scale` are what readers get (the header's scl_slope).

    nibabel's gzip writer stores mtime 0, so the same array gives byte-identical files.
    """
    path = Path(path)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(data, affine, hdr)
    img.set_data_dtype(data.dtype)
    if scale is not None:
        img.header.set_slope_inter(scale, 0.0)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
