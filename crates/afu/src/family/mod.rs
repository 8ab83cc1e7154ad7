//! Learnable activation families beside the AFU: PReLU, Swish-β, rational (PAU), piecewise
//! linear (PWLU), adaptive piecewise linear (APL), kernel activation functions (KAF) and
//! parametric Mish.
//!
//! - [`math`]: each family as a scalar function of its input and its per-channel parameters,
//!   with its exact derivatives (the single source of the formulas, generic over the float
//!   type so that the same code is the `f32` kernel and the `f64` oracle).

pub mod math;
