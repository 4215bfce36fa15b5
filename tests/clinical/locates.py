"""Localisation documents as `neurotriage locate --json` writes them, for clinical tests."""

from __future__ import annotations

from typing import Any


def locate(
    side: str = "right",
    regions: tuple[tuple[str, float], ...] = (
        ("frontal_lobe", 26.0),
        ("primary_motor", 3.0),
        ("corticospinal_tract", 1.0),
    ),
    eloquent: tuple[str, ...] = ("primary_motor", "corticospinal_tract"),
    enhancing: float = 4.0,
    **extra: Any,
) -> dict[str, Any]:
    """A one-sided tumour: `regions` as (name, ml) on `side`, `eloquent` areas on `side`.

    The default is a right frontal glioma reaching the precentral gyrus (primary motor cortex and
    the corticospinal tract below it), the typical cause of a left hemiparesis.
    """
    whole = sum(ml for _, ml in regions[:1]) + 4.0
    doc = {
        "hemisphere": side,
        "primary_region": regions[0][0] if regions else None,
        "regions": [
            {"name": name, "side": side, "ml": ml, "fraction_of_tumour": round(ml / whole, 3)} for name, ml in regions
        ],
        "crosses_midline": False,
        "volumes_ml": {
            "whole_tumour": whole,
            "tumour_core": 8.0,
            "enhancing": enhancing,
            "necrosis": 2.0,
            "edema": whole - 8.0,
        },
        "centroid_mm": [32.0 if side == "right" else -32.0, 18.0, 48.0],
        "n_components": 1,
        "touches_ventricles": False,
        "cortical_involvement": True,
        "eloquent": [{"name": name, "side": side} for name in eloquent],
    }
    return doc | extra


def healthy() -> dict[str, Any]:
    """A scan with no tumour."""
    return {
        "hemisphere": None,
        "primary_region": None,
        "regions": [],
        "crosses_midline": False,
        "volumes_ml": {"whole_tumour": 0.0, "tumour_core": 0.0, "enhancing": 0.0, "necrosis": 0.0, "edema": 0.0},
        "centroid_mm": None,
        "n_components": 0,
        "touches_ventricles": False,
        "cortical_involvement": False,
        "eloquent": [],
    }
