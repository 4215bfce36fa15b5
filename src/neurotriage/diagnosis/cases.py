"""Where a study's images are: a case folder on disk, or a synthetic case made on first use."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.files import partial_dir
from neurotriage.imaging.naming import BRATS2020


def synthetic_cases_dir() -> Path:
    """Synthetic cases of sample studies are generated under NEUROTRIAGE_HOME/cases."""
    return load_settings().home / "cases"


def case_folder(case_ref: str, synthetic_seed: int | None) -> Path:
    """The folder of a study's case; a sample study's synthetic case is generated the first time."""
    path = Path(case_ref)
    if path.is_dir():
        return path
    if synthetic_seed is None:
        raise UserError(f"study {case_ref}: case folder not found")
    folder = synthetic_cases_dir() / case_ref
    if not folder.is_dir():
        _generate(folder, synthetic_seed)
    return folder


def _generate(folder: Path, seed: int) -> None:
    """Write the synthetic case in a private hidden folder and rename it into place. Processes that
    generate the same case at once all succeed: the first rename wins and the others keep its folder
    (renaming onto a folder that has files fails), so no reader ever sees a case being replaced."""
    from neurotriage.imaging.synth import generate_case, write_case  # scipy: only for a new case (start-up time)

    built = partial_dir(folder)
    try:
        case = write_case(generate_case(seed, folder.name), built, BRATS2020)
        try:
            os.rename(case, folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(built, ignore_errors=True)
