"""Full-volume inference: load a self-contained checkpoint, segment a case on its own grid, write it back.

Speed on CPU comes from three choices: the network sees only the brain's bounding box (about a
third of the BraTS grid), the whole box goes through in one pass (no overlapping windows unless
it is too large for memory), and bfloat16 autocast on CPUs with native bfloat16 support.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurotriage.errors import UserError
from neurotriage.files import sha256_file
from neurotriage.imaging.io import Case, CaseFiles, write_nifti
from neurotriage.imaging.naming import from_internal
from neurotriage.segmentation.checkpoint import check_input_channels, checkpoint_file, read_checkpoint
from neurotriage.segmentation.distributed import launched_rank
from neurotriage.segmentation.losses import labels_from_probabilities
from neurotriage.segmentation.losses import probabilities as to_probabilities
from neurotriage.segmentation.model_config import ModelConfig
from neurotriage.segmentation.networks import build_model
from neurotriage.segmentation.plausibility import check_finite, check_plausible
from neurotriage.segmentation.prediction import Prediction, Segments
from neurotriage.segmentation.preprocess import Recipe, prepare_inference
from neurotriage.segmentation.probabilities import CLASSES, REGIONS, Probabilities
from neurotriage.segmentation.scripted import is_scripted, load_scripted
from neurotriage.segmentation.shipped import default_model_path, default_scripted_path, verify_sha256
from neurotriage.segmentation.train_config import PRECISIONS

# Above this many voxels (after padding) the box is tiled with the training ROI instead of one
# pass; a BraTS brain box (about 144×192×144 = 4M) stays below it and needs no overlap at all.
MAX_WHOLE_VOXELS = 256 * 256 * 192
SPACING_TOLERANCE = 1e-3  # mm
REGION_THRESHOLD = 0.5  # losses.labels_from_probabilities keeps a sigmoid region above it


def native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX); emulated bf16 is slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _describe_grid(grid: dict) -> str:
    shape = "×".join(str(int(s)) for s in grid["shape"])
    spacing = "×".join(f"{float(s):g}" for s in grid["spacing"])
    return f"{shape} at {spacing} mm ({''.join(grid['axcodes'])})"


@dataclass
class SegmentationModel(Segments):
    """A network with the config it was trained under; `predict` turns a Case into internal labels."""

    network: nn.Module
    config: ModelConfig
    source: Path
    sha256: str  # of the checkpoint file, computed once when it was loaded

    @property
    def recipe(self) -> Recipe:
        """The preprocessing recipe the model was trained with."""
        return self.config.recipe

    @property
    def label_mode(self) -> str:
        """'labels' (softmax over 4 classes) or 'regions' (sigmoid WT/TC/ET)."""
        return self.config.label_mode

    def check_case(self, case: Case) -> None:
        """Refuse a case that is not on the grid the model was trained on."""
        grid = self.config.grid.model_dump()
        shape_ok = list(case.shape) == list(grid["shape"])
        spacing_ok = np.allclose(case.spacing, grid["spacing"], atol=SPACING_TOLERANCE)
        if not (shape_ok and spacing_ok and list(case.axcodes) == list(grid["axcodes"])):
            here = {"shape": case.shape, "spacing": case.spacing, "axcodes": case.axcodes}
            raise UserError(
                f"{case.files.folder}: case grid {_describe_grid(here)} is not the model's grid "
                f"{_describe_grid(grid)} ({self.source.name}); for a raw study run `neurotriage ingest` first"
            )

    @property
    def output_kind(self) -> str:
        """The kind of its probabilities: 'classes' (softmax, labels mode) or 'regions' (sigmoid)."""
        return CLASSES if self.label_mode == "labels" else REGIONS

    @property
    def threshold(self) -> float | None:
        """The probability at which a region is kept (regions mode), as `labels_from_probabilities` keeps it."""
        return REGION_THRESHOLD if self.output_kind == REGIONS else None

    def prediction(self, case: Case, *, tta: bool, precision: str, probabilities: bool = True) -> Prediction:
        """Its labels on the brain's bounding box and, with `probabilities`, the probabilities behind them."""
        self.check_case(case)
        check_plausible(case)
        prepared = prepare_inference(case, self.recipe)
        check_finite(prepared.image, case, "network input")
        probs = self.probabilities(prepared.image, tta=tta, precision=precision).cpu()
        check_finite(probs.numpy(), case, "network output")
        labels = labels_from_probabilities(probs[None], self.label_mode)[0].numpy()
        kept = Probabilities(self.output_kind, probs.numpy(), self.threshold) if probabilities else None
        return Prediction(labels, tuple(slice(a, b) for a, b in prepared.box), kept)

    def probabilities(self, image: np.ndarray, *, tta: bool = False, precision: str = "auto") -> torch.Tensor:
        """(C, X, Y, Z) network input -> (K, X, Y, Z) float32 probabilities, averaged over flips if `tta`."""
        x = torch.from_numpy(np.ascontiguousarray(image))[None]
        return flip_averaged(lambda t: to_probabilities(self.logits(t, precision), self.label_mode), x, tta)[0]

    def logits(self, x: torch.Tensor, precision: str = "auto") -> torch.Tensor:
        """Network logits for a (1, C, X, Y, Z) input of any size (see `predict_logits`)."""
        return predict_logits(self.network, x, self.config.divisor, self.config.roi, precision)


def flip_averaged(predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: bool) -> torch.Tensor:
    """`predict` of a (B, C, X, Y, Z) input; with `tta`, averaged with its predictions of the input flipped
    along each spatial axis in turn (each flipped back)."""
    flips = [()] + ([(2,), (3,), (4,)] if tta else [])
    total = None
    for dims in flips:
        out = predict(x.flip(dims) if dims else x)
        out = out.flip(dims) if dims else out
        total = out if total is None else total + out
    return total / len(flips)


def predict_logits(network: nn.Module, x: torch.Tensor, divisor: int, roi, precision: str = "auto") -> torch.Tensor:
    """Logits of an eval-mode network for a (B, C, X, Y, Z) input of any size, on the network's device.

    The input is zero-padded to the size divisor, then run in one pass, or tiled with the training
    ROI when it is too large for one pass.
    """
    device = next(network.parameters()).device
    size = x.shape[2:]
    padded = [-(-s // divisor) * divisor for s in size]
    pad = [p for s, t in zip(reversed(size), reversed(padded), strict=True) for p in (0, t - s)]
    x = torch.nn.functional.pad(x.to(device), pad)
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last_3d)  # oneDNN's fastest 3D conv layout
    # A TorchScript network runs in the plain interpreter: the optimising executor spends its first
    # calls profiling, and its fused graphs round bfloat16 differently from the Python network.
    with torch.inference_mode(), autocast(device, precision), torch.jit.optimized_execution(False):
        out = network(x) if int(np.prod(padded)) <= MAX_WHOLE_VOXELS else _tiled(network, x, roi)
    return out[(..., *(slice(0, s) for s in size))].float()


def _tiled(network: nn.Module, x: torch.Tensor, roi) -> torch.Tensor:
    from monai.inferers import sliding_window_inference  # MONAI: only for boxes too large for one pass

    return sliding_window_inference(x, roi_size=list(roi), sw_batch_size=1, predictor=network, overlap=0.25)


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context for a device and precision (a no-op for fp32)."""
    chosen = resolve_precision(precision, device.type)
    if chosen == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if chosen == "bf16" else torch.float16)


def resolve_precision(precision: str, device_type: str = "cpu") -> str:
    """'auto' becomes bf16 on CPUs with native bfloat16 (else fp32), and bf16/fp16 on CUDA."""
    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}", field="precision")
    if precision != "auto":
        return precision
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if native_bf16() else "fp32"


def _load_weights(network: nn.Module, state_dict: dict, path: Path, config: ModelConfig) -> None:
    check_input_channels(path, state_dict.values(), config)
    try:
        network.load_state_dict(state_dict)  # half-precision weights are cast to float32 here
    except RuntimeError as exc:
        reason = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise UserError(f"{path}: weights do not fit the '{config.arch}' network in its config ({reason})") from None


def load_model(path: Path | str | None = None) -> SegmentationModel:
    """Load a model: a checkpoint (a file, or a training run folder's best.pt) or a TorchScript `.ts`
    file; None means the packaged default, as TorchScript when it is installed (no MONAI import)."""
    if path is None:
        path = default_scripted_path() or default_model_path()
        if path is None:
            raise UserError(
                "no model given and no default model is installed with this package; "
                "train one and give its run folder or best.pt",
                field="model",
            )
        sha256 = verify_sha256(path)
    else:
        path = checkpoint_file(path)
        sha256 = sha256_file(path) if path.is_file() else None
    network, config = _scripted(path) if is_scripted(path) else _from_checkpoint(path)
    network.to(inference_device(), memory_format=torch.channels_last_3d)
    return SegmentationModel(network, config, path, sha256)


def inference_device() -> torch.device:
    """The GPU when torch sees one (under torchrun, this process's own GPU), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", launched_rank()[2] % torch.cuda.device_count())


def _scripted(path: Path) -> tuple[nn.Module, ModelConfig]:
    if not path.is_file():
        raise UserError(f"{path}: model file not found", field="model")
    network, config, _ = load_scripted(path)
    return network, config


def _from_checkpoint(path: Path) -> tuple[nn.Module, ModelConfig]:
    payload = read_checkpoint(path)
    config = payload["config"]
    network = build_model(config.arch, *config.io, config.arch_kwargs)
    _load_weights(network, payload["state_dict"], path, config)
    return network.eval(), config


def output_path(files: CaseFiles, out_dir: Path) -> Path:
    """`<ID>_seg.nii.gz` (BraTS 2020) or `<ID>-seg.nii.gz` (BraTS 2023) in `out_dir`."""
    return out_dir / files.naming.filename(files.case_id, "seg")


def write_segmentation(labels: np.ndarray, case: Case, path: Path) -> Path:
    """Write internal labels in the case's own label naming, grid and header (atomic)."""
    return write_nifti(from_internal(labels, case.files.naming), case.affine, path, header=case.header)
