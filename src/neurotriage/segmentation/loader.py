"""Load whatever a model name names: a neurotriage model, or one trained elsewhere; several names, an ensemble.

'monai-bundle:FOLDER' is a MONAI bundle laid out as `brats_mri_segmentation` (segmentation.monai_bundle),
'nnunet:FOLDER' an nnU-Net v2 results folder (segmentation.nnunet_model); anything else is a
neurotriage checkpoint, run folder or TorchScript file, and None the packaged default (segmentation.infer).
Several names make an ensemble of their models (segmentation.ensemble).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from neurotriage.segmentation import infer
from neurotriage.segmentation.ensemble import Ensemble, ensemble
from neurotriage.segmentation.external import ExternalModel, external_spec


def load_any_model(model: Path | str | None = None) -> infer.SegmentationModel | ExternalModel:
    """The model a name names (see the module docstring); every fault is a one-line UserError."""
    spec = external_spec(model)
    if spec is None:
        return infer.load_model(model)  # looked up when called: tests stand an oracle in for it
    kind, folder = spec
    if kind == "monai-bundle":
        from neurotriage.segmentation.monai_bundle import load_bundle  # MONAI's bundle parser: only for bundles

        return load_bundle(folder)
    from neurotriage.segmentation.nnunet_model import load_nnunet  # the optional nnunetv2: only for nnU-Net

    return load_nnunet(folder)


def load_models(
    names: Sequence[Path | str] | Path | str | None,
) -> infer.SegmentationModel | ExternalModel | Ensemble:
    """The model one name names, the ensemble of the models several names name, or the packaged default for none."""
    if names is None or isinstance(names, str | Path):
        return load_any_model(names)
    if len(names) <= 1:
        return load_any_model(names[0] if names else None)
    return ensemble([load_any_model(name) for name in names])
