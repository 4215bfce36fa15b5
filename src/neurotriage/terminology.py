"""SNOMED CT codes the project uses: presenting symptoms, brain structures and laterality.

Only codes checked against published value sets are listed (HL7 bodystructure-laterality,
DICOM CID 7153 / 4031 code meanings, the ANS lobe value set, the project's verified symptom
table); a concept without one stays uncoded (text only), never with a guessed code.
"""

from __future__ import annotations

SNOMED_SYSTEM = "http://snomed.info/sct"

# Knowledge-base symptom slug -> SNOMED CT clinical finding.
SYMPTOMS = {
    "headache": "25064002",
    "nausea": "422587007",
    "vomiting": "422400008",
    "seizure": "91175000",
    "hemiparesis": "20022000",
    "facial_palsy": "280816001",
    "diplopia": "24982008",
    "aphasia": "87486003",
    "dysphasia": "20301004",
    "visual_field_defect": "12184005",
    "homonymous_hemianopia": "34063005",
    "ataxia": "20262006",
    "cerebellar_ataxia": "85102008",
    "dysarthria": "8011004",
    "memory_impairment": "386807006",
    "personality_change": "192073007",
}

# Region name (the localisation vocabulary, plus "brain") -> SNOMED CT body structure and display.
BODY_STRUCTURES = {
    "brain": ("12738006", "Brain"),
    "frontal_lobe": ("83251001", "Frontal lobe"),
    "temporal_lobe": ("78277001", "Temporal lobe"),
    "parietal_lobe": ("16630005", "Parietal lobe"),
    "occipital_lobe": ("31065004", "Occipital lobe"),
    "cerebellum": ("113305005", "Cerebellar structure"),
    "brainstem": ("15926001", "Brain stem"),
    "insula": ("36169008", "Insula"),
    "thalamus": ("42695009", "Thalamus"),
}

# Side -> SNOMED CT laterality qualifier and display.
LATERALITY = {"left": ("7771000", "Left"), "right": ("24028007", "Right"), "bilateral": ("51440002", "Bilateral")}
