//! Dropout with a counter-based random mask: element `i` of call `key` is kept when a hash of
//! `(key, i)` falls below `keep · 2³²`. Any slice of the mask can be computed independently, so
//! the pass is parallel, gives the same mask for any thread count, and the backward pass
//! recomputes the mask instead of storing it.

use rayon::prelude::*;

use super::conv_cpu::ConvFloat;

/// splitmix64's finaliser: a bijective 64-bit mix with full avalanche.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `keep · 2³²`, the threshold the 32-bit hash is compared with.
fn threshold(keep: f64) -> u64 {
    (keep.clamp(0.0, 1.0) * 4_294_967_296.0) as u64
}

#[inline(always)]
fn kept(key: u64, i: u64, threshold: u64) -> bool {
    (mix64(key.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))) >> 32) < threshold
}

const CHUNK: usize = 1 << 14;

/// `out[i] = x[i] · mask(i) / keep` (in place: `x` becomes the output).
pub fn apply_in_place<T: ConvFloat>(values: &mut [T], key: u64, keep: f64, scale: T) {
    let th = threshold(keep);
    values
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c * CHUNK) as u64;
            for (j, v) in chunk.iter_mut().enumerate() {
                let m = if kept(key, base + j as u64, th) {
                    scale
                } else {
                    T::ZERO
                };
                *v = *v * m;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_rate_matches_keep_probability_and_is_thread_independent() {
        for keep in [0.5, 0.75, 0.1] {
            let n = 200_000;
            let mut v = vec![1.0f64; n];
            apply_in_place(&mut v, 42, keep, 1.0 / keep);
            let kept = v.iter().filter(|&&x| x != 0.0).count() as f64 / n as f64;
            assert!((kept - keep).abs() < 0.005, "{keep}: {kept}");
            assert!(
                v.iter()
                    .all(|&x| x == 0.0 || (x - 1.0 / keep).abs() < 1e-12)
            );
            // Same key → same mask, computed in one thread.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let mut w = vec![1.0f64; n];
            pool.install(|| apply_in_place(&mut w, 42, keep, 1.0 / keep));
            assert_eq!(v, w);
            // Another key → another mask.
            let mut z = vec![1.0f64; n];
            apply_in_place(&mut z, 43, keep, 1.0 / keep);
            assert_ne!(v, z);
        }
    }

    #[test]
    fn neighbouring_elements_are_uncorrelated() {
        let n = 100_000u64;
        let th = threshold(0.5);
        let both = (0..n)
            .filter(|&i| kept(7, 2 * i, th) && kept(7, 2 * i + 1, th))
            .count() as f64;
        assert!((both / n as f64 - 0.25).abs() < 0.01);
    }
}
