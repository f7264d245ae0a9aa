#!/usr/bin/env bash
# Interop check: zarr-python (pinned) must read the Zarr stores spillway writes with identical
# values. Called from .ci/run; exits non-zero on any mismatch.
#
#   SPILLWAY_CI_VENV      venv to create/reuse (default: ${TMPDIR:-/tmp}/spillway-ci-venv),
#                         kept outside the repository so it is cached between runs
#   SPILLWAY_CI_XARRAY=0  skip installing xarray (groups are then checked with zarr only)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SPILLWAY_CI_VENV:-${TMPDIR:-/tmp}/spillway-ci-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "zarr_interop: creating venv $venv"
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"

# Install the pinned packages only when missing (the venv may be shared with other checks).
want="zarr==3.1.6 numcodecs==0.16.6"
if ! "$py" -c 'import zarr, numcodecs, numpy, sys; sys.exit(0 if (zarr.__version__, numcodecs.__version__) == ("3.1.6", "0.16.6") else 1)' 2>/dev/null; then
    echo "zarr_interop: installing $want numpy"
    "$py" -m pip install --quiet --disable-pip-version-check $want numpy
fi
if [ "${SPILLWAY_CI_XARRAY:-1}" != "0" ] && ! "$py" -c 'import xarray' 2>/dev/null; then
    echo "zarr_interop: installing xarray==2026.9.0"
    "$py" -m pip install --quiet --disable-pip-version-check "xarray==2026.9.0" \
        || echo "zarr_interop: xarray did not install; groups are checked with zarr-python only"
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/spillway-zarr-interop.XXXXXX")"
trap 'rm -rf "$out"' EXIT

cd "$repo"
SPILLWAY_INTEROP_DIR="$out" cargo run --quiet --example zarr_interop_write
"$py" "$repo/ci/check_zarr.py" "$out"
