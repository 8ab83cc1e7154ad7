//! The inner loop of `afu meta`: a fresh small MLP on one task, trained a fixed number of
//! full-batch Adam steps with a given activation; the loss before every step is recorded.
//!
//! The net is `dim → width → width → 1` ([`Mlp`], as the XOR experiments build theirs) with the
//! logistic loss `mean(softplus(−y·f(x)))` (chance level: ln 2). Its linear layers come from
//! the task's seed only, so every candidate AFU of a generation meets the same initial weights
//! (common random numbers). Single-threaded work on the Flex CPU backend: deterministic.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::activation::{ActivationSpec, Sharing};
use crate::afu::{AfuParams, BaseActivation};
use crate::experiments::common::to_vec;
use crate::meta::tasks::Task;
use crate::models::mlp::Mlp;
use crate::train::adam_torch_defaults;
use crate::train::metrics::accuracy_pm1;

/// The activation of an inner run.
#[derive(Debug, Clone, PartialEq)]
pub enum InnerActivation {
    /// A fixed function (the relu baseline).
    Fixed(BaseActivation),
    /// One shared AFU with these parameters, frozen (the candidates of the search).
    Frozen(AfuParams),
    /// One shared AFU trained with the net (the paper's method): from these parameters, or a
    /// random (PyTorch-default) initialisation with `hidden` units and base `base`.
    Trained {
        /// Start parameters; random when `None`.
        start: Option<AfuParams>,
        /// Hidden units of a random start.
        hidden: usize,
        /// Base of a random start.
        base: BaseActivation,
    },
}

/// What an inner run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Training loss before step 1, 2, …, and after the last step (`steps + 1` values; NaN
    /// after a divergence).
    pub losses: Vec<f64>,
    /// Test accuracy after the last step.
    pub test_accuracy: f64,
}

/// Trains the task's net `steps` Adam steps (learning rate `lr`, hidden width `width`) with
/// `activation`; the net's weights are drawn from `seed`.
pub fn train(
    task: &Task,
    activation: &InnerActivation,
    width: usize,
    steps: usize,
    lr: f64,
    seed: u64,
) -> Result<Trace, crate::afu::AfuError> {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spec = match activation {
        InnerActivation::Fixed(b) => ActivationSpec::Fixed(*b),
        InnerActivation::Frozen(p) | InnerActivation::Trained { start: Some(p), .. } => {
            ActivationSpec::Afu {
                hidden: p.hidden,
                base: p.base,
                sharing: Sharing::Network,
            }
        }
        InnerActivation::Trained { hidden, base, .. } => ActivationSpec::Afu {
            hidden: *hidden,
            base: *base,
            sharing: Sharing::Network,
        },
    };
    let mut model = Mlp::new(
        &[task.dim, width, width, 1],
        &spec,
        false,
        &mut rng,
        &device,
    )?;
    match activation {
        InnerActivation::Frozen(p) => {
            model.activations = model
                .activations
                .transfer(std::slice::from_ref(p), &device)?
                .freeze_afus();
        }
        InnerActivation::Trained { start: Some(p), .. } => {
            model.activations = model
                .activations
                .transfer(std::slice::from_ref(p), &device)?;
        }
        _ => {}
    }
    let n = task.train_y.len();
    let x = Tensor::<2>::from_data(
        TensorData::new(task.train_x.clone(), [n, task.dim]),
        &device,
    );
    let y = Tensor::<2>::from_data(TensorData::new(task.train_y.clone(), [n, 1]), &device);
    let mut optim = adam_torch_defaults().init();
    let mut losses = Vec::with_capacity(steps + 1);
    for step in 0..=steps {
        let loss = logistic_loss(model.forward(x.clone()), y.clone());
        let value = loss.clone().into_scalar::<f32>() as f64;
        losses.push(value);
        if step == steps {
            break;
        }
        if !value.is_finite() {
            losses.resize(steps + 1, f64::NAN);
            break;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    let model = model.valid();
    let m = task.test_y.len();
    let tx = Tensor::<2>::from_data(
        TensorData::new(task.test_x.clone(), [m, task.dim]),
        &device.inner(),
    );
    let scores = to_vec(model.forward(tx));
    Ok(Trace {
        losses,
        test_accuracy: accuracy_pm1(&scores, &task.test_y),
    })
}

/// Mean logistic loss `mean(log(1 + exp(−y·f)))`, computed stably.
///
/// # Shapes
/// - `scores`, `labels`: `[batch, 1]` (labels ±1); output: `[1]`
pub fn logistic_loss(scores: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
    let margin = scores.mul(labels);
    let hinge = margin.clone().neg().clamp_min(0.0);
    hinge.add(margin.abs().neg().exp().log1p()).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tasks::sample_task;

    #[test]
    fn relu_training_lowers_the_loss_deterministically() {
        let task = sample_task(5, 40, None);
        let act = InnerActivation::Fixed(BaseActivation::Relu);
        let t = train(&task, &act, 8, 30, 0.01, 1).unwrap();
        assert_eq!(t.losses.len(), 31);
        assert!(t.losses[30] < t.losses[0], "{:?}", t.losses);
        assert_eq!(t, train(&task, &act, 8, 30, 0.01, 1).unwrap());
        // A frozen AFU keeps its parameters; chance loss of a zero net is ln 2.
        let p = crate::afu::analysis::fit_afu_to(
            BaseActivation::Relu,
            4,
            BaseActivation::Relu,
            -5.0,
            5.0,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        let t = train(&task, &InnerActivation::Frozen(p), 8, 5, 0.01, 1).unwrap();
        assert!(t.losses.iter().all(|l| l.is_finite()));
        let zero = logistic_loss(
            Tensor::<2>::zeros([3, 1], &Device::flex()),
            Tensor::<2>::ones([3, 1], &Device::flex()),
        )
        .into_scalar::<f32>();
        assert!((zero as f64 - std::f64::consts::LN_2).abs() < 1e-6);
    }
}
