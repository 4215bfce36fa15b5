"""A network saved as TorchScript, so inference needs neither MONAI nor the network's Python code.

Importing MONAI costs about 2 s of every cold `segment` call, and the shipped network is MONAI's
`UNet`. `save_scripted` stores a scripted network with its checkpoint's `ModelConfig` and the
checkpoint's SHA-256 inside the archive; `load_scripted` reads them back with torch alone.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from neurotriage.errors import UserError
from neurotriage.files import atomic_path
from neurotriage.segmentation.checkpoint import check_input_channels, validated_config
from neurotriage.segmentation.model_config import ModelConfig
from neurotriage.segmentation.shipped import SCRIPTED_SUFFIX

CONFIG_FILE = "config.json"
SOURCE_FILE = "source.json"  # the checkpoint it was scripted from: file name and SHA-256
# torch 2.13 marks TorchScript deprecated in favour of torch.export, whose loader imports about as
# much as MONAI does (1.8 s measured); TorchScript still loads in 0.1 s, so its warning is silenced.
TORCHSCRIPT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"


def is_scripted(path: Path) -> bool:
    """Whether a model file is a TorchScript archive (by its `.ts` suffix)."""
    return path.suffix == SCRIPTED_SUFFIX


def save_scripted(network: nn.Module, config: ModelConfig, target: Path, source: dict[str, str]) -> Path:
    """Script an eval-mode network and save it with half-precision weights (the shipped weights are half
    precision already, so nothing is lost) and its config, atomically.

    Scripting, not tracing: a traced graph calls `aten::_convolution`, which bfloat16 autocast leaves
    alone, while a scripted one calls `conv3d` as the Python network does, so both give equal logits."""
    extra = {CONFIG_FILE: json.dumps(config.to_payload()), SOURCE_FILE: json.dumps(source)}
    with warnings.catch_warnings(), atomic_path(target) as tmp:
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATED, DeprecationWarning)
        scripted = torch.jit.script(copy.deepcopy(network).eval())  # a copy: scripting shares the parameters
        torch.jit.save(scripted.half(), str(tmp), _extra_files=extra)
    return target


def load_scripted(path: Path) -> tuple[nn.Module, ModelConfig, dict[str, str]]:
    """The scripted network (eval mode, float32 weights, on the CPU), its config and its source's record.

    Every fault is a one-line UserError naming the file."""
    extra = {CONFIG_FILE: "", SOURCE_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATED, DeprecationWarning)
            network = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a TorchScript model ({str(exc).splitlines()[0]})", field="model") from None
    if not extra[CONFIG_FILE]:
        raise UserError(f"{path}: TorchScript model without a neurotriage config", field="model")
    try:
        config, source = json.loads(extra[CONFIG_FILE]), json.loads(extra[SOURCE_FILE] or "{}")
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: the TorchScript model's config is not valid JSON ({exc})", field="model") from None
    config = validated_config(path, config)
    check_input_channels(path, network.parameters(), config)
    return network.float().eval(), config, source
