//! # afu — learned activation functions
//!
//! Each activation `g(z)` is itself a tiny network, an Activation Function Unit (AFU):
//! `G(z) = Σᵢ w1ᵢ·ψ(w0ᵢ·z + b0ᵢ) + b1`, trained jointly with the network that uses it.
#![warn(missing_docs)]

pub mod afu;
pub mod data;
pub mod fsutil;
