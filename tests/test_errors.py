"""Library errors name fields, never command-line flags; only the CLI turns a field into its flag."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import neurotriage
from neurotriage.clinical import intake
from neurotriage.errors import UserError

PACKAGE = Path(neurotriage.__file__).parent
FLAG = re.compile(r"--[a-z]")


def library_modules() -> list[Path]:
    """Every module but the CLI's own: cli.py and each area's commands.py (or <topic>_commands.py)."""
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not p.name.endswith("commands.py") and p != PACKAGE / "cli.py"]


def user_error_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string literal inside a `UserError(...)` call."""
    texts = []
    for call in ast.walk(tree):
        func = getattr(call, "func", None)
        name = getattr(func, "id", None) or getattr(func, "attr", None)
        if isinstance(call, ast.Call) and name == "UserError":
            texts += [(c.lineno, c.value) for a in call.args for c in ast.walk(a) if isinstance(c, ast.Constant)]
    return [(line, value) for line, value in texts if isinstance(value, str)]


def test_the_scan_sees_flags_in_user_errors():
    tree = ast.parse('raise UserError(f"--width {w}: too small")\nraise errors.UserError("pass " "--out")')
    assert [line for line, text in user_error_texts(tree) if FLAG.search(text)] == [1, 2]


def test_no_library_user_error_names_a_flag():
    modules = library_modules()
    assert PACKAGE / "clinical" / "intake.py" in modules and PACKAGE / "cli.py" not in modules
    flags = [
        f"{path.relative_to(PACKAGE)}:{line}: {text!r}"
        for path in modules
        for line, text in user_error_texts(ast.parse(path.read_text(encoding="utf-8")))
        if FLAG.search(text)
    ]
    assert flags == []


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"lat": "95", "lon": "0"}, "lat", "latitude '95' is outside -90..90"),
        ({"lat": "45"}, "lon", "latitude and longitude must be given together"),
        ({"sex": "robot"}, "sex", "sex 'robot' is not one of"),
        ({"birth_date": "02/04/1961"}, "birth_date", "birth date '02/04/1961' is not a date"),
        ({"dominance": "up"}, "dominance", "language dominance 'up' is not one of"),
    ],
)
def test_patient_errors_name_the_argument(fields: dict, field: str, message: str):
    with pytest.raises(UserError) as refused:
        intake.demographics("Ada", **fields)
    assert refused.value.field == field
    assert refused.value.message.startswith(message) and "--" not in refused.value.message


def test_segmentation_errors_name_the_argument():
    from neurotriage.segmentation.data import split_cases
    from neurotriage.segmentation.infer import resolve_precision
    from neurotriage.segmentation.postprocess import PostProcess

    for raise_it, field in (
        (lambda: resolve_precision("fp8"), "precision"),
        (lambda: split_cases(["a", "b"], 1.5, 0), "val_fraction"),
        (lambda: PostProcess(ring_growth_mm=-1), "ring_growth_mm"),
    ):
        with pytest.raises(UserError) as refused:
            raise_it()
        assert refused.value.field == field and "--" not in refused.value.message


@pytest.mark.parametrize(
    ("argv", "field", "flag"),
    [
        (["train", "data", "--out", "run"], "width", "--width: "),
        (["segment", "case", "--out", "s.nii.gz"], "min_component_ml", "--min-component-ml: "),
        (["refer", "--patient", "5"], "patient_id", "--patient: "),  # a field whose flag has another dest
        (["patient", "show", "5"], "patient_id", ""),  # a positional argument: the message names it
        (["refer", "--patient", "5"], "width", ""),  # not an option of this command
        (["refer", "--patient", "5"], None, ""),
    ],
)
def test_the_cli_names_the_flag_of_the_running_command(argv: list[str], field: str | None, flag: str):
    from neurotriage.cli import build_parser, error_line

    parser = build_parser()
    shown = error_line(parser, parser.parse_args(argv), UserError("it is wrong", field=field))
    assert shown == f"neurotriage: error: {flag}it is wrong"
