"""`diagnose`: one study from MRI to referral, stored and reported.

Order matters for "nothing half-written": everything that can fail on the user's input (case
folder, patient, model) is checked before any work is stored. The database work and the report
share one transaction: the report folder is written (atomically) inside it, so a report failure
rolls the database back, and a database failure never leaves a stored finding without a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurotriage.config import load_settings
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.imaging.io import CaseFiles, find_case
from neurotriage.segmentation.postprocess import DEFAULT_POST, DEFAULT_TTA


@dataclass(frozen=True)
class DiagnoseOptions:
    """What a diagnosis run may vary: model, report location, FHIR, referral count, database."""

    model: Path | None = None
    out_dir: Path | None = None
    fhir: bool = False
    limit: int = 10
    url: str | None = None


def default_report_dir(patient_id: int, case_id: str) -> Path:
    """Reports live beside the database: NEUROTRIAGE_HOME/reports/patient-<id>/<case>."""
    return load_settings().home / "reports" / f"patient-{patient_id}" / case_id


def _patient_view(patient_id: int, url: str | None) -> dict[str, Any]:
    from neurotriage.clinical import intake
    from neurotriage.clinical.db import transaction

    with transaction(url) as session:
        return intake.patient_detail(session, intake.get_patient(session, patient_id))


def _segment(files: CaseFiles, options: DiagnoseOptions, timer: StageTimer):
    from neurotriage.imaging.io import load_case
    from neurotriage.segmentation.infer import load_model

    with timer.stage("load images"):
        case = load_case(files, with_seg=False)
    with timer.stage("load model"):
        model = load_model(options.model)
    with timer.stage("segment"):
        # The default flip averaging and clean-up, both recorded in provenance.
        labels = model.predict(case, tta=DEFAULT_TTA, post=DEFAULT_POST)
    return case, model, labels


def _model_id(model) -> str:
    return str(model.config.get("model_id") or f"{model.source.name} ({model.config['arch']})")


def _store_and_report(session, patient_id, case_ref, files, found, prov, case, labels, options, out_dir, timer):
    from neurotriage.clinical import decisions, intake
    from neurotriage.report.folder import write_report
    from neurotriage.report.inputs import ReportInput

    seg_path = out_dir / files.naming.filename(files.case_id, "seg")
    with timer.stage("cross-check + referral"):
        stored = decisions.store_diagnosis(
            session, patient_id, case_ref, found, prov["model_id"], str(seg_path),
            provenance=prov, limit=options.limit, report_dir=str(out_dir),
        )  # fmt: skip
        patient = intake.patient_detail(session, intake.get_patient(session, patient_id))
    with timer.stage("report"):
        report = ReportInput.model_validate(
            {
                "patient": patient,
                "symptoms": patient["symptoms"],
                "locate": found,
                "crosscheck": stored["crosscheck"],
                "referrals": stored["referral"]["recommendations"],
                "provenance": prov,
                "imaging": {
                    "case_id": files.case_id,
                    "images": case.images,
                    "seg": labels,
                    "affine": case.affine,
                    "naming": files.naming.name,
                },
            }
        )
        write_report(out_dir, report, fhir=options.fhir)
    return stored


def diagnose(
    case_dir: Path | str,
    patient_id: int,
    options: DiagnoseOptions | None = None,
    timer: StageTimer | None = None,
    case_ref: str | None = None,
) -> dict[str, Any]:
    """Segment, locate, cross-check, refer and report one study for one patient; returns the summary.

    `case_ref` names the study in the database (default: the case folder's absolute path)."""
    from neurotriage.anatomy.locate import locate
    from neurotriage.clinical.db import transaction
    from neurotriage.diagnosis.provenance import provenance

    options = options or DiagnoseOptions()
    timer = timer or StageTimer()
    with timer.stage("check inputs"):
        files = find_case(case_dir)
        _patient_view(patient_id, options.url)
    case, model, labels = _segment(files, options, timer)
    with timer.stage("locate"):
        found = locate(labels, case.affine)
    prov = provenance(files, model.source, _model_id(model), DEFAULT_POST.to_dict(), DEFAULT_TTA)
    out_dir = Path(options.out_dir) if options.out_dir else default_report_dir(patient_id, files.case_id)
    with transaction(options.url) as session:
        ref = case_ref or str(files.folder.resolve())
        stored = _store_and_report(session, patient_id, ref, files, found, prov, case, labels, options, out_dir, timer)
    return {
        "patient_id": patient_id,
        "case_id": files.case_id,
        "report_dir": str(out_dir),
        "locate": found,
        "provenance": prov,
        "timings_s": timer.timings,
        **stored,
    }


def pending_studies(url: str | None = None) -> list[dict[str, Any]]:
    """Studies with no finding yet, oldest first."""
    from sqlalchemy import exists, select

    from neurotriage.clinical.db import transaction
    from neurotriage.clinical.models import Finding, Study

    with transaction(url) as session:
        rows = session.scalars(select(Study).where(~exists().where(Finding.study_id == Study.id)).order_by(Study.id))
        return [
            {"study_id": s.id, "patient_id": s.patient_id, "case_ref": s.case_ref, "seed": s.synthetic_seed}
            for s in rows
        ]


def record_failure(study_id: int, error: str, url: str | None = None) -> None:
    """Keep the reason a study could not be diagnosed, in its own transaction."""
    from neurotriage.clinical.db import transaction
    from neurotriage.clinical.models import Study

    with transaction(url) as session:
        session.get(Study, study_id).last_error = error[:2000]


def diagnose_pending(options: DiagnoseOptions, quiet: bool = False) -> dict[str, Any]:
    """Diagnose every study without a finding; one failure is recorded and the rest go on."""
    from rich.console import Console

    from neurotriage.diagnosis.cases import case_folder
    from neurotriage.errors import UserError

    console = Console(stderr=True)
    studies = pending_studies(options.url)
    rows = []
    for i, study in enumerate(studies, start=1):
        if not quiet:
            console.print(f"[bold]study {study['study_id']}[/bold] ({i}/{len(studies)}): {study['case_ref']}")
        try:
            folder = case_folder(study["case_ref"], study["seed"])
            out = default_report_dir(study["patient_id"], Path(study["case_ref"]).name)
            run = DiagnoseOptions(options.model, out, options.fhir, options.limit, options.url)
            result = diagnose(folder, study["patient_id"], run, StageTimer(console, quiet), study["case_ref"])
            rows.append(study | {"ok": True, "finding_id": result["finding_id"], "report_dir": result["report_dir"]})
        except UserError as exc:  # a bad case must not stop the batch; bugs still raise
            record_failure(study["study_id"], str(exc), options.url)
            rows.append(study | {"ok": False, "error": str(exc)})
    done = sum(r["ok"] for r in rows)
    return {"studies": rows, "done": done, "failed": len(rows) - done}
