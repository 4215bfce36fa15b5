"""The tumour labels inside the project: values, names, display colours, evaluated regions, file values.

Inside the project labels are contiguous for the network: 0 background, 1 necrotic / non-enhancing
core, 2 edema, 3 enhancing. Segmentation files keep the value of their naming scheme for
enhancing tumour: 4 in BraTS 2020, 3 in BraTS 2023 (imaging/naming.py converts at the edge).
Every figure, preview and the web viewer colour the labels from LABEL_COLOURS.
"""

from __future__ import annotations

import re

BACKGROUND, NECROTIC_CORE, EDEMA, ENHANCING = 0, 1, 2, 3
TUMOUR_LABELS = (NECROTIC_CORE, EDEMA, ENHANCING)

# Names stored with checkpoints and used as keys of per-label scores.
LABEL_NAMES = {
    BACKGROUND: "background",
    NECROTIC_CORE: "necrotic/non-enhancing core",
    EDEMA: "edema",
    ENHANCING: "enhancing",
}
# Wording of the figure legends.
LEGEND_NAMES = {NECROTIC_CORE: "necrosis / non-enhancing core", EDEMA: "edema", ENHANCING: "enhancing tumour"}
LABEL_COLOURS = {NECROTIC_CORE: "#e8412c", EDEMA: "#2ca02c", ENHANCING: "#ffd700"}
# One colour per label value from 0 (background transparent), for a listed colour map.
OVERLAY_COLOURS = ("none", *(LABEL_COLOURS[label] for label in TUMOUR_LABELS))
# Keys of the per-label volumes (locate's volumes_ml, synthetic truth) and the label each counts.
VOLUME_LABELS = {"enhancing": ENHANCING, "necrosis": NECROTIC_CORE, "edema": EDEMA}

# The nested regions BraTS evaluates: whole tumour, tumour core, enhancing tumour.
TUMOUR_REGIONS = {"WT": (NECROTIC_CORE, EDEMA, ENHANCING), "TC": (NECROTIC_CORE, ENHANCING), "ET": (ENHANCING,)}

# The names other tools give the regions, in lower-case letters (MONAI's brats_mri_segmentation bundle
# says 'Tumor core', 'Whole tumor', 'Enhancing tumor').
REGION_ALIASES = {
    "WT": ("wt", "wholetumor", "wholetumour"),
    "TC": ("tc", "tumorcore", "tumourcore"),
    "ET": ("et", "enhancingtumor", "enhancingtumour"),
}


def region_from_name(name: str) -> str | None:
    """The region key ('WT', 'TC', 'ET') that another tool's region name means, or None."""
    key = re.sub(r"[^a-z]", "", str(name).lower())
    return next((region for region, names in REGION_ALIASES.items() if key in names), None)


def label_from_name(name: str) -> int | None:
    """The internal label that another tool's label name means, or None.

    Knows the BraTS abbreviations (NCR, NET, NETC, ED, SNFH, ET) and names spelled out, as the
    Medical Segmentation Decathlon's 'edema', 'non-enhancing tumor' and 'enhancing tumour'."""
    key = re.sub(r"[^a-z]", "", str(name).lower())
    if key == "background":
        return BACKGROUND
    if key in ("ncr", "net", "ncrnet", "netc") or "necro" in key or "nonenhanc" in key:
        return NECROTIC_CORE
    if key in ("ed", "snfh") or "edema" in key:  # "oedema" too
        return EDEMA
    if key == "et" or "enhanc" in key:
        return ENHANCING
    return None


# The value each file naming scheme writes for enhancing tumour; the other labels keep their values.
ENHANCING_IN_FILE = {"brats2020": 4, "brats2023": 3}


def file_labels(enhancing_value: int) -> dict[int, int]:
    """File value -> internal label of a scheme writing enhancing tumour as `enhancing_value`."""
    return {BACKGROUND: BACKGROUND, NECROTIC_CORE: NECROTIC_CORE, EDEMA: EDEMA, enhancing_value: ENHANCING}


# File value -> internal label for a file of either scheme (3 and 4 both mean enhancing).
ANY_FILE_LABELS = {value: label for e in ENHANCING_IN_FILE.values() for value, label in file_labels(e).items()}


def rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b) in 0-255."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
