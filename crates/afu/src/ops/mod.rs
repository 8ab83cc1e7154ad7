//! Fast CPU training kernels for the layers around the AFUs: 2-D convolution (any stride,
//! padding, groups incl. depthwise, 1×1 pointwise, with or without bias), max pooling and
//! dropout, as Burn custom operations on the Flex backend with their own backward passes.
//!
//! The models call [`conv2d`], [`max_pool2d`], [`dropout`] and [`relu`] instead of the Burn modules'
//! `forward`: on Flex (with or without autodiff, f32/f64) they run afu's kernels; anywhere else,
//! or for options the kernels do not cover (dilation, `Same` padding, pooling with padding or
//! ceil mode), Burn's own op. [`set_enabled`]`(false)` switches every model back to Burn's ops
//! (the benchmark does this to compare both in one run).
//!
//! Two leaf modules here are shared with the AFU's kernels (`crate::afu::kernel`), which
//! import them; nothing in this folder imports the AFU's kernels: [`float`] (the element type
//! `KernelFloat`) and [`flex_tensor`] (Flex tensors to and from slices, `on_flex`).

pub mod bn_cpu;
pub mod conv_cpu;
pub mod dropout_cpu;
pub mod elementwise;
pub mod flex;
pub mod flex_tensor;
pub mod float;
pub mod pool_cpu;

use burn::backend::Dispatch;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Dropout, PaddingConfig2d};
use burn::tensor::{DType, Tensor};

use self::flex::{BnInputs, CnnOpsBackend, ConvArgs, ConvInputs, DropoutArgs, PoolArgs};
use self::flex_tensor::on_flex;

thread_local! {
    static ENABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}
thread_local! {
    /// This thread's dropout stream: (key, calls so far).
    static DROPOUT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0x5eed, 0)) };
}

/// Uses afu's kernels (`true`, the default) or Burn's ops (`false`) from now on, for the layers
/// called from this thread (the training loop's; the kernels' own worker threads do not ask).
pub fn set_enabled(enabled: bool) {
    ENABLED.with(|e| e.set(enabled));
}

/// Whether afu's kernels are in use on this thread (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// Seeds the dropout masks of the layers called from this thread: the same seed and the same
/// sequence of calls give the same masks. (Burn's own dropout draws from the device's
/// generator, seeded with `Device::seed`.)
pub fn seed_dropout(seed: u64) {
    DROPOUT.with(|d| d.set((dropout_cpu::mix64(seed ^ 0xd509_0a7e), 0)));
}

/// What the layers of one thread depend on besides their inputs: the kernel choice
/// ([`set_enabled`]) and the dropout stream ([`seed_dropout`]). A thread computing part of
/// another thread's training step (a data-parallel worker) starts from
/// [`worker_settings`] of that thread and [`apply`](Self::apply)s them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadSettings {
    enabled: bool,
    dropout: (u64, u64),
}

impl ThreadSettings {
    /// Makes these the settings of the calling thread.
    pub fn apply(self) {
        set_enabled(self.enabled);
        DROPOUT.with(|d| d.set(self.dropout));
    }
}

/// Settings for a worker thread of this thread's step: the same kernel choice, and a dropout
/// stream of its own, drawn from this thread's stream (each call gives another; the same seed
/// and sequence of calls give the same ones). Without this a fresh thread would start from the
/// default stream, and repeat the same masks every step.
pub fn worker_settings() -> ThreadSettings {
    let key = DROPOUT.with(|d| {
        let (k, c) = d.get();
        d.set((k, c + 1));
        // Not `mix64(k ^ mix64(c))`, the key of this thread's own mask of call `c`.
        dropout_cpu::mix64(k ^ dropout_cpu::mix64(c) ^ 0x3c6e_f372_fe94_f82b)
    });
    ThreadSettings {
        enabled: enabled(),
        dropout: (key, 0),
    }
}

fn use_kernels<const D: usize>(x: &Tensor<D>) -> bool {
    enabled() && matches!(x.dtype(), DType::F32 | DType::F64) && on_flex(&x.device())
}

/// `conv.forward(x)`, with afu's kernel where it applies.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([top, left, bottom, right]),
        PaddingConfig2d::Same => None,
    };
    let weight = conv.weight.val();
    let fits = padding.is_some()
        && conv.dilation == [1, 1]
        && use_kernels(&x)
        && weight.dtype() == x.dtype()
        && conv.groups > 0
        && x.dims()[1] == weight.dims()[1] * conv.groups
        && weight.dims()[0].is_multiple_of(conv.groups);
    let Some(padding) = padding.filter(|_| fits) else {
        return conv.forward(x);
    };
    let bias = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([weight.dims()[0]], (&x.device(), x.dtype())),
    };
    let args = ConvArgs {
        stride: conv.stride,
        padding,
        groups: conv.groups,
    };
    let out = <Dispatch as CnnOpsBackend>::conv2d_fast(
        ConvInputs {
            x: x.into_dispatch(),
            weight: weight.into_dispatch(),
            bias: bias.into_dispatch(),
        },
        args,
    );
    Tensor::from_dispatch(out)
}

/// `pool.forward(x)`, with afu's kernel where it applies.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let no_padding = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    let args = PoolArgs {
        kernel: pool.kernel_size,
        stride: pool.stride,
    };
    let window = args.kernel[0] * args.kernel[1];
    if !(no_padding
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && (1..=256).contains(&window)
        && args.stride[0] > 0
        && args.stride[1] > 0
        && use_kernels(&x))
    {
        return pool.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as CnnOpsBackend>::max_pool2d_fast(
        x.into_dispatch(),
        args,
    ))
}

/// `relu(x)`, with afu's multi-threaded kernel where it applies (f32/f64 on Flex).
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !use_kernels(&x) {
        return burn::tensor::activation::relu(x);
    }
    Tensor::from_dispatch(<Dispatch as CnnOpsBackend>::relu_fast(x.into_dispatch()))
}

/// `dropout.forward(x)`, with afu's kernel where it applies: identity unless training on an
/// autodiff device; masks from [`seed_dropout`]'s stream.
pub fn dropout<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if !dropout.training.is_enabled() || !x.device().is_autodiff() || dropout.prob == 0.0 {
        return x;
    }
    if !use_kernels(&x) {
        return dropout.forward(x);
    }
    let (stream, call) = DROPOUT.with(|d| {
        let (k, c) = d.get();
        d.set((k, c + 1));
        (k, c)
    });
    let key = dropout_cpu::mix64(stream ^ dropout_cpu::mix64(call));
    let args = DropoutArgs {
        keep: 1.0 - dropout.prob,
        key,
    };
    Tensor::from_dispatch(<Dispatch as CnnOpsBackend>::dropout_fast(
        x.into_dispatch(),
        args,
    ))
}

/// `bn.forward(x)`, with afu's kernel where it applies (training mode on Flex): the same
/// normalisation with the batch's statistics and the same running-statistics update as Burn's.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !training || D < 2 || !use_kernels(&x) || bn.gamma.val().dtype() != x.dtype() {
        return bn.forward(x);
    }
    let device = x.device();
    let out = <Dispatch as CnnOpsBackend>::batch_norm_fast(
        BnInputs {
            x: x.into_dispatch(),
            gamma: bn.gamma.val().into_dispatch(),
            beta: bn.beta.val().into_dispatch(),
        },
        bn.epsilon,
    );
    let mean: Tensor<1> = Tensor::from_dispatch(out.mean);
    let variance: Tensor<1> = Tensor::from_dispatch(out.variance);
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean
        .update((running_mean.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m)).detach());
    bn.running_var
        .update((running_var.mul_scalar(1.0 - m) + variance.detach().mul_scalar(m)).detach());
    Tensor::from_dispatch(out.output)
}

#[cfg(test)]
mod tests {
    use burn::nn::DropoutConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, Tensor};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::models::init::conv2d_from;

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}[{i}]: {x} vs {y} (scale {scale})"
            );
        }
    }

    /// Forward, input gradient and parameter gradients of `L = Σ y·sin(y)` (a non-uniform
    /// upstream gradient), with afu's kernels and with Burn's ops.
    #[allow(clippy::type_complexity)]
    fn both(
        x: &Tensor<4>,
        f: &dyn Fn(Tensor<4>) -> Tensor<4>,
        params: &dyn Fn(burn::tensor::Gradients) -> Vec<Vec<f32>>,
    ) -> [(Vec<f32>, Vec<f32>, Vec<Vec<f32>>); 2] {
        let run = |fast: bool| {
            set_enabled(fast);
            let xg = x.clone().detach().require_grad();
            let y = f(xg.clone());
            let yv = vals(y.clone());
            let grads = y.clone().mul(y.detach().sin()).sum().backward();
            let gx = xg.grad(&grads).map(vals).unwrap_or_default();
            (yv, gx, params(grads))
        };
        let fast = run(true);
        let stock = run(false);
        set_enabled(true);
        [fast, stock]
    }

    #[test]
    fn conv2d_matches_burns_op_forward_and_gradients() {
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // (batch, cin, h, w, cout, kernel, stride, padding, groups, bias)
        let cases = [
            (3, 1, 9, 7, 5, 3, 1, PaddingConfig2d::Valid, 1, true),
            (
                2,
                3,
                11,
                10,
                4,
                3,
                2,
                PaddingConfig2d::Explicit(1, 1, 1, 1),
                1,
                true,
            ),
            (
                2,
                4,
                7,
                9,
                6,
                3,
                2,
                PaddingConfig2d::Explicit(1, 0, 2, 1),
                2,
                false,
            ),
            (
                3,
                5,
                8,
                7,
                5,
                3,
                1,
                PaddingConfig2d::Explicit(1, 1, 1, 1),
                5,
                false,
            ),
            (
                2,
                4,
                9,
                9,
                8,
                3,
                2,
                PaddingConfig2d::Explicit(1, 1, 1, 1),
                4,
                true,
            ),
            (3, 6, 5, 7, 7, 1, 1, PaddingConfig2d::Valid, 1, false),
            (1, 6, 5, 7, 4, 1, 2, PaddingConfig2d::Valid, 2, true),
        ];
        for (b, cin, h, w, cout, k, s, pad, groups, bias) in cases {
            let config = Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([s, s])
                .with_padding(pad.clone())
                .with_groups(groups)
                .with_bias(bias);
            let conv = conv2d_from(&config, &mut rng, &device);
            let x = Tensor::<4>::random([b, cin, h, w], Distribution::Normal(0.0, 1.0), &device);
            let what = format!("b{b} cin{cin} {h}x{w} cout{cout} k{k} s{s} {pad:?} g{groups}");
            let [fast, stock] = both(&x, &|x| conv2d(&conv, x), &|grads| {
                let gp = burn::optim::GradientsParams::from_grads(grads, &conv);
                let mut v = vec![vals(gp.get::<4>(conv.weight.id).unwrap())];
                if let Some(bias) = &conv.bias {
                    v.push(vals(gp.get::<1>(bias.id).unwrap()));
                }
                v
            });
            assert_close(&format!("{what} y"), &fast.0, &stock.0, 1e-5);
            assert_close(&format!("{what} gx"), &fast.1, &stock.1, 1e-4);
            for (i, (a, e)) in fast.2.iter().zip(&stock.2).enumerate() {
                assert_close(&format!("{what} param {i}"), a, e, 1e-4);
            }
        }
    }

    #[test]
    fn batch_norm_matches_burns_module_including_running_statistics() {
        let device = Device::flex().autodiff();
        // (With two samples per channel the normalised values are ±1 whatever x is, so gx is pure
        // rounding noise; every shape here has more.)
        for shape in [[3, 4, 5, 7], [6, 3, 1, 1], [5, 2, 3, 2]] {
            let bn = burn::nn::BatchNormConfig::new(shape[1]).init(&device);
            // Non-trivial gamma/beta.
            let mut bn = bn;
            bn.gamma = burn::module::Param::from_tensor(Tensor::random(
                [shape[1]],
                Distribution::Uniform(0.5, 1.5),
                &device,
            ));
            bn.beta = burn::module::Param::from_tensor(Tensor::random(
                [shape[1]],
                Distribution::Uniform(-1.0, 1.0),
                &device,
            ));
            let x = Tensor::<4>::random(shape, Distribution::Normal(1.0, 2.0), &device);
            let bn_fast = bn.clone();
            let bn_stock = bn.clone();
            let [fast, stock] = both(
                &x,
                &|x| {
                    if enabled() {
                        batch_norm(&bn_fast, x)
                    } else {
                        bn_stock.forward(x)
                    }
                },
                &|grads| {
                    let b = if enabled() { &bn_fast } else { &bn_stock };
                    let gp = burn::optim::GradientsParams::from_grads(grads, b);
                    vec![
                        vals(gp.get::<1>(b.gamma.id).unwrap()),
                        vals(gp.get::<1>(b.beta.id).unwrap()),
                    ]
                },
            );
            assert_close(&format!("{shape:?} y"), &fast.0, &stock.0, 1e-5);
            assert_close(&format!("{shape:?} gx"), &fast.1, &stock.1, 1e-4);
            for (a, e) in fast.2.iter().zip(&stock.2) {
                assert_close(&format!("{shape:?} gamma/beta"), a, e, 1e-4);
            }
            assert_close(
                "running mean",
                &vals(bn_fast.running_mean.value()),
                &vals(bn_stock.running_mean.value()),
                1e-5,
            );
            assert_close(
                "running var",
                &vals(bn_fast.running_var.value()),
                &vals(bn_stock.running_var.value()),
                1e-5,
            );
        }
    }

    #[test]
    fn max_pool_matches_burns_op() {
        let device = Device::flex().autodiff();
        for (h, w, k, s) in [(7, 9, 2, 2), (6, 6, 2, 2), (9, 7, 3, 2), (5, 4, 2, 1)] {
            let pool = MaxPool2dConfig::new([k, k]).with_strides([s, s]).init();
            let x = Tensor::<4>::random([3, 2, h, w], Distribution::Normal(0.0, 1.0), &device);
            let [fast, stock] = both(&x, &|x| max_pool2d(&pool, x), &|_| vec![]);
            assert_eq!(fast.0, stock.0, "{h}x{w} k{k} s{s}");
            assert_close(&format!("{h}x{w} gx"), &fast.1, &stock.1, 1e-6);
        }
    }

    #[test]
    fn worker_settings_carry_the_kernel_choice_and_give_distinct_reproducible_streams() {
        set_enabled(false);
        seed_dropout(4);
        let a = worker_settings();
        let b = worker_settings();
        seed_dropout(4);
        assert_eq!(worker_settings(), a);
        assert_ne!(a, b);
        set_enabled(true);
        // The caller's kernel choice (off) reaches the worker.
        let choice = std::thread::spawn(move || {
            a.apply();
            enabled()
        });
        assert!(!choice.join().unwrap());
        // With the kernels on: the same settings give the same masks on any thread, another
        // stream other masks.
        let x = Tensor::<2>::ones([8, 16], &Device::flex().autodiff());
        let mask_on_worker = |s: ThreadSettings| {
            let (x, drop) = (x.clone(), DropoutConfig::new(0.5).init());
            let s = ThreadSettings { enabled: true, ..s };
            std::thread::spawn(move || {
                s.apply();
                vals(dropout(&drop, x))
            })
            .join()
            .unwrap()
        };
        let ma = mask_on_worker(a);
        assert!(ma.contains(&0.0) && ma.contains(&2.0), "{ma:?}");
        assert_eq!(mask_on_worker(a), ma);
        assert_ne!(mask_on_worker(b), ma);
    }

    #[test]
    fn dropout_keeps_the_right_share_scales_and_routes_gradients() {
        set_enabled(true);
        let device = Device::flex().autodiff();
        let drop = DropoutConfig::new(0.25).init();
        let x = Tensor::<4>::random([4, 8, 30, 30], Distribution::Uniform(1.0, 2.0), &device)
            .require_grad();
        seed_dropout(9);
        let y = dropout(&drop, x.clone());
        let grads = y.clone().sum().backward();
        let (xv, yv, gv) = (
            vals(x.clone()),
            vals(y.clone()),
            vals(x.grad(&grads).unwrap()),
        );
        let kept = yv.iter().filter(|&&v| v != 0.0).count() as f64 / yv.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        for ((x, y), g) in xv.iter().zip(&yv).zip(&gv) {
            if *y == 0.0 {
                assert_eq!(*g, 0.0);
            } else {
                assert!((y - x / 0.75).abs() < 1e-5 && (g - 1.0 / 0.75).abs() < 1e-5);
            }
        }
        // Same seed → same masks; the next call → another mask.
        seed_dropout(9);
        assert_eq!(vals(dropout(&drop, x.clone())), yv);
        assert_ne!(vals(dropout(&drop, x.clone())), yv);
        // Not training on an autodiff device: identity.
        let plain = Tensor::<4>::from_data(x.clone().into_data(), &Device::flex());
        assert_eq!(vals(dropout(&drop, plain.clone())), vals(plain));
    }
}
