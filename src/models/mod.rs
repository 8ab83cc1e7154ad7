//! Models that take their activations as an [`ActivationSpec`](crate::activation::ActivationSpec).

pub mod init;
pub mod mlp;
pub mod mnist_cnn;
pub mod mobilenet;
