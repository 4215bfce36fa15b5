"""Allows `python -m neurotriage` and `torchrun -m neurotriage`."""

from neurotriage.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
