"""`neurotriage demo`: the main job on embedded defaults, for a newcomer's first run."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    p = sub.add_parser("demo", help="run the main job on embedded defaults (synthetic data)")
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    p.add_argument("--n", type=int, default=4, help="synthetic cases to generate (default 4)")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from neurotriage import NOTICE
    from neurotriage.imaging.commands import print_cohort_summary
    from neurotriage.imaging.synth import write_cohort

    print(NOTICE)
    cohort = args.out / "cohort"
    truths = write_cohort(cohort, args.n, seed=2026, preview=True)
    print_cohort_summary(truths, cohort)
    return 0
