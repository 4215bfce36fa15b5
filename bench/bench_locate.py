"""locate() timing (warm in-process, cold CLI) beside vasari-auto's get_vasari_features on the same masks.

vasari-auto's own module needs antspyx, pandas, seaborn and scikit-image. They cannot join the
project venv (antspyx would downgrade numpy and scipy), so vasari-auto runs in the Python named
by NEUROTRIAGE_VASARI_PYTHON (a separate venv holding vasari-auto and those packages); without
it the comparison is reported as unavailable and only locate() is timed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from neurotriage.anatomy.atlas import atlas
from neurotriage.anatomy.locate import locate_file
from neurotriage.anatomy.vasari import F1_CODES
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.synth import generate_case

SEEDS = (11, 12, 13, 14)
REPEATS = 3
VASARI_SIDES = {1: "right", 2: "bilateral", 3: "left"}  # vasari-auto's F2 codes
# Runs in the vasari-auto interpreter; times the call only, not the imports.
VASARI_SCRIPT = """
import json, sys, time
from vasari_auto.vasari_auto import get_vasari_features
start = time.perf_counter()
row = get_vasari_features(sys.argv[1], template_space="sri24").iloc[0]
seconds = time.perf_counter() - start
features = {"F1": int(row["F1 Tumour Location"]), "F2": int(row["F2 Side of Tumour Epicenter"])}
print(json.dumps({"seconds": seconds, **features}))
"""


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def _write_cases(folder: Path) -> list[tuple[Path, dict]]:
    cases = []
    for seed in tqdm(SEEDS, desc="synthetic masks", file=sys.stderr):
        case = generate_case(seed, f"bench-{seed}", kind="enhancing")
        path = write_nifti(case.seg, case.affine, folder / f"bench-{seed}-seg.nii.gz")  # internal = BraTS 2023
        cases.append((path, case.truth))
    return cases


def _cold_cli(path: Path) -> float:
    cmd = [sys.executable, "-m", "neurotriage.cli", "locate", str(path)]
    return _timed(subprocess.run, cmd, check=True, capture_output=True)[0]


def _vasari(path: Path) -> dict:
    """vasari-auto's time and side on the mask, or why it cannot run here."""
    python = os.environ.get("NEUROTRIAGE_VASARI_PYTHON", sys.executable)
    done = subprocess.run([python, "-c", VASARI_SCRIPT, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"vasari_auto": f"unavailable in {python} ({last}); set NEUROTRIAGE_VASARI_PYTHON"}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    lobe = {code: name for name, code in F1_CODES.items()}[out["F1"]]
    return {"vasari_auto_s": round(out["seconds"], 2), "vasari_auto": f"{VASARI_SIDES[out['F2']]} {lobe}"}


def run() -> dict:
    """Time locate() and, where it can run, vasari-auto on a few synthetic BraTS masks."""
    atlas()  # the one-time atlas build is not what this measures
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, truth in tqdm(_write_cases(Path(tmp)), desc="locate vs vasari-auto", file=sys.stderr):
            warm = [_timed(locate_file, path) for _ in range(REPEATS)]
            result = warm[-1][1]
            row = {
                "truth": f"{truth['hemisphere']} {truth['lobe']}",
                "locate": f"{result.hemisphere} {result.primary_region}",
                "locate_warm_s": round(statistics.median(t for t, _ in warm), 3),
                "cli_cold_s": round(statistics.median(_cold_cli(path) for _ in range(REPEATS)), 2),
            }
            rows.append(row | _vasari(path))
    summary = {
        "cases": len(rows),
        "grid": "240x240x155 SRI24 BraTS grid, synthetic enhancing gliomas",
        "locate_warm_s_max": max(r["locate_warm_s"] for r in rows),
        "cli_cold_s_max": max(r["cli_cold_s"] for r in rows),
        "locate_correct": sum(r["truth"] == r["locate"] for r in rows),
    }
    if "vasari_auto_s" in rows[0]:
        summary["vasari_auto_s_median"] = statistics.median(r["vasari_auto_s"] for r in rows)
        summary["vasari_auto_side_correct"] = sum(r["truth"].split()[0] == r["vasari_auto"].split()[0] for r in rows)
        summary["vasari_auto_lobe_correct"] = sum(r["truth"].split()[1] == r["vasari_auto"].split()[1] for r in rows)
    return summary | {"rows": rows}
