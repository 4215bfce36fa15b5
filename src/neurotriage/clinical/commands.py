"""CLI subcommands of the clinical area: db, patient, symptom, finding, crosscheck, refer.

Each handler runs in one database transaction and prints only after it committed. SQLAlchemy and
the rest of the clinical package are imported inside the handlers to keep `--help` fast.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from neurotriage.maintenance.erase_commands import add_patient_erase

SIDES = ("left", "right", "bilateral")


def _db_init(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db

    done = db.migrate_and_load(create=args.command_name == "init")
    before, after = done["from_revision"], done["to_revision"]
    schema = f"schema at {after}" if before == after else f"schema {before or 'empty'} -> {after}"
    print(
        f"database {done['database']}: {schema};"
        f" knowledge base: {done['symptoms']} symptoms, {done['rules']} rules, {done['regions']} regions"
    )
    return 0


def _db_seed(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, sample
    from neurotriage.errors import UserError

    if not args.sample:
        raise UserError("db seed: nothing to seed; pass --sample to load the fictional sample data set")
    with db.transaction() as session:
        if sample.sample_loaded(session):
            print("sample data already loaded; nothing changed")
            return 0
        counts = sample.seed_sample(session)
        db.refresh_statistics(session)
    print(
        f"loaded sample data: {counts['hospitals']} hospitals, {counts['doctors']} doctors, "
        f"{counts['patients']} patients (fictional)"
    )
    return 0


def _db_import(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, importers
    from neurotriage.errors import UserError

    try:
        with db.transaction() as session:
            count = importers.import_csv(session, args.kind, args.file, allow_duplicates=args.allow_duplicates)
            db.refresh_statistics(session)
    except UserError as exc:
        if exc.field != "allow_duplicates":
            raise
        raise UserError(f"{exc.message}; pass --allow-duplicates to import probable duplicates anyway") from None
    print(f"imported {count} {args.kind} from {args.file}")
    return 0


def _patient_add(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, intake, render

    with db.transaction() as session:
        patient = intake.add_patient(
            session,
            args.name,
            args.sex,
            args.birth_date,
            args.city,
            args.lat,
            args.lon,
            args.dominance,
            args.mrn,
            args.mrn_issuer,
        )
        data = intake.patient_summary(patient)
    render.emit(data, args.json, lambda p: f"added patient {p['id']}: {p['name']}")
    return 0


def _patient_confirm(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, intake, render

    with db.transaction() as session:
        patient, changed = intake.confirm_patient(session, args.patient)
        data = intake.patient_summary(patient)
    already = "" if changed else " (already confirmed)"
    render.emit(data, args.json, lambda p: f"confirmed patient {p['id']}: {p['name']}{already}")
    return 0


def _patient_show(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, intake, render

    with db.transaction() as session:
        data = intake.patient_detail(session, intake.get_patient(session, args.patient))
    render.emit(data, args.json, render.patient_detail)
    return 0


def _patient_list(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, intake, render

    with db.transaction() as session:
        data = [intake.patient_summary(p) for p in intake.list_patients(session, args.search)]
    render.emit(data, args.json, render.patient_list)
    return 0


def _symptom_add(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, intake

    with db.transaction() as session:
        entry, symptom = intake.add_symptom(session, args.patient, args.code, args.side, args.onset, args.severity)
    print(f"recorded {symptom.code}" + (f" ({entry.side})" if entry.side else "") + f" for patient {args.patient}")
    return 0


def _symptom_remove(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, intake

    with db.transaction() as session:
        symptom = intake.remove_symptom(session, args.patient, args.entry)
    print(f"removed {symptom.code} (symptom {args.entry}) from patient {args.patient}; its cross-checks are now stale")
    return 0


def _symptom_list(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, render
    from neurotriage.clinical.knowledge import knowledge_from_db

    with db.transaction() as session:
        knowledge = knowledge_from_db(session)
    data = [
        {"code": s.code, "name": s.name, "snomed_code": s.snomed, "rules": [asdict(r) for r in s.rules]}
        for s in knowledge.values()
    ]
    render.emit(data, args.json, render.symptom_table)
    return 0


def _finding_add(args: argparse.Namespace) -> int:
    from neurotriage.anatomy.location import read_location_file
    from neurotriage.clinical import decisions, render

    location = read_location_file(args.locate)
    seg = str(args.segmentation) if args.segmentation else None
    done = decisions.record_diagnosis(args.patient, args.case, location, args.model, seg, limit=args.limit)
    render.emit(
        done,
        args.json,
        lambda d: (
            f"stored finding {d['finding_id']} (study {d['study_id']})\n"
            + render.crosscheck_report(d["crosscheck"])
            + "\n"
            + render.referral_report(d["referral"])
        ),
    )
    return 0


def _crosscheck(args: argparse.Namespace) -> int:
    from neurotriage import NOTICE
    from neurotriage.anatomy.location import read_location_file
    from neurotriage.clinical import db, decisions, render
    from neurotriage.clinical.snapshot import load_patient

    location = read_location_file(args.locate)
    with db.transaction() as session:
        record = decisions.crosscheck_patient(session, load_patient(session, args.patient), location)
        data = record.result | {"crosscheck_id": record.id, "patient_id": args.patient, "notice": NOTICE}
    render.emit(data, args.json, render.crosscheck_report)
    return 0


def _refer(args: argparse.Namespace) -> int:
    from neurotriage.clinical import db, decisions, render

    with db.transaction() as session:
        data = decisions.refer(session, args.patient, args.limit)
    render.emit(data, args.json, render.referral_report)
    return 0


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return value


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _register_db(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="create, migrate, seed and import into the clinical database")
    actions = db.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="create or migrate the database and load the knowledge base")
    init.set_defaults(handler=_db_init)
    upgrade = actions.add_parser("upgrade", help="migrate an existing database in place")
    upgrade.set_defaults(handler=_db_init)
    seed = actions.add_parser("seed", help="load the fictional sample data set")
    seed.add_argument("--sample", action="store_true", help="hospitals, doctors and patients (fictional)")
    seed.set_defaults(handler=_db_seed)
    load = actions.add_parser("import", help="import hospitals, doctors or patients from CSV (all or nothing)")
    load.add_argument("kind", choices=("hospitals", "doctors", "patients"))
    load.add_argument("file", type=Path, metavar="FILE.csv")
    load.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="import patients with the same name and birth date as another row or a stored patient",
    )
    load.set_defaults(handler=_db_import)


def _register_patient(sub: argparse._SubParsersAction) -> None:
    patient = sub.add_parser("patient", help="add, show, list, confirm and erase patients")
    actions = patient.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a patient")
    add.add_argument("--name", required=True)
    add.add_argument("--sex", help="female, male, other or unknown (default)")
    add.add_argument("--birth-date", metavar="YYYY-MM-DD")
    add.add_argument("--city", help="home city")
    add.add_argument("--lat", help="home latitude (degrees)")
    add.add_argument("--lon", help="home longitude (degrees)")
    add.add_argument("--dominance", help="language-dominant hemisphere: left (default) or right")
    add.add_argument("--mrn", help="medical record number (the PACS's PatientID)")
    add.add_argument("--mrn-issuer", help="the MRN's issuer (DICOM IssuerOfPatientID)")
    _json_flag(add)
    add.set_defaults(handler=_patient_add)
    confirm = actions.add_parser("confirm", help="confirm the identity of a patient created from a received study")
    confirm.add_argument("patient", type=int, metavar="PATIENT")
    _json_flag(confirm)
    confirm.set_defaults(handler=_patient_confirm)
    show = actions.add_parser("show", help="show one patient with symptoms and studies")
    show.add_argument("patient", type=int, metavar="PATIENT")
    _json_flag(show)
    show.set_defaults(handler=_patient_show)
    listing = actions.add_parser("list", help="list patients")
    listing.add_argument("--search", help="only names, cities or MRNs containing this text")
    _json_flag(listing)
    listing.set_defaults(handler=_patient_list)
    add_patient_erase(actions)


def _register_symptom(sub: argparse._SubParsersAction) -> None:
    symptom = sub.add_parser("symptom", help="record symptoms; list the symptom knowledge base")
    actions = symptom.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="record a symptom for a patient")
    add.add_argument("patient", type=int, metavar="PATIENT")
    add.add_argument("code", metavar="CODE", help="symptom slug (e.g. hemiparesis) or SNOMED CT code")
    add.add_argument("--side", help="side of the body: " + ", ".join(SIDES))
    add.add_argument("--onset", metavar="YYYY-MM-DD")
    add.add_argument("--severity", help="mild, moderate or severe")
    add.set_defaults(handler=_symptom_add)
    remove = actions.add_parser("remove", help="remove a symptom recorded by mistake")
    remove.add_argument("patient", type=int, metavar="PATIENT")
    remove.add_argument("entry", type=int, metavar="SYMPTOM", help="its number in `patient show PATIENT`")
    remove.set_defaults(handler=_symptom_remove)
    listing = actions.add_parser("list", help="the symptoms, SNOMED CT codes and region rules")
    _json_flag(listing)
    listing.set_defaults(handler=_symptom_list)


def _register_decisions(sub: argparse._SubParsersAction) -> None:
    finding = sub.add_parser("finding", help="store an imaging finding (a locate JSON) for a patient's study")
    actions = finding.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="store a finding, cross-check it and refer, in one transaction")
    add.add_argument("--patient", type=int, required=True)
    add.add_argument("--case", required=True, help="MRI case folder or ID of the study")
    add.add_argument("--locate", type=Path, required=True, help="output of `neurotriage locate --json`")
    add.add_argument("--segmentation", type=Path, help="the segmentation the location came from")
    add.add_argument("--model", default="manual", help="id of the model that segmented (default: manual)")
    add.add_argument("--limit", type=_limit, default=10)
    _json_flag(add)
    add.set_defaults(handler=_finding_add)
    check = sub.add_parser("crosscheck", help="cross-check a patient's symptoms against a locate JSON")
    check.add_argument("--patient", type=int, required=True)
    check.add_argument("--locate", type=Path, required=True, help="output of `neurotriage locate --json`")
    _json_flag(check)
    check.set_defaults(handler=_crosscheck)
    refer = sub.add_parser("refer", help="rank doctors and hospitals for a patient, with reasons")
    refer.add_argument("--patient", type=int, required=True)
    refer.add_argument("--limit", type=_limit, default=10, help="how many recommendations (default 10)")
    _json_flag(refer)
    refer.set_defaults(handler=_refer)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to the top-level parser."""
    _register_db(sub)
    _register_patient(sub)
    _register_symptom(sub)
    _register_decisions(sub)
