//! Denormal (subnormal) floats flushed to zero in training threads.
//!
//! On x86-64 an operation with a subnormal input or result can take a microcode assist of
//! about a hundred cycles instead of a few (much worse on Intel than on AMD Zen); training does
//! not need the ~1e-38 scale those values resolve, and PyTorch users set
//! `torch.set_flush_denormal(True)` for the same reason. The control is the MXCSR register's
//! FTZ (results flushed) and DAZ (inputs read as zero) bits, which are **per thread**; a new
//! thread inherits its creator's setting (the POSIX floating-point environment rule), so
//! setting it first thing in `main`, before any thread exists, covers rayon's pool and every
//! thread created later. [`set_flush_denormals_everywhere`] also reaches the threads of
//! rayon's global pool that already run. Elsewhere (other architectures) these are no-ops that
//! return `false`.

/// FTZ (bit 15) and DAZ (bit 6) of MXCSR.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut v: u32 = 0;
    // SAFETY: stmxcsr stores the 4-byte control register to the given, valid address.
    unsafe {
        core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack, preserves_flags));
    }
    v
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(v: u32) {
    // SAFETY: ldmxcsr loads 4 bytes from a valid address; only the FTZ/DAZ bits are ever
    // changed from a value just read, so no reserved bit is set (which would fault).
    unsafe {
        core::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, readonly, preserves_flags));
    }
}

/// Flushes denormals (FTZ+DAZ) in the calling thread when `on`, or restores IEEE gradual
/// underflow; returns whether the previous setting flushed. Always `false` (and no effect) off
/// x86-64.
pub fn set_flush_denormals(on: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let v = read_mxcsr();
        write_mxcsr(if on { v | FTZ_DAZ } else { v & !FTZ_DAZ });
        v & FTZ_DAZ == FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = on;
        false
    }
}

/// Whether the calling thread flushes denormals (FTZ and DAZ both set).
pub fn flushes_denormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        read_mxcsr() & FTZ_DAZ == FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`set_flush_denormals`] in the calling thread and in every thread of rayon's global pool
/// (which this starts if it has not started yet, so call it after any `build_global`).
pub fn set_flush_denormals_everywhere(on: bool) {
    set_flush_denormals(on);
    rayon::broadcast(|_| {
        set_flush_denormals(on);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a * b` computed at run time (not folded by the compiler).
    fn mul(a: f32, b: f32) -> f32 {
        std::hint::black_box(a) * std::hint::black_box(b)
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flushing_zeroes_subnormal_results_and_inputs_and_is_inherited() {
        // In a thread of its own: the setting is per thread and must not leak into other tests.
        std::thread::spawn(|| {
            let tiny = f32::MIN_POSITIVE; // smallest normal
            set_flush_denormals(false);
            assert!(!flushes_denormals());
            let sub = mul(tiny, 0.25);
            assert!(
                sub > 0.0 && !sub.is_normal(),
                "gradual underflow gives a subnormal"
            );
            assert!(!set_flush_denormals(true));
            assert!(flushes_denormals());
            assert_eq!(mul(tiny, 0.25), 0.0, "FTZ: subnormal result flushed");
            assert_eq!(mul(sub, 4.0), 0.0, "DAZ: subnormal input read as zero");
            assert_eq!(mul(tiny, 2.0), tiny * 2.0, "normal values unchanged");
            // A thread started from here inherits the setting.
            let child = std::thread::spawn(|| (flushes_denormals(), mul(f32::MIN_POSITIVE, 0.25)))
                .join()
                .unwrap();
            assert_eq!(child, (true, 0.0));
            assert!(set_flush_denormals(false));
            assert_eq!(mul(sub, 4.0), tiny, "restored: gradual underflow again");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn everywhere_reaches_a_pool_and_can_be_undone() {
        std::thread::spawn(|| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            pool.install(|| {
                // Inside `install`, rayon::broadcast runs on this pool's threads.
                set_flush_denormals_everywhere(true);
                let all = pool.broadcast(|_| flushes_denormals());
                let expect = cfg!(target_arch = "x86_64");
                assert!(all.iter().all(|&f| f == expect), "{all:?}");
                set_flush_denormals_everywhere(false);
                assert!(pool.broadcast(|_| !flushes_denormals()).iter().all(|&f| f));
            });
        })
        .join()
        .unwrap();
    }
}
