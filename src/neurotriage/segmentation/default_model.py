"""The model shipped inside the package: how it is trained, exported, and checked when loaded.

`neurotriage train-default` reproduces it: a synthetic cohort (no real data can be downloaded
here), the standard recipe, strong augmentation for synthetic-to-real transfer, then an fp16
export to `src/neurotriage/weights/default.pt` with its SHA-256 recorded beside it. The export
saves the post-processing and flip-averaging settings the model was tuned with in its config.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from neurotriage.errors import UserError
from neurotriage.files import sha256_file, write_json_atomic
from neurotriage.imaging.synth_versions import DEFAULT_GENERATOR
from neurotriage.segmentation.prepare import prepare_dataset
from neurotriage.segmentation.preprocess import RECIPES
from neurotriage.segmentation.shipped import DEFAULT_NAME, SCRIPTED_SUFFIX, package_weights_dir, record_sha256

MODEL_ID = "neurotriage-default-fastunet-v8"
# DefaultRecipe fields that the training run records in its history.json config.
RUN_FIELDS = (
    "seed",
    "epochs",
    "roi",
    "width",
    "batch_size",
    "lr",
    "val_fraction",
    "precision",
    "augment",
    "init",
    "workers",
)


@dataclass(frozen=True)
class DefaultRecipe:
    """Everything that decides the shipped model; recorded in its checkpoint."""

    cases: int = 80
    seed: int = 2026
    epochs: int = 45
    roi: int = 96
    width: int = 16
    batch_size: int = 2
    lr: float = 1e-3
    val_fraction: float = 0.0625  # 5 of 80: validation runs every epoch on whole cases, so keep it small
    precision: str = "bf16"
    augment: str = "strong"
    init: str | None = None  # weights to fine-tune from (an earlier default model); None trains from scratch
    workers: int = 0  # data-loading processes: they change the augmentation draws
    generator: str = DEFAULT_GENERATOR  # synthetic cohort version (imaging.synth_versions)
    random_contrast: float = 0.0  # share of the cohort with randomised contrast (v9)


def export(best: Path, target: Path, training: dict) -> Path:
    """Write a checkpoint as half-precision weights with its training record and SHA-256.

    Its config keeps the post-processing and flip averaging the checkpoint carries (the library's
    defaults when it carries none). Exporting the shipped weights onto themselves keeps the weights
    bit for bit (they are half precision already) and rewrites the config in the current form."""
    from neurotriage.segmentation.checkpoint import read_checkpoint, save_checkpoint  # torch (start-up time)

    payload = read_checkpoint(best)
    half = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    config = payload["config"].model_copy(update={"model_id": MODEL_ID})
    save_checkpoint(target, config, half, training=training)
    record_sha256(target)
    read_checkpoint(target)  # the exported file must load back
    export_scripted(target, target.with_suffix(SCRIPTED_SUFFIX))
    return target


def export_scripted(checkpoint: Path, target: Path) -> Path:
    """Save a checkpoint's network as TorchScript at `target` with its SHA-256 beside it, after checking
    that it gives the checkpoint's exact logits on two input sizes, in float32 and bfloat16."""
    import torch  # torch: only when exporting (keeps `neurotriage --help` light)

    from neurotriage.segmentation.infer import load_model, predict_logits  # torch, as above
    from neurotriage.segmentation.scripted import save_scripted  # torch, as above

    model = load_model(checkpoint)
    model.network.cpu()  # compared on the CPU: GPU kernels may pick other algorithms run to run
    save_scripted(model.network, model.config, target, {"file": checkpoint.name, "sha256": model.sha256})
    scripted = load_model(target)
    scripted.network.cpu()
    generator = torch.Generator().manual_seed(0)
    sizes = (model.config.roi, [s + model.config.divisor for s in model.config.roi[::-1]])
    for size, precision in itertools.product(sizes, ("fp32", "bf16")):
        x = torch.randn(1, model.config.io[0], *size, generator=generator)
        want, got = (predict_logits(m.network, x, m.config.divisor, m.config.roi, precision) for m in (model, scripted))
        if not torch.equal(want, got):
            raise RuntimeError(f"{target}: TorchScript logits differ from {checkpoint} ({list(size)}, {precision})")
    record_sha256(target)
    return target


def _init_record(init: str | None, recorded_sha256: str | None) -> dict | None:
    """The weights a fine-tuned run started from, as the run itself recorded them when it started
    (runs from before that was recorded: the file as it is now)."""
    from neurotriage.segmentation.checkpoint import checkpoint_file  # torch (start-up time)

    if not init:
        return None
    path = checkpoint_file(init)
    sha = recorded_sha256 or (sha256_file(path) if path.is_file() else None)
    return {"path": str(path), "sha256": sha}


def training_record(work: Path, recipe: DefaultRecipe) -> dict:
    """What the shipped model was trained on and for how long, from the run's history.json.

    The recipe's run settings come from the history too, so exporting a finished run with other
    command-line values still records how it was really trained."""
    history = json.loads((work / "run" / "history.json").read_text())
    trained, epochs = history["config"], history["epochs"]
    cases = sum(1 for p in (work / "cohort").iterdir() if p.is_dir() and not p.name.startswith("."))
    recipe = replace(recipe, cases=cases, **{k: trained[k] for k in RUN_FIELDS}, **cohort_spec(work / "cohort"))
    return {
        "recipe": asdict(recipe) | {"epochs_trained": len(epochs)},
        "cohort": {
            "generator": "neurotriage.imaging.synth",
            "version": recipe.generator,
            "random_contrast": recipe.random_contrast,
            "cases": recipe.cases,
            "seed": recipe.seed,
        },
        "init": _init_record(recipe.init, history.get("init_sha256")),
        "training_seconds": round(sum(e["seconds"] for e in epochs), 1),
        "best_epoch": history["best"],
        "last_epoch": epochs[-1],
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cohort_spec(cohort: Path) -> dict:
    """The generator settings a finished cohort was made with, from its `.complete` marker (an empty
    marker: a cohort from before versions were recorded, made by v5 with physics contrast)."""
    text = (cohort / ".complete").read_text() if (cohort / ".complete").is_file() else ""
    spec = json.loads(text) if text.strip() else {}
    return {"generator": spec.get("generator", "v5"), "random_contrast": spec.get("random_contrast", 0.0)}


def _ensure_cohort(cohort: Path, recipe: DefaultRecipe) -> None:
    """Generate the recipe's cohort unless it is there; refuse one made by other generator settings."""
    wanted = {"generator": recipe.generator, "random_contrast": recipe.random_contrast}
    if (cohort / ".complete").is_file():
        if cohort_spec(cohort) != wanted:
            raise UserError(
                f"{cohort}: made with {cohort_spec(cohort)}, not the {wanted} asked for; use another work folder",
                field="generator",
            )
        return
    from neurotriage.imaging.synth import write_cohort  # only when training (`--help` start-up time)

    workers = max(recipe.workers, 1)
    write_cohort(cohort, recipe.cases, recipe.seed, workers=workers, **wanted)
    write_json_atomic(cohort / ".complete", wanted)


def train_default(work: Path, recipe: DefaultRecipe, target: Path | None = None, *, export_only: bool = False) -> dict:
    """Generate the cohort, prepare it, train (resuming an interrupted run), and export the best weights.

    `export_only` exports the best checkpoint of the run in `work` as it stands (e.g. after stopping it).
    `recipe.workers` processes generate and prepare the cohort and feed training (0: generation and
    loading in this process, preparation on every core); on a GPU they keep the network fed."""
    from neurotriage.segmentation.train import TrainConfig, check_init, train  # torch: only when training (start-up)

    check_init(recipe.init)
    cohort, prepared, run = work / "cohort", work / "prepared", work / "run"
    if not export_only:
        _ensure_cohort(cohort, recipe)
        prepare_dataset(cohort, prepared, RECIPES["standard"], workers=recipe.workers or None)
        config = TrainConfig(
            data_dir=str(prepared), out=str(run), arch="fastunet", width=recipe.width, epochs=recipe.epochs,
            batch_size=recipe.batch_size, lr=recipe.lr, roi=recipe.roi, val_fraction=recipe.val_fraction,
            seed=recipe.seed, workers=recipe.workers, precision=recipe.precision, augment=recipe.augment, cache=True,
            init=recipe.init,
        )  # fmt: skip
        train(config, resume=(run / "last.pt").is_file())
    if not (run / "best.pt").is_file():
        raise UserError(f"{run}: no best.pt to export (train first)")
    record = training_record(work, recipe)
    target = target or package_weights_dir() / DEFAULT_NAME
    export(run / "best.pt", target, record)
    return record | {"exported": str(target)}
