//! # afu — learned activation functions
//!
//! Each activation `g(z)` is itself a tiny network, an Activation Function Unit (AFU):
//! `G(z) = Σᵢ w1ᵢ·ψ(w0ᵢ·z + b0ᵢ) + b1`, trained jointly with the network that uses it.
//! This crate is the layer, its fused kernels (CPU and CubeCL), afu's CPU convolution, pooling,
//! dropout and batch-norm kernels, and the paper's models; the experiments, reports and the
//! `afu` command line are in the `afu-cli` package.
//!
//! ```
//! use afu::{AfuConfig, BaseActivation};
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
pub mod device;
pub mod family;
pub mod fpenv;
pub mod fsutil;
pub mod models;
pub mod ops;
pub mod optim;

pub use activation::{ActivationSpec, Activations, Sharing};
pub use afu::{Afu, AfuConfig, AfuError, AfuInit, AfuParams, BaseActivation, KernelChoice};
pub use device::DeviceChoice;

/// Tunes glibc's allocator for training: by default it returns every large free block
/// (≥ 128 KiB, growing) to the kernel, so each new tensor of a step is a fresh mapping whose
/// pages fault in one by one on first touch. Keeping blocks up to 32 MiB in the heap (and not
/// trimming it) makes steady-state training free of page faults. The `afu` binary calls this
/// first thing; call it at the start of your own program. No-op off Linux/glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}
