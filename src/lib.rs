//! # afu — learned activation functions
//!
//! Each activation `g(z)` is itself a tiny network, an Activation Function Unit (AFU):
//! `G(z) = Σᵢ w1ᵢ·ψ(w0ᵢ·z + b0ᵢ) + b1`, trained jointly with the network that uses it.
//!
//! ```
//! use afu::afu::{AfuConfig, BaseActivation};
//! use burn::tensor::{Device, Tensor};
//! use rand::SeedableRng;
//!
//! let device = Device::flex().autodiff();
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! // One AFU with 8 relu hidden units, shared by every element it is applied to.
//! let afu = AfuConfig::new(8).with_base(BaseActivation::Relu).init(&mut rng, &device).unwrap();
//! let x = Tensor::<2>::ones([4, 3], &device).require_grad();
//! let y = afu.forward(x.clone());
//! assert_eq!(y.dims(), [4, 3]);
//! let grads = y.sum().backward();
//! assert!(afu.w0.val().grad(&grads).is_some());
//! ```
#![warn(missing_docs)]

pub mod activation;
pub mod afu;
pub mod bench;
pub mod data;
pub mod experiments;
pub mod fsutil;
pub mod models;
pub mod report;
pub mod train;
