"""Generator statistics of the oedema edge, v5 against v9, on the same case seeds (no model involved).

    python -m bench.synth_oedema_stats --n 12 --seed 4242 --out oedema_stats.json

For each case seed, both generators make the case (same kind, place, anatomy and lesion plan; v9
with physics-based contrast), and the generator's own noise-free FLAIR excess of the lesions (in
white-matter units) is read while it runs. Per case:
- `edge_flair`: median FLAIR on the outline's oedema voxels that are white matter in the case's
  own anatomy (membership > 0.9), over the median of white matter 10-20 mm from the tumour: what
  the image shows at the label's edge;
- `edge_excess`: median noise-free excess on those voxels;
- `label_visible`: share of the oedema label whose excess is at least 0.05 (barely visible);
- `unlabelled_visible_ml`: tissue outside the tumour label whose excess is at least 0.05 or 0.10;
- `painted_ml`, `blended_ml`, `labelled_ml`: the painted oedema bulk, all tissue outside the
  core with any blended excess (>= 0.01), and the oedema label.
"""

from __future__ import annotations

import argparse
import json
import statistics
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
from scipy import ndimage as ndi

from neurotriage.imaging import synth, synth_contrast
from neurotriage.imaging.labels import EDEMA
from neurotriage.imaging.synth_fields import bounding_box
from neurotriage.imaging.synth_oedema import FAINT_EXCESS
from neurotriage.imaging.synth_tissue import atlas_crop
from neurotriage.imaging.synth_tumour import PAINT_EDEMA

VISIBLE = (0.05, 0.10)


class Spy:
    """Records what the generator computes on the way: the anatomy, the painted codes, the FLAIR excess."""

    def __init__(self, stack: ExitStack) -> None:
        self.seen: dict = {}
        build, paint, add, visible = synth.build_anatomy, synth._paint, synth_contrast.add_lesions, synth.visible_oedema

        def build_anatomy(*args):
            self.seen["anatomy"] = build(*args)
            return self.seen["anatomy"]

        def paint_(*args):
            out = paint(*args)
            self.seen["codes"] = out[0]
            return out

        def add_lesions(image, layer, seq):
            before = image[layer.box].copy()
            add(image, layer, seq)
            if seq == 0:  # FLAIR: the lesions' excess before noise, bias and blur
                self.seen["excess_box"], self.seen["excess"] = layer.box, image[layer.box] - before

        def visible_oedema(excess, threshold, core, brain):
            self.seen["excess_box"], self.seen["excess"] = None, excess
            return visible(excess, threshold, core, brain)

        # v9 renders through synth_render, whose own add_lesions stays unrecorded: its excess comes
        # from visible_oedema, after the FLAIR's slice profile.
        for module, name, spy in (
            (synth, "build_anatomy", build_anatomy),
            (synth, "_paint", paint_),
            (synth_contrast, "add_lesions", add_lesions),
            (synth, "visible_oedema", visible_oedema),
        ):
            stack.enter_context(mock.patch.object(module, name, spy))

    def full(self, local: np.ndarray) -> np.ndarray:
        """An array on the crop's inner box (or a box of it) placed on the full grid."""
        crop, anatomy = atlas_crop(), self.seen["anatomy"]
        inner = bounding_box(anatomy.brain, 3)
        on_inner = np.zeros(tuple(s.stop - s.start for s in inner), local.dtype)
        on_inner[self.seen["excess_box"] or tuple(slice(None) for _ in range(3))] = local
        on_crop = np.zeros(crop.shape, local.dtype)
        on_crop[inner] = on_inner
        out = np.zeros(synth.sri24.GRID_SHAPE, local.dtype)
        out[crop.box] = on_crop
        return out


def case_stats(case: synth.SynthCase, seen: dict, spy: Spy) -> dict:
    """The edge and volume statistics of one generated case (see the module docstring)."""
    crop = atlas_crop()
    wm = np.zeros(synth.sri24.GRID_SHAPE, np.float32)
    wm[crop.box] = seen["anatomy"].wm
    painted = np.zeros(synth.sri24.GRID_SHAPE, bool)
    painted[crop.box] = seen["codes"] == PAINT_EDEMA
    excess = spy.full(seen["excess"].astype(np.float32))
    flair, lesion, oedema = case.images["flair"].astype(np.float32), case.seg > 0, case.seg == EDEMA
    distance = ndi.distance_transform_edt(~lesion)
    near = (wm > 0.95) & (distance > 10) & (distance <= 20) & (flair > 0)
    edge = oedema & ~ndi.binary_erosion(lesion) & (wm > 0.9)
    core = lesion & ~oedema
    return {
        "kind": case.truth["kind"],
        "edge_flair": round(float(np.median(flair[edge]) / np.median(flair[near])), 3),
        "edge_excess": round(float(np.median(excess[edge])), 3),
        "label_visible": round(float((excess[oedema] >= VISIBLE[0]).mean()), 3),
        "unlabelled_visible_ml": [round(int(((excess >= v) & ~lesion).sum()) / 1000, 2) for v in VISIBLE],
        "painted_ml": int(painted.sum()) / 1000,
        "blended_ml": int(((excess >= FAINT_EXCESS) & ~core).sum()) / 1000,
        "labelled_ml": int(oedema.sum()) / 1000,
        "whole_tumour_ml": case.truth["volumes_ml"]["whole_tumour"],
    }


def summary(rows: list[dict]) -> dict:
    """Median and range over cases of every numeric statistic."""
    out = {}
    for key, value in rows[0].items():
        if isinstance(value, list):
            for i, threshold in enumerate(VISIBLE):
                values = [r[key][i] for r in rows]
                out[f"{key}@{threshold}"] = [statistics.median(values), min(values), max(values)]
        elif isinstance(value, int | float):
            values = [r[key] for r in rows]
            out[key] = [round(statistics.median(values), 3), min(values), max(values)]
    return out


def main() -> int:
    """Generate the paired cases, print and write the statistics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--out", type=Path, default=Path("oedema_stats.json"))
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"v5": [], "v9": []}
    with ExitStack() as stack:
        spy = Spy(stack)
        for index in range(args.n):
            seed = synth.case_seed(args.seed, index)
            for generator in rows:
                spy.seen.clear()
                case = synth.generate_case(seed, f"S{index}", generator=generator)
                if case.truth["kind"] == "healthy":
                    break
                rows[generator].append(case_stats(case, spy.seen, spy) | {"index": index})
                print(generator, json.dumps(rows[generator][-1]), flush=True)
    result = {"n_cases": len(rows["v5"]), "seed": args.seed, **{g: summary(r) for g, r in rows.items()}, "cases": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({g: result[g] for g in rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
