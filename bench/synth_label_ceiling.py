"""How well can any model match generator v9's whole-tumour label? Ceilings from the generator itself.

    python -m bench.synth_label_ceiling --seed 909 --n 8 --out ceiling.json

v9 labels oedema where the lesions' noise-free FLAIR excess reaches the case's annotator threshold t
(drawn in 0.05-0.15). For each case with a tumour, the generator is run and read while it runs
(the healthy FLAIR before the lesions, the FLAIR as acquired, the noise-free excess), and the whole
tumour of three rules is scored against the case's label (Dice):
- `spread`: the noise-free excess at one threshold for every case (0.10): what the annotators'
  spread alone costs a model that sees the excess perfectly;
- `observer_own_t`: an observer that knows the case's healthy FLAIR exactly (with its bias, blur and
  slices, no noise) and its t: acquired minus healthy, in white-matter units, at t;
- `observer`: the same observer at 0.10, as a model must guess t.
A network sees neither the healthy image nor t, so the last is an upper bound for it, not a goal.
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

from neurotriage.imaging import synth, synth_render
from neurotriage.imaging.synth_draws import FLAIR
from neurotriage.segmentation.metrics import overlap_scores

GUESS = 0.10


class FlairSpy:
    """Records the FLAIR with and without the lesions as the v9 generator renders it, and its label inputs."""

    def __init__(self, stack: ExitStack) -> None:
        self.seen: dict = {}
        render, add, scanner, thick, visible = (
            synth_render.render, synth_render.add_lesions, synth_render.scanner, synth_render.thick_slices,
            synth.visible_oedema,
        )  # fmt: skip

        def render_(*args):
            self.seen["wm"] = float(args[5].tissue[0, FLAIR])  # the Contrast's white matter on FLAIR
            return render(*args)

        def add_lesions(image, layer, seq):
            if seq == FLAIR:
                self.seen["healthy"] = image.copy()
            return add(image, layer, seq)

        def scanner_(rng, image, bias, noise, blur):
            first = "acquired" not in self.seen
            if first:  # FLAIR comes first; its healthy twin gets the same bias and blur, without noise
                healthy = self.seen.get("healthy", image) * bias
                self.seen["bias"] = bias.copy()
                self.seen["healthy"] = ndi.gaussian_filter(healthy, blur, radius=1)  # as `scanner` blurs
            out = scanner(rng, image, bias, noise, blur)
            if first:
                self.seen["acquired"], self.seen["live"] = out.copy(), out
            return out

        def thick_slices(image, stack_):
            out = thick(image, stack_)
            if image is self.seen.get("live"):
                self.seen["acquired"], self.seen["healthy"] = out.copy(), thick(self.seen["healthy"], stack_)
            return out

        def visible_oedema(excess, threshold, core, brain):
            self.seen.update(excess=excess, t=threshold, core=core, brain=brain)
            return visible(excess, threshold, core, brain)

        for name, fake in (("render", render_), ("add_lesions", add_lesions), ("scanner", scanner_),
                           ("thick_slices", thick_slices)):  # fmt: skip
            stack.enter_context(mock.patch.object(synth_render, name, fake))
        stack.enter_context(mock.patch.object(synth, "visible_oedema", visible_oedema))


def case_ceilings(seen: dict) -> dict:
    """The three rules' whole-tumour Dice against the case's label."""
    core, brain, t = seen["core"], seen["brain"], float(seen["t"])

    def whole(excess: np.ndarray, threshold: float) -> np.ndarray:
        return synth.visible_oedema(excess, threshold, core, brain) | core

    label = whole(seen["excess"], t)

    def dice(mask: np.ndarray) -> float:
        return round(overlap_scores(mask, label)["dice"], 4)

    estimate = (seen["acquired"] - seen["healthy"]) / (seen["wm"] * seen["bias"])
    return {
        "t": round(t, 3),
        "whole_tumour_ml": int(label.sum()) / 1000,
        "spread": dice(whole(seen["excess"], GUESS)),
        "observer_own_t": dice(whole(estimate, t)),
        "observer": dice(whole(estimate, GUESS)),
    }


def measure(seed: int, n: int) -> dict:
    """Per case of `neurotriage synth --seed SEED --n N --generator v9` (physics contrast) with a tumour, and means."""
    cases = {}
    for index in range(n):
        with ExitStack() as stack:
            spy = FlairSpy(stack)
            synth.generate_case(synth.case_seed(seed, index), "x", generator="v9")
        if spy.seen.get("core") is not None and spy.seen["core"].any():
            cases[synth.cohort_case_id(synth.BRATS2020, index, n)] = case_ceilings(spy.seen)
    rules = ("spread", "observer_own_t", "observer")
    mean = {rule: round(statistics.fmean(c[rule] for c in cases.values()), 3) for rule in rules}
    return {"seed": seed, "n": n, "guess": GUESS, "cases": cases, "mean": mean}


def main() -> None:
    """Print (and optionally write) the ceilings for one synthetic v9 set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=909)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.seed, args.n)
    for case, row in result["cases"].items():
        print(case, row)
    print("mean", result["mean"])
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
