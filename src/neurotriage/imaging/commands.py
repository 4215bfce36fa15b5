"""CLI subcommands for imaging: `info` and `synth`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neurotriage.imaging.synth_versions import DEFAULT_GENERATOR, GENERATORS

AXIS_WORDS = {"L": "left", "R": "right", "A": "anterior", "P": "posterior", "S": "superior", "I": "inferior"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add `info` and `synth`."""
    p = sub.add_parser(
        "info", help="describe a BraTS case (or every case in a folder): sequences, grid, voxel size, orientation"
    )
    p.add_argument("case_dir", type=Path, help="a case folder, or a folder of case folders")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(handler=_info)

    p = sub.add_parser("synth", help="write a synthetic BraTS-layout cohort (with truth.json per case)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n", type=int, default=4, help="number of cases (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    p.add_argument("--naming", choices=("brats2020", "brats2023"), default="brats2020")
    p.add_argument("--preview", action="store_true", help="also write a PNG montage per case")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1; the files are the same)")
    add_generator_options(p)
    p.add_argument(
        "--raw",
        action="store_true",
        help="write each case as a scanner gives it (skull, pose, thick slices, converter NIfTI series) "
        "in OUT/<ID>/, with the BraTS-space case and its truth in OUT/truth/<ID>/",
    )
    p.add_argument(
        "--dicom",
        action="store_true",
        help="with the raw studies as DICOM (implies --raw): OUT/<ID>/dicom/<SeriesNumber>/*.dcm, one file per slice",
    )
    p.set_defaults(handler=_synth)


def add_generator_options(p: argparse.ArgumentParser) -> None:
    """--generator and --random-contrast, shared by `synth` and `train-default`."""
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        default=DEFAULT_GENERATOR,
        help=f"synthetic cohort version (default {DEFAULT_GENERATOR}: the cohorts of default models v5 and v8; "
        "v9: gradual oedema edge labelled where visible, oedema rims around non-enhancing cores, thick slices)",
    )
    p.add_argument(
        "--random-contrast",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="with --generator v9: this share of the cases (0-1) gets SynthSeg-style random contrast (default 0)",
    )


def case_info(case_dir) -> dict:
    """Describe a case (folder or CaseFiles): files, grid, spacing, orientation and label volumes."""
    import numpy as np

    from neurotriage.imaging.io import load_case
    from neurotriage.imaging.labels import EDEMA, ENHANCING, LABEL_NAMES, NECROTIC_CORE

    case = load_case(case_dir)
    info = {
        "case_id": case.case_id,
        "naming": case.files.naming.name,
        "sequences": {k: str(p.name) for k, p in case.files.images.items()},
        "segmentation": case.files.seg.name if case.files.seg else None,
        "shape": list(case.shape),
        "voxel_size_mm": [round(s, 4) for s in case.spacing],
        "orientation": "".join(case.axcodes),
        "axes": [f"axis {i} increases towards the patient's {AXIS_WORDS[c]}" for i, c in enumerate(case.axcodes)],
        "intensity_range": {k: [float(v.min()), float(v.max())] for k, v in case.images.items()},
    }
    if case.seg is not None:
        voxel_ml = float(np.prod(case.spacing)) / 1000.0
        counts = np.bincount(case.seg.ravel(), minlength=len(LABEL_NAMES))
        info["label_volumes_ml"] = {
            name: round(float(counts[label]) * voxel_ml, 2)
            for label, name in ((NECROTIC_CORE, "necrosis_core"), (EDEMA, "edema"), (ENHANCING, "enhancing"))
        }
    return info


def _info(args: argparse.Namespace) -> int:
    from neurotriage.imaging.io import discover_cases

    cases = discover_cases(args.case_dir)
    infos = [case_info(c) for c in cases]
    if args.json:
        print(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2))
    elif len(infos) == 1:
        _print_case(infos[0])
    else:
        _print_cases(infos)
    return 0


def _print_cases(infos: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(infos)} cases")
    for col in ("case", "naming", "shape", "voxel mm", "orientation", "seg"):
        table.add_column(col)
    for i in infos:
        shape = "x".join(map(str, i["shape"]))
        spacing = "x".join(f"{s:g}" for s in i["voxel_size_mm"])
        table.add_row(i["case_id"], i["naming"], shape, spacing, i["orientation"], "yes" if i["segmentation"] else "no")
    Console().print(table)


def _print_case(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{info['case_id']} ({info['naming']})", show_header=False)
    for key, value in info.items():
        if key in ("case_id", "naming"):
            continue
        if isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list) and value and isinstance(value[0], str):
            value = "\n".join(value)
        table.add_row(key, str(value))
    Console().print(table)


def _synth(args: argparse.Namespace) -> int:
    from neurotriage.errors import UserError
    from neurotriage.imaging.naming import NAMINGS
    from neurotriage.imaging.synth import write_cohort

    if args.n < 1:
        raise UserError(f"--n: must be at least 1, got {args.n}")
    if args.workers < 1:
        raise UserError(f"--workers: must be at least 1, got {args.workers}")
    if args.raw or args.dicom:
        from neurotriage.imaging.synth_raw import TRUTH_FOLDER, write_raw_cohort

        if args.preview:
            raise UserError("--preview: not available with --raw or --dicom")
        if args.generator != DEFAULT_GENERATOR or args.random_contrast:
            raise UserError("--generator, --random-contrast: not available with --raw or --dicom")
        naming = NAMINGS[args.naming]
        truths = write_raw_cohort(args.out_dir, args.n, args.seed, naming, workers=args.workers, dicom=args.dicom)
        print_cohort_summary(truths, args.out_dir)
        print(f"Raw studies in {args.out_dir}/<ID>/; the BraTS-space truth in {args.out_dir / TRUTH_FOLDER}/<ID>/.")
        return 0
    truths = write_cohort(
        args.out_dir,
        args.n,
        args.seed,
        NAMINGS[args.naming],
        preview=args.preview,
        workers=args.workers,
        generator=args.generator,
        random_contrast=args.random_contrast,
    )
    print_cohort_summary(truths, args.out_dir)
    return 0


def print_cohort_summary(truths: list[dict], out_dir: Path) -> None:
    """Print one row per synthetic case and a totals line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Synthetic cohort in {out_dir}")
    for col in ("case", "kind", "side", "lobe", "WT ml", "ET ml"):
        table.add_column(col, no_wrap=True)
    for t in truths:
        vol = t["volumes_ml"]
        lobe = (t["lobe"] or "-").removesuffix("_lobe")
        wt, et = f"{vol['whole_tumour']:.1f}", f"{vol['enhancing']:.1f}"
        table.add_row(t["case_id"], t["kind"], t["hemisphere"] or "-", lobe, wt, et)
    console = Console()
    console.print(table)
    kinds = sorted({t["kind"] for t in truths})
    counts = ", ".join(f"{sum(t['kind'] == k for t in truths)} {k}" for k in kinds)
    console.print(f"{len(truths)} cases written ({counts}).")
