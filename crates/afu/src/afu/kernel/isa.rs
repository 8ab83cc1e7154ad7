//! Which instruction-set paths the CPU kernels take: the vector code the CPU supports, or the
//! portable code only.
//!
//! The default is [`Isa::Native`]: each dispatch point (the smooth bases' loops, the
//! piecewise-linear tables and lookups) checks the CPU's features at run time and takes its
//! widest path. The environment variable `AFU_KERNEL_ISA=portable`, read once per process,
//! makes every dispatch point take its portable path instead ([`Isa::Portable`]), as on a CPU
//! without AVX-512 or AVX2: so that one machine can test both. `AFU_KERNEL_ISA=native` (or
//! unset, or empty) is the default; any other value is reported once on standard error and
//! treated as `native`.
//!
//! The kernels take an [`Isa`] as an argument below the entry points (the forward pass's
//! `Prepared` (in [`super::cpu`]) carries it to the backward pass), so tests can run both
//! paths in one process whatever the environment says.

use std::sync::OnceLock;

/// The environment variable that selects the kernels' paths (see the [module docs](self)).
pub const ENV_VAR: &str = "AFU_KERNEL_ISA";

/// The paths the CPU kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The widest vector code the CPU has, detected at run time: AVX-512 piecewise-linear
    /// kernels for `f32` (AVX-512 F, VL, BW, DQ), the smooth loops compiled for AVX-512 or
    /// AVX2+FMA.
    Native,
    /// Portable code only: the smooth loops in the baseline build, the portable interval
    /// lookup, thresholds by bisection and the standard sort. What a CPU without AVX-512 and
    /// AVX2 runs.
    Portable,
}

impl Isa {
    /// The paths `AFU_KERNEL_ISA` selects (read once per process; see the [module docs](self)).
    pub fn from_env() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let value = std::env::var(ENV_VAR).unwrap_or_default();
            Isa::parse(&value).unwrap_or_else(|| {
                eprintln!(
                    "afu: {ENV_VAR}={value:?} is neither \"native\" nor \"portable\"; using native"
                );
                Isa::Native
            })
        })
    }

    /// The paths a value of `AFU_KERNEL_ISA` names: `portable`, or `native` (also empty);
    /// `None` for anything else. Case and surrounding spaces are ignored.
    pub fn parse(value: &str) -> Option<Isa> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "native" => Some(Isa::Native),
            "portable" => Some(Isa::Portable),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_values() {
        assert_eq!(Isa::parse("portable"), Some(Isa::Portable));
        assert_eq!(Isa::parse(" Portable\n"), Some(Isa::Portable));
        assert_eq!(Isa::parse("native"), Some(Isa::Native));
        assert_eq!(Isa::parse(""), Some(Isa::Native));
        assert_eq!(Isa::parse("avx2"), None);
    }

    /// Prints the paths this test process runs (CI runs the kernel tests with both).
    #[test]
    fn reports_the_selected_paths() {
        let isa = Isa::from_env();
        println!("{ENV_VAR}: kernel tests in this process take the {isa:?} paths by default");
        if std::env::var(ENV_VAR).is_ok_and(|v| v.trim().eq_ignore_ascii_case("portable")) {
            assert_eq!(isa, Isa::Portable);
        }
    }
}
