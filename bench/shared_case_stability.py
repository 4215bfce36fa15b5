"""A model's outline of one real case, and how steady it stays when the scan is acquired differently.

    python -m bench.shared_case_stability CASE_DIR [--model CHECKPOINT] [--out stability.json]

The model segments the case as it is and under each perturbation below (its saved flip averaging
and post-processing), and each perturbed prediction is scored against the unperturbed one: Dice of
WT, TC and ET, as MODEL_CARD's stability table reports them, with the volumes. Thick slices are
the generator's own (`synth_slices`): slabs of 5 voxels averaged along the axial axis and linearly
interpolated back to 1 mm. Gamma maps each sequence's brain values x to m (x / m) ** gamma, m its
brain maximum. `pieces` lists the unperturbed whole tumour's 26-connected components, largest first,
each with its volume and whether its centre lies on the largest's side of the atlas midline: a piece
on the other side of a one-sided tumour is a false finding a reader would take for a second lesion.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from neurotriage.imaging.io import Case, load_case
from neurotriage.imaging.synth_slices import SliceStack, axial_axis, thick_slices
from neurotriage.segmentation.metrics import overlap_scores, region_masks


def _thick(keys: tuple[str, ...]):
    def change(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        stack = SliceStack(axial_axis(), 5, 0)
        return {k: np.where(v > 0, thick_slices(v, stack), 0) if k in keys else v for k, v in images.items()}

    return change


def _gamma(gamma: float):
    def change(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for key, image in images.items():
            top = float(image.max())
            out[key] = np.where(image > 0, top * np.clip(image / top, 0, None) ** gamma, 0).astype(np.float32)
        return out

    return change


PERTURBATIONS = {
    "flair_5mm_axial": _thick(("flair",)),
    "flair_t2_5mm_axial": _thick(("flair", "t2")),
    "t1ce_5mm_axial": _thick(("t1ce",)),
    "gamma_0.7": _gamma(0.7),
    "gamma_1.4": _gamma(1.4),
}


def volumes_ml(labels: np.ndarray, case: Case) -> dict[str, float]:
    """WT, TC and ET volumes in ml."""
    voxel_ml = float(np.prod(case.spacing)) / 1000
    return {name: round(float(mask.sum()) * voxel_ml, 2) for name, mask in region_masks(labels).items()}


def pieces(labels: np.ndarray, case: Case) -> list[dict]:
    """Whole-tumour components, largest first: ml, and "same" or "other" side of the midline than the largest."""
    from nibabel.affines import apply_affine
    from scipy import ndimage

    from neurotriage.anatomy.atlas import region_atlas  # builds or reads the cached atlas (about 2 s)

    whole = region_masks(labels)["WT"]
    components, n = ndimage.label(whole, np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    index = range(1, n + 1)
    sizes = np.asarray(ndimage.sum(whole, components, index))
    centres = apply_affine(case.affine, np.asarray(ndimage.center_of_mass(whole, components, index)))
    side = np.sign(centres[:, 0] - float(region_atlas()["midline_x"]))
    voxel_ml = float(np.prod(case.spacing)) / 1000
    largest = int(np.argmax(sizes))
    return [
        {"ml": round(float(sizes[i]) * voxel_ml, 2), "side": "same" if side[i] == side[largest] else "other"}
        for i in np.argsort(-sizes)
    ]


def stability(model, case: Case, names: list[str]) -> dict:
    """The unperturbed outline's volumes, and each perturbation's Dice against it and volumes."""
    started = time.perf_counter()
    reference = model.predict(case)
    out = {
        "case": case.case_id,
        "volumes_ml": volumes_ml(reference, case),
        "pieces": pieces(reference, case),
        "perturbations": {},
    }
    for name in names:
        perturbed = model.predict(replace(case, images=PERTURBATIONS[name](case.images)))
        dice = {
            region: round(overlap_scores(mask, region_masks(reference)[region])["dice"], 3)
            for region, mask in region_masks(perturbed).items()
        }
        out["perturbations"][name] = {"dice": dice, "volumes_ml": volumes_ml(perturbed, case)}
        print(name, json.dumps(out["perturbations"][name]), flush=True)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main() -> int:
    """Segment the case under every perturbation and write the scores."""
    from neurotriage.segmentation.infer import load_model  # torch: only when run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the packaged model)")
    parser.add_argument("--out", type=Path, default=Path("stability.json"))
    parser.add_argument("--only", nargs="*", choices=list(PERTURBATIONS), default=list(PERTURBATIONS))
    args = parser.parse_args()
    model = load_model(args.model)
    result = {
        "model": str(model.source),
        "sha256": model.sha256,
        **stability(model, load_case(args.case_dir), args.only),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("model", "volumes_ml", "pieces", "seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
