"""`neurotriage demo`: the main job on embedded defaults, for a newcomer's first run.

A fresh SQLite database in the output folder (never the user's own), the fictional sample data,
two demo patients with symptoms, one synthetic right frontal tumour, and the shipped model:
one patient's symptoms fit the tumour side, the other's contradict it, so both outcomes show.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from neurotriage import NOTICE
from neurotriage.diagnosis.commands import print_result
from neurotriage.errors import UserError
from neurotriage.imaging.naming import BRATS2020

# Handlers import rich, the database, the generator and the pipeline themselves (see cli.py).

# (name, symptoms as (code, side)): left weakness fits a right frontal tumour, right weakness does not.
DEMO_PATIENTS = (
    ("Demo Patient A (fictional)", (("hemiparesis", "left"), ("headache", None))),
    ("Demo Patient B (fictional)", (("hemiparesis", "right"), ("seizure", None))),
)
DEMO_CASE = {"seed": 11, "case_id": "DEMO_0001", "kind": "enhancing", "lobe": "frontal_lobe", "hemisphere": "right"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    p = sub.add_parser("demo", help="run the main job on embedded defaults (synthetic data, fresh database)")
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    p.set_defaults(handler=_demo)


def _setup_database(url: str) -> list[int]:
    from neurotriage.clinical import db, intake, sample

    db.migrate_and_load(url, create=True)
    with db.transaction(url) as session:
        sample.seed_sample(session)
        db.refresh_statistics(session)
        ids = []
        for name, symptoms in DEMO_PATIENTS:
            patient = intake.add_patient(session, name, city="Leeds", lat="53.80", lon="-1.55")
            for code, side in symptoms:
                intake.add_symptom(session, patient.id, code, side=side)
            ids.append(patient.id)
    return ids


def _demo_case(root: Path) -> Path:
    from neurotriage.imaging.synth import generate_case, write_case

    spec = dict(DEMO_CASE)
    case = generate_case(spec.pop("seed"), spec.pop("case_id"), **spec)
    return write_case(case, root, BRATS2020)


MARKER = ".neurotriage-demo"


def _fresh_folder(out: Path) -> Path:
    """Empty the demo's own folder from an earlier run; never touch a folder that is not one."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(f"{out}: folder exists and is not a neurotriage demo folder; choose another", field="out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `neurotriage demo`; the next demo run replaces this folder\n")
    return out


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from neurotriage.diagnosis.pipeline import DiagnoseOptions, diagnose
    from neurotriage.diagnosis.stages import StageTimer

    console = Console()
    console.print(f"[bold]neurotriage demo[/bold] - {NOTICE}")
    out = _fresh_folder(args.out.resolve())
    url = f"sqlite:///{out / 'neurotriage.db'}"
    with console.status("database: schema, knowledge base, sample hospitals and doctors..."):
        patients = _setup_database(url)
    with console.status("synthetic case: right frontal enhancing tumour..."):
        case_dir = _demo_case(out / "cases")
    console.print(f"database {out / 'neurotriage.db'}; case {case_dir}")
    for pid, (name, symptoms) in zip(patients, DEMO_PATIENTS, strict=True):
        told = ", ".join(f"{side} {code}" if side else code for code, side in symptoms)
        console.rule(f"{name}: {told}")
        options = DiagnoseOptions(out_dir=out / "reports" / f"patient-{pid}", fhir=True, url=url)
        print_result(diagnose(case_dir, pid, options, StageTimer(console)))
    return 0
