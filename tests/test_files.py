"""Checksums and atomic writes: right hashes, suffixes kept, nothing half-written or left behind."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from neurotriage.files import (
    CHUNK,
    atomic_dir,
    atomic_path,
    partial_name,
    sha256_chunks,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)


class Boom(Exception):
    pass


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * (2 * CHUNK // 256) + b"tail"
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_chunks_is_the_hash_of_the_concatenation() -> None:
    assert sha256_chunks([b"ab", b"", b"cd"]) == hashlib.sha256(b"abcd").hexdigest()
    assert sha256_chunks([]) == hashlib.sha256(b"").hexdigest()


def test_partial_name_is_a_hidden_sibling_keeping_every_suffix(tmp_path: Path) -> None:
    tmp = partial_name(tmp_path / "case_seg.nii.gz")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".case_seg.")
    assert tmp.name.endswith(".partial.nii.gz")


def test_writes_create_parents_and_hold_the_content(tmp_path: Path) -> None:
    text = tmp_path / "a" / "note.txt"
    write_text_atomic(text, "héllo\n")
    assert text.read_text(encoding="utf-8") == "héllo\n"
    doc = write_json_atomic(tmp_path / "b" / "doc.json", {"x": [1, 2]})
    assert json.loads(doc.read_text()) == {"x": [1, 2]}
    assert doc.read_text().endswith("\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "doc.json", "note.txt"]


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    with pytest.raises(Boom), atomic_path(path) as tmp:
        assert tmp.suffix == ".json"
        tmp.write_text("half")
        raise Boom
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_dir_replaces_the_folder_whole(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "stale.txt").write_text("old")
    with atomic_dir(folder) as built:
        assert built.parent == tmp_path and built.name.startswith(".case.")
        (built / "new.txt").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["case"]


def test_failed_atomic_dir_leaves_the_old_folder_and_no_temp_folder(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "kept.txt").write_text("old")
    with pytest.raises(Boom), atomic_dir(folder) as built:
        (built / "half.txt").write_text("half")
        raise Boom
    assert [p.name for p in folder.iterdir()] == ["kept.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["case"]


def test_atomic_dir_creates_a_missing_folder(tmp_path: Path) -> None:
    with atomic_dir(tmp_path / "out" / "case") as built:
        (built / "a.txt").write_text("a")
    assert (tmp_path / "out" / "case" / "a.txt").read_text() == "a"
