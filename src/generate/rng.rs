//! Seed derivation and the random helpers every generator uses.
//!
//! The n-th request of stream s draws from `ChaCha8Rng` seeded by [`derive`]`(run, s, n, salt)`:
//! a splitmix64 cascade, portable and independent of platform, time and thread. Different salts
//! give independent streams for the selection (layer, route) and for the content, so forcing a
//! layer or route (CLI `--layer/--route`) regenerates the same content as the natural choice.
//! Only `u32`/`u64`/`f64` draws are used (rand's `usize` sampling is not portable).

use rand::{Rng as _, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator RNG.
pub type GenRng = ChaCha8Rng;

pub const SALT_SELECT: u64 = 0x005e_1ec7;
pub const SALT_CONTENT: u64 = 0xc0_47e7;
pub const SALT_MUTATE: u64 = 0x3u64 << 40 | 0x7a7e;

#[inline]
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 32 seed bytes for (run, stream, index, salt).
pub fn seed32(run: u64, stream: u64, index: u64, salt: u64) -> [u8; 32] {
    let mut st = splitmix(run ^ 0x6d65_7368_6572);
    st = splitmix(st ^ splitmix(stream.wrapping_add(0x1234_5678)));
    st = splitmix(st ^ splitmix(index.wrapping_add(0x8765_4321)));
    st = splitmix(st ^ salt);
    let mut out = [0u8; 32];
    for (i, c) in out.chunks_mut(8).enumerate() {
        c.copy_from_slice(&splitmix(st.wrapping_add(i as u64 * 0x9e37_79b9)).to_le_bytes());
    }
    out
}

/// The selection draw of (run, stream, index): layer and route choices derive from it.
pub fn select_u64(run: u64, stream: u64, index: u64) -> u64 {
    let s = seed32(run, stream, index, SALT_SELECT);
    u64::from_le_bytes(s[..8].try_into().expect("8 bytes"))
}

pub fn derive(run: u64, stream: u64, index: u64, salt: u64) -> GenRng {
    GenRng::from_seed(seed32(run, stream, index, salt))
}

pub fn from_u64(seed: u64) -> GenRng {
    GenRng::from_seed(seed32(seed, 0, 0, 0))
}

/// Uniform in `0..n` (n > 0), portable.
#[inline]
pub fn below(r: &mut GenRng, n: usize) -> usize {
    debug_assert!(n > 0);
    if n <= u32::MAX as usize { r.random_range(0..n as u32) as usize } else { r.random_range(0..n as u64) as usize }
}

/// Uniform in `lo..=hi`.
#[inline]
pub fn range(r: &mut GenRng, lo: u64, hi: u64) -> u64 {
    r.random_range(lo..=hi)
}

#[inline]
pub fn chance(r: &mut GenRng, p: f64) -> bool {
    r.random::<f64>() < p
}

#[inline]
pub fn pick<'a, T>(r: &mut GenRng, xs: &'a [T]) -> &'a T {
    &xs[below(r, xs.len())]
}

pub fn next_u64(r: &mut GenRng) -> u64 {
    r.next_u64()
}

/// Lowercase hex of `n` random nibbles.
pub fn hex(r: &mut GenRng, n: usize, out: &mut String) {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut bits = 0u64;
    for i in 0..n {
        if i % 16 == 0 {
            bits = r.next_u64();
        }
        out.push(H[(bits & 15) as usize] as char);
        bits >>= 4;
    }
}

/// A random lowercase UUID-shaped string (v4 layout).
pub fn uuid(r: &mut GenRng) -> String {
    let mut s = String::with_capacity(36);
    hex(r, 8, &mut s);
    s.push('-');
    hex(r, 4, &mut s);
    s.push_str("-4");
    hex(r, 3, &mut s);
    s.push('-');
    s.push(*pick(r, &['8', '9', 'a', 'b']));
    hex(r, 3, &mut s);
    s.push('-');
    hex(r, 12, &mut s);
    s
}

/// Weighted choice over cumulative weights (`cum` strictly increasing, last = total > 0).
pub fn weighted(r: &mut GenRng, cum: &[f64]) -> usize {
    let total = *cum.last().expect("non-empty weights");
    let x = r.random::<f64>() * total;
    cum.iter().position(|&c| x < c).unwrap_or(cum.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_sensitive() {
        // Pinned: a change here changes every generated run, on purpose only.
        let a = seed32(1, 2, 3, 4);
        assert_eq!(a, seed32(1, 2, 3, 4));
        assert_ne!(a, seed32(1, 3, 2, 4));
        assert_ne!(a, seed32(1, 2, 3, 5));
        let mut r = derive(7, 0, 0, 0);
        let u = uuid(&mut r);
        assert_eq!(u.len(), 36);
        assert!(uuid::Uuid::parse_str(&u).is_ok());
    }
}
