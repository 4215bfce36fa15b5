"""The symptom -> brain region knowledge base, with a laterality rule and a source on every rule.

Region names are the localisation vocabulary shared with `neurotriage locate`. SNOMED CT codes come
from neurotriage.terminology, which lists only checked codes; the others stay empty rather than
guessed. `load_knowledge` writes this table into the database (idempotent); the cross-check
reads the rules back from the database, so the stored rules are the ones a decision used.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical.models import BrainRegion, Symptom, SymptomRegionRule
from neurotriage.terminology import BODY_STRUCTURES
from neurotriage.terminology import SYMPTOMS as SYMPTOM_SNOMED
from neurotriage.vocabulary import ELOQUENT, LOBES

REGIONS = LOBES + ELOQUENT
LANGUAGE_AREAS = ("broca", "wernicke")

# SNOMED CT body-structure code of each region that has one; the others stay None.
REGION_SNOMED = {name: BODY_STRUCTURES[name][0] for name in REGIONS if name in BODY_STRUCTURES}

BLUMENFELD = "Blumenfeld H. Neuroanatomy through Clinical Cases. 2nd ed. Sunderland, MA: Sinauer; 2010."
BRAZIS = (
    "Brazis PW, Masdeu JC, Biller J. Localization in Clinical Neurology. 7th ed. Philadelphia: Wolters Kluwer; 2017."
)
ADAMS_VICTOR = (
    "Ropper AH, Samuels MA, Klein JP, Prasad S. Adams and Victor's Principles of Neurology."
    " 11th ed. New York: McGraw-Hill; 2019. Ch. 30, Intracranial neoplasms."
)
FORSYTH_POSNER = (
    "Forsyth PA, Posner JB. Headaches in patients with brain tumors: a study of 111 patients."
    " Neurology. 1993;43(9):1678-83."
)
LARNER = "Larner AJ. False localising signs. J Neurol Neurosurg Psychiatry. 2003;74(4):415-8."
VAN_BREEMEN = (
    "van Breemen MS, Wilms EB, Vecht CJ. Epilepsy in patients with brain tumours: epidemiology,"
    " mechanisms, and management. Lancet Neurol. 2007;6(5):421-30."
)
PENFIELD = (
    "Penfield W, Boldrey E. Somatic motor and sensory representation in the cerebral cortex of man"
    " as studied by electrical stimulation. Brain. 1937;60(4):389-443."
)
DRONKERS = (
    "Dronkers NF, Wilkins DP, Van Valin RD Jr, Redfern BB, Jaeger JJ. Lesion analysis of the brain"
    " areas involved in language comprehension. Cognition. 2004;92(1-2):145-77."
)
ZHANG = (
    "Zhang X, Kedar S, Lynn MJ, Newman NJ, Biousse V. Homonymous hemianopias: clinical-anatomic"
    " correlations in 904 cases. Neurology. 2006;66(6):906-10."
)
HOLMES = "Holmes G. The cerebellum of man. Brain. 1939;62(1):1-30."
DUFFY = (
    "Duffy JR. Motor Speech Disorders: Substrates, Differential Diagnosis, and Management. 4th ed."
    " St. Louis: Elsevier; 2019."
)
SCOVILLE = (
    "Scoville WB, Milner B. Loss of recent memory after bilateral hippocampal lesions."
    " J Neurol Neurosurg Psychiatry. 1957;20(1):11-21."
)
STUSS = "Stuss DT, Benson DF. The Frontal Lobes. New York: Raven Press; 1986."
LEVY_DUBOIS = (
    "Levy R, Dubois B. Apathy and the functional anatomy of the prefrontal cortex-basal ganglia"
    " circuits. Cereb Cortex. 2006;16(7):916-28."
)
VALLAR = (
    "Vallar G, Perani D. The anatomy of unilateral neglect after right-hemisphere stroke lesions."
    " A clinical/CT-scan correlation study in man. Neuropsychologia. 1986;24(5):609-22."
)


@dataclass(frozen=True)
class Rule:
    """One symptom -> region rule; `region` is None for a non-localising rule."""

    region: str | None
    laterality: str
    source: str


@dataclass(frozen=True)
class SymptomDef:
    """A symptom of the knowledge base with its rules."""

    code: str
    name: str
    snomed: str | None
    rules: tuple[Rule, ...]
    needs_cortex: bool = False

    @property
    def localising(self) -> bool:
        """Whether any rule points at a region."""
        return any(r.laterality != "non_localising" for r in self.rules)

    @property
    def lateralised(self) -> bool:
        """Whether the side of the symptom matters (contra- or ipsilateral rules)."""
        return any(r.laterality in ("contralateral", "ipsilateral") for r in self.rules)


def _rules(laterality: str, source: str, *regions: str) -> tuple[Rule, ...]:
    return tuple(Rule(region, laterality, source) for region in regions)


def _symptom(code: str, name: str, rules: tuple[Rule, ...], needs_cortex: bool = False) -> SymptomDef:
    return SymptomDef(code, name, SYMPTOM_SNOMED.get(code), rules, needs_cortex)


def _raised_pressure(code: str, name: str, source: str) -> SymptomDef:
    return _symptom(code, name, (Rule(None, "non_localising", source),))


SYMPTOMS: tuple[SymptomDef, ...] = (
    _raised_pressure("headache", "Headache", FORSYTH_POSNER),
    _raised_pressure("nausea", "Nausea", ADAMS_VICTOR),
    _raised_pressure("vomiting", "Vomiting", ADAMS_VICTOR),
    _raised_pressure("papilloedema", "Papilloedema", ADAMS_VICTOR),
    _raised_pressure("sixth_nerve_palsy", "Isolated sixth-nerve palsy", LARNER),
    _raised_pressure("seizure", "Seizure without a described focal onset", VAN_BREEMEN),
    _symptom(
        "focal_seizure",
        "Focal seizure",
        _rules("either", VAN_BREEMEN, "frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe"),
        needs_cortex=True,
    ),
    _symptom(
        "hemiparesis",
        "Hemiparesis",
        (Rule("primary_motor", "contralateral", PENFIELD),)
        + _rules("contralateral", BLUMENFELD, "corticospinal_tract", "internal_capsule"),
    ),
    _symptom(
        "central_facial_weakness",
        "Central facial weakness (forehead spared)",
        _rules("contralateral", BRAZIS, "primary_motor", "internal_capsule"),
    ),
    _symptom(
        "facial_palsy",
        "Facial palsy, peripheral pattern (forehead involved)",
        _rules("ipsilateral", BRAZIS, "brainstem"),
    ),
    _symptom(
        "diplopia",
        "Diplopia with other cranial-nerve signs",
        _rules("either", BRAZIS, "brainstem"),
    ),
    _symptom("aphasia", "Aphasia", _rules("dominant", DRONKERS, "broca", "wernicke")),
    _symptom("dysphasia", "Dysphasia", _rules("dominant", BLUMENFELD, "broca", "wernicke")),
    _symptom("expressive_aphasia", "Expressive (Broca) aphasia", _rules("dominant", BLUMENFELD, "broca")),
    _symptom("receptive_aphasia", "Receptive (Wernicke) aphasia", _rules("dominant", DRONKERS, "wernicke")),
    _symptom(
        "visual_field_defect",
        "Visual field defect",
        _rules("either", ZHANG, "optic_radiation", "primary_visual", "occipital_lobe"),
    ),
    _symptom(
        "homonymous_hemianopia",
        "Homonymous hemianopia",
        _rules("contralateral", ZHANG, "primary_visual", "optic_radiation"),
    ),
    _symptom("ataxia", "Ataxia (gait or truncal)", _rules("either", HOLMES, "cerebellum")),
    _symptom("cerebellar_ataxia", "Cerebellar limb ataxia", _rules("ipsilateral", HOLMES, "cerebellum")),
    _symptom("dysarthria", "Dysarthria", _rules("either", DUFFY, "cerebellum", "brainstem")),
    _symptom("memory_impairment", "Memory impairment", _rules("either", SCOVILLE, "medial_temporal")),
    _symptom("personality_change", "Change in personality", _rules("either", STUSS, "frontal_lobe")),
    _symptom("apathy", "Apathy", _rules("either", LEVY_DUBOIS, "frontal_lobe")),
    _symptom(
        "cortical_sensory_loss",
        "Cortical sensory loss",
        _rules("contralateral", BLUMENFELD, "primary_somatosensory", "parietal_lobe"),
    ),
    _symptom("neglect", "Hemispatial neglect", _rules("non_dominant", VALLAR, "parietal_lobe")),
)


def default_knowledge() -> dict[str, SymptomDef]:
    """The built-in knowledge base keyed by symptom code."""
    return {s.code: s for s in SYMPTOMS}


def _sync_regions(session: Session) -> dict[str, int]:
    """Insert or update the region vocabulary; returns name -> id."""
    existing = {r.name: r for r in session.scalars(select(BrainRegion))}
    for name in REGIONS:
        kind = "lobe" if name in LOBES else "eloquent"
        region = existing.get(name) or BrainRegion(name=name)
        region.kind, region.snomed_code = kind, REGION_SNOMED.get(name)
        session.add(region)
        existing[name] = region
    session.flush()
    return {name: region.id for name, region in existing.items()}


def _sync_rules(session: Session, symptom: Symptom, rules: tuple[Rule, ...], region_ids: dict[str, int]) -> None:
    """Make the stored rules of `symptom` exactly `rules`, touching only what differs."""
    wanted = [(region_ids[r.region] if r.region else None, r.laterality, r.source) for r in rules]
    stored = session.scalars(select(SymptomRegionRule).where(SymptomRegionRule.symptom_id == symptom.id))
    kept = set()
    for rule in stored:
        key = (rule.region_id, rule.laterality, rule.source)
        if key in wanted and key not in kept:
            kept.add(key)
        else:
            session.delete(rule)
    for region_id, laterality, source in wanted:
        if (region_id, laterality, source) not in kept:
            session.add(
                SymptomRegionRule(symptom_id=symptom.id, region_id=region_id, laterality=laterality, source=source)
            )


def load_knowledge(session: Session) -> dict[str, int]:
    """Write the built-in knowledge base into the database (idempotent); returns counts."""
    region_ids = _sync_regions(session)
    existing = {s.code: s for s in session.scalars(select(Symptom))}
    for definition in SYMPTOMS:
        symptom = existing.get(definition.code) or Symptom(code=definition.code)
        symptom.name, symptom.snomed_code = definition.name, definition.snomed
        symptom.needs_cortex = definition.needs_cortex
        session.add(symptom)
        session.flush()
        _sync_rules(session, symptom, definition.rules, region_ids)
    session.flush()
    return {
        "regions": len(REGIONS),
        "symptoms": len(SYMPTOMS),
        "rules": sum(len(s.rules) for s in SYMPTOMS),
    }


def knowledge_from_db(session: Session, codes: Collection[str] | None = None) -> dict[str, SymptomDef]:
    """The knowledge base as stored in the database, keyed by symptom code (one query); only the
    symptoms of `codes` when given."""
    query = (
        select(
            Symptom.code,
            Symptom.name,
            Symptom.snomed_code,
            Symptom.needs_cortex,
            BrainRegion.name,
            SymptomRegionRule.laterality,
            SymptomRegionRule.source,
        )
        .outerjoin(SymptomRegionRule, SymptomRegionRule.symptom_id == Symptom.id)
        .outerjoin(BrainRegion, BrainRegion.id == SymptomRegionRule.region_id)
        .order_by(Symptom.code, SymptomRegionRule.id)
    )
    rows = session.execute(query if codes is None else query.where(Symptom.code.in_(codes)))
    facts: dict[str, tuple[str, str | None, bool]] = {}
    rules: dict[str, list[Rule]] = {}
    for code, name, snomed, needs_cortex, region, laterality, source in rows:
        facts[code] = (name, snomed, needs_cortex)
        rules.setdefault(code, [])
        if laterality is not None:
            rules[code].append(Rule(region, laterality, source))
    return {code: SymptomDef(code, *facts[code][:2], tuple(rules[code]), facts[code][2]) for code in facts}
