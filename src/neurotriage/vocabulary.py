"""The region names shared by localisation (anatomy) and the clinical knowledge base.

One list, so a region the localiser reports is always a region the symptom rules can name.
Order matters to the anatomy atlas: the label of LOBES[n] is n + 1, ELOQUENT[b] is bit b.
"""

LOBES = (
    "frontal_lobe",
    "temporal_lobe",
    "parietal_lobe",
    "occipital_lobe",
    "insula",
    "cerebellum",
    "brainstem",
    "thalamus",
    "corpus_callosum",
    "internal_capsule",
    "basal_ganglia",
)
ELOQUENT = (
    "primary_motor",
    "primary_somatosensory",
    "broca",
    "wernicke",
    "primary_visual",
    "optic_radiation",
    "corticospinal_tract",
    "medial_temporal",
)
SIDES = ("left", "right", "midline")

# Plain-language names where the word alone is not enough; other codes read as their words.
AREA_NAMES = {
    "primary_motor": "primary motor cortex",
    "primary_somatosensory": "primary somatosensory cortex",
    "broca": "Broca's area",
    "wernicke": "Wernicke's area",
    "primary_visual": "primary visual cortex",
    "optic_radiation": "optic radiation",
    "corticospinal_tract": "corticospinal tract",
    "medial_temporal": "medial temporal lobe",
}


def area_name(name: str) -> str:
    """Readable name of a region or eloquent area ('frontal_lobe' -> 'frontal lobe')."""
    return AREA_NAMES.get(name, name.replace("_", " "))
