//! The CPU kernels of [`super`] as Burn custom operations (a backend extension) for the Flex
//! backend and `Autodiff<Flex>`, with hand-written backward passes.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, ExtensionType, Flex, backend_extension};
use burn::tensor::{DType, TensorData};

use super::bn_cpu::{self, BnGeometry};
use super::conv_cpu::{self, ConvGeometry};
use super::dropout_cpu;
use super::elementwise;
use super::flex_tensor::{FlexTensor, dims_of, values, with_owned_values};
use super::float::KernelFloat;
use super::pool_cpu::{self, PoolGeometry};

/// Tensors of one convolution.
#[derive(ExtensionType)]
pub struct ConvInputs<B: Backend> {
    /// `[batch, cin, h, w]`
    pub x: FloatTensor<B>,
    /// `[cout, cin/groups, kh, kw]`
    pub weight: FloatTensor<B>,
    /// `[cout]` (zeros when the layer has no bias).
    pub bias: FloatTensor<B>,
}

/// Options of one convolution (dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvArgs {
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub padding: [usize; 4],
    /// Channel groups.
    pub groups: usize,
}

/// Tensors of one batch norm (training mode).
#[derive(ExtensionType)]
pub struct BnInputs<B: Backend> {
    /// `[batch, channels, ...]`
    pub x: FloatTensor<B>,
    /// `[channels]`
    pub gamma: FloatTensor<B>,
    /// `[channels]`
    pub beta: FloatTensor<B>,
}

/// Output of one batch norm: the normalised tensor and the batch statistics (not tracked).
#[derive(ExtensionType)]
pub struct BnOutput<B: Backend> {
    /// Same shape as the input.
    pub output: FloatTensor<B>,
    /// Per-channel mean `[channels]`.
    pub mean: FloatTensor<B>,
    /// Per-channel biased variance `[channels]`.
    pub variance: FloatTensor<B>,
}

/// Options of one max pooling (no padding, dilation 1, floor mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolArgs {
    /// Window.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
}

/// Options of one dropout application.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutArgs {
    /// Probability of keeping an element.
    pub keep: f64,
    /// Key of this call's mask.
    pub key: u64,
}

/// Backends with afu's CPU training kernels.
#[backend_extension(Autodiff, Flex)]
pub trait CnnOpsBackend: Backend {
    /// 2-D convolution.
    fn conv2d_fast(#[extension_type] inputs: ConvInputs<Self>, args: ConvArgs)
    -> FloatTensor<Self>;
    /// 2-D max pooling.
    fn max_pool2d_fast(x: FloatTensor<Self>, args: PoolArgs) -> FloatTensor<Self>;
    /// Dropout (training mode).
    fn dropout_fast(x: FloatTensor<Self>, args: DropoutArgs) -> FloatTensor<Self>;
    /// relu, `max(x, 0)` (NaN stays NaN), on rayon's threads.
    fn relu_fast(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Batch norm with the batch's statistics.
    fn batch_norm_fast(#[extension_type] inputs: BnInputs<Self>, epsilon: f64) -> BnOutput<Self>;
}

/// Runs `$body` with `$T` bound to the element type of `$t` (f32 or f64; the callers in
/// [`super`] only route those here).
macro_rules! with_float {
    ($t:expr, $T:ident, $body:expr) => {
        match $t.dtype() {
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::F32 => {
                type $T = f32;
                $body
            }
            other => panic!("afu CPU ops support f32 and f64 tensors, not {other:?}"),
        }
    };
}

fn conv_geometry(x: &FlexTensor, weight: &FlexTensor, args: ConvArgs) -> ConvGeometry {
    let (xd, wd) = (dims_of(x), dims_of(weight));
    ConvGeometry {
        batch: xd[0],
        cin: xd[1],
        h: xd[2],
        w: xd[3],
        cout: wd[0],
        kernel: [wd[2], wd[3]],
        stride: args.stride,
        padding: args.padding,
        groups: args.groups,
    }
}

fn conv_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    args: ConvArgs,
) -> FlexTensor {
    let geo = conv_geometry(x, weight, args);
    let [ho, wo] = geo.out_hw();
    with_float!(x, T, {
        let mut y = vec![T::default(); geo.batch * geo.cout * ho * wo];
        let (xv, wv, bv) = (values::<T>(x), values::<T>(weight), values::<T>(bias));
        conv_cpu::forward(&geo, &xv, &wv, Some(&bv), &mut y);
        FlexTensor::from_data(TensorData::new(y, [geo.batch, geo.cout, ho, wo]))
    })
}

fn pool_geometry(x: &FlexTensor, args: PoolArgs) -> (PoolGeometry, [usize; 4]) {
    let d = dims_of(x);
    (
        PoolGeometry {
            planes: d[0] * d[1],
            h: d[2],
            w: d[3],
            kernel: args.kernel,
            stride: args.stride,
        },
        [d[0], d[1], d[2], d[3]],
    )
}

fn pool_forward(x: &FlexTensor, args: PoolArgs, argmax: Option<&mut Vec<u8>>) -> FlexTensor {
    let (geo, d) = pool_geometry(x, args);
    let [ho, wo] = geo.out_hw();
    with_float!(x, T, {
        let mut y = vec![T::default(); geo.planes * ho * wo];
        let a = argmax.map(|a| {
            a.resize(y.len(), 0);
            &mut a[..]
        });
        pool_cpu::forward(&geo, &values::<T>(x), &mut y, a);
        FlexTensor::from_data(TensorData::new(y, [d[0], d[1], ho, wo]))
    })
}

fn dropout_apply(x: FlexTensor, args: DropoutArgs) -> FlexTensor {
    with_float!(x, T, {
        let scale = (1.0 / args.keep) as T;
        with_owned_values::<T, _>(x, |v| {
            dropout_cpu::apply_in_place(v, args.key, args.keep, scale)
        })
        .0
    })
}

/// relu of `x` as a new tensor.
fn relu_apply(x: &FlexTensor) -> FlexTensor {
    with_float!(x, T, {
        let v = values::<T>(x);
        FlexTensor::from_data(TensorData::new(elementwise::relu(&v), dims_of(x)))
    })
}

/// The relu gradient: `gy` where the output `y` is positive, else 0.
fn relu_grad(gy: FlexTensor, y: &FlexTensor) -> FlexTensor {
    with_float!(y, T, {
        let y = values::<T>(y);
        with_owned_values::<T, _>(gy, |g| elementwise::relu_backward_in_place(g, &y)).0
    })
}

fn bn_geometry(x: &FlexTensor) -> BnGeometry {
    let d = dims_of(x);
    BnGeometry {
        batch: d[0],
        channels: d[1],
        plane: d[2..].iter().product(),
    }
}

/// Per-channel batch mean and biased variance in `f64`, kept for the backward pass.
type BnStats = Arc<(Vec<f64>, Vec<f64>)>;

/// Forward batch norm: (output, mean, variance as tensors, the statistics in f64).
fn bn_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor, BnStats) {
    let geo = bn_geometry(x);
    with_float!(x, T, {
        let xv = values::<T>(x);
        let mut y = vec![T::default(); xv.len()];
        let (mean, var) = bn_cpu::forward(
            &geo,
            &xv,
            &values::<T>(gamma),
            &values::<T>(beta),
            epsilon,
            &mut y,
        );
        let as_t = |v: &[f64]| {
            let t: Vec<T> = v.iter().map(|&a| T::from_f64(a)).collect();
            FlexTensor::from_data(TensorData::new(t, [geo.channels]))
        };
        (
            FlexTensor::from_data(TensorData::new(y, dims_of(x))),
            as_t(&mean),
            as_t(&var),
            Arc::new((mean, var)),
        )
    })
}

impl CnnOpsBackend for Flex {
    fn batch_norm_fast(inputs: BnInputs<Self>, epsilon: f64) -> BnOutput<Self> {
        let (output, mean, variance, _) =
            bn_forward(&inputs.x, &inputs.gamma, &inputs.beta, epsilon);
        BnOutput {
            output,
            mean,
            variance,
        }
    }

    fn conv2d_fast(inputs: ConvInputs<Self>, args: ConvArgs) -> FloatTensor<Self> {
        conv_forward(&inputs.x, &inputs.weight, &inputs.bias, args)
    }

    fn max_pool2d_fast(x: FloatTensor<Self>, args: PoolArgs) -> FloatTensor<Self> {
        pool_forward(&x, args, None)
    }

    fn dropout_fast(x: FloatTensor<Self>, args: DropoutArgs) -> FloatTensor<Self> {
        dropout_apply(x, args)
    }

    fn relu_fast(x: FloatTensor<Self>) -> FloatTensor<Self> {
        relu_apply(&x)
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (FlexTensor, FlexTensor, ConvArgs);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw, pb] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let (x, weight, args) = ops.state;
        let geo = conv_geometry(&x, &weight, args);
        let out = with_float!(x, T, {
            let g = conv_cpu::backward(
                &geo,
                &values::<T>(&x),
                &values::<T>(&weight),
                &values::<T>(&gy),
                px.is_some(),
            );
            (
                g.x.map(|v| FlexTensor::from_data(TensorData::new(v, dims_of(&x)))),
                FlexTensor::from_data(TensorData::new(g.weight, dims_of(&weight))),
                FlexTensor::from_data(TensorData::new(g.bias, [geo.cout])),
            )
        });
        if let (Some(node), Some(gx)) = (px, out.0) {
            grads.register::<Flex>(node.id, gx);
        }
        if let Some(node) = pw {
            grads.register::<Flex>(node.id, out.1);
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, out.2);
        }
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    /// Winners of the forward pass, its geometry and the input's dims.
    type State = (Arc<Vec<u8>>, PoolGeometry, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let Some(node) = parent else { return };
        let (argmax, geo, d) = ops.state;
        let gx = with_float!(gy, T, {
            let v = pool_cpu::backward::<T>(&geo, &values::<T>(&gy), &argmax);
            FlexTensor::from_data(TensorData::new(v, d))
        });
        grads.register::<Flex>(node.id, gx);
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = DropoutArgs;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, dropout_apply(gy, ops.state));
        }
    }
}

#[derive(Debug)]
struct ReluBackward;

impl Backward<Flex, 1> for ReluBackward {
    /// The output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, relu_grad(gy, &ops.state));
        }
    }
}

#[derive(Debug)]
struct BnBackward;

impl Backward<Flex, 3> for BnBackward {
    type State = (FlexTensor, FlexTensor, BnStats, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pg, pb] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats, epsilon) = ops.state;
        let geo = bn_geometry(&x);
        let (gx, gg, gb) = with_float!(x, T, {
            let g = bn_cpu::backward(
                &geo,
                &values::<T>(&x),
                &values::<T>(&gamma),
                &stats.0,
                &stats.1,
                epsilon,
                &values::<T>(&gy),
                px.is_some(),
            );
            (
                g.x.map(|v| FlexTensor::from_data(TensorData::new(v, dims_of(&x)))),
                FlexTensor::from_data(TensorData::new(g.gamma, [geo.channels])),
                FlexTensor::from_data(TensorData::new(g.beta, [geo.channels])),
            )
        });
        if let (Some(node), Some(gx)) = (px, gx) {
            grads.register::<Flex>(node.id, gx);
        }
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, gg);
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, gb);
        }
    }
}

impl<C: CheckpointStrategy> CnnOpsBackend for Autodiff<Flex, C> {
    fn batch_norm_fast(inputs: BnInputs<Self>, epsilon: f64) -> BnOutput<Self> {
        use burn::backend::AutodiffBackend;
        let BnInputs { x, gamma, beta } = inputs;
        let (output, mean, variance, stats) =
            bn_forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
        let output = match BnBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    stats,
                    epsilon,
                ),
                output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        BnOutput {
            output,
            mean: <Self as AutodiffBackend>::from_inner(mean),
            variance: <Self as AutodiffBackend>::from_inner(variance),
        }
    }

    fn conv2d_fast(inputs: ConvInputs<Self>, args: ConvArgs) -> FloatTensor<Self> {
        let ConvInputs { x, weight, bias } = inputs;
        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (x.primitive().clone(), weight.primitive().clone(), args);
                let y = conv_forward(&state.0, &state.1, bias.primitive(), args);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv_forward(
                x.primitive(),
                weight.primitive(),
                bias.primitive(),
                args,
            )),
        }
    }

    fn max_pool2d_fast(x: FloatTensor<Self>, args: PoolArgs) -> FloatTensor<Self> {
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let mut argmax = Vec::new();
                let y = pool_forward(x.primitive(), args, Some(&mut argmax));
                let (geo, d) = pool_geometry(x.primitive(), args);
                prep.finish((Arc::new(argmax), geo, d), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool_forward(x.primitive(), args, None)),
        }
    }

    fn dropout_fast(x: FloatTensor<Self>, args: DropoutArgs) -> FloatTensor<Self> {
        match DropoutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = dropout_apply(x.primitive().clone(), args);
                prep.finish(args, y)
            }
            OpsKind::UnTracked(prep) => {
                let y = dropout_apply(x.primitive().clone(), args);
                prep.finish(y)
            }
        }
    }

    fn relu_fast(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = relu_apply(x.primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(relu_apply(x.primitive())),
        }
    }
}
