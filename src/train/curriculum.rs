//! A curriculum from linear to nonlinear activations (the paper's conclusion: start the final
//! layers with linear activations and make them gradually more nonlinear).
//!
//! Every activation slot applies `(1 − α)·z + α·g(z)` (see
//! [`Activations::apply`](crate::activation::Activations::apply)); a [`Curriculum`] gives `α`
//! of each slot at each training step. `α = 0` is the identity (a linear network), `α = 1` the
//! activation itself (the computation without curriculum, bit for bit).
//!
//! Text form (command line, config files, variant suffixes): `none`, or
//! `<shape>-<length>[-<order>]` with
//! - shape `linear` or `cosine` (α = (1 − cos πt)/2, slow at both ends);
//! - length in epochs (`2`, `0.5`) or in steps (`300steps`);
//! - order `staggered` (default: every slot starts at 0 together and slot `i` of `L` reaches 1
//!   after `(i + 1)/L` of the length, so the last layers stay linear longest and are released
//!   last, the paper's variant) or `uniform` (every slot follows the same schedule).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How α rises from 0 to 1 over a slot's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `α = t`.
    Linear,
    /// `α = (1 − cos πt) / 2`.
    Cosine,
}

/// How long the curriculum lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// A number of epochs (fractions allowed).
    Epochs(f64),
    /// A number of optimiser steps.
    Steps(usize),
}

/// Which slot is released when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    /// Slot `i` of `L` reaches α = 1 after `(i + 1)/L` of the length.
    Staggered,
    /// Every slot reaches α = 1 at the end of the length.
    Uniform,
}

/// A linear-to-nonlinear schedule, or none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Curriculum {
    /// No curriculum: α = 1 throughout.
    #[default]
    None,
    /// α rises from 0 to 1.
    Schedule {
        /// Shape of the rise.
        shape: Shape,
        /// Length of the whole curriculum.
        length: Length,
        /// Release order of the slots.
        order: Order,
    },
}

/// A curriculum text that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad curriculum '{given}': {reason} (expected none or <linear|cosine>-<epochs|Nsteps>[-staggered|-uniform], e.g. linear-2, cosine-300steps-uniform)"
)]
pub struct BadCurriculum {
    /// The text given.
    pub given: String,
    /// What was wrong.
    pub reason: String,
}

impl FromStr for Curriculum {
    type Err = BadCurriculum;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| BadCurriculum {
            given: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim().to_ascii_lowercase();
        if t == "none" || t == "off" {
            return Ok(Curriculum::None);
        }
        let mut parts = t.split('-');
        let shape = match parts.next() {
            Some("linear") => Shape::Linear,
            Some("cosine") => Shape::Cosine,
            Some(other) => return Err(bad(&format!("unknown schedule '{other}'"))),
            None => return Err(bad("empty")),
        };
        let length_text = parts
            .next()
            .ok_or_else(|| bad("missing length (epochs, or steps as e.g. 300steps)"))?;
        let length = if let Some(n) = length_text.strip_suffix("steps") {
            match n.parse::<usize>() {
                Ok(n) if n >= 1 => Length::Steps(n),
                _ => {
                    return Err(bad(&format!(
                        "'{length_text}' is not a number of steps ≥ 1"
                    )));
                }
            }
        } else {
            match length_text.parse::<f64>() {
                Ok(e) if e.is_finite() && e > 0.0 => Length::Epochs(e),
                _ => {
                    return Err(bad(&format!(
                        "'{length_text}' is not a positive number of epochs"
                    )));
                }
            }
        };
        let order = match parts.next() {
            None | Some("staggered") => Order::Staggered,
            Some("uniform") => Order::Uniform,
            Some(other) => return Err(bad(&format!("unknown order '{other}'"))),
        };
        if let Some(extra) = parts.next() {
            return Err(bad(&format!("unexpected '{extra}'")));
        }
        Ok(Curriculum::Schedule {
            shape,
            length,
            order,
        })
    }
}

impl fmt::Display for Curriculum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Curriculum::None => write!(f, "none"),
            Curriculum::Schedule {
                shape,
                length,
                order,
            } => {
                let shape = match shape {
                    Shape::Linear => "linear",
                    Shape::Cosine => "cosine",
                };
                let order = match order {
                    Order::Staggered => "staggered",
                    Order::Uniform => "uniform",
                };
                match length {
                    Length::Epochs(e) => write!(f, "{shape}-{e}-{order}"),
                    Length::Steps(n) => write!(f, "{shape}-{n}steps-{order}"),
                }
            }
        }
    }
}

impl Serialize for Curriculum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Curriculum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Curriculum {
    /// True for [`Curriculum::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Curriculum::None)
    }

    /// Length in optimiser steps, given the steps of one epoch (rounded up; at least 1).
    pub fn total_steps(&self, steps_per_epoch: usize) -> usize {
        match self {
            Curriculum::None => 0,
            Curriculum::Schedule { length, .. } => match *length {
                Length::Steps(n) => n,
                Length::Epochs(e) => ((e * steps_per_epoch as f64).ceil() as usize).max(1),
            },
        }
    }

    /// α of each of `slots` slots before optimiser step `step` (0-based) — empty when every
    /// slot is at α = 1 (no curriculum, or the curriculum is over), which the activations
    /// read as "apply the activation alone".
    pub fn alphas(&self, slots: usize, step: usize, steps_per_epoch: usize) -> Vec<f32> {
        let Curriculum::Schedule { shape, order, .. } = *self else {
            return Vec::new();
        };
        let total = self.total_steps(steps_per_epoch);
        if step >= total {
            return Vec::new();
        }
        (0..slots)
            .map(|i| {
                let window = match order {
                    Order::Uniform => total as f64,
                    Order::Staggered => total as f64 * (i + 1) as f64 / slots as f64,
                };
                let t = (step as f64 / window).clamp(0.0, 1.0);
                let alpha = match shape {
                    Shape::Linear => t,
                    Shape::Cosine => (1.0 - (std::f64::consts::PI * t).cos()) / 2.0,
                };
                alpha as f32
            })
            .collect()
    }
}

/// Splits a variant text `<activation>[@<curriculum>]` into its activation and its own
/// curriculum (`None` when it names none: the run's `curriculum` setting applies).
pub fn split_variant(variant: &str) -> Result<(&str, Option<Curriculum>), BadCurriculum> {
    match variant.split_once('@') {
        None => Ok((variant, None)),
        Some((activation, curriculum)) => Ok((activation, Some(curriculum.parse()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (text, canonical) in [
            ("none", "none"),
            ("linear-2", "linear-2-staggered"),
            ("cosine-0.5-uniform", "cosine-0.5-uniform"),
            ("linear-300steps", "linear-300steps-staggered"),
        ] {
            let c: Curriculum = text.parse().unwrap();
            assert_eq!(c.to_string(), canonical);
            assert_eq!(canonical.parse::<Curriculum>().unwrap(), c);
        }
        for bad in [
            "",
            "sigmoid-2",
            "linear",
            "linear-0",
            "linear--1",
            "linear-0steps",
            "linear-2-backwards",
            "linear-2-uniform-x",
            "linear-nan",
        ] {
            let e = bad.parse::<Curriculum>().unwrap_err();
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn alphas_rise_from_zero_to_one_last_slots_last() {
        let c: Curriculum = "linear-2".parse().unwrap();
        // 10 steps per epoch: 20 steps in all; slot i of 4 reaches 1 at step 5(i+1).
        assert_eq!(c.alphas(4, 0, 10), vec![0.0; 4]);
        let a = c.alphas(4, 5, 10);
        assert_eq!(a[0], 1.0);
        assert!(a[1] > a[2] && a[2] > a[3] && a[3] > 0.0, "{a:?}");
        assert!(c.alphas(4, 20, 10).is_empty());
        let u: Curriculum = "cosine-20steps-uniform".parse().unwrap();
        let a = u.alphas(3, 10, 999);
        assert!(a.iter().all(|&x| (x - 0.5).abs() < 1e-6), "{a:?}");
        assert!(Curriculum::None.alphas(3, 0, 10).is_empty());
    }

    #[test]
    fn variant_suffix() {
        assert_eq!(split_variant("relu").unwrap(), ("relu", None));
        let (a, c) = split_variant("afu-relu-8-layer@cosine-1").unwrap();
        assert_eq!(a, "afu-relu-8-layer");
        assert_eq!(c.unwrap().to_string(), "cosine-1-staggered");
        assert!(split_variant("relu@wobbly-1").is_err());
    }
}
