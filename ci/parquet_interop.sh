#!/usr/bin/env bash
# Interop check for Parquet: spillway writes files (tests/parquet_interop.rs), pyarrow reads
# them back (ci/check_parquet.py) and must see identical values, dtypes and row-group layout.
#
# The virtual environment is shared with the other interop scripts:
#   SPILLWAY_CI_VENV   venv to create or reuse (default: ${TMPDIR:-/tmp}/spillway-ci-venv)
#   SPILLWAY_INTEROP_DIR   keep the files in its parquet/ subdirectory (emptied first);
#                          default: a temporary directory, removed at exit
# Exits non-zero on any mismatch.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYARROW_VERSION="26.0.1"
VENV="${SPILLWAY_CI_VENV:-${TMPDIR:-/tmp}/spillway-ci-venv}"

# Serialise venv creation with the other scripts that share it (when flock exists).
mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock 9
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "parquet interop: creating venv $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import sys, numpy, pyarrow; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION')" 2>/dev/null; then
    echo "parquet interop: installing pyarrow==$PYARROW_VERSION and numpy into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pyarrow==$PYARROW_VERSION" numpy
fi
if command -v flock >/dev/null 2>&1; then
    flock -u 9
fi

if [ -n "${SPILLWAY_INTEROP_DIR:-}" ]; then
    OUT="$SPILLWAY_INTEROP_DIR/parquet"
    rm -rf "$OUT"
    mkdir -p "$OUT"
else
    OUT="$(mktemp -d "${TMPDIR:-/tmp}/spillway-parquet-interop.XXXXXX")"
    trap 'rm -rf "$OUT"' EXIT
fi

echo "parquet interop: writing files to $OUT"
SPILLWAY_INTEROP_DIR="$OUT" cargo test --quiet --test parquet_interop
echo "parquet interop: checking them with pyarrow"
"$VENV/bin/python" ci/check_parquet.py "$OUT"
