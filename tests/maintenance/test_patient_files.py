"""Which paths are neurotriage's to remove: deep inside its own folders, never a folder every study shares."""

from __future__ import annotations

from pathlib import Path

from neurotriage.maintenance.patient_files import outermost, own_folders, remove_paths, tree_stats


def test_only_paths_deep_in_its_own_folders_and_no_shared_folder(home: Path, tmp_path: Path) -> None:
    own = own_folders()
    for path in ("cases/BraTS-001", "reports/patient-3", "web/jobs/7", "dicom/inbox/1.2.3", "dicom/outbox/PACS/item"):
        assert own.hold(home / path), path
    for path in ("", "cases", "reports", "dicom", "dicom/inbox", "dicom/pulled", "dicom/outbox", "web/jobs",
                 "web/staging", "neurotriage.db"):  # fmt: skip
        assert not own.hold(home / path), path
    assert not own.hold(tmp_path / "elsewhere" / "case") and not own.hold(home / "cases" / ".." / "..")
    data = tmp_path / "data"
    assert own_folders(data).hold(data / "jobs" / "7") and not own_folders(data).hold(data / "jobs")


def test_removal_counts_files_and_bytes_and_keeps_what_links_point_at(tmp_path: Path) -> None:
    folder, target = tmp_path / "case", tmp_path / "elsewhere.txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("12345")
    (folder / "sub" / "b.txt").write_text("123")
    target.write_text("not ours")
    (folder / "sub" / "link").symlink_to(target)
    assert outermost([folder / "sub", folder, folder / "a.txt"]) == [folder.resolve()]
    files, size = tree_stats([folder])
    ticks = []
    assert remove_paths([folder, tmp_path / "gone"], lambda: ticks.append(1)) == (files, size) and files == 3
    assert len(ticks) == 3 and not folder.exists() and target.read_text() == "not ours"
