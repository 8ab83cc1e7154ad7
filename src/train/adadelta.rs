//! Adadelta (Zeiler 2012) as PyTorch implements it — Burn has none. Used by the MNIST
//! experiment (lr 1.0, step schedule ×0.7 per epoch, as in the PyTorch MNIST example).
//!
//! For each parameter `θ` with gradient `g` (plus `weight_decay·θ` when set):
//! ```text
//! v  ← ρ·v + (1−ρ)·g²
//! Δ  ← √(u + ε) / √(v + ε) · g
//! u  ← ρ·u + (1−ρ)·Δ²
//! θ  ← θ − lr·Δ
//! ```

use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::{Device, Tensor};

/// Adadelta settings (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdadeltaConfig {
    /// Decay of the running averages `ρ`.
    pub rho: f64,
    /// `ε` inside the square roots.
    pub epsilon: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            rho: 0.9,
            epsilon: 1e-6,
            weight_decay: 0.0,
        }
    }
}

impl AdadeltaConfig {
    /// The optimizer for one parameter group.
    pub fn build(&self) -> Adadelta {
        Adadelta { config: *self }
    }

    /// A whole-module optimizer.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// The Adadelta optimizer.
#[derive(Debug, Clone)]
pub struct Adadelta {
    config: AdadeltaConfig,
}

/// Running averages of one parameter.
#[derive(Clone)]
pub struct AdadeltaState<const D: usize> {
    /// Running average of `g²`.
    pub square_avg: Tensor<D>,
    /// Running average of `Δ²`.
    pub acc_delta: Tensor<D>,
}

impl<const D: usize> RecordState for AdadeltaState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, "square_avg", self.square_avg.to_data());
        out.push_tensor(prefix, "acc_delta", self.acc_delta.to_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let square_avg = src.take_tensor(prefix, "square_avg")?;
        let acc_delta = src.take_tensor(prefix, "acc_delta")?;
        Some(AdadeltaState {
            square_avg: Tensor::from_data(square_avg, device),
            acc_delta: Tensor::from_data(acc_delta, device),
        })
    }
}

impl Optimizer for Adadelta {
    type State<const D: usize> = AdadeltaState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let AdadeltaConfig {
            rho,
            epsilon,
            weight_decay,
        } = self.config;
        let grad = if weight_decay != 0.0 {
            grad.add(tensor.clone().mul_scalar(weight_decay))
        } else {
            grad
        };
        let (square_avg, acc_delta) = match state {
            Some(s) => (s.square_avg, s.acc_delta),
            None => (grad.zeros_like(), grad.zeros_like()),
        };
        let square_avg = square_avg
            .mul_scalar(rho)
            .add(grad.clone().square().mul_scalar(1.0 - rho));
        let delta = acc_delta
            .clone()
            .add_scalar(epsilon)
            .sqrt()
            .div(square_avg.clone().add_scalar(epsilon).sqrt())
            .mul(grad);
        let acc_delta = acc_delta
            .mul_scalar(rho)
            .add(delta.clone().square().mul_scalar(1.0 - rho));
        let tensor = tensor.sub(delta.mul_scalar(lr));
        (
            tensor,
            Some(AdadeltaState {
                square_avg,
                acc_delta,
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdadeltaState {
            square_avg: state.square_avg.to_device(device),
            acc_delta: state.acc_delta.to_device(device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// The published rule, scalar by scalar in f64.
    fn reference(
        theta: &mut [f64],
        v: &mut [f64],
        u: &mut [f64],
        g: &[f64],
        lr: f64,
        c: AdadeltaConfig,
    ) {
        for i in 0..theta.len() {
            let gi = g[i] + c.weight_decay * theta[i];
            v[i] = c.rho * v[i] + (1.0 - c.rho) * gi * gi;
            let d = (u[i] + c.epsilon).sqrt() / (v[i] + c.epsilon).sqrt() * gi;
            u[i] = c.rho * u[i] + (1.0 - c.rho) * d * d;
            theta[i] -= lr * d;
        }
    }

    #[test]
    fn matches_the_published_update_rule() {
        let device = Device::flex();
        let config = AdadeltaConfig {
            weight_decay: 0.01,
            ..AdadeltaConfig::default()
        };
        let opt = config.build();
        let mut theta = vec![0.5, -1.25, 2.0, 0.0, 3.5];
        let (mut v, mut u) = (vec![0.0; 5], vec![0.0; 5]);
        let mut t = Tensor::<1>::from_data(
            TensorData::new(theta.clone(), [5]),
            (&device, burn::tensor::DType::F64),
        );
        let mut state = None;
        for step in 0..7 {
            let g: Vec<f64> = (0..5)
                .map(|i| ((i + 3 * step) as f64 * 0.7).sin())
                .collect();
            let lr = 0.7f64.powi(step / 3);
            reference(&mut theta, &mut v, &mut u, &g, lr, config);
            let gt = Tensor::<1>::from_data(
                TensorData::new(g, [5]),
                (&device, burn::tensor::DType::F64),
            );
            let (nt, ns) = opt.step(lr, t, gt, state);
            t = nt;
            state = ns;
        }
        let got = t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        for (a, b) in got.iter().zip(&theta) {
            assert!((a - b).abs() < 1e-12, "{got:?} vs {theta:?}");
        }
    }
}
