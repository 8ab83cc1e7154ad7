//! Element-wise kernels on rayon's threads. Burn's Flex backend runs element-wise operations on
//! one thread below 4 Mi elements, which on some hosts (Intel Xeon, 2 vCPUs) made relu over a
//! conv activation cost more than the AFU kernels next to it.

use rayon::prelude::*;

use super::float::KernelFloat;

/// Elements per parallel task: small enough to split a 64×32×26×26 activation (1.4 M) across
/// threads, large enough to amortise a task.
const CHUNK: usize = 1 << 15;

/// `max(x, 0)` per element (NaN stays NaN, −0 becomes +0, as `x ≤ 0 → 0`).
pub fn relu<T: KernelFloat>(x: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    let one = |y: &mut [T], x: &[T]| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x <= T::ZERO { T::ZERO } else { x };
        }
    };
    if x.len() <= CHUNK {
        one(&mut y, x);
    } else {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| one(y, x));
    }
    y
}

/// The relu gradient in place: `g` kept where the relu output `y` is positive, else 0.
pub fn relu_backward_in_place<T: KernelFloat>(g: &mut [T], y: &[T]) {
    assert_eq!(g.len(), y.len(), "gradient and output lengths differ");
    let one = |g: &mut [T], y: &[T]| {
        for (g, &y) in g.iter_mut().zip(y) {
            if y.partial_cmp(&T::ZERO) != Some(std::cmp::Ordering::Greater) {
                *g = T::ZERO;
            }
        }
    };
    if g.len() <= CHUNK {
        one(g, y);
    } else {
        g.par_chunks_mut(CHUNK)
            .zip(y.par_chunks(CHUNK))
            .for_each(|(g, y)| one(g, y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_and_its_gradient_match_the_definition_at_odd_sizes() {
        for n in [0, 1, 7, CHUNK - 1, CHUNK + 3, 3 * CHUNK + 11] {
            let x: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => (i as f32).sin() * 3.0,
                    3 => -1e-40, // subnormal
                    _ => i as f32 * 1e-3,
                })
                .collect();
            let y = relu(&x);
            for (a, b) in x.iter().zip(&y) {
                assert_eq!(*b, if *a > 0.0 { *a } else { 0.0 });
                assert!(b.is_sign_positive());
            }
            let mut g: Vec<f32> = (0..n).map(|i| i as f32 - 2.5).collect();
            relu_backward_in_place(&mut g, &y);
            for (i, (a, gi)) in x.iter().zip(&g).enumerate() {
                assert_eq!(*gi, if *a > 0.0 { i as f32 - 2.5 } else { 0.0 });
            }
        }
        assert!(relu(&[f64::NAN])[0].is_nan());
    }

    /// The Burn custom operation (`crate::ops::relu`) against Burn's relu: values and input
    /// gradients under a dense upstream gradient, with and without autodiff.
    #[test]
    fn the_relu_op_matches_burns_relu_forward_and_backward() {
        use burn::tensor::{Device, Distribution, Tensor};
        let device = Device::flex().autodiff();
        device.seed(5);
        for dims in [[2, 3, 5, 7], [64, 32, 26, 26]] {
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let g = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let run = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                let x = x.clone().detach().require_grad();
                let y = f(x.clone());
                let grads = y.clone().mul(g.clone().detach()).sum().backward();
                let gx = x.grad(&grads).unwrap();
                (
                    y.into_data().try_to_vec::<f32>().unwrap(),
                    gx.into_data().try_to_vec::<f32>().unwrap(),
                )
            };
            assert!(crate::ops::enabled());
            let ours = run(&|t| crate::ops::relu(t));
            let burn = run(&|t| burn::tensor::activation::relu(t));
            assert_eq!(ours, burn, "{dims:?}");
            let plain = crate::ops::relu(x.clone().inner());
            assert_eq!(
                plain.into_data().try_to_vec::<f32>().unwrap(),
                ours.0,
                "without autodiff"
            );
        }
    }
}
