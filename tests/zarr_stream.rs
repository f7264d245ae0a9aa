//! Chunks encoded as streams by spillway (tiles in C order into a zstd frame or raw bytes)
//! must be exactly what zarrs' own decoder reads, and an abandoned or over-full stream must
//! never leave a chunk behind.

use std::sync::Arc;

use spillway::io::zarr::{ZarrCompression, ZarrSink, ZarrSource, ZarrVersion, ZarrWriteOptions};
use spillway::io::{ChunkSink, ChunkSource};
use spillway::{ChunkData, DType, Region, Session};

/// Reads a whole array with the zarrs crate alone (its bulk decoder, not spillway's streams).
fn read_with_zarrs(path: &std::path::Path) -> Vec<f64> {
    let store = Arc::new(zarrs::filesystem::FilesystemStore::new(path).unwrap());
    let a = zarrs::array::Array::open(store, "/").unwrap();
    let shape = a.shape().to_vec();
    let ranges: Vec<std::ops::Range<u64>> = shape.iter().map(|&n| 0..n).collect();
    let subset = zarrs::array::ArraySubset::new_with_ranges(&ranges);
    a.retrieve_array_subset::<Vec<f64>>(&subset).unwrap()
}

#[test]
fn engine_writes_stream_and_read_back_exactly_through_both_decoders() {
    let dir = tempfile::tempdir().unwrap();
    let s = Session::builder()
        .memory_limit("64MiB")
        .tile_bytes(4096)
        .build()
        .unwrap();
    // Ragged along the first axis only (streams, padded with fill) and along both (zarrs).
    for (shape, chunks) in [([103, 40], [25, 40]), ([103, 41], [25, 20])] {
        let x = s.random_normal(&shape, chunks, 7).unwrap();
        let want: Vec<f64> = x.compute::<f64>().unwrap().iter().copied().collect();
        for version in [ZarrVersion::V3, ZarrVersion::V2] {
            for compression in [ZarrCompression::Zstd { level: 3 }, ZarrCompression::None] {
                let path = dir
                    .path()
                    .join(format!("{shape:?}-{version:?}-{compression:?}.zarr"));
                let opts = ZarrWriteOptions::default()
                    .version(version)
                    .compression(compression);
                x.to_zarr(&path, &opts).unwrap();
                assert_eq!(read_with_zarrs(&path), want, "{path:?} via zarrs");
                let back = s.from_zarr(&path, "/").unwrap().compute::<f64>().unwrap();
                let back: Vec<f64> = back.iter().copied().collect();
                assert_eq!(back, want, "{path:?} via spillway");
                // A region that cuts chunks, read by streaming bands.
                let src = ZarrSource::open(&path, "/").unwrap();
                let r = Region::new(vec![20, 3], vec![60, 30]);
                let part = src.read_region(&r).unwrap().to_f64_vec();
                let expect: Vec<f64> = (20..80)
                    .flat_map(|i| (3..33).map(move |j| (i, j)))
                    .map(|(i, j)| want[i * shape[1] + j])
                    .collect();
                assert_eq!(part, expect, "{path:?} region");
                let mut seen = 0;
                src.read_pieces(&r, 64, &mut |piece, data| {
                    assert!(r.contains(piece));
                    assert_eq!(data.shape(), piece.shape());
                    seen += piece.len();
                    Ok(())
                })
                .unwrap();
                assert_eq!(seen, r.len());
            }
        }
    }
}

#[test]
fn streams_that_fail_leave_no_chunk_and_wrong_sizes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let opts = ZarrWriteOptions::default().fill_value(-1.0);
    let sink = ZarrSink::create(&path, "/", &[4, 3], DType::F64, &[2, 3], &opts).unwrap();
    let row = ChunkData::from(ndarray::ArrayD::from_elem(vec![3], 5.0));

    // Abandoned halfway: nothing is stored for that chunk, it reads as fill.
    let mut st = sink.stream_chunk(&[0, 0]).unwrap().expect("zstd streams");
    st.write(&row).unwrap();
    drop(st);
    // Too many elements, then too few: typed errors, nothing stored.
    let mut st = sink.stream_chunk(&[1, 0]).unwrap().unwrap();
    st.write(&row).unwrap();
    st.write(&row).unwrap();
    assert!(st.write(&row).is_err());
    drop(st);
    let mut st = sink.stream_chunk(&[1, 0]).unwrap().unwrap();
    st.write(&row).unwrap();
    assert!(st.finish().is_err());
    // A stream still open when the store is finished does not block it, and cannot
    // complete its chunk afterwards.
    let mut late = sink.stream_chunk(&[0, 0]).unwrap().unwrap();
    sink.finish().unwrap();
    late.write(&row).unwrap();
    late.write(&row).unwrap();
    assert!(late.finish().is_err());
    let back = ZarrSource::open(&path, "/")
        .unwrap()
        .read_region(&Region::whole(&[4, 3]))
        .unwrap();
    assert_eq!(back.to_f64_vec(), vec![-1.0; 12]);
    let leftovers: Vec<_> = walk(&path)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
