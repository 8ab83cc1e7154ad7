//! Adam as one fused, multi-threaded pass per parameter tensor on the Flex CPU backend.
//!
//! Burn's Adam updates a parameter with about a dozen element-wise tensor operations, each a
//! fresh tensor and a full pass over memory, and Flex runs element-wise operations on one thread
//! below 4 Mi elements: on the MNIST CNN (1.2 M parameters) the optimizer step was a large
//! share of a training step. [`FusedAdam`] does the same update in one pass over parameter,
//! gradient and both moments, in place where the buffers are not shared, split across rayon's
//! threads. Each element goes through the same f32 operations in the same order as Burn's
//! `Adam` (so the results agree to the last bit or nearly: see the tests), and the state is
//! Burn's [`AdamState`], so optimizer records are interchangeable with Burn's Adam. Anything
//! it does not cover (other backends, f64 or mixed dtypes, a state of another shape) goes to
//! Burn's `Adam` itself, as does every step while [`crate::ops::set_enabled`]`(false)` holds
//! on the calling thread (the benchmark's "stock ops" cases).

use burn::backend::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::ops::flex_tensor::{FlexTensor, dims_of, values, with_owned_values};

/// Settings of [`FusedAdam`] (no weight decay, no AMSGrad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedAdamConfig {
    /// β₁ (first-moment decay).
    pub beta_1: f32,
    /// β₂ (second-moment decay).
    pub beta_2: f32,
    /// ε, added to `√v̂`.
    pub epsilon: f32,
}

impl FusedAdamConfig {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8.
    pub fn torch_defaults() -> Self {
        FusedAdamConfig {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
        }
    }

    /// The optimizer.
    pub fn build(&self) -> FusedAdam {
        FusedAdam {
            config: *self,
            fallback: AdamConfig::new()
                .with_beta_1(self.beta_1)
                .with_beta_2(self.beta_2)
                .with_epsilon(self.epsilon)
                .build(),
        }
    }

    /// The optimizer for a whole module (as `AdamConfig::init`).
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// Adam, fused on Flex f32 tensors; Burn's [`Adam`] elsewhere (see the module docs).
#[derive(Clone)]
pub struct FusedAdam {
    config: FusedAdamConfig,
    fallback: Adam,
}

/// The per-step scalars, computed as Burn's Adam computes them (in f32).
#[derive(Debug, Clone, Copy)]
struct StepScalars {
    beta_1: f32,
    beta_2: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    /// `√(1 − β₂ᵗ) / (1 − β₁ᵗ)`.
    combined: f32,
    /// `ε·√(1 − β₂ᵗ)`.
    epsilon: f32,
    lr: f32,
}

impl StepScalars {
    fn new(c: &FusedAdamConfig, time: usize, lr: LearningRate) -> Self {
        let t = time as i32;
        let bias_correction2_sqrt = (1.0 - c.beta_2.powi(t)).sqrt();
        StepScalars {
            beta_1: c.beta_1,
            beta_2: c.beta_2,
            one_minus_beta_1: 1.0 - c.beta_1,
            one_minus_beta_2: 1.0 - c.beta_2,
            combined: bias_correction2_sqrt / (1.0 - c.beta_1.powi(t)),
            epsilon: c.epsilon * bias_correction2_sqrt,
            lr: lr as f32,
        }
    }
}

/// Elements per parallel task: large enough to amortise a task, small enough to split the
/// MNIST CNN's fc1 weight (1.2 M) across a few threads.
const CHUNK: usize = 1 << 15;

/// One Adam step over the slices, in place: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `p ← p − lr·(m·c)/(√v + ε')`, with the operations of Burn's Adam in its order.
fn step_slices(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: StepScalars) {
    let one = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = *m * s.beta_1 + g * s.one_minus_beta_1;
            *v = *v * s.beta_2 + (g * g) * s.one_minus_beta_2;
            let update = (*m * s.combined) / (v.sqrt() + s.epsilon);
            *p -= update * s.lr;
        }
    };
    if p.len() <= CHUNK {
        one(p, g, m, v);
        return;
    }
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| one(p, g, m, v));
}

/// The Flex float tensor inside `t` (not autodiff), if it is one.
fn flex_float<const D: usize>(t: Tensor<D>) -> Option<FlexTensor> {
    match t.into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(f)) => Some(f),
        _ => None,
    }
}

/// `f` as a tensor like `like` (same device kind and autodiff context).
fn from_flex<const D: usize>(f: FlexTensor, like: &Tensor<D>) -> Tensor<D> {
    let DispatchTensor { autodiff, .. } = like.clone().into_dispatch();
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(f)),
        autodiff,
    })
}

fn fusable<const D: usize>(t: &Tensor<D>, dims: [usize; D]) -> bool {
    t.dtype() == DType::F32 && crate::ops::flex_tensor::on_flex(&t.device()) && t.dims() == dims
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let dims = tensor.dims();
        let ok = crate::ops::enabled()
            && !tensor.device().is_autodiff()
            && fusable(&tensor, dims)
            && fusable(&grad, dims)
            && state.as_ref().is_none_or(|s| {
                s.momentum.max_moment_2.is_none()
                    && fusable(&s.momentum.moment_1, dims)
                    && fusable(&s.momentum.moment_2, dims)
            });
        if !ok {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let like = tensor.clone();
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                s.momentum.moment_1,
                s.momentum.moment_2,
            ),
            None => (1, tensor.zeros_like(), tensor.zeros_like()),
        };
        let s = StepScalars::new(&self.config, time, lr);
        let (Some(p), Some(g), Some(m), Some(v)) = (
            flex_float(tensor),
            flex_float(grad),
            flex_float(m),
            flex_float(v),
        ) else {
            unreachable!("checked to be Flex float tensors above");
        };
        let g = values::<f32>(&g);
        let (m, (v, p)) = with_owned_values::<f32, _>(m, |m| {
            with_owned_values::<f32, _>(v, |v| {
                with_owned_values::<f32, _>(p, |p| step_slices(p, &g, m, v, s)).0
            })
        });
        debug_assert_eq!(dims_of(&p), dims.to_vec());
        let state = AdamState::new(AdaptiveMomentumState::new(
            time,
            from_flex(m, &like),
            from_flex(v, &like),
        ));
        (from_flex(p, &like), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn data(t: &Tensor<2>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    /// Several steps of Burn's Adam and of the fused one from the same parameter and
    /// gradients, on a tensor large enough to be split across threads and one that is not.
    #[test]
    fn matches_burns_adam_step_by_step() {
        let device = Device::flex();
        device.seed(3);
        for dims in [[3, 5], [300, 257]] {
            let fused = FusedAdamConfig::torch_defaults().build();
            let burn = AdamConfig::new().with_epsilon(1e-8).build();
            let p0 = Tensor::<2>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let (mut pf, mut pb) = (p0.clone(), p0);
            let (mut sf, mut sb) = (None, None);
            for step in 0..6 {
                // Gradients of every scale, including zeros and values whose squares underflow.
                let g = Tensor::<2>::random(dims, Distribution::Normal(0.0, 1.0), &device)
                    .mul_scalar(10f32.powi(step * 4 - 12));
                let g = if step == 3 { g.zeros_like() } else { g };
                let lr = 1e-3 * (step + 1) as f64;
                (pf, sf) = fused.step(lr, pf, g.clone(), sf);
                (pb, sb) = <Adam as Optimizer>::step(&burn, lr, pb, g, sb);
                for (a, b) in [
                    (data(&pf), data(&pb)),
                    (
                        data(&sf.as_ref().unwrap().momentum.moment_2),
                        data(&sb.as_ref().unwrap().momentum.moment_2),
                    ),
                    (
                        data(&sf.as_ref().unwrap().momentum.moment_1),
                        data(&sb.as_ref().unwrap().momentum.moment_1),
                    ),
                ] {
                    for (x, y) in a.iter().zip(&b) {
                        assert!(
                            (x - y).abs() <= 1e-6 * y.abs().max(1e-30),
                            "{dims:?} step {step}: {x} vs {y}"
                        );
                    }
                }
                assert_eq!(
                    sf.as_ref().unwrap().momentum.time,
                    sb.as_ref().unwrap().momentum.time
                );
            }
        }
    }

    /// The update against a float64 evaluation of Adam's formula.
    #[test]
    fn matches_the_formula_in_f64() {
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 0.01f64);
        let grads = [[0.5f64, -2.0, 0.0, 1e-3], [0.25, 1.0, -3.0, 1e-3]];
        let device = Device::flex();
        let adam = FusedAdamConfig::torch_defaults().build();
        let mut p =
            Tensor::<2>::from_data(TensorData::new(vec![1f32, 2.0, -1.0, 0.0], [2, 2]), &device);
        let mut state = None;
        let (mut pe, mut m, mut v) = ([1f64, 2.0, -1.0, 0.0], [0f64; 4], [0f64; 4]);
        for (t, g) in grads.iter().enumerate() {
            let gt = Tensor::<2>::from_data(
                TensorData::new(g.iter().map(|&x| x as f32).collect(), [2, 2]),
                &device,
            );
            (p, state) = adam.step(lr, p, gt, state);
            let t = (t + 1) as i32;
            for i in 0..4 {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                pe[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
        for (x, y) in data(&p).iter().zip(pe) {
            assert!((*x as f64 - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    /// f64 parameters and autodiff tensors go to Burn's Adam (and still train).
    #[test]
    fn falls_back_outside_flex_f32() {
        let device = Device::flex();
        let adam = FusedAdamConfig::torch_defaults().build();
        let p = Tensor::<2>::ones([2, 2], (&device, DType::F64));
        let g = Tensor::<2>::ones([2, 2], (&device, DType::F64));
        let (p, s) = adam.step(0.1, p, g, None);
        assert_eq!(p.dtype(), DType::F64);
        assert_eq!(s.unwrap().momentum.time, 1);
        let v = p.to_data().try_to_vec::<f64>().unwrap();
        assert!(v.iter().all(|&x| (x - 0.9).abs() < 1e-6), "{v:?}");
    }
}
