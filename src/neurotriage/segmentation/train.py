"""`neurotriage train`: Adam on random crops, validation every epoch, best/last checkpoints, resume.

One process by default; under `torchrun --nproc_per_node=N -m neurotriage train ...` each process
trains a shard of the data with DistributedDataParallel (gloo on CPU, nccl on GPU). Rank 0 writes
every file; the weights of all ranks are hashed at the end to prove they stayed identical.
The process-group plumbing lives in `distributed.py`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from neurotriage import NOTICE, __version__
from neurotriage.errors import UserError
from neurotriage.files import sha256_file, write_json_atomic
from neurotriage.segmentation import data as data_mod
from neurotriage.segmentation.checkpoint import checkpoint_file, read_checkpoint, save_checkpoint
from neurotriage.segmentation.distributed import (
    Dist,
    all_sum,
    barrier,
    gather_strings,
    init_distributed,
    shutdown,
    weights_sha256,
)
from neurotriage.segmentation.infer import autocast, load_model, predict_logits, resolve_precision
from neurotriage.segmentation.losses import (
    LossConfig,
    SegLoss,
    labels_from_probabilities,
    probabilities,
    voxel_accuracy,
)
from neurotriage.segmentation.metrics import REGIONS, overlap_scores, region_masks
from neurotriage.segmentation.model_config import Grid, ModelConfig, label_scheme
from neurotriage.segmentation.networks import arch_kwargs, build_model, size_divisor
from neurotriage.segmentation.prepare import prepare_dataset
from neurotriage.segmentation.preprocess import RECIPES
from neurotriage.segmentation.train_config import TrainConfig

CURVES_EVERY_S = 60  # redraw curves.png at most this often (drawing costs about a second), and at the end


def _resolve_data(config: TrainConfig, d: Dist) -> data_mod.PreparedData:
    """A prepared folder as is; a raw BraTS folder is prepared (standard recipe) by rank 0 first."""
    data_dir = Path(config.data_dir)
    if data_mod.is_prepared(data_dir):
        return data_mod.open_prepared(data_dir)
    target = Path(config.out) / "prepared"
    if d.main:
        report = prepare_dataset(data_dir, target, RECIPES["standard"])
        tqdm.write(f"prepare: {report.summary()}")
        for case_id, reason in report.failed.items():
            tqdm.write(f"prepare: skipped {case_id}: {reason}")
    barrier(d)
    return data_mod.open_prepared(target)


def model_config(config: TrainConfig, prepared: data_mod.PreparedData) -> ModelConfig:
    """The checkpoint's self-contained model config (what inference needs, nothing else)."""
    kwargs = arch_kwargs(config.arch, config.width)
    divisor = size_divisor(config.arch, kwargs)
    if config.roi % divisor or config.roi < 2 * divisor:  # the deepest level needs more than one voxel
        raise UserError(
            f"roi {config.roi} must be a multiple of {divisor}, at least {2 * divisor}, for the {config.arch} network",
            field="roi",
        )
    loss = LossConfig(config.label_mode, config.class_weights)
    return ModelConfig(
        arch=config.arch,
        arch_kwargs=kwargs,
        channels=list(prepared.recipe.channels),
        label_mode=config.label_mode,
        label_scheme=label_scheme(),
        recipe=prepared.recipe,
        grid=Grid.model_validate(prepared.grid),
        roi=[config.roi] * 3,
        divisor=divisor,
        loss=replace(loss, weights=tuple(loss.resolved_weights())),  # saved as the weights it trains with
        neurotriage_version=__version__,
    )


@dataclass
class RunState:
    """What survives an interruption: next epoch, history, best score, optimizer and RNG."""

    start_epoch: int = 0
    history: list | None = None
    best: dict | None = None
    optimizer: dict | None = None
    init_sha256: str | None = None  # of the init weights when the run started (the file may be replaced later)


def _check_run_dir(config: TrainConfig, resume: bool) -> Path | None:
    last = Path(config.out) / "last.pt"
    if resume and not last.is_file():
        raise UserError(f"{last}: nothing to resume (no last checkpoint in the run folder)", field="out")
    if not resume and last.exists():
        raise UserError(
            f"{config.out}: already holds a training run; resume it or choose another run folder", field="out"
        )
    return last if resume else None


def _load_resume(last: Path, config: TrainConfig) -> tuple[TrainConfig, ModelConfig, RunState, dict]:
    payload = read_checkpoint(last)
    training = payload["training"]
    saved = TrainConfig(**{**training["config"], "class_weights": _tuple(training["config"]["class_weights"])})
    if config.init and config.init != saved.init:
        raise UserError(
            f"{config.init}: the run in {config.out} started from {saved.init}; resume without an init checkpoint",
            field="init",
        )
    # The run's own settings win; only the epoch budget, workers and data location may change.
    merged = replace(saved, epochs=config.epochs, workers=config.workers, data_dir=config.data_dir)
    state = RunState(
        training["epoch"] + 1, training["history"], training["best"], payload["optimizer"], training.get("init_sha256")
    )
    return merged, payload["config"], state, payload["state_dict"]


def check_init(source: str | None) -> None:
    """Refuse a missing init checkpoint before any data is generated or prepared."""
    if source and not checkpoint_file(source).is_file():
        raise UserError(f"{source}: no such checkpoint (a .pt file, or a run folder holding best.pt)", field="init")


def _init_weights(source: str, model_cfg: ModelConfig) -> dict:
    """Weights of a checkpoint to fine-tune from; it must be the same network on the same inputs and outputs."""
    init = load_model(Path(source))  # upcasts half-precision weights
    keys = ("arch", "arch_kwargs", "channels", "label_mode")
    if any(getattr(init.config, k) != getattr(model_cfg, k) for k in keys):
        theirs = ", ".join(f"{k}={getattr(init.config, k)}" for k in keys)
        ours = ", ".join(f"{k}={getattr(model_cfg, k)}" for k in keys)
        raise UserError(f"{source}: a different network ({theirs}) from this run's ({ours})", field="init")
    return init.network.state_dict()


def _tuple(value):
    return tuple(value) if value is not None else None


def _train_autocast(d: Dist, precision: str):
    """Training precision: autocast on GPU unless fp32 is asked for; on CPU fp32 unless bf16 is asked for."""
    if d.device.type == "cpu" and precision == "auto":
        return contextlib.nullcontext()
    return autocast(d.device, precision)


def _score(entry: dict) -> float:
    """Higher is better: mean validation Dice over regions, else minus the training loss."""
    if entry.get("val"):
        return float(np.mean(list(entry["val"]["dice"].values())))
    return -entry["train"]["loss"]


def _epoch_line(entry: dict, epochs: int, best: bool) -> str:
    text = f"epoch {entry['epoch'] + 1}/{epochs}: train loss {entry['train']['loss']:.4f}"
    if entry.get("val"):
        dice = " ".join(f"{r} {v:.3f}" for r, v in entry["val"]["dice"].items())
        text += f", val loss {entry['val']['loss']:.4f}, Dice {dice}"
    return text + (" (best)" if best else "")


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) training into `config.out`; returns the history written to history.json."""
    last = _check_run_dir(config, resume)
    check_init(config.init)
    d = init_distributed()
    try:
        return _train(config, last, d)
    finally:
        shutdown(d)


@dataclass
class _Session:
    """The live objects of one training run on this process."""

    config: TrainConfig
    d: Dist
    model_cfg: ModelConfig
    network: torch.nn.Module  # the bare network (what is saved and validated)
    model: torch.nn.Module  # the network, wrapped in DistributedDataParallel when there are several ranks
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: SegLoss
    train_paths: list[Path]
    val_paths: list[Path]
    state: RunState
    dataset: Any = None

    def run_epoch(self, epoch: int, bar, sampler) -> dict:
        """Train one epoch, validate, and return its history entry."""
        config = self.config
        started = time.time()
        torch.manual_seed(config.seed + epoch)  # augmentation seeds: an epoch replays the same after resume
        if sampler is not None:
            sampler.set_epoch(epoch)
        if self.dataset is None:  # built once: a cached dataset decodes every case only once per run
            self.dataset = data_mod.train_dataset(
                self.train_paths, (config.roi,) * 3, config.augment, config.cache, config.workers
            )
        loader = data_mod.train_loader(self.dataset, config.batch_size, config.workers, sampler)
        entry = {"epoch": epoch, "train": self.train_epoch(loader, bar), "val": self.validate()}
        entry["seconds"] = round(time.time() - started, 2)
        return entry

    def train_epoch(self, loader, bar) -> dict:
        """One pass over the training crops; mean loss and voxel accuracy over all ranks."""
        mode, d = self.config.label_mode, self.d
        self.model.train()
        loss_sum = acc_sum = steps = 0.0
        for batch in loader:
            image = batch["image"].to(d.device).as_subclass(torch.Tensor)
            label = batch["label"].to(d.device).as_subclass(torch.Tensor)
            self.optimizer.zero_grad(set_to_none=True)
            with _train_autocast(d, self.config.precision):
                logits = self.model(image)
            loss = self.loss_fn(logits, label)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            with torch.no_grad():
                acc_sum += voxel_accuracy(logits.detach(), label[:, 0], mode)
            loss_sum += loss.item()
            steps += 1
            bar.set_postfix(loss=f"{loss.item():.4f}")
            bar.update()
        loss_sum, acc_sum, steps = all_sum([loss_sum, acc_sum, steps], d)
        return {"loss": loss_sum / max(steps, 1), "accuracy": acc_sum / max(steps, 1)}

    def validate(self) -> dict | None:
        """Whole-volume validation of this rank's share of the cases, averaged over all ranks."""
        if not self.val_paths:
            return None
        mode, d, cfg, precision = self.config.label_mode, self.d, self.model_cfg, self.config.precision
        self.network.eval()
        sums = np.zeros(2 + 2 * len(REGIONS))
        for path in self.val_paths[d.rank :: d.world]:
            item = data_mod.load_prepared({"path": path})
            label = item["label"][None]
            logits = predict_logits(self.network, item["image"][None], cfg.divisor, cfg.roi, precision)
            with torch.no_grad():
                loss = self.loss_fn(logits, label.to(logits.device)).item()
            pred = labels_from_probabilities(probabilities(logits, mode), mode)[0].cpu().numpy()
            ref = label[0, 0].numpy()
            pred_masks, ref_masks = region_masks(pred), region_masks(ref)
            scores = [overlap_scores(pred_masks[r], ref_masks[r]) for r in REGIONS]
            sums += [loss, float((pred == ref).mean()), *[s["dice"] for s in scores], *[s["iou"] for s in scores]]
        # Plain floats: numpy scalars would not load back with torch.load(weights_only=True).
        totals = (np.array(all_sum(sums.tolist(), d)) / len(self.val_paths)).tolist()
        k = len(REGIONS)
        return {
            "loss": totals[0],
            "accuracy": totals[1],
            "dice": {r: totals[2 + i] for i, r in enumerate(REGIONS)},
            "iou": {r: totals[2 + k + i] for i, r in enumerate(REGIONS)},
        }


def _check_schedule(config: TrainConfig) -> None:
    """Refuse a run that could not learn: no epochs, empty batches or a learning rate of 0 or less."""
    if config.epochs < 1:
        raise UserError(f"epochs {config.epochs} must be at least 1", field="epochs")
    if config.batch_size < 1:
        raise UserError(f"batch size {config.batch_size} must be at least 1", field="batch_size")
    if config.lr <= 0:
        raise UserError(f"learning rate {config.lr} must be positive", field="lr")


def _session(config: TrainConfig, last: Path | None, d: Dist) -> tuple[_Session, list[str], list[str]]:
    """Set up data, network, optimizer and loss, fresh or from the last checkpoint."""
    state, model_cfg, weights = RunState(history=[]), None, None
    if last is not None:
        config, model_cfg, state, weights = _load_resume(last, config)
    _check_schedule(config)
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    prepared = _resolve_data(config, d)
    model_cfg = model_cfg or model_config(config, prepared)
    train_ids, val_ids = data_mod.split_cases(list(prepared.files), config.val_fraction, config.seed)
    network = build_model(model_cfg.arch, *model_cfg.io, model_cfg.arch_kwargs).to(d.device)
    if weights is None and config.init:
        weights = _init_weights(config.init, model_cfg)
        state.init_sha256 = sha256_file(checkpoint_file(config.init))
    if weights is not None:
        network.load_state_dict(weights)
    model = torch.nn.parallel.DistributedDataParallel(network) if d.world > 1 else network
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    scaler = torch.amp.GradScaler(d.device.type, enabled=d.device.type == "cuda" and _uses_fp16(d, config))
    session = _Session(
        config, d, model_cfg, network, model, optimizer, scaler,
        SegLoss(LossConfig(config.label_mode, config.class_weights)),
        [prepared.files[i] for i in train_ids], [prepared.files[i] for i in val_ids], state,
    )  # fmt: skip
    return session, train_ids, val_ids


def _train(config: TrainConfig, last: Path | None, d: Dist) -> dict:
    session, train_ids, val_ids = _session(config, last, d)
    config, state = session.config, session.state
    sampler = _sampler(session.train_paths, d, config.seed)
    steps = math.ceil(len(session.train_paths) / (config.batch_size * d.world))
    bar = tqdm(total=config.epochs * steps, initial=state.start_epoch * steps, desc="train", unit="step",
               disable=not d.main, dynamic_ncols=True)  # fmt: skip
    started = drawn = time.time()
    for epoch in range(state.start_epoch, config.epochs):
        entry = session.run_epoch(epoch, bar, sampler)
        state.history.append(entry)
        improved = state.best is None or _score(entry) > state.best["score"]
        if improved:
            state.best = {"epoch": epoch, "score": _score(entry)}
        if d.main:
            draw = time.time() - drawn >= CURVES_EVERY_S or epoch == config.epochs - 1
            _save_epoch(Path(config.out), session, epoch, improved, draw)
            drawn = time.time() if draw else drawn
            bar.write(_epoch_line(entry, config.epochs, improved))
    bar.close()
    return _finish(Path(config.out), config, session.network, state, d, train_ids, val_ids, time.time() - started)


def _uses_fp16(d: Dist, config: TrainConfig) -> bool:
    return resolve_precision(config.precision, d.device.type) == "fp16"


def _sampler(paths: list[Path], d: Dist, seed: int):
    if d.world == 1:
        return None
    return DistributedSampler(paths, num_replicas=d.world, rank=d.rank, shuffle=True, seed=seed)


def _save_epoch(run_dir: Path, session: _Session, epoch: int, improved: bool, draw: bool) -> None:
    from neurotriage.segmentation.figures import training_curves  # matplotlib: only when curves are drawn

    state = session.state
    training = {"epoch": epoch, "config": asdict(session.config), "history": state.history, "best": state.best,
                "init_sha256": state.init_sha256}  # fmt: skip
    weights = session.network.state_dict()
    optimizer = session.optimizer.state_dict()
    save_checkpoint(run_dir / "last.pt", session.model_cfg, weights, training=training, optimizer=optimizer)
    if improved:
        save_checkpoint(run_dir / "best.pt", session.model_cfg, weights, training=training)
    write_json_atomic(run_dir / "history.json", _history(session.config, state))
    if draw:
        training_curves(state.history, run_dir / "curves.png")


def _history(config: TrainConfig, state: RunState, **extra) -> dict:
    return {"notice": NOTICE, "config": asdict(config), "best": state.best, "epochs": state.history,
            "init_sha256": state.init_sha256, **extra}  # fmt: skip


def _finish(run_dir, config, network, state: RunState, d: Dist, train_ids, val_ids, seconds: float) -> dict:
    digests = gather_strings(weights_sha256(network), d)
    ranks = {"world_size": d.world, "weights_sha256": digests}
    history = _history(config, state, cases={"train": train_ids, "val": val_ids}, ranks=ranks)
    if d.main:
        write_json_atomic(run_dir / "history.json", history)
        best = state.best or {}
        tqdm.write(
            f"trained {len(state.history)} epochs in {seconds:.0f} s on {d.world} process(es); "
            f"best epoch {best.get('epoch', -1) + 1} (score {best.get('score', float('nan')):.4f}) -> "
            f"{run_dir / 'best.pt'}, {run_dir / 'last.pt'}, history.json, curves.png"
        )
    if len(set(digests)) > 1:
        raise RuntimeError(f"ranks ended with different weights: {digests}")
    return history
