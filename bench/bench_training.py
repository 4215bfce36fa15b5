"""`neurotriage train` against a bare MONAI training loop with the same network, crops, loss and loader.

Both train the default architecture (MONAI's UNet, default width) with Adam, batch 2, bfloat16
autocast, on random crops of the same prepared synthetic cases, with no validation. The bare loop
is the reference: forward, loss, backward, step, nothing else. Runs alternate (neurotriage, bare,
neurotriage, bare, ...) and each side's time per epoch is the median over its runs, first epoch of
each run left out (it decodes and caches the cases). Target: neurotriage within 1.05x of the bare loop.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from neurotriage.imaging.synth import write_cohort
from neurotriage.segmentation.data import train_dataset, train_loader
from neurotriage.segmentation.losses import LossConfig, SegLoss
from neurotriage.segmentation.networks import DEFAULT_ARCH, arch_kwargs, build_model
from neurotriage.segmentation.prepare import prepare_dataset
from neurotriage.segmentation.preprocess import RECIPES
from neurotriage.segmentation.train import TrainConfig, train

CASES, ROI, BATCH, EPOCHS, ROUNDS = 8, 96, 2, 4, 3  # one crop per case per epoch
TARGET_RATIO = 1.05


def _neurotriage_epochs(prepared: Path, out: Path) -> list[float]:
    """Seconds per epoch of `neurotriage train` (no validation), first epoch left out."""
    config = TrainConfig(
        data_dir=str(prepared), out=str(out), epochs=EPOCHS, batch_size=BATCH, roi=ROI, val_fraction=0.0,
        workers=0, precision="bf16", cache=True, lr=1e-4,
    )  # fmt: skip
    history = train(config)
    return [e["seconds"] for e in history["epochs"][1:]]


def _bare_epochs(prepared: Path) -> list[float]:
    """Seconds per epoch of a bare MONAI loop over the same crops, network and loss (on the GPU when
    torch sees one, as `neurotriage train` is)."""
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    paths = sorted(prepared.glob("*.npz"))
    loader = train_loader(train_dataset(paths, (ROI,) * 3, "basic", cache=True), BATCH, 0)
    model = build_model(DEFAULT_ARCH, 4, 4, arch_kwargs(DEFAULT_ARCH)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = SegLoss(LossConfig())
    seconds = []
    for _ in range(EPOCHS):
        started = time.time()
        for batch in loader:
            image = batch["image"].as_subclass(torch.Tensor).to(device)
            label = batch["label"].as_subclass(torch.Tensor).to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(image)
            loss = loss_fn(logits, label)
            loss.backward()
            optimizer.step()
        seconds.append(time.time() - started)
    return seconds[1:]


def run() -> dict:
    """Alternate neurotriage and bare-loop runs; medians of seconds per epoch and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cohort(root / "cohort", CASES, 31)
        prepare_dataset(root / "cohort", root / "prepared", RECIPES["standard"], workers=1)
        prepared = root / "prepared"
        ours, bare = [], []
        for r in range(ROUNDS):
            ours += _neurotriage_epochs(prepared, root / f"run{r}")
            bare += _bare_epochs(prepared)
            print(f"  round {r + 1}: neurotriage {ours[-1]:.2f} s/epoch, bare MONAI loop {bare[-1]:.2f} s/epoch")
    ratio = statistics.median(ours) / statistics.median(bare)
    return {
        "neurotriage_samples_per_s": round(CASES / statistics.median(ours), 2),
        "bare_monai_samples_per_s": round(CASES / statistics.median(bare), 2),
        "cases": CASES,
        "roi": ROI,
        "batch": BATCH,
        "precision": "bf16",
        "device": "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "epochs_timed_per_run": EPOCHS - 1,
        "rounds": ROUNDS,
        "neurotriage_s_per_epoch": [round(s, 2) for s in ours],
        "bare_monai_s_per_epoch": [round(s, 2) for s in bare],
        "median_ratio": round(ratio, 3),
        "meets_target": ratio <= TARGET_RATIO,
        "target_ratio": TARGET_RATIO,
    }
