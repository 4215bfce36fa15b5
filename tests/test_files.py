"""Checksums and atomic writes: right hashes, suffixes kept, nothing half-written or left behind."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from neurotriage import files
from neurotriage.files import (
    CHUNK,
    atomic_dir,
    atomic_path,
    move_into_place,
    owner_alive,
    owner_tag,
    partial_dir,
    partial_name,
    sha256_chunks,
    sha256_file,
    staged_entry,
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


def finished_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_every_temporary_name_carries_this_process_as_its_live_owner(tmp_path: Path) -> None:
    target = tmp_path / "case"
    target.mkdir()
    built = partial_dir(target)
    old = move_into_place(built, target)
    names = [partial_name(tmp_path / "case_seg.nii.gz"), partial_dir(target), old]
    staged = [staged_entry(path) for path in names]
    assert [s.target.name for s in staged] == ["case_seg.nii.gz", "case", "case"]
    assert [s.kind for s in staged] == ["partial", "partial", "old"]
    assert {(s.pid, f"{s.host}_{s.pid}_{s.start}") for s in staged} == {(os.getpid(), owner_tag())}
    assert all(owner_alive(s) for s in staged)
    assert staged_entry(tmp_path / ".case.1234-5678.partial") is None  # a name without an owner
    assert staged_entry(tmp_path / "case") is None


def test_a_dead_or_reused_pid_is_no_live_owner_but_another_host_may_be(tmp_path: Path) -> None:
    host, pid, start = owner_tag().rsplit("_", 2)
    dead = staged_entry(tmp_path / f".case.{host}_{finished_pid()}_{start}_abc.partial")
    reused = staged_entry(tmp_path / f".case.old-{host}_{pid}_{int(start) + 1}_0123abcd")
    elsewhere = staged_entry(tmp_path / f".case.other-host_{finished_pid()}_{start}_abc.partial")
    assert (owner_alive(dead), owner_alive(reused), owner_alive(elsewhere)) == (False, False, True)


def test_atomic_writes_flush_the_file_before_the_rename_and_the_folder_after(tmp_path: Path, monkeypatch) -> None:
    synced: list[tuple[str, bool]] = []
    target = tmp_path / "doc.json"

    def record(path) -> None:
        synced.append((Path(path).name, target.exists()))

    monkeypatch.setattr(files, "fsync_path", record)
    write_json_atomic(target, {"x": 1})
    assert synced[0][0].endswith(".partial.json") and synced[0][1] is False
    assert synced[1:] == [(tmp_path.name, True)]


def test_a_folder_is_flushed_whole_before_it_moves_into_place(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    monkeypatch.setattr(files, "fsync_path", lambda path: synced.append(Path(path).name))
    with atomic_dir(tmp_path / "case") as built:
        (built / "sub").mkdir()
        (built / "sub" / "a.txt").write_text("a")
        (built / "b.txt").write_text("b")
    assert synced == ["a.txt", "sub", "b.txt", built.name, tmp_path.name]
