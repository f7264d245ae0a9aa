#!/usr/bin/env python3
"""Check that zarr-python (and xarray, if installed) read the stores spillway wrote.

Usage: python ci/check_zarr.py DIR

DIR holds the stores written by ``cargo run --example zarr_interop_write`` and their
``expected.json``. Every array is opened with zarr-python and compared with the expected
shape, dtype, chunking (and shards), dimension names, attributes and exact values. Groups are
opened through their consolidated metadata, and with ``xarray.open_zarr`` when xarray is
importable (warnings are errors there: a missing consolidated metadata would warn).
Exits 1 on any mismatch, listing every failure.
"""

import json
import os
import sys
import warnings

import numpy as np
import zarr

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def main(root):
    with open(os.path.join(root, "expected.json")) as f:
        expected = json.load(f)
    check(len(expected) >= 20, f"expected.json lists only {len(expected)} arrays")
    groups = {}
    for name, e in sorted(expected.items()):
        store = os.path.join(root, e["store"])
        path = e["array_path"].strip("/")
        try:
            if e.get("group"):
                g = zarr.open_consolidated(store, zarr_format=e["zarr_format"])
                arr = g[path]
                groups.setdefault(e["store"], []).append(e)
            else:
                arr = zarr.open_array(store, mode="r", zarr_format=e["zarr_format"])
        except Exception as exc:  # report and go on with the other stores
            check(False, f"{name}: zarr-python cannot open {store}/{path}: {exc!r}")
            continue
        want = np.array(e["values"], dtype=e["dtype"]).reshape(e["shape"])
        got = arr[...]
        check(arr.dtype == np.dtype(e["dtype"]), f"{name}: dtype {arr.dtype} != {e['dtype']}")
        check(list(arr.shape) == e["shape"], f"{name}: shape {arr.shape} != {e['shape']}")
        check(list(arr.chunks) == e["chunks"], f"{name}: chunks {arr.chunks} != {e['chunks']}")
        if e.get("shards"):
            check(list(arr.shards or []) == e["shards"], f"{name}: shards {arr.shards} != {e['shards']}")
        check(np.array_equal(got, want), f"{name}: values differ (first mismatch at "
              f"{np.argwhere(got != want)[:1].tolist() if got.shape == want.shape else 'shape'})")
        if "fill_value" in e:
            check(arr.fill_value == e["fill_value"], f"{name}: fill value {arr.fill_value} != {e['fill_value']}")
        # A partial read through zarr-python's own indexing.
        if got.ndim >= 1 and got.shape[0] > 2:
            check(np.array_equal(arr[1:-1], want[1:-1]), f"{name}: partial read differs")
        dims = e.get("dimension_names")
        if dims:
            if e["zarr_format"] == 3:
                check(list(arr.metadata.dimension_names or []) == dims,
                      f"{name}: dimension_names {arr.metadata.dimension_names} != {dims}")
            else:
                check(arr.attrs.get("_ARRAY_DIMENSIONS") == dims,
                      f"{name}: _ARRAY_DIMENSIONS {arr.attrs.get('_ARRAY_DIMENSIONS')} != {dims}")
        for k, v in (e.get("attributes") or {}).items():
            check(arr.attrs.get(k) == v, f"{name}: attribute {k} = {arr.attrs.get(k)!r}, want {v!r}")
        check("_zarrs" not in arr.attrs, f"{name}: stray _zarrs attribute")

    try:
        import xarray as xr
    except ImportError:
        xr = None
        print("xarray is not installed: groups checked with zarr-python only")
    if xr is not None:
        for store, entries in sorted(groups.items()):
            path = os.path.join(root, store)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    ds = xr.open_zarr(path, zarr_format=entries[0]["zarr_format"])
            except Exception as exc:
                check(False, f"{store}: xarray.open_zarr failed: {exc!r}")
                continue
            for e in entries:
                var = e["array_path"].strip("/").split("/")[-1]
                if e["array_path"].count("/") > 1:
                    continue  # xarray opens one group level; nested arrays were checked above
                if not check(var in ds, f"{store}: xarray sees no variable {var} (has {list(ds.data_vars)})"):
                    continue
                want = np.array(e["values"], dtype=e["dtype"]).reshape(e["shape"])
                got = ds[var].values
                check(list(ds[var].dims) == e["dimension_names"], f"{store}/{var}: dims {ds[var].dims}")
                check(np.array_equal(got, want), f"{store}/{var}: xarray values differ")
            print(f"xarray opened {store}: {sorted(ds.data_vars)}")

    if failures:
        print(f"{len(failures)} interop failure(s):")
        for f_ in failures:
            print("  " + f_)
        return 1
    print(f"zarr-python {zarr.__version__} read all {len(expected)} spillway arrays with identical values")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
