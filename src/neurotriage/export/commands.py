"""`neurotriage export --pseudonymise OUT_DIR`: diagnosed studies, pseudonymised, for research."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add `export`."""
    p = sub.add_parser(
        "export",
        help="export diagnosed studies for research, pseudonymised (cases, findings table, reports)",
        description="Write every diagnosed study (or those of --patients) as a BraTS case with its segmentation, "
        "a findings table and report.json files, with keyed pseudonyms, shifted dates and no names, MRNs, "
        "birth dates, cities or free text; the export is checked for identifiers before it is kept.",
    )
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="new (or empty) folder to write the export to")
    p.add_argument("--pseudonymise", action="store_true", help="required: only a pseudonymised export is offered")
    p.add_argument("--patients", type=int, nargs="+", metavar="ID", help="export only these patients' studies")
    p.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help="the secret the pseudonyms are keyed with, created on first use (default: $NEUROTRIAGE_HOME/export-key);"
        " keep it outside every export, and use the same file for exports that must join",
    )
    p.set_defaults(handler=_export)


class _StudyBar:
    """A progress bar of the studies written, shown once the export knows how many it writes."""

    def __init__(self) -> None:
        self.bar = None

    def planned(self, count: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=count, desc="export", unit="study", leave=False)

    def written(self) -> None:
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _export(args: argparse.Namespace) -> int:
    from neurotriage.errors import UserError
    from neurotriage.export.run import export_pseudonymised

    if not args.pseudonymise:
        raise UserError("only a pseudonymised export is offered: pass --pseudonymise (identifiable data never leaves)")
    progress = _StudyBar()
    try:
        done = export_pseudonymised(
            args.out_dir, args.patients, args.key_file, on_study=progress.written, planned=progress.planned
        )
    finally:
        progress.close()
    studies = f"{done.studies} study" if done.studies == 1 else f"{done.studies} studies"
    patients = f"{done.patients} patient" if done.patients == 1 else f"{done.patients} patients"
    print(
        f"exported {studies} of {patients} ({done.files} files) to {done.out_dir}; pseudonyms keyed by "
        f"{done.key_file} (key id {done.key_id}), which stays out of the export"
    )
    return 0
