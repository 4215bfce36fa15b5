"""Plain-text and JSON output of the clinical commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from neurotriage import NOTICE
from neurotriage.clinical.mrn import UNCONFIRMED_NOTE


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print `data` as JSON or through its text renderer."""
    print(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text(data))


def patient_line(p: dict[str, Any]) -> str:
    """One line per patient."""
    facts = [p["sex"]]
    if p["birth_date"]:
        facts.append(f"born {p['birth_date']}")
    if p["city"]:
        facts.append(p["city"] + (f" {p['lat']:.2f}, {p['lon']:.2f}" if p["lat"] is not None else ""))
    facts.append(f"{p['language_dominance']}-language-dominant")
    if p["mrn"]:
        facts.append(f"MRN {p['mrn']}" + (f" ({p['mrn_issuer']})" if p["mrn_issuer"] else ""))
    line = f"{p['id']:>5}  {p['name']}  ({', '.join(facts)})"
    return line if p["confirmed"] else f"{line}  UNCONFIRMED"


def patient_list(patients: list[dict[str, Any]]) -> str:
    """A list of patients, or a note that none matched."""
    return "\n".join(patient_line(p) for p in patients) if patients else "no patients"


def patient_detail(p: dict[str, Any]) -> str:
    """A patient with symptoms, studies and the latest verdict."""
    lines = [patient_line(p)]
    if not p["confirmed"]:
        lines.append(f"       {UNCONFIRMED_NOTE}")
    if p["lat"] is not None:
        lines.append(f"       home: {p['city'] or '?'} ({p['lat']:.4f}, {p['lon']:.4f})")
    for s in p["symptoms"]:
        extra = ", ".join(x for x in (s["side"], s["severity"], s["onset"] and f"onset {s['onset']}") if x)
        lines.append(f"       symptom {s['id']}: {s['code']}" + (f" ({extra})" if extra else ""))
    for st in p["studies"]:
        lines.append(f"       study {st['id']}: {st['case']}" + (f" ({st['date']})" if st["date"] else ""))
    if p["latest_crosscheck"]:
        c = p["latest_crosscheck"]
        lines.append(f"       latest cross-check: {c['verdict']}" + (" (REVIEW)" if c["needs_review"] else ""))
    return "\n".join(lines)


def symptom_table(symptoms: list[dict[str, Any]]) -> str:
    """The knowledge base: code, SNOMED CT code, name and rules."""
    lines = []
    for s in symptoms:
        rules = "; ".join(
            r["laterality"] if r["region"] is None else f"{r['laterality']} {r['region']}" for r in s["rules"]
        )
        lines.append(f"{s['code']:<24} {s['snomed_code'] or '-':<10} {s['name']}: {rules}")
    return "\n".join(lines)


def crosscheck_report(r: dict[str, Any]) -> str:
    """The verdict, each symptom with why, and the predicted regions."""
    lines = [r["summary"]]
    for s in r["symptoms"]:
        mark = {True: "explained", False: "NOT explained", None: "non-localising"}[s["explained"]]
        lines.append(f"  [{mark}] {s['reason']}")
    if r["predicted_regions"]:
        predicted = ", ".join(f"{p['side']} {p['name']}" for p in r["predicted_regions"])
        lines.append(f"  symptoms predict: {predicted}")
    lines.append(NOTICE)
    return "\n".join(lines)


def referral_report(r: dict[str, Any]) -> str:
    """The ranked recommendations with their reasons."""
    lines = [f"Referral {r['referral_id']} for patient {r['patient_id']}: {r['note']}."]
    if r["crosscheck"]:
        lines.append(r["crosscheck"]["summary"])
    for need in r["needs"]:
        lines.append(f"  needs {need['code'].replace('_', ' ')}: {need['why']}")
    if not r["recommendations"]:
        lines.append("  no accepting doctor of a fitting specialty found")
    for rec in r["recommendations"]:
        d, h = rec["doctor"], rec["hospital"]
        where = f", {rec['distance_km']:.0f} km" if rec["distance_km"] is not None else ""
        lines.append(f"{rec['rank']:>3}. {rec['score']:5.1f}  {d['name']} ({d['specialty']}), {h['name']}{where}")
        lines.extend(f"         - {reason}" for reason in rec["reasons"])
    lines.append(NOTICE)
    return "\n".join(lines)
