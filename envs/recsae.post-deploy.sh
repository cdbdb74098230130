#!/usr/bin/env bash
# Snakemake runs this once, inside the env just created from recsae.yaml, in the directory it
# runs in (the repository root when started as the README says; otherwise set RECSAE_ROOT to the
# checkout). It installs the recsae package editable and without dependencies (recsae.yaml
# provides them), so the rules import the checkout's src/.
set -euo pipefail
root=${RECSAE_ROOT:-$PWD}
if ! grep -qs '^name = "recsae"' "$root/pyproject.toml"; then
  echo "recsae post-deploy: $root is not the recsae checkout; set RECSAE_ROOT to it" >&2
  exit 1
fi
python -m pip install --no-deps --no-build-isolation --editable "$root"
