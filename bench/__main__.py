"""Run every bench/bench_*.py module's `run()` and merge the results into bench/results.json."""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent


def conditions() -> dict:
    """Machine facts every number is read against."""
    import os

    return {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def main(names: list[str]) -> int:
    """Run the named benchmarks (all when none is named) and write results.json."""
    out = HERE / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    modules = names or sorted(p.stem for p in HERE.glob("bench_*.py"))
    for name in modules:
        print(f"== {name}", flush=True)
        results[name] = {"conditions": conditions(), **importlib.import_module(f"bench.{name}").run()}
        print(json.dumps(results[name], indent=2), flush=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
