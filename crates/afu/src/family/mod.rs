//! Learnable activation families beside the AFU: PReLU, Swish-β, rational (PAU), piecewise
//! linear (PWLU), adaptive piecewise linear (APL), kernel activation functions (KAF) and
//! parametric Mish.
//!
//! - [`math`]: each family as a scalar function of its input and its per-channel parameters,
//!   with its exact derivatives (the single source of the formulas, generic over the float
//!   type so that the same code is the `f32` kernel and the `f64` oracle).
//! - [`Family`]: which family (with its sizes), its name on the command line, its parameter
//!   names, and [`with_family!`](crate::with_family) to run generic code on its math.
//! - [`kernel`]: the fused CPU forward and backward passes, generic over the family.
//! - [`fused`]: the Burn custom operation around [`kernel`] (Flex backend and autodiff).
//! - `cube` (with the `wgpu` or `cuda` feature): the same passes as CubeCL kernels, behind the
//!   same custom operation on the CubeCL backends.
//! - [`reference`](mod@reference): the same functions in plain Burn tensor ops (the oracle of
//!   the tests and the path on backends without a fused kernel).
//! - [`layer`]: [`Learnable`], the module holding the `[C, P]` parameters of one slot.
//!
//! Design notes: `docs/kernels.md`, section "Learnable families".

#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod cube;
#[cfg(all(test, feature = "wgpu"))]
mod cube_tests;
pub mod fused;
pub mod kernel;
#[cfg(test)]
mod kernel_tests;
pub mod layer;
pub mod math;
pub mod reference;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use layer::{FamilyParams, Learnable};
pub use math::ScalarFamily;

/// Largest PAU degree accepted (higher powers of inputs of a few units overflow `f32`).
pub const MAX_PAU_DEGREE: usize = 12;
/// Largest number of PWLU intervals, APL hinges or KAF dictionary points accepted.
pub const MAX_PIECES: usize = 256;

/// One learnable family with its sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// PReLU `max(0, z) + a·min(0, z)`.
    Prelu,
    /// Swish-β `z·σ(β·z)`.
    SwishBeta,
    /// Parametric Mish `mish(z) + a·min(0, z)`.
    Pmish,
    /// Safe Padé unit of degrees `(m, n)`.
    Pau {
        /// Numerator degree.
        m: usize,
        /// Denominator degree.
        n: usize,
    },
    /// Piecewise linear unit with `intervals` intervals.
    Pwlu {
        /// Number of intervals `N`.
        intervals: usize,
    },
    /// Adaptive piecewise linear unit with `hinges` hinges.
    Apl {
        /// Number of hinges `S`.
        hinges: usize,
    },
    /// Kernel activation function over `points` dictionary points.
    Kaf {
        /// Dictionary size `D`.
        points: usize,
    },
}

/// Runs `$body` with `$f` bound to the [`ScalarFamily`] of `$family` (monomorphised per
/// family, so the kernels inline its math).
#[macro_export]
macro_rules! with_family {
    ($family:expr, $f:ident => $body:expr) => {{
        use $crate::family::math as m;
        match $family {
            $crate::family::Family::Prelu => {
                let $f = m::Prelu;
                $body
            }
            $crate::family::Family::SwishBeta => {
                let $f = m::SwishBeta;
                $body
            }
            $crate::family::Family::Pmish => {
                let $f = m::Pmish;
                $body
            }
            $crate::family::Family::Pau { m: mm, n } => {
                let $f = m::Pau { m: mm, n };
                $body
            }
            $crate::family::Family::Pwlu { intervals } => {
                let $f = m::Pwlu { n: intervals };
                $body
            }
            $crate::family::Family::Apl { hinges } => {
                let $f = m::Apl { s: hinges };
                $body
            }
            $crate::family::Family::Kaf { points } => {
                let $f = m::Kaf { d: points };
                $body
            }
        }
    }};
}

/// Names of the families on the command line (the prefix of a variant name).
pub const FAMILY_NAMES: [&str; 7] = ["prelu", "swish-beta", "pmish", "pau", "pwlu", "apl", "kaf"];

impl Family {
    /// Every family at its default sizes (PAU (5, 4), PWLU 16 intervals, APL 5 hinges,
    /// KAF 20 points).
    pub const DEFAULTS: [Family; 7] = [
        Family::Prelu,
        Family::SwishBeta,
        Family::Pmish,
        Family::Pau { m: 5, n: 4 },
        Family::Pwlu { intervals: 16 },
        Family::Apl { hinges: 5 },
        Family::Kaf { points: 20 },
    ];

    /// Learnable parameters of one channel.
    pub fn n_params(self) -> usize {
        with_family!(self, f => f.n_params())
    }

    /// The parameters of one channel at the start.
    pub fn init(self) -> Vec<f64> {
        with_family!(self, f => f.init())
    }

    /// `g(z; p)` in `f64`.
    pub fn value(self, z: f64, p: &[f64]) -> f64 {
        with_family!(self, f => f.value(z, p))
    }

    /// `∂g/∂z` in `f64`.
    pub fn derivative(self, z: f64, p: &[f64]) -> f64 {
        let mut dp = vec![0.0; p.len()];
        with_family!(self, f => f.backward(z, p, 1.0, &mut dp))
    }

    /// Names of the parameters of one channel, in storage order (`a`, `beta`, `a0`…`b4`,
    /// `L`, `R`, `kL`, `kR`, `h0`…, `alpha0`…).
    pub fn param_names(self) -> Vec<String> {
        match self {
            Family::Prelu | Family::Pmish => vec!["a".into()],
            Family::SwishBeta => vec!["beta".into()],
            Family::Pau { m, n } => (0..=m)
                .map(|j| format!("a{j}"))
                .chain((1..=n).map(|k| format!("b{k}")))
                .collect(),
            Family::Pwlu { intervals } => ["L", "R", "kL", "kR"]
                .iter()
                .map(|s| s.to_string())
                .chain((0..=intervals).map(|i| format!("h{i}")))
                .collect(),
            Family::Apl { hinges } => (1..=hinges)
                .map(|s| format!("a{s}"))
                .chain((1..=hinges).map(|s| format!("b{s}")))
                .collect(),
            Family::Kaf { points } => (0..points).map(|i| format!("alpha{i}")).collect(),
        }
    }

    /// Parses the family part of a variant name (`prelu`, `swish-beta`, `pmish`, `pau`,
    /// `pau-M-N`, `pwlu`, `pwlu-N`, `apl`, `apl-S`, `kaf`, `kaf-D`, lower case). `Ok(None)`
    /// when the name is no family; `Err` with the reason when it is one with bad sizes.
    pub fn parse(name: &str) -> Result<Option<Family>, String> {
        let parts: Vec<&str> = name.split('-').collect();
        let (head, nums) = match parts.as_slice() {
            ["swish", "beta", rest @ ..] => ("swish-beta", rest),
            [head, rest @ ..] => (*head, rest),
            [] => return Ok(None),
        };
        if !FAMILY_NAMES.contains(&head) {
            return Ok(None);
        }
        let numbers: Vec<usize> = nums
            .iter()
            .map(|t| {
                t.parse::<usize>()
                    .map_err(|_| format!("'{t}' is not a size of {head}"))
            })
            .collect::<Result<_, _>>()?;
        let one = |what: &str, default: usize, lo: usize, hi: usize| -> Result<usize, String> {
            let v = match numbers.as_slice() {
                [] => default,
                [v] => *v,
                _ => {
                    return Err(format!(
                        "{head} takes one size ({what}), got {}",
                        numbers.len()
                    ));
                }
            };
            if v < lo || v > hi {
                return Err(format!("{head} needs {lo} to {hi} {what}, got {v}"));
            }
            Ok(v)
        };
        let family = match head {
            "prelu" | "swish-beta" | "pmish" => {
                if !numbers.is_empty() {
                    return Err(format!("{head} takes no size"));
                }
                match head {
                    "prelu" => Family::Prelu,
                    "swish-beta" => Family::SwishBeta,
                    _ => Family::Pmish,
                }
            }
            "pau" => {
                let (m, n) = match numbers.as_slice() {
                    [] => (5, 4),
                    [m, n] => (*m, *n),
                    _ => return Err("pau takes two degrees (pau-M-N) or none".into()),
                };
                for (what, v) in [("numerator degree", m), ("denominator degree", n)] {
                    if v == 0 || v > MAX_PAU_DEGREE {
                        return Err(format!("pau {what} must be 1 to {MAX_PAU_DEGREE}, got {v}"));
                    }
                }
                Family::Pau { m, n }
            }
            "pwlu" => Family::Pwlu {
                intervals: one("intervals", 16, 1, MAX_PIECES)?,
            },
            "apl" => Family::Apl {
                hinges: one("hinges", 5, 1, MAX_PIECES)?,
            },
            _ => Family::Kaf {
                points: one("dictionary points", 20, 2, MAX_PIECES)?,
            },
        };
        Ok(Some(family))
    }
}

impl fmt::Display for Family {
    /// The canonical name: sizes shown for PWLU and APL always, for PAU and KAF only when
    /// they differ from the defaults (`pau`, `kaf`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Family::Prelu => f.write_str("prelu"),
            Family::SwishBeta => f.write_str("swish-beta"),
            Family::Pmish => f.write_str("pmish"),
            Family::Pau { m: 5, n: 4 } => f.write_str("pau"),
            Family::Pau { m, n } => write!(f, "pau-{m}-{n}"),
            Family::Pwlu { intervals } => write!(f, "pwlu-{intervals}"),
            Family::Apl { hinges } => write!(f, "apl-{hinges}"),
            Family::Kaf { points: 20 } => f.write_str("kaf"),
            Family::Kaf { points } => write!(f, "kaf-{points}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_sizes_are_refused() {
        for fam in Family::DEFAULTS {
            assert_eq!(Family::parse(&fam.to_string()), Ok(Some(fam)));
            assert_eq!(fam.param_names().len(), fam.n_params(), "{fam}");
            assert_eq!(fam.init().len(), fam.n_params(), "{fam}");
        }
        assert_eq!(
            Family::parse("pau-3-2"),
            Ok(Some(Family::Pau { m: 3, n: 2 }))
        );
        assert_eq!(Family::parse("kaf-7"), Ok(Some(Family::Kaf { points: 7 })));
        assert_eq!(Family::parse("relu"), Ok(None));
        for bad in [
            "pau-0-4", "pau-5-0", "pau-5", "pwlu-0", "apl-0", "kaf-1", "prelu-3", "pwlu-x",
        ] {
            assert!(Family::parse(bad).is_err(), "{bad}");
        }
    }
}
