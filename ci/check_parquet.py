"""Checks with pyarrow that spillway's Parquet files hold exactly what spillway meant to write.

Usage: python ci/check_parquet.py DIR

DIR holds the files written by `tests/parquet_interop.rs` and its `expected.json`. For every
file this checks: the row-group count and sizes, the codec of every column chunk, the column
names, Arrow types and non-nullability, and every value bit for bit (NaN as NaN, -0.0 with
its sign). Exits non-zero, listing every mismatch, if anything differs.
"""

import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMPY_OF = {
    "bool": np.bool_,
    "uint8": np.uint8,
    "int32": np.int32,
    "int64": np.int64,
    "float": np.float32,
    "double": np.float64,
}


def decode(v):
    if v == "nan":
        return float("nan")
    if v == "inf":
        return float("inf")
    if v == "-inf":
        return float("-inf")
    return v


def expected_values(col, num_rows):
    dtype = NUMPY_OF[col["arrow_type"]]
    if "affine" in col:
        a = col["affine"]
        idx = np.arange(num_rows, dtype=np.int64) * a["ncols"] + a["col"]
        return ((idx * a["mul"] + a["add"]).astype(np.float64) / a["div"]).astype(dtype)
    return np.array([decode(v) for v in col["values"]], dtype=dtype)


def mismatches(got, want):
    """Indices where the arrays differ: floats by their bits, except that any NaN matches NaN."""
    if got.dtype.kind == "f":
        uint = np.uint64 if got.dtype.itemsize == 8 else np.uint32
        same = (got.view(uint) == want.view(uint)) | (np.isnan(got) & np.isnan(want))
    else:
        same = got == want
    return np.flatnonzero(~same)


def check_file(path, exp):
    errors = []
    pf = pq.ParquetFile(path)
    md = pf.metadata
    sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    if sizes != exp["row_groups"]:
        errors.append(f"row groups {sizes}, expected {exp['row_groups']}")
    if md.num_rows != exp["num_rows"]:
        errors.append(f"{md.num_rows} rows, expected {exp['num_rows']}")
    for i in range(md.num_row_groups):
        for j in range(md.num_columns):
            codec = md.row_group(i).column(j).compression
            if codec != exp["compression"]:
                errors.append(f"row group {i} column {j}: codec {codec}, expected {exp['compression']}")
    table = pf.read()
    names = [c["name"] for c in exp["columns"]]
    if table.schema.names != names:
        errors.append(f"columns {table.schema.names}, expected {names}")
        return errors
    for col in exp["columns"]:
        field = table.schema.field(col["name"])
        if str(field.type) != col["arrow_type"]:
            errors.append(f"{col['name']}: type {field.type}, expected {col['arrow_type']}")
            continue
        if field.nullable:
            errors.append(f"{col['name']}: nullable, expected not null")
        column = table.column(col["name"])
        if column.null_count:
            errors.append(f"{col['name']}: {column.null_count} nulls")
        got = column.to_numpy()
        want = expected_values(col, exp["num_rows"])
        if got.dtype != want.dtype:
            errors.append(f"{col['name']}: numpy dtype {got.dtype}, expected {want.dtype}")
        elif got.shape != want.shape:
            errors.append(f"{col['name']}: {got.shape[0]} values, expected {want.shape[0]}")
        else:
            bad = mismatches(got, want)
            if bad.size:
                r = int(bad[0])
                errors.append(
                    f"{col['name']}: {bad.size} values differ, first at row {r}: {got[r]!r} != {want[r]!r}"
                )
    return errors


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    with open(os.path.join(root, "expected.json")) as fh:
        expected = json.load(fh)
    files = expected["files"]
    if not files:
        print("expected.json lists no files", file=sys.stderr)
        return 1
    on_disk = sorted(f for f in os.listdir(root) if f != "expected.json")
    failures = 0
    if on_disk != sorted(files):
        print(f"FAIL directory holds {on_disk}, expected {sorted(files)}")
        failures += 1
    for name, exp in sorted(files.items()):
        errors = check_file(os.path.join(root, name), exp)
        if errors:
            failures += 1
            for e in errors:
                print(f"FAIL {name}: {e}")
        else:
            print(f"ok   {name}: {exp['num_rows']} rows in {len(exp['row_groups'])} row groups, {exp['compression']}")
    print(f"pyarrow {pa.__version__}: {failures} failure(s) in {len(files)} files")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
