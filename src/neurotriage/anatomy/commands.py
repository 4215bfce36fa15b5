"""CLI subcommands for anatomy: `neurotriage locate SEG.nii.gz [--json]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurotriage.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to the top-level parser."""
    p = sub.add_parser(
        "locate",
        help="where the tumour in a BraTS-space label map lies: lobe, side, midline, eloquent areas",
        description="Locate the tumour in a label map on the SRI24 BraTS grid (either label scheme).",
    )
    p.add_argument("seg", type=Path, help="label map (.nii or .nii.gz), BraTS 2020 or 2023 labels")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--cross-ml", type=float, default=1.0, metavar="ML", help="ml needed on each side to cross the midline (1)"
    )
    p.set_defaults(handler=_locate)


def _locate(args: argparse.Namespace) -> int:
    from neurotriage.anatomy.locate import locate_file
    from neurotriage.anatomy.neighbourhood import Rules

    if not args.cross_ml > 0:
        raise UserError(f"--cross-ml: must be a positive volume in ml, got {args.cross_ml}")
    location = locate_file(args.seg, Rules(cross_ml=args.cross_ml))
    if args.json:
        print(location.model_dump_json(indent=2))
    else:
        print(location.summary)
        print(location.notice)
    return 0
