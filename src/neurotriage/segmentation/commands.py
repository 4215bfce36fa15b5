"""CLI subcommands for segmentation: prepare, train, segment, evaluate, metrics.

Handlers import torch, MONAI and the heavy modules lazily so `neurotriage --help` stays fast; the
choices and defaults come from modules that load without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from functools import partial
from pathlib import Path

from neurotriage import NOTICE
from neurotriage.errors import UserError
from neurotriage.segmentation.networks import ARCHS
from neurotriage.segmentation.postprocess import DEFAULT_POST, DEFAULT_TTA, PostProcess
from neurotriage.segmentation.preprocess import RECIPES
from neurotriage.segmentation.train_config import AUGMENTS, LABEL_MODES, PRECISIONS, TrainConfig

TRAIN_DEFAULTS = TrainConfig(data_dir="", out="")
MODEL_HELP = (
    "checkpoint or run folder; or a model trained elsewhere, yours to vouch for: monai-bundle:FOLDER (MONAI's "
    "brats_mri_segmentation bundle) or nnunet:FOLDER (an nnU-Net v2 results folder) (default: the packaged model); "
    "give it again to average several models' probabilities (an ensemble; see README)"
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add prepare, train, segment, evaluate and metrics."""
    _add_prepare(sub)
    _add_train(sub)
    _add_segment(sub)
    _add_evaluate(sub)
    _add_metrics(sub)
    _add_train_default(sub)


def _add_train_default(sub) -> None:
    from neurotriage.imaging.commands import add_generator_options
    from neurotriage.segmentation.default_model import DefaultRecipe

    d = DefaultRecipe()
    p = sub.add_parser(
        "train-default", help="reproduce the shipped default model from a synthetic cohort (CPU, or a GPU if present)"
    )
    p.add_argument("--work", type=Path, default=Path("default-model-run"), help="cohort, prepared data and run")
    p.add_argument("--cases", type=int, default=d.cases, help=f"synthetic cases (default {d.cases})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"cohort and training seed (default {d.seed})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--export", type=Path, default=None, help="where to write the weights (default: into the package)")
    p.add_argument("--export-only", action="store_true", help="export the best checkpoint of the run in --work as is")
    p.add_argument("--init", type=Path, default=None, help="fine-tune from these weights (e.g. an earlier default.pt)")
    p.add_argument(
        "--augment",
        choices=AUGMENTS,
        default=d.augment,
        help=f"training augmentation (default {d.augment}; as for `train --augment`)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that generate, prepare and load the data (default 0: generate and load in this "
        "process, prepare on every core)",
    )
    add_generator_options(p)
    p.set_defaults(handler=_train_default)


def _train_default(args) -> int:
    from neurotriage.segmentation.default_model import DefaultRecipe, train_default

    init = None if args.init is None else str(args.init)
    if args.workers < 0:
        raise UserError(f"--workers: must be at least 0, got {args.workers}")
    recipe = DefaultRecipe(
        cases=args.cases, epochs=args.epochs, seed=args.seed, lr=args.lr, init=init, workers=args.workers,
        augment=args.augment, generator=args.generator, random_contrast=args.random_contrast,
    )  # fmt: skip
    record = train_default(args.work, recipe, args.export, export_only=args.export_only)
    print(json.dumps(record, indent=2, default=str))
    return 0


def _add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="preprocess a BraTS folder into cached compressed arrays for training")
    p.add_argument("brats_dir", type=Path, help="folder of BraTS case folders (with segmentations)")
    p.add_argument("out_dir", type=Path, help="output folder (re-running skips finished cases)")
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="standard",
        help="classic: FLAIR/T1ce/T2 min-max, 128³ crop, cases with >=1%% tumour; "
        "standard: 4 sequences z-scored in the brain, brain bounding box (default)",
    )
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.set_defaults(handler=_prepare)


def _add_train(sub) -> None:
    d = TRAIN_DEFAULTS
    p = sub.add_parser("train", help="train a 3D segmentation network (torchrun for several processes)")
    p.add_argument("data_dir", type=Path, help="a `prepare` output folder, or a raw BraTS folder (prepared first)")
    p.add_argument("--out", type=Path, required=True, help="run folder: best.pt, last.pt, history.json, curves.png")
    p.add_argument("--arch", choices=tuple(ARCHS), default=d.arch, help=f"network (default {d.arch})")
    p.add_argument("--width", type=int, default=d.width, help="filters at the top level (default: the arch's own)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--roi", type=int, default=d.roi, help="edge of the random training crops, in voxels")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--label-mode", choices=LABEL_MODES, default=d.label_mode,
                   help="labels: softmax over 4 classes; regions: sigmoid WT/TC/ET")  # fmt: skip
    p.add_argument("--class-weights", type=_floats, default=d.class_weights,
                   help="comma-separated Dice/focal class weights")  # fmt: skip
    p.add_argument("--workers", type=int, default=d.workers, help="data-loading processes")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto: mixed precision on GPU, fp32 on CPU")  # fmt: skip
    p.add_argument(
        "--augment",
        choices=AUGMENTS,
        default=d.augment,
        help="basic: flips + intensity jitter; shading: also affine, bias fields, gamma; strong: also blur, "
        "low resolution, thick slices, noise (for synthetic-to-real transfer)",
    )
    p.add_argument("--cache", action="store_true", help="keep the decoded cases in memory (small cohorts)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--init", type=Path, default=None, help="fine-tune: start from this checkpoint's weights")
    p.set_defaults(handler=_train)


def _add_segment(sub) -> None:
    p = sub.add_parser("segment", help="segment a case (or a folder of cases) with a trained model")
    p.add_argument("case_dir", type=Path, help="a BraTS case folder, or a folder of case folders")
    p.add_argument("--model", type=Path, action="append", help=MODEL_HELP)
    p.add_argument("--out", type=Path, required=True,
                   help="SEG.nii.gz for one case; a folder (receiving <ID>_seg.nii.gz) for many")  # fmt: skip
    p.add_argument("--uncertainty", action=argparse.BooleanOptionalAction, default=True,
                   help="also write the voxel-wise uncertainty beside each segmentation: <ID>_uncertainty.nii.gz "
                   "(SEG_uncertainty.nii.gz for a named file): the normalised entropy, 0 to 1")  # fmt: skip
    _add_predict_options(p)
    p.set_defaults(handler=_segment)


def _add_predict_options(p) -> None:
    """Flip averaging, precision and post-processing; unset ones take the settings saved with the model."""
    d = DEFAULT_POST
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average over flips: 4 passes, about 2 s more per case (default: the model's setting, "
                   f"{'on' if DEFAULT_TTA else 'off'} if it has none)")  # fmt: skip
    p.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0],
                   help="auto: bfloat16 on CPUs with native support, else fp32")  # fmt: skip
    p.add_argument(
        "--min-component-ml",
        type=float,
        help=f"drop tumour components under this many ml ({_model_default(d.min_component_ml)}; 0 keeps all)",
    )
    p.add_argument(
        "--min-enhancing-ml",
        type=float,
        help=f"enhancing tumour totalling less becomes non-enhancing core ({_model_default(d.min_enhancing_ml, 'ml')})",
    )
    p.add_argument(
        "--core-contact-mm",
        type=float,
        help="in an enhancing tumour, non-enhancing core farther from the enhancement, and not enclosed "
        f"by it, becomes oedema ({_model_default(d.core_contact_mm, 'mm')}; 0 keeps it)",
    )
    p.add_argument(
        "--ring-growth-mm",
        type=float,
        help="enhancement grows over connected tissue as bright on T1ce, up to this far "
        f"({_model_default(d.ring_growth_mm, 'mm')}; 0 turns it off)",
    )
    p.add_argument(
        "--enclosed-core-mm",
        type=float,
        help="what an enhancing tumour's core surrounds within this distance becomes necrotic core, "
        f"and the reach for what its enhancement encloses ({_model_default(d.enclosed_core_mm, 'mm')}; "
        "0 turns both off)",
    )


def _model_default(value: float, unit: str = "") -> str:
    return f"default: the model's setting, {value:g}{' ' + unit if unit else ''} if it has none"


def _predict_options(args, model) -> dict:
    """`model.predict` options: the model's saved flip averaging and post-processing, with the flags given."""
    given = {f.name: getattr(args, f.name) for f in fields(PostProcess) if getattr(args, f.name) is not None}
    post = replace(model.config.postprocess, **given)
    tta = model.config.tta if args.tta is None else args.tta
    return {"tta": tta, "precision": args.precision, "post": post}


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="segment labelled cases and score them (WT/TC/ET), with montages")
    p.add_argument("data_dir", type=Path, help="folder of BraTS cases with segmentations")
    p.add_argument("--model", type=Path, action="append", help=MODEL_HELP)
    p.add_argument("--out", type=Path, default=Path("metrics.json"), help="metrics JSON; montages/ goes beside it")
    _add_predict_options(p)
    p.set_defaults(handler=_evaluate)


def _add_metrics(sub) -> None:
    p = sub.add_parser("metrics", help="Dice, IoU, HD95, sensitivity, specificity of PRED against REF")
    p.add_argument("pred", type=Path, help="predicted label NIfTI")
    p.add_argument("ref", type=Path, help="reference label NIfTI (same grid)")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.set_defaults(handler=_metrics)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers") from None


def _prepare(args) -> int:
    from neurotriage.segmentation.prepare import prepare_dataset
    from neurotriage.segmentation.preprocess import RECIPES

    report = prepare_dataset(args.brats_dir, args.out_dir, RECIPES[args.recipe], workers=args.workers)
    for case_id, reason in sorted(report.failed.items()):
        print(f"skipped {case_id}: {reason}", file=sys.stderr)
    for case_id, reason in sorted(report.excluded.items()):
        print(f"excluded {case_id}: {reason}")
    print(f"prepare ({args.recipe}): {report.summary()}")
    return 0


def _train(args) -> int:
    from neurotriage.segmentation.train import train

    config = TrainConfig(
        data_dir=str(args.data_dir),
        out=str(args.out),
        arch=args.arch,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        roi=args.roi,
        val_fraction=args.val_fraction,
        seed=args.seed,
        label_mode=args.label_mode,
        class_weights=args.class_weights,
        workers=args.workers,
        precision=args.precision,
        augment=args.augment,
        cache=args.cache,
        init=None if args.init is None else str(args.init),
    )
    train(config, resume=args.resume)
    return 0


def _segment(args) -> int:
    from tqdm import tqdm

    from neurotriage.imaging.io import discover_cases, load_case
    from neurotriage.parallel import read_ahead
    from neurotriage.segmentation.distributed import launched_rank, share_cores
    from neurotriage.segmentation.infer import output_path, write_segmentation
    from neurotriage.segmentation.loader import load_models
    from neurotriage.segmentation.uncertainty import uncertainty_path, write_uncertainty

    started = time.perf_counter()
    unreadable: dict[str, str] = {}  # a bad case folder in a batch is reported; the others still get segmented
    cases = discover_cases(args.case_dir, unreadable)
    single = len(cases) == 1 and cases[0].folder.resolve() == args.case_dir.resolve()
    if single and not args.out.is_dir() and not args.out.name.endswith((".nii", ".nii.gz")):
        raise UserError(f"--out {args.out}: for one case give a .nii.gz (or .nii) file name, or a folder")
    if not single and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: several cases need an output folder, and this is a file")
    model = load_models(args.model)
    options = _predict_options(args, model)
    rank, world, _ = launched_rank()
    if world > 1:  # torchrun: each process segments its own share of the cases, no process group needed
        share_cores()
    mine = cases[rank::world]
    failed = dict(unreadable) if rank == 0 else {}  # rank 0 reports the folders that are not cases
    for reason in failed.values():
        print(f"neurotriage: error: {reason}", file=sys.stderr)
    total = len(mine) + len(failed)
    loaded = read_ahead(mine, partial(load_case, with_seg=False))
    for files, case_load in tqdm(loaded, total=len(mine), desc="segment", unit="case", disable=single or rank > 0):
        target = output_path(files, args.out) if (not single or args.out.is_dir()) else args.out
        try:
            case = case_load.result()
            segmented = model.segment(case, uncertainty=args.uncertainty, **options)
            write_segmentation(segmented.labels, case, target)
            if segmented.uncertainty is not None:
                write_uncertainty(segmented.uncertainty, case.affine, uncertainty_path(target), case.header)
        except UserError as exc:
            if single:
                raise
            failed[files.case_id] = str(exc)  # one bad case in a folder is reported; the others still get segmented
            tqdm.write(f"neurotriage: error: {exc}", file=sys.stderr)
            continue
        beside = f" and {uncertainty_path(target).name}" if args.uncertainty else ""
        tqdm.write(f"{files.case_id}: wrote {target}{beside} ({time.perf_counter() - started:.1f} s)")
    shard = f"rank {rank}/{world}: " if world > 1 else ""
    print(f"{shard}segmented {total - len(failed)} of {total} cases, {len(failed)} failed. {NOTICE}")
    for name, reason in failed.items():
        print(f"  failed {name}: {reason}", file=sys.stderr)
    return 1 if failed else 0


def _evaluate(args) -> int:
    from neurotriage.segmentation.evaluate import evaluate_dataset
    from neurotriage.segmentation.loader import load_models

    model = load_models(args.model)
    options = _predict_options(args, model)
    result = evaluate_dataset(model, args.data_dir, args.out, **options)
    print(_table(result["mean"], key="mean", title=f"mean over {result['n_cases']} cases"))
    print(f"wrote {args.out} and {result['montages']}/<ID>.png")
    print(NOTICE)
    return 0


def _metrics(args) -> int:
    from neurotriage.segmentation.evaluate import compare_files

    result = compare_files(args.pred, args.ref)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(_table(result, key=None, title=f"{args.pred.name} vs {args.ref.name}"))
    classic = result["classic"]
    per_label = ", ".join(f"{k} {_fmt(v)}" for k, v in classic["iou_per_label"].items())
    print(f"per-label IoU: {per_label}; voxel accuracy {classic['accuracy']:.4f}")
    print(NOTICE)
    return 0


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _table(result: dict, key: str | None, title: str) -> str:
    scores = ("dice", "iou", "hd95", "sensitivity", "specificity")
    lines = [title, f"{'region':<8}" + "".join(f"{s:>13}" for s in scores)]
    for region in ("WT", "TC", "ET"):
        values = [result[region][s][key] if key else result[region][s] for s in scores]
        lines.append(f"{region:<8}" + "".join(f"{_fmt(v):>13}" for v in values))
    return "\n".join(lines)
