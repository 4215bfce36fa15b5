"""CLI subcommand `neurotriage ingest INPUT --out CASE_DIR`: a raw study to a BraTS case."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurotriage import NOTICE

SEQUENCE_FLAGS = ("flair", "t1", "t1ce", "t2")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to the top-level parser."""
    p = sub.add_parser(
        "ingest",
        help="a raw study (DICOM folder or .zip, or converter NIfTI) to a skull-stripped BraTS case",
        description=(
            "Identify the FLAIR, T1, T1ce and T2 series of a raw study, register them, strip the skull and "
            "write CASE_DIR/<ID>_{flair,t1,t1ce,t2}.nii.gz on the SRI24 1 mm BraTS grid; transforms, brain mask, "
            "qc.png and ingest.json go in CASE_DIR/ingest/."
        ),
    )
    p.add_argument("input", type=Path, help="folder of DICOM files (any nesting), a .zip of one, or a folder of NIfTI")
    p.add_argument(
        "--out", type=Path, required=True, metavar="CASE_DIR", help="the case folder to write (new or empty)"
    )
    p.add_argument("--id", dest="case_id", metavar="ID", help="case ID for the file names (default: CASE_DIR's name)")
    for seq in SEQUENCE_FLAGS:
        p.add_argument(
            f"--{seq}", type=Path, metavar="PATH", help=f"use this series as the {seq} (overrides identification)"
        )
    p.add_argument("--json", action="store_true", help="print ingest.json")
    p.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from neurotriage.diagnosis.stages import StageTimer
    from neurotriage.ingest.pipeline import ingest_study

    overrides = {seq: getattr(args, seq) for seq in SEQUENCE_FLAGS if getattr(args, seq) is not None}
    timer = StageTimer(quiet=args.json)
    record = ingest_study(args.input, args.out, case_id=args.case_id, overrides=overrides, timer=timer)
    if args.json:
        print(record.model_dump_json(indent=2))
        return 0
    for seq, choice in record.sequences.items():
        print(f"{seq:>5}: {choice.series_description or choice.source.name}  ({'; '.join(choice.evidence)})")
    for skipped in record.skipped:
        print(f"skipped {skipped.source.name}: {skipped.reason}")
    for warning in record.warnings:
        print(f"warning: {warning}")
    print(f"QC {record.qc.verdict}: {record.qc.summary}")
    print(f"BraTS case written to {record.case_dir} ({sum(record.timings_s.values()):.0f} s)")
    print(NOTICE)
    return 0
