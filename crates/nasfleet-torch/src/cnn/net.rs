//! The child network: any [`CnnArch`] as a tch module.
//!
//! The graph is the one [`CnnArch::resolve`] computes without tch, so the
//! budget check, the parameter count and the module cannot disagree:
//! 1. a layer with no chosen input takes the image;
//! 2. every output no other layer consumes is concatenated at the end;
//! 3. inputs of different spatial size are zero-padded bottom/right to the
//!    largest height and width before concatenation along channels.
//!
//! Each layer is conv (no bias, "same" padding `(k-1)/2`, the chosen strides)
//! → batch norm → ReLU, optionally followed by a 2×2/2 ceil-mode max-pool;
//! then global average pooling and a linear classifier. The same network is
//! written independently in PyTorch in
//! `crates/nasfleet-core/tests/golden/cnn_reference.py`.
//!
//! Weights are drawn from the child's own seeded ChaCha8 stream with
//! PyTorch's default distributions (`U(±1/√fan_in)` for convolutions and the
//! classifier, BN weight 1 and bias 0), never from torch's global generator:
//! several workers in one process would otherwise race on it and a child's
//! initial weights would depend on its neighbours.

use rand::distributions::{Distribution, Uniform};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Kind, Tensor};

use nasfleet_core::space::cnn::{CnnArch, CnnGraph};
use nasfleet_core::ArchLimits;

use super::CnnError;

/// Batch-norm settings (PyTorch's defaults, which the DenseNet recipe uses).
const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

/// One conv → BN → ReLU layer, with handles to its VarStore tensors.
#[derive(Debug)]
struct ConvBn {
    weight: Tensor,
    bn_weight: Tensor,
    bn_bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    stride: [i64; 2],
    padding: [i64; 2],
}

/// `U(-bound, bound)` values from `rng` as a tensor of `shape` (on the CPU).
fn uniform(rng: &mut ChaCha8Rng, shape: &[i64], bound: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let dist = Uniform::new_inclusive(-bound as f32, bound as f32);
    let values: Vec<f32> = (0..n).map(|_| dist.sample(rng)).collect();
    Tensor::from_slice(&values).view(shape)
}

/// A convolution with "same" padding followed by batch norm, under `p`.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    p: &nn::Path,
    c_in: i64,
    c_out: i64,
    kernel: [i64; 2],
    stride: [i64; 2],
    rng: &mut ChaCha8Rng,
) -> Result<ConvBn, CnnError> {
    let fan_in = (c_in * kernel[0] * kernel[1]) as f64;
    let w = uniform(rng, &[c_out, c_in, kernel[0], kernel[1]], 1.0 / fan_in.sqrt());
    let conv = p / "conv";
    let bn = p / "bn";
    Ok(ConvBn {
        weight: conv.f_var_copy("weight", &w)?,
        bn_weight: bn.f_ones("weight", &[c_out])?,
        bn_bias: bn.f_zeros("bias", &[c_out])?,
        running_mean: bn.f_zeros_no_train("running_mean", &[c_out])?,
        running_var: bn.f_ones_no_train("running_var", &[c_out])?,
        stride,
        padding: [(kernel[0] - 1) / 2, (kernel[1] - 1) / 2],
    })
}

impl ConvBn {
    fn forward(&self, x: &Tensor, train: bool, kind: Kind) -> Result<Tensor, CnnError> {
        // Mixed precision: the fp32 master weight is cast for the convolution
        // (the cast is differentiable, so its gradient lands in fp32); batch
        // norm keeps fp32 parameters and statistics and takes the bf16 input.
        let w = if kind == Kind::Float { self.weight.shallow_clone() } else { self.weight.f_to_kind(kind)? };
        let y = x.f_conv2d(&w, None::<Tensor>, self.stride, self.padding, [1, 1], 1)?;
        let y = y.f_batch_norm(
            Some(&self.bn_weight),
            Some(&self.bn_bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            BN_MOMENTUM,
            BN_EPS,
            true,
        )?;
        Ok(y.f_relu()?)
    }
}

/// Zero-pads every tensor bottom/right to the largest height and width and
/// concatenates them along channels (rules 2 and 3).
fn pad_cat(xs: &[&Tensor]) -> Result<Tensor, CnnError> {
    if let [x] = xs {
        return Ok(x.shallow_clone());
    }
    let size = |x: &Tensor| -> Result<(i64, i64), CnnError> {
        let s = x.size();
        match s.as_slice() {
            [_, _, h, w] => Ok((*h, *w)),
            _ => Err(CnnError::Invalid(format!("expected an N×C×H×W tensor, got shape {s:?}"))),
        }
    };
    let mut h = 0;
    let mut w = 0;
    for x in xs {
        let (xh, xw) = size(x)?;
        h = h.max(xh);
        w = w.max(xw);
    }
    let mut padded = Vec::with_capacity(xs.len());
    for x in xs {
        let (xh, xw) = size(x)?;
        padded.push(if (xh, xw) == (h, w) { x.shallow_clone() } else { x.f_constant_pad_nd([0, w - xw, 0, h - xh])? });
    }
    Ok(Tensor::f_cat(&padded, 1)?)
}

/// Shapes seen in one forward pass (for tests and diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardShapes {
    /// Per layer: [C, H, W] of the (padded, concatenated) input, of the
    /// convolution's output and of the layer's output after pooling.
    pub layers: Vec<[[i64; 3]; 3]>,
    /// [C, H, W] of the classifier's input before global pooling.
    pub final_shape: [i64; 3],
}

/// A built child network. Its variables live in the `VarStore` whose path
/// was passed to [`CnnNet::build`].
#[derive(Debug)]
pub struct CnnNet {
    layers: Vec<ConvBn>,
    inputs: Vec<Vec<usize>>,
    pooled: Vec<bool>,
    final_inputs: Vec<usize>,
    /// The last layer that reads each output (`usize::MAX` for the final
    /// concatenation), so an output no longer needed is dropped at once.
    last_use: Vec<usize>,
    fc_weight: Tensor,
    fc_bias: Tensor,
    graph: CnnGraph,
    compute: Kind,
}

/// Limits that accept every structurally valid architecture: the trainer
/// checks structure (inputs point backwards, kernels odd, …) because
/// `resolve` relies on it, but leaves size policy to the worker's limits and
/// the budget.
fn structural_limits() -> ArchLimits {
    ArchLimits {
        max_payload_bytes: usize::MAX,
        max_layers: usize::MAX,
        max_filters: u32::MAX,
        max_kernel: u32::MAX,
        max_stride: u32::MAX,
        max_cell_base: usize::MAX,
    }
}

/// Validates `arch` structurally and resolves it for `input` = (C, H, W).
pub fn resolve_checked(arch: &CnnArch, input: (usize, usize, usize), classes: usize) -> Result<CnnGraph, CnnError> {
    arch.validate(&structural_limits())?;
    if input.0 == 0 || input.1 == 0 || input.2 == 0 || classes == 0 {
        return Err(CnnError::Invalid(format!(
            "input shape {input:?} and class count {classes} must all be positive"
        )));
    }
    Ok(arch.resolve(input, classes))
}

impl CnnNet {
    /// Builds `arch` for images of `input` = (C, H, W) and `classes` outputs,
    /// creating its variables under `p` (on `p`'s device) with weights drawn
    /// from `rng`. `mixed_precision` makes the forward pass run its
    /// convolutions in bfloat16 (inputs must then be bfloat16 too).
    pub fn build(
        p: &nn::Path,
        arch: &CnnArch,
        input: (usize, usize, usize),
        classes: usize,
        rng: &mut ChaCha8Rng,
        mixed_precision: bool,
    ) -> Result<CnnNet, CnnError> {
        let graph = resolve_checked(arch, input, classes)?;
        let n = arch.layers.len();
        let mut layers = Vec::with_capacity(n);
        for (i, (l, r)) in arch.layers.iter().zip(&graph.layers).enumerate() {
            layers.push(conv_bn(
                &(p / "layers" / i),
                r.input_shape[0] as i64,
                l.filters as i64,
                [l.filter_height as i64, l.filter_width as i64],
                [l.stride_height as i64, l.stride_width as i64],
                rng,
            )?);
        }
        let mut last_use = vec![0usize; n];
        for (i, l) in arch.layers.iter().enumerate() {
            for &j in &l.inputs {
                last_use[j] = last_use[j].max(i);
            }
        }
        for &f in &graph.final_inputs {
            last_use[f] = usize::MAX;
        }
        let features = graph.final_shape[0] as i64;
        let bound = 1.0 / (features as f64).sqrt();
        let fc = p / "fc";
        let fc_weight = fc.f_var_copy("weight", &uniform(rng, &[classes as i64, features], bound))?;
        let fc_bias = fc.f_var_copy("bias", &uniform(rng, &[classes as i64], bound))?;
        Ok(CnnNet {
            layers,
            inputs: arch.layers.iter().map(|l| l.inputs.clone()).collect(),
            pooled: graph.layers.iter().map(|l| l.pooled).collect(),
            final_inputs: graph.final_inputs.clone(),
            last_use,
            fc_weight,
            fc_bias,
            graph,
            compute: if mixed_precision { Kind::BFloat16 } else { Kind::Float },
        })
    }

    /// The resolved graph (shapes, parameters, FLOPs) this network was built from.
    pub fn graph(&self) -> &CnnGraph {
        &self.graph
    }

    /// The kind the convolutions compute in (`Float`, or `BFloat16` when mixed).
    pub fn compute_kind(&self) -> Kind {
        self.compute
    }

    /// Logits (fp32) for a batch `x` of N×C×H×W images in the compute kind.
    /// `train` selects batch statistics (and updates the running ones).
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor, CnnError> {
        self.run(x, train, None)
    }

    /// As [`CnnNet::forward`], also recording every layer's shapes.
    pub fn forward_with_shapes(&self, x: &Tensor, train: bool) -> Result<(Tensor, ForwardShapes), CnnError> {
        let mut shapes = ForwardShapes { layers: Vec::new(), final_shape: [0; 3] };
        let y = self.run(x, train, Some(&mut shapes))?;
        Ok((y, shapes))
    }

    fn run(&self, x: &Tensor, train: bool, mut trace: Option<&mut ForwardShapes>) -> Result<Tensor, CnnError> {
        let chw = |t: &Tensor| -> [i64; 3] {
            let s = t.size();
            [s[1], s[2], s[3]]
        };
        let mut outs: Vec<Option<Tensor>> = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let input = if self.inputs[i].is_empty() {
                x.shallow_clone() // rule 1: no input layer, so the image
            } else {
                let srcs = self.inputs[i]
                    .iter()
                    .map(|&j| outs[j].as_ref().ok_or_else(|| freed(j, i)))
                    .collect::<Result<Vec<_>, _>>()?;
                pad_cat(&srcs)?
            };
            let conv = layer.forward(&input, train, self.compute)?;
            let out = if self.pooled[i] { conv.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true)? } else { conv.shallow_clone() };
            if let Some(t) = trace.as_deref_mut() {
                t.layers.push([chw(&input), chw(&conv), chw(&out)]);
            }
            outs.push(Some(out));
            // Outputs read for the last time are dropped now: in evaluation
            // (no autograd graph) this bounds memory by the live skips.
            for &j in &self.inputs[i] {
                if self.last_use[j] == i {
                    outs[j] = None;
                }
            }
        }
        let finals = self
            .final_inputs
            .iter()
            .map(|&j| outs[j].as_ref().ok_or_else(|| freed(j, usize::MAX)))
            .collect::<Result<Vec<_>, _>>()?;
        let z = pad_cat(&finals)?; // rules 2 and 3
        if let Some(t) = trace {
            t.final_shape = chw(&z);
        }
        // Global average pooling accumulates in fp32 whatever the compute kind,
        // and the classifier runs in fp32. (In fp32, no dtype argument: the
        // mean-with-dtype kernel's backward pass is measurably slower.)
        let dims = [2i64, 3];
        let pooled = if self.compute == Kind::Float {
            z.f_mean_dim(dims.as_slice(), false, None::<Kind>)?
        } else {
            z.f_mean_dim(dims.as_slice(), false, Kind::Float)?
        };
        Ok(pooled.f_linear(&self.fc_weight, Some(&self.fc_bias))?)
    }
}

fn freed(j: usize, at: usize) -> CnnError {
    CnnError::Invalid(format!("internal: output of layer {j} was released before its use at {at}"))
}
