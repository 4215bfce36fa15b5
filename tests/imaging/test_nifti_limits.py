"""A NIfTI whose header declares a huge grid is refused from its header, before any voxel is read."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurotriage.errors import UserError
from neurotriage.imaging.io import read_nifti
from neurotriage.imaging.naming import SEQUENCES
from neurotriage.ingest.series import read_nifti_series

BOMB_SHAPE = (2048, 2048, 1024)  # float32: 16 GiB declared
BOMB_ZEROS = 8 * 1024**3  # what the gzip stream holds: ~8 MB compressed, far past 1 GB if it were read
_BLOCK = 1 << 24


def write_bomb_gz(path: Path) -> Path:
    """A .nii.gz whose header declares BOMB_SHAPE float32, followed by BOMB_ZEROS zero bytes, built without
    allocating them: one deflate block of zeros after a full flush is repeated (each starts from a reset state)."""
    header = nib.Nifti1Header()
    header.set_data_shape(BOMB_SHAPE)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    head = header.binaryblock + bytes(4)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(_BLOCK)) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    zeros = bytes(_BLOCK)
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + start)
        for _ in range(BOMB_ZEROS // _BLOCK):
            out.write(block)
            crc = zlib.crc32(zeros, crc)
        out.write(deflate.flush() + struct.pack("<II", crc, (len(head) + BOMB_ZEROS) & 0xFFFFFFFF))
    return path


def write_bomb_case(folder: Path) -> Path:
    """A BraTS case folder whose FLAIR is the bomb and whose other sequences are tiny; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in SEQUENCES:
        if key == "flair":
            write_bomb_gz(folder / "BOMB_flair.nii.gz")
        else:
            nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), str(folder / f"BOMB_{key}.nii.gz"))
    return folder


def write_bomb_zip(path: Path) -> Path:
    """The bomb case zipped (stored: its members are gzip already), ~8 MB."""
    case = write_bomb_case(path.parent / "BOMB")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(case.iterdir()):
            archive.write(file, f"BOMB/{file.name}")
    return path


def test_the_bomb_is_a_valid_gzip_of_its_declared_header(tmp_path):
    bomb = write_bomb_gz(tmp_path / "b.nii.gz")
    assert bomb.stat().st_size < 10 * 1024**2
    assert nib.load(str(bomb)).shape == BOMB_SHAPE  # the header alone: nibabel reads no voxels here
    with open(bomb, "rb") as raw:
        inflate = zlib.decompressobj(31)
        assert inflate.decompress(raw.read(1 << 20), 1 << 20)[352:] == bytes((1 << 20) - 352)


def test_read_nifti_refuses_a_declared_size_over_the_caps_before_reading(tmp_path):
    bomb = write_bomb_gz(tmp_path / "b.nii.gz")
    with pytest.raises(UserError, match=r"b\.nii\.gz: the header declares 2048x2048x1024 float32 \(16\.0 GB\)"):
        read_nifti(bomb)


def test_a_volume_within_the_voxel_cap_but_over_2_gb_is_refused(tmp_path):
    path = tmp_path / "wide.nii"
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 512))  # 512 Mi voxels of float64: 4 GiB
    header.set_data_dtype(np.float64)
    with open(path, "wb") as out:
        out.write(header.binaryblock + bytes(4))
    with pytest.raises(UserError, match="over 2 GB of data"):
        read_nifti(path)
    with pytest.raises(UserError, match="over 2 GB of data") as refused:
        read_nifti_series(path)
    assert refused.value.field == "input"


# Runs the CLI as the only child of a fresh interpreter, so RUSAGE_CHILDREN is that one command's peak RSS.
_MEASURE = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "neurotriage", "info", sys.argv[1]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_cli_info_refuses_the_bomb_in_one_line_under_1_gb(tmp_path):
    case = write_bomb_case(tmp_path / "BOMB")
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(case)], capture_output=True, text=True, timeout=120)
    code, peak_kib = (int(n) for n in done.stdout.split())
    lines = done.stderr.strip().splitlines()
    assert code == 2, done.stderr
    assert len(lines) == 1 and "BOMB_flair.nii.gz: the header declares 2048x2048x1024" in lines[0], lines
    assert peak_kib < 1024**2, f"peak RSS {peak_kib / 1024:.0f} MiB"
    print(f"neurotriage info on the bomb: peak RSS {peak_kib / 1024:.0f} MiB")
