//! Byte shuffle: the bytes of `n` elements of `k` bytes each are regrouped by position, first
//! byte 0 of every element, then byte 1 of every element, and so on (blosc's "shuffle").
//!
//! Floats of smooth data share their sign, exponent and top mantissa bytes with their
//! neighbours; after the shuffle those bytes sit next to each other and zstd finds long runs in
//! them. The mantissa's low bytes stay noise. Shuffled f64 compresses faster *and* smaller
//! than unshuffled (measured in `DEPENDENCIES.md`), so the compressed tier always shuffles.
//!
//! The 8- and 4-byte cases transpose 8×8 (4×4) byte blocks inside machine words, which runs
//! several times faster than the byte-at-a-time loop.

/// Shuffles `src` (elements of `elem_size` bytes) into `dst`.
///
/// `src.len()` must equal `dst.len()` and be a multiple of `elem_size`.
///
/// ```
/// use spillway::codec::{shuffle, unshuffle};
/// let src = [1u8, 2, 3, 4, 5, 6, 7, 8];
/// let mut dst = [0u8; 8];
/// shuffle(&src, 4, &mut dst);
/// assert_eq!(dst, [1, 5, 2, 6, 3, 7, 4, 8]);
/// let mut back = [0u8; 8];
/// unshuffle(&dst, 4, &mut back);
/// assert_eq!(back, src);
/// ```
///
/// # Panics
/// When the lengths differ or are not a multiple of `elem_size` (a caller bug, never user
/// input: the store only passes whole chunks).
pub fn shuffle(src: &[u8], elem_size: usize, dst: &mut [u8]) {
    check(src, elem_size, dst);
    match elem_size {
        0 | 1 => dst.copy_from_slice(src),
        8 => shuffle8(src, dst),
        4 => shuffle4(src, dst),
        k => shuffle_generic(src, k, dst),
    }
}

/// Undoes [`shuffle`]: `src` holds the shuffled bytes, `dst` receives the elements.
///
/// ```
/// use spillway::codec::{shuffle, unshuffle};
/// let x: Vec<u8> = (0..=255).collect();
/// let mut s = vec![0; 256];
/// let mut back = vec![0; 256];
/// shuffle(&x, 8, &mut s);
/// unshuffle(&s, 8, &mut back);
/// assert_eq!(back, x);
/// ```
///
/// # Panics
/// As [`shuffle`].
pub fn unshuffle(src: &[u8], elem_size: usize, dst: &mut [u8]) {
    check(src, elem_size, dst);
    match elem_size {
        0 | 1 => dst.copy_from_slice(src),
        8 => unshuffle8(src, dst),
        4 => unshuffle4(src, dst),
        k => unshuffle_generic(src, k, dst),
    }
}

fn check(src: &[u8], elem_size: usize, dst: &[u8]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "shuffle: source and destination lengths differ"
    );
    assert!(
        elem_size == 0 || src.len().is_multiple_of(elem_size),
        "shuffle: length is not a multiple of the element size"
    );
}

fn shuffle_generic(src: &[u8], k: usize, dst: &mut [u8]) {
    let n = src.len() / k;
    for (i, e) in src.chunks_exact(k).enumerate() {
        for (b, &v) in e.iter().enumerate() {
            dst[b * n + i] = v;
        }
    }
}

fn unshuffle_generic(src: &[u8], k: usize, dst: &mut [u8]) {
    let n = src.len() / k;
    for (i, e) in dst.chunks_exact_mut(k).enumerate() {
        for (b, v) in e.iter_mut().enumerate() {
            *v = src[b * n + i];
        }
    }
}

/// Transposes the 8×8 byte matrix held in eight little-endian words: afterwards byte `i` of
/// word `b` is what byte `b` of word `i` was. Three rounds of masked swaps (4×4, 2×2, 1×1
/// blocks). The transpose is its own inverse.
#[inline(always)]
fn transpose8(w: &mut [u64; 8]) {
    #[inline(always)]
    fn swap(w: &mut [u64; 8], i: usize, j: usize, shift: u32, mask: u64) {
        let t = ((w[i] >> shift) ^ w[j]) & mask;
        w[i] ^= t << shift;
        w[j] ^= t;
    }
    for i in 0..4 {
        swap(w, i, i + 4, 32, 0x0000_0000_FFFF_FFFF);
    }
    for i in [0, 1, 4, 5] {
        swap(w, i, i + 2, 16, 0x0000_FFFF_0000_FFFF);
    }
    for i in [0, 2, 4, 6] {
        swap(w, i, i + 1, 8, 0x00FF_00FF_00FF_00FF);
    }
}

#[inline(always)]
fn transpose4(w: &mut [u32; 4]) {
    #[inline(always)]
    fn swap(w: &mut [u32; 4], i: usize, j: usize, shift: u32, mask: u32) {
        let t = ((w[i] >> shift) ^ w[j]) & mask;
        w[i] ^= t << shift;
        w[j] ^= t;
    }
    swap(w, 0, 2, 16, 0x0000_FFFF);
    swap(w, 1, 3, 16, 0x0000_FFFF);
    swap(w, 0, 1, 8, 0x00FF_00FF);
    swap(w, 2, 3, 8, 0x00FF_00FF);
}

fn shuffle8(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 8;
    let full = n / 8 * 8;
    let mut w = [0u64; 8];
    for i0 in (0..full).step_by(8) {
        let block = &src[i0 * 8..i0 * 8 + 64];
        for (i, word) in w.iter_mut().enumerate() {
            *word = u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        transpose8(&mut w);
        for (b, word) in w.iter().enumerate() {
            dst[b * n + i0..b * n + i0 + 8].copy_from_slice(&word.to_le_bytes());
        }
    }
    for i in full..n {
        for b in 0..8 {
            dst[b * n + i] = src[i * 8 + b];
        }
    }
}

fn unshuffle8(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 8;
    let full = n / 8 * 8;
    let mut w = [0u64; 8];
    for i0 in (0..full).step_by(8) {
        for (b, word) in w.iter_mut().enumerate() {
            *word =
                u64::from_le_bytes(src[b * n + i0..b * n + i0 + 8].try_into().expect("8 bytes"));
        }
        transpose8(&mut w);
        let block = &mut dst[i0 * 8..i0 * 8 + 64];
        for (i, word) in w.iter().enumerate() {
            block[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
    }
    for i in full..n {
        for b in 0..8 {
            dst[i * 8 + b] = src[b * n + i];
        }
    }
}

fn shuffle4(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 4;
    let full = n / 4 * 4;
    let mut w = [0u32; 4];
    for i0 in (0..full).step_by(4) {
        let block = &src[i0 * 4..i0 * 4 + 16];
        for (i, word) in w.iter_mut().enumerate() {
            *word = u32::from_le_bytes(block[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        }
        transpose4(&mut w);
        for (b, word) in w.iter().enumerate() {
            dst[b * n + i0..b * n + i0 + 4].copy_from_slice(&word.to_le_bytes());
        }
    }
    for i in full..n {
        for b in 0..4 {
            dst[b * n + i] = src[i * 4 + b];
        }
    }
}

fn unshuffle4(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 4;
    let full = n / 4 * 4;
    let mut w = [0u32; 4];
    for i0 in (0..full).step_by(4) {
        for (b, word) in w.iter_mut().enumerate() {
            *word =
                u32::from_le_bytes(src[b * n + i0..b * n + i0 + 4].try_into().expect("4 bytes"));
        }
        transpose4(&mut w);
        let block = &mut dst[i0 * 4..i0 * 4 + 16];
        for (i, word) in w.iter().enumerate() {
            block[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
    }
    for i in full..n {
        for b in 0..4 {
            dst[i * 4 + b] = src[b * n + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize) -> Vec<u8> {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
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
    fn fast_paths_match_the_generic_definition() {
        for k in [1usize, 2, 3, 4, 8, 16] {
            for n in [0usize, 1, 3, 7, 8, 9, 63, 64, 65, 1000] {
                let src = bytes(n * k);
                let mut fast = vec![0; n * k];
                let mut slow = vec![0; n * k];
                shuffle(&src, k, &mut fast);
                if k > 1 {
                    shuffle_generic(&src, k, &mut slow);
                    assert_eq!(fast, slow, "k={k} n={n}");
                }
                for i in 0..n {
                    for b in 0..k {
                        assert_eq!(fast[b * n + i], src[i * k + b]);
                    }
                }
                let mut back = vec![0; n * k];
                unshuffle(&fast, k, &mut back);
                assert_eq!(back, src, "k={k} n={n}");
            }
        }
    }
}
