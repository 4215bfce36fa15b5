"""Segmentation benchmarks: full-case CPU inference per architecture, training step time, `prepare` throughput.

Inference runs in a fresh subprocess per architecture and precision, so time and peak RSS are
honest (they include torch/MONAI start-up memory, model load, preprocessing and the NIfTI write).
Networks have random weights: speed does not depend on training. `prepare` is compared with a
plain nibabel + numpy loop doing the same classic-recipe work (min-max, 128³ crop, np.save).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

TARGET_INFER_S = 10.0
TARGET_RSS_MB = 3072
TARGET_CLI_S = 15.0
TRAIN_ROI, TRAIN_BATCH = 128, 2
N_PREPARE_CASES = 4


def _write_synth_cases(root: Path, n: int) -> list[Path]:
    from neurotriage.imaging.naming import BRATS2020
    from neurotriage.imaging.synth import case_seed, generate_case, write_case

    # Tumour kinds forced so every case has a lesion (a healthy draw would be a different workload).
    kinds = ("enhancing", "non_enhancing")
    return [
        write_case(generate_case(case_seed(0, i), f"BENCH_{i:03d}", kind=kinds[i % 2]), root, BRATS2020)
        for i in range(n)
    ]


def _random_checkpoint(arch: str, path: Path) -> Path:
    """A checkpoint with random weights on the BraTS grid, standard recipe, default arch kwargs."""
    import torch

    from neurotriage.imaging.sri24 import GRID_SHAPE
    from neurotriage.segmentation.checkpoint import save_checkpoint
    from neurotriage.segmentation.model_config import ModelConfig, label_scheme
    from neurotriage.segmentation.networks import arch_kwargs, build_model, size_divisor
    from neurotriage.segmentation.preprocess import RECIPES

    torch.manual_seed(0)
    kwargs = arch_kwargs(arch)
    recipe = RECIPES["standard"]
    config = ModelConfig(
        arch=arch,
        arch_kwargs=kwargs,
        channels=list(recipe.channels),
        label_mode="labels",
        label_scheme=label_scheme(),
        recipe=recipe,
        grid={"shape": list(GRID_SHAPE), "spacing": [1.0, 1.0, 1.0], "axcodes": ["L", "P", "S"]},
        roi=[128] * 3,
        divisor=size_divisor(arch, kwargs),
    )
    return save_checkpoint(path, config, build_model(arch, 4, 4, kwargs).state_dict())


def _child_infer(ckpt: str, case_dir: str, out: str, precision: str) -> dict:
    """In a fresh process: import, load model and case, predict, write; report time and peak RSS."""
    started = time.perf_counter()
    from neurotriage.imaging.io import load_case
    from neurotriage.segmentation.infer import load_model, write_segmentation

    imported = time.perf_counter()
    model = load_model(ckpt)
    case = load_case(case_dir, with_seg=False)
    loaded = time.perf_counter()
    labels = model.predict(case, precision=precision)
    predicted = time.perf_counter()
    write_segmentation(labels, case, Path(out))
    done = time.perf_counter()
    return {
        "inference_s": round(done - imported, 2),  # load + model + write: the target
        "import_s": round(imported - started, 2),
        "load_s": round(loaded - imported, 2),
        "predict_s": round(predicted - loaded, 2),
        "write_s": round(done - predicted, 2),
        "cpu_s": round(time.process_time(), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _in_subprocess(*args: str) -> dict:
    command = [sys.executable, "-m", "bench.bench_segmentation", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_inference(case_dir: Path, work: Path) -> dict:
    """Per architecture and precision: full-case inference time and peak RSS in a fresh process."""
    from neurotriage.segmentation.networks import ARCHS

    results = {}
    for arch in ARCHS:
        ckpt = _random_checkpoint(arch, work / f"{arch}.pt")
        for precision in ("fp32", "bf16"):
            key = f"{arch}/{precision}"
            results[key] = _in_subprocess("infer", str(ckpt), str(case_dir), str(work / f"{arch}.nii.gz"), precision)
            print(f"  inference {key}: {results[key]}", flush=True)
    return results


def bench_cold_cli(case_dir: Path, ckpt: Path, out: Path, repeats: int = 2) -> dict:
    """Whole `neurotriage segment` calls, Python start-up included (default precision)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "neurotriage",
            "segment",
            str(case_dir),
            "--model",
            str(ckpt),
            "--out",
            str(out),
        ]
        subprocess.run(command, check=True, capture_output=True)
        times.append(round(time.perf_counter() - started, 2))
    return {"wall_s": times, "best_s": min(times), "target_s": TARGET_CLI_S, "met": min(times) <= TARGET_CLI_S}


def bf16_agreement(ckpt: Path, case_dir: Path) -> dict:
    """How far bfloat16 outputs move from fp32: voxel agreement and whole-tumour Dice between the two."""
    from neurotriage.imaging.io import load_case
    from neurotriage.segmentation.infer import load_model
    from neurotriage.segmentation.metrics import overlap_scores

    model = load_model(ckpt)
    case = load_case(case_dir, with_seg=False)
    fp32, bf16 = (model.predict(case, precision=p) for p in ("fp32", "bf16"))
    return {
        "voxel_agreement": round(float((fp32 == bf16).mean()), 6),
        "wt_dice_bf16_vs_fp32": round(overlap_scores(fp32 > 0, bf16 > 0)["dice"], 6),
        "model": str(ckpt.name),
    }


def bench_train_steps(steps: int = 2) -> dict:
    """Seconds per Adam step on random data at the CLI defaults (ROI 128³, batch 2), per architecture."""
    import torch

    from neurotriage.segmentation.losses import SegLoss
    from neurotriage.segmentation.networks import ARCHS, arch_kwargs, build_model

    results = {}
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(TRAIN_BATCH, 4, *(TRAIN_ROI,) * 3, generator=generator)
    labels = torch.randint(0, 4, (TRAIN_BATCH, 1, *(TRAIN_ROI,) * 3), generator=generator)
    runs = [(arch, "fp32") for arch in ARCHS] + [("fastunet", "bf16")]
    for arch, precision in runs:
        model = build_model(arch, 4, 4, arch_kwargs(arch)).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        loss_fn = SegLoss()
        times = []
        for step in range(steps + 1):  # the first step builds oneDNN kernels: not timed
            started = time.perf_counter()
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(image)
            loss_fn(logits, labels).backward()
            optimizer.step()
            if step:
                times.append(time.perf_counter() - started)
        results[f"{arch}/{precision}"] = {"step_s": round(float(np.mean(times)), 2), "steps_timed": steps}
        print(f"  train step {arch}/{precision}: {results[f'{arch}/{precision}']}", flush=True)
    return results


def _baseline_prepare(case_dirs: list[Path], out: Path) -> None:
    """The plain loop doing the classic recipe: nibabel + numpy min-max per volume, a fixed 128³ crop,
    np.save, one case after another."""
    import nibabel as nib

    out.mkdir(parents=True, exist_ok=True)
    for folder in case_dirs:
        case_id = folder.name
        channels = []
        for key in ("flair", "t1ce", "t2"):
            volume = nib.load(folder / f"{case_id}_{key}.nii.gz").get_fdata(dtype=np.float32)
            channels.append((volume - volume.min()) / (volume.max() - volume.min()))
        image = np.stack(channels, axis=3)[56:184, 56:184, 13:141]
        mask = np.asanyarray(nib.load(folder / f"{case_id}_seg.nii.gz").dataobj).astype(np.uint8)
        mask[mask == 4] = 3
        np.save(out / f"{case_id}_image.npy", image)
        np.save(out / f"{case_id}_mask.npy", mask[56:184, 56:184, 13:141])


def bench_prepare(src: Path, case_dirs: list[Path], work: Path) -> dict:
    """Cases per second: `prepare` (classic recipe, all cores, then one worker) vs the baseline."""
    from neurotriage.segmentation.prepare import prepare_dataset
    from neurotriage.segmentation.preprocess import RECIPES

    # Keep every case (no 1 % rule) so both sides load, scale, crop and write the same cases.
    recipe = replace(RECIPES["classic"], min_tumour_fraction=0.0)
    started = time.perf_counter()
    _baseline_prepare(case_dirs, work / "baseline")
    baseline_s = time.perf_counter() - started
    n = len(case_dirs)
    result = {"cases": n, "baseline_plain_loop_cases_per_s": round(n / baseline_s, 3)}
    for label, workers in (("all_cores", os.cpu_count() or 1), ("one_worker", 1)):
        started = time.perf_counter()
        report = prepare_dataset(src, work / f"ours_{label}", recipe, workers=workers, progress=False)
        assert len(report.prepared) == n, report.failed
        seconds = time.perf_counter() - started
        result[f"prepare_{label}_cases_per_s"] = round(n / seconds, 3)
        result[f"speedup_{label}"] = round(baseline_s / seconds, 2)
    result["recipe"] = "classic (FLAIR/T1ce/T2 min-max, 128³ crop), 1 % rule off so all cases are written"
    result["target_speedup"] = 2.0
    result["met"] = result["speedup_all_cores"] >= 2.0
    return result


def run() -> dict:
    """Run every segmentation benchmark and return the numbers with their conditions."""
    from neurotriage.segmentation.infer import default_model_path, native_bf16, resolve_precision
    from neurotriage.segmentation.networks import DEFAULT_ARCH

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_seg_") as tmp:
        work = Path(tmp)
        case_dirs = _write_synth_cases(work / "cases", N_PREPARE_CASES)
        case = case_dirs[0]
        inference = bench_inference(case, work)
        default_ckpt = work / f"{DEFAULT_ARCH}.pt"
        cold = bench_cold_cli(case, default_ckpt, work / "cli.nii.gz")
        agreement = {"random_weights": bf16_agreement(default_ckpt, case)}
        if default_model_path() is not None:
            agreement["packaged_default"] = bf16_agreement(default_model_path(), case)
        training = bench_train_steps()
        prepare = bench_prepare(work / "cases", case_dirs, work)
    default = inference[f"{DEFAULT_ARCH}/{resolve_precision('auto')}"]
    return {
        "input": "one synthetic 240×240×155 case (neurotriage.imaging.synth), brain box about 150×170×140",
        "threads": int(__import__("torch").get_num_threads()),
        "native_bf16": native_bf16(),
        "load_average_before_after": [round(v, 2) for v in (*load_before[:1], os.getloadavg()[0])],
        "default_arch": DEFAULT_ARCH,
        "default_precision": resolve_precision("auto"),
        "default_inference": {
            **default,
            "target_s": TARGET_INFER_S,
            "target_rss_mb": TARGET_RSS_MB,
            "met": default["inference_s"] <= TARGET_INFER_S and default["peak_rss_mb"] <= TARGET_RSS_MB,
        },
        "inference": inference,
        "cold_cli_segment": cold,
        "bf16_vs_fp32": agreement,
        "train_step": {"roi": TRAIN_ROI, "batch": TRAIN_BATCH, **training},
        "prepare": prepare,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["infer"]:
        print(json.dumps(_child_infer(*sys.argv[2:6])))
