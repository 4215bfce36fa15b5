#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the wheels bench/finetune.sh needs on a lent GPU machine, whose python3
# (3.12) lacks them: cp312 manylinux builds at the versions in this project's .venv, no dependencies pulled
# (the list is complete for finetune.sh). Run it here, from the repository root, before the device call,
# then name .whl (and the shared case's folder) in the call's carry; finetune.sh installs them first.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=(monai nibabel pydantic pydantic-core annotated-types typing-inspection pydicom pyjpegls)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)
rm -rf .whl && mkdir .whl
for name in "${NAMES[@]}"; do
  version=$(.venv/bin/python -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")
  .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]/#/--platform=}" -d .whl "$name==$version"
done
ls .whl
du -sh .whl
