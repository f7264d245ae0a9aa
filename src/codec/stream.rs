//! Shuffled zstd: blocks of elements, each byte-shuffled, compressed as one zstd frame.

use std::io::{BufRead, Read};

use super::CodecError;
use super::shuffle::{shuffle, unshuffle};

/// Bytes per shuffle block (a multiple of every element size). Measured with
/// `benches/store_tiers.rs` on 64 MiB of f64: with 256 KiB blocks, uniform random data
/// compressed to 1.156 instead of 1.189 at half the speed (each byte plane reaches zstd in
/// 32 KiB pieces, too short for it to settle); 1 MiB matches a whole-chunk shuffle in ratio
/// and speed, and 4 MiB gains nothing more while the scratch no longer fits in L2.
pub const BLOCK_BYTES: usize = 1024 * 1024;

/// Bytes compressed to estimate a chunk's ratio: four windows of this size spread over it.
const SAMPLE_WINDOW: usize = 16 * 1024;

fn codec_err(what: &str, e: std::io::Error) -> CodecError {
    CodecError(format!("{what}: {e}"))
}

/// Compresses `raw` (elements of `elem_size` bytes): block-wise shuffle, then one zstd frame
/// at `level`. The result is shrunk to its length, so its capacity is what it holds.
///
/// # Errors
/// A [`CodecError`] when zstd refuses the level or `raw` is not a whole number of elements.
///
/// ```
/// use spillway::codec::{compress, decompress_into};
/// let raw: Vec<u8> = (0..100_000u32).flat_map(|i| (i as f64).to_ne_bytes()).collect();
/// let packed = compress(&raw, 8, 1).unwrap();
/// assert!(packed.len() < raw.len() / 2);
/// let mut back = vec![0; raw.len()];
/// decompress_into(&packed[..], 8, &mut back).unwrap();
/// assert_eq!(back, raw);
/// ```
pub fn compress(raw: &[u8], elem_size: usize, level: i32) -> Result<Vec<u8>, CodecError> {
    compress_within(raw, elem_size, level, usize::MAX, &mut |_| true)
        .map(|c| c.expect("an unbounded compression always finishes"))
}

/// [`compress`], asking `grow(bytes)` before the output's written length passes what was
/// granted so far (about 1 MiB ahead, since only written pages of the output take RAM).
/// `Ok(None)` as soon as `grow` refuses, or when the output reaches `max_len` bytes: the
/// caller then stores the chunk another way. This lets a store compress under a
/// full budget with exactly the bytes the compressed copy turns out to need, instead of an
/// estimate from a sample.
pub(crate) fn compress_within(
    raw: &[u8],
    elem_size: usize,
    level: i32,
    max_len: usize,
    grow: &mut dyn FnMut(u64) -> bool,
) -> Result<Option<Vec<u8>>, CodecError> {
    if elem_size == 0 || !raw.len().is_multiple_of(elem_size) {
        return Err(CodecError(format!(
            "{} bytes are not a whole number of {elem_size}-byte elements",
            raw.len()
        )));
    }
    use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer, get_error_name};
    let zerr =
        |what: &str, code: usize| CodecError(format!("zstd {what}: {}", get_error_name(code)));
    let mut cctx =
        CCtx::try_create().ok_or_else(|| CodecError("zstd: cannot create a context".into()))?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(|c| zerr("level", c))?;
    // The size is known: zstd picks its parameters for it and records it in the frame.
    cctx.set_pledged_src_size(Some(raw.len() as u64))
        .map_err(|c| zerr("pledged size", c))?;
    // zstd writes straight into the spare capacity of `out` (no intermediate buffer). The
    // worst-case capacity is only virtual memory: untouched pages cost no RSS, and the final
    // shrink hands the tail back (mremap for large buffers, no copy).
    let mut out: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    let mut scratch = vec![0u8; BLOCK_BYTES.min(raw.len())];
    // Output bytes `grow` has granted. One call of zstd writes at most what it holds back
    // (a block of 128 KiB) plus the bound of its input: grant that much ahead of each call.
    // zstd gets a block's shuffled bytes in slices of `FEED` bytes; one call then writes at
    // most what it held back (up to one zstd block of 128 KiB) plus that slice, compressed.
    const FEED: usize = 64 << 10;
    let bound = zstd::zstd_safe::compress_bound(raw.len());
    let per_call = zstd::zstd_safe::compress_bound(FEED.min(raw.len()) + (128 << 10));
    let mut granted = 0usize;
    let mut ensure = |written: usize, granted: &mut usize| -> bool {
        let want = (written + per_call).min(bound);
        if want > *granted {
            if !grow((want - *granted) as u64) {
                return false;
            }
            *granted = want;
        }
        true
    };
    for block in raw.chunks(BLOCK_BYTES) {
        let s = &mut scratch[..block.len()];
        shuffle(block, elem_size, s);
        for slice in s.chunks(FEED) {
            let mut input = InBuffer::around(slice);
            while input.pos() < slice.len() {
                if out.len() >= max_len || !ensure(out.len(), &mut granted) {
                    return Ok(None);
                }
                if out.capacity() - out.len() < per_call {
                    out.reserve(per_call);
                }
                let pos = out.len();
                let mut output = OutBuffer::around_pos(&mut out, pos);
                cctx.compress_stream2(
                    &mut output,
                    &mut input,
                    zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_continue,
                )
                .map_err(|c| zerr("compress", c))?;
            }
        }
    }
    loop {
        if !ensure(out.len(), &mut granted) {
            return Ok(None);
        }
        if out.capacity() - out.len() < per_call {
            out.reserve(per_call);
        }
        let pos = out.len();
        let mut output = OutBuffer::around_pos(&mut out, pos);
        let left = cctx
            .end_stream(&mut output)
            .map_err(|c| zerr("end of frame", c))?;
        if left == 0 {
            break;
        }
    }
    if out.len() >= max_len {
        return Ok(None);
    }
    out.shrink_to_fit();
    Ok(Some(out))
}

/// Decompresses a payload made by [`compress`] from `src` into `dst`, whose length must be the
/// original byte length. Reads exactly one zstd frame; trailing input is left unread.
///
/// # Errors
/// A [`CodecError`] when the stream is corrupt, ends early, or holds more bytes than `dst`.
pub fn decompress_into<R: BufRead>(
    src: R,
    elem_size: usize,
    dst: &mut [u8],
) -> Result<(), CodecError> {
    if elem_size == 0 || !dst.len().is_multiple_of(elem_size) {
        return Err(CodecError(format!(
            "{} bytes are not a whole number of {elem_size}-byte elements",
            dst.len()
        )));
    }
    let mut dec = zstd::stream::read::Decoder::with_buffer(src)
        .map_err(|e| codec_err("zstd decoder", e))?
        .single_frame();
    let mut scratch = vec![0u8; BLOCK_BYTES.min(dst.len())];
    let total = dst.len();
    for (i, block) in dst.chunks_mut(BLOCK_BYTES).enumerate() {
        let s = &mut scratch[..block.len()];
        dec.read_exact(s).map_err(|e| {
            CodecError(format!(
                "zstd stream ends early or is corrupt at byte {} of {total}: {e}",
                i * BLOCK_BYTES
            ))
        })?;
        unshuffle(s, elem_size, block);
    }
    let mut extra = [0u8; 1];
    match dec.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(CodecError(format!(
            "zstd stream holds more than the expected {total} bytes"
        ))),
        Err(e) => Err(codec_err("zstd stream is corrupt after its data", e)),
    }
}

/// Estimates how well `raw` compresses with [`compress`] at `level`, from four windows of
/// 16 KiB spread over it (all of it when it is smaller): uncompressed over compressed bytes.
/// Spreading the windows keeps a padded or constant first block from deciding for the whole
/// chunk. Costs about 0.1 ms.
///
/// ```
/// let zeros = vec![0u8; 1 << 20];
/// assert!(spillway::codec::sample_ratio(&zeros, 8, 1) > 50.0);
/// ```
pub fn sample_ratio(raw: &[u8], elem_size: usize, level: i32) -> f64 {
    let elem_size = elem_size.max(1);
    let window = SAMPLE_WINDOW / elem_size * elem_size;
    let mut sample = Vec::with_capacity(4 * SAMPLE_WINDOW);
    if raw.len() <= 4 * window {
        sample.resize(raw.len() - raw.len() % elem_size, 0);
        shuffle(&raw[..sample.len()], elem_size, &mut sample);
    } else {
        let elems = raw.len() / elem_size;
        for w in 0..4 {
            let start = elems * w / 4 * elem_size;
            let src = &raw[start..start + window];
            let at = sample.len();
            sample.resize(at + window, 0);
            shuffle(src, elem_size, &mut sample[at..]);
        }
    }
    if sample.is_empty() {
        return 1.0;
    }
    match zstd::bulk::compress(&sample, level) {
        Ok(c) if !c.is_empty() => sample.len() as f64 / c.len() as f64,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn round_trip_across_block_boundaries() {
        for len in [
            0usize,
            8,
            BLOCK_BYTES - 8,
            BLOCK_BYTES,
            BLOCK_BYTES + 24,
            3 * BLOCK_BYTES + 800,
        ] {
            let raw: Vec<u8> = (0..len / 8)
                .flat_map(|i| ((i as f64) * 0.25).to_ne_bytes())
                .collect();
            let packed = compress(&raw, 8, 1).unwrap();
            let mut back = vec![0; raw.len()];
            decompress_into(&packed[..], 8, &mut back).unwrap();
            assert_eq!(back, raw, "len {len}");
        }
    }

    #[test]
    fn truncated_or_flipped_streams_are_errors() {
        let raw: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i as f64).sqrt().to_ne_bytes())
            .collect();
        let packed = compress(&raw, 8, 1).unwrap();
        let mut back = vec![0; raw.len()];
        assert!(decompress_into(&packed[..packed.len() / 2], 8, &mut back).is_err());
        let mut longer = vec![0; raw.len() + 8];
        assert!(decompress_into(&packed[..], 8, &mut longer).is_err());
        let mut shorter = vec![0; raw.len() - 8];
        assert!(decompress_into(&packed[..], 8, &mut shorter).is_err());
    }

    #[test]
    fn sample_ratio_tells_noise_from_structure() {
        let n = noise(1 << 20);
        let r = sample_ratio(&n, 8, 1);
        assert!(r < 1.05, "noise ratio {r}");
        let smooth: Vec<u8> = (0..(1 << 17))
            .flat_map(|i| ((i as f64) * 1e-3).sin().to_ne_bytes())
            .collect();
        assert!(sample_ratio(&smooth, 8, 1) > 1.3);
        assert_eq!(sample_ratio(&[], 8, 1), 1.0);
    }
}
