"""`neurotriage prepare`: a BraTS folder -> cached compressed arrays, one file per case, in parallel.

Each case is written as `<ID>.npz` (float16 image, uint8 seg, JSON meta) by temp file + rename,
so a finished file is always complete and a re-run skips it. `dataset.json` lists what is there.
A case that cannot be read is reported and skipped; it never aborts the run.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurotriage.errors import UserError
from neurotriage.files import atomic_path, write_json_atomic
from neurotriage.imaging.io import Case, CaseFiles, discover_cases, load_case
from neurotriage.parallel import run_jobs
from neurotriage.segmentation.preprocess import Recipe, prepare_training

MANIFEST = "dataset.json"
FORMAT = "neurotriage-prepared"
VERSION = 1
# Level 1 deflate: the z-scored brain is noise-like and barely compresses further at higher
# levels, while the zero background (about half the crop) shrinks at any level.
ZIP_LEVEL = 1


def grid_of(case: Case) -> dict:
    """The grid a case lives on: shape, voxel size (mm) and orientation codes."""
    return {
        "shape": list(case.shape),
        "spacing": [round(s, 6) for s in case.spacing],
        "axcodes": list(case.axcodes),
    }


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays and a JSON meta entry into one .npz (deflate level 1), atomically."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
        for name, array in {**arrays, "meta": np.array(json.dumps(meta))}.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)


def read_meta(path: Path) -> dict:
    """The JSON meta of a prepared case file (reads only that entry)."""
    with np.load(path) as npz:
        return json.loads(npz["meta"].item())


@dataclass
class PrepareReport:
    """What a `prepare` run did, case by case."""

    out_dir: Path
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished by an earlier run
    excluded: dict[str, str] = field(default_factory=dict)  # left out by the recipe's rule
    failed: dict[str, str] = field(default_factory=dict)  # could not be read: reported, not fatal

    def summary(self) -> str:
        """One line: counts of each outcome."""
        return (
            f"{len(self.prepared)} prepared, {len(self.skipped)} already done, "
            f"{len(self.excluded)} excluded by the recipe, {len(self.failed)} failed -> {self.out_dir}"
        )


def prepare_case(files: CaseFiles, out_dir: Path, recipe: Recipe) -> tuple[str, str, str]:
    """Prepare one case; returns (case ID, outcome, detail) with outcome prepared/excluded/failed."""
    try:
        if files.seg is None:
            return files.case_id, "failed", f"{files.folder}: no segmentation file; training needs one"
        case = load_case(files)
        prepared = prepare_training(case, recipe)
    except Exception as exc:  # noqa: BLE001 - any fault in one case's files must not stop the others
        return files.case_id, "failed", str(exc).splitlines()[0] or type(exc).__name__
    fraction = prepared.tumour_fraction
    if fraction < recipe.min_tumour_fraction:
        return files.case_id, "excluded", f"tumour is {fraction:.2%} of the crop (< {recipe.min_tumour_fraction:.0%})"
    meta = {
        "case_id": case.case_id,
        "recipe": recipe.name,
        "channels": list(recipe.channels),
        "box": [list(b) for b in prepared.box],
        "grid": grid_of(case),
        "naming": case.files.naming.name,
        "tumour_fraction": round(fraction, 6),
    }
    arrays = {"image": prepared.image.astype(np.float16), "seg": prepared.seg}
    save_arrays(out_dir / f"{case.case_id}.npz", arrays, meta)
    return case.case_id, "prepared", ""


def _load_manifest(out_dir: Path, recipe: Recipe) -> dict:
    path = out_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not valid JSON; remove the folder or choose another OUT_DIR") from None
    if manifest.get("recipe", {}).get("name") != recipe.name:
        raise UserError(
            f"{out_dir}: already holds a '{manifest.get('recipe', {}).get('name')}' preparation; "
            f"choose another OUT_DIR for the '{recipe.name}' recipe"
        )
    return manifest


def write_manifest(out_dir: Path, recipe: Recipe, excluded: dict[str, str]) -> dict:
    """Rebuild dataset.json from the case files present (atomic write) and return it."""
    cases = {}
    for path in sorted(out_dir.glob("*.npz")):
        meta = read_meta(path)
        cases[meta["case_id"]] = {"file": path.name, **{k: meta[k] for k in ("grid", "box", "tumour_fraction")}}
    manifest = {"format": FORMAT, "version": VERSION, "recipe": recipe.to_dict(), "cases": cases, "excluded": excluded}
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def prepare_dataset(
    src: Path, out_dir: Path, recipe: Recipe, *, workers: int | None = None, progress: bool = True
) -> PrepareReport:
    """Prepare every case under `src` into `out_dir`, skipping finished ones, in `workers` processes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(out_dir, recipe)
    failed: dict[str, str] = {}
    cases = discover_cases(src, failed)
    report = PrepareReport(out_dir, failed=failed)
    earlier_excluded = manifest.get("excluded", {})
    todo = []
    for files in cases:
        if (out_dir / f"{files.case_id}.npz").exists():
            report.skipped.append(files.case_id)
        elif files.case_id in earlier_excluded:
            report.excluded[files.case_id] = earlier_excluded[files.case_id]
        else:
            todo.append(files)
    workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    jobs = [(files, out_dir, recipe) for files in todo]
    for case_id, outcome, detail in run_jobs(prepare_case, jobs, workers, "prepare", progress):
        if outcome == "prepared":
            report.prepared.append(case_id)
        elif outcome == "excluded":
            report.excluded[case_id] = detail
        else:
            report.failed[case_id] = detail
    write_manifest(out_dir, recipe, report.excluded)
    return report
