"""W3 to Parquet with Dask, the peer of `bench w3 --format parquet`:
x (40_000 x 10_000 float64 at scale 1), chunks (5_000, 10_000);
y = (x - x.mean(axis=0)) / x.std(axis=0) written with
`y.to_dask_dataframe(columns=c0..c9999).to_parquet(dir, compression="zstd")`
(one file per partition, pyarrow engine), default threaded scheduler.

Uses the helpers of shared/peers (formula, checksum, monitor, result line): run it with
shared/peers as the working directory or with PEERS_DIR pointing there. The checksum is
taken after the timed part by reading the files back in partition order.
"""
import os
import re
import shutil
import sys
import time
import uuid

sys.path.insert(0, os.environ.get("PEERS_DIR", os.getcwd()))

from peers_common import Checksum, Monitor, base_args, emit, rows, x_dask  # noqa: E402

NROWS, NCOLS, CROWS = 40_000, 10_000, 5_000


def main():
    args = base_args(__doc__).parse_args()
    n, m = rows(NROWS, args.scale), NCOLS
    cr = min(args.chunk_rows or CROWS, n)
    scratch = os.path.join(args.tmp, f"peers-w3p-{uuid.uuid4().hex[:8]}")
    os.makedirs(scratch)
    out = os.path.join(scratch, "w3.parquet")
    res = dict(workload="W3 to-parquet", engine="dask", scale=args.scale, shape=[n, m],
               chunks=[cr, m], array_bytes=n * m * 8, completed=False,
               parquet="to_dask_dataframe().to_parquet(compression='zstd'), one file per chunk")
    mon = Monitor(watch_dirs={"parquet_out": out})
    t0 = time.perf_counter()
    try:
        x = x_dask(n, m, cr)
        y = (x - x.mean(axis=0)) / x.std(axis=0)
        df = y.to_dask_dataframe(columns=[f"c{j}" for j in range(m)])
        df.to_parquet(out, compression="zstd", write_index=False)
        res["config"] = "threaded scheduler, 2 threads"
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        res["completed"] = True
    except BaseException as e:
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        res["error"] = f"{type(e).__name__}: {str(e)[:500]}"
    finally:
        mon_out = mon.stop()
    if res["completed"]:
        import pyarrow.parquet as pq

        files = sorted((f for f in os.listdir(out) if f.endswith(".parquet")),
                       key=lambda f: int(re.findall(r"\d+", f)[-1]))
        res["bytes_on_disk"] = sum(os.path.getsize(os.path.join(out, f)) for f in files)
        t1 = time.perf_counter()
        c = Checksum(ncols=m)
        r0 = 0
        for f in files:
            t = pq.read_table(os.path.join(out, f))
            import numpy as np

            block = np.column_stack([t.column(i).to_numpy() for i in range(t.num_columns)])
            c.add(block, r0=r0)
            r0 += block.shape[0]
        res["checksum"] = c.result()
        res["verify_s"] = round(time.perf_counter() - t1, 2)
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    emit(res, mon_out, args)


if __name__ == "__main__":
    main()
