"""The `neurotriage` command: argument handling only, the work lives in the library.

Each area of the package registers its own subcommands through a `register(subparsers)`
function in its `commands` module. Those modules import heavy libraries (torch, MONAI)
lazily inside the handlers, so `--help` and light commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from neurotriage import NOTICE, __version__
from neurotriage.errors import UserError

COMMAND_MODULES = (
    "neurotriage.imaging.commands",
    "neurotriage.segmentation.commands",
    "neurotriage.anatomy.commands",
    "neurotriage.clinical.commands",
    "neurotriage.diagnosis.commands",
    "neurotriage.web.commands",
    "neurotriage.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every area's subcommands."""
    parser = argparse.ArgumentParser(prog="neurotriage", description=f"Brain-tumour MRI triage. {NOTICE}")
    parser.add_argument("--version", action="version", version=f"neurotriage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line on stderr and return exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except UserError as exc:
        print(f"neurotriage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurotriage: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `neurotriage patient list | head`: the reader left; silence the flush at exit too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 141
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
