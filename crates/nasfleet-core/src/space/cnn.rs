//! The paper's CIFAR-10 convolutional search space (Zoph & Le 2017, §3).
//!
//! Per layer, in token order: filter height, filter width, [stride height,
//! stride width when `predict_strides`], number of filters, then the anchor
//! point (one yes/no per earlier layer). The value sets, the depth schedule and
//! the fixed max-pooling positions (the paper's v3) are configuration.
//!
//! [`CnnArch::resolve`] applies the paper's three rules that make every sample
//! buildable and computes shapes, parameters and FLOPs without tch, so a worker
//! can refuse an over-budget child before allocating anything:
//! 1. a layer with no input takes the image;
//! 2. every output no other layer consumes is concatenated at the end;
//! 3. inputs of different spatial size are zero-padded (bottom/right) to the
//!    largest height and width before concatenation along channels.
//!
//! Convolutions use "same" padding `(k-1)/2` (kernels are odd), so a stride `s`
//! maps `H` to `ceil(H/s)`; max-pooling is 2×2, stride 2, ceil mode (`ceil(H/2)`,
//! never zero). Convs have no bias (batch norm follows), batch norm has a weight
//! and a bias per channel, the classifier is global average pooling + linear.

use serde::{Deserialize, Serialize};

use crate::error::ArchError;
use crate::limits::ArchLimits;
use crate::schema::{DecisionType, Step, StepKind, TokenSchema};

/// Depth schedule: `start + step * floor(samples / every)`, capped at `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DepthSchedule {
    /// Layers of the first proposals (≥ 1). Paper: 6.
    pub start: usize,
    /// Layers added at each growth. Paper: 2.
    pub step: usize,
    /// Proposals between growths (0 = never grow). Paper: 1,600.
    pub every: u64,
    /// The depth never exceeds this (nor `[limits] max_layers`). Paper: 20.
    pub max: usize,
}

impl Default for DepthSchedule {
    fn default() -> Self {
        // Paper: 6 layers, +2 every 1,600 samples, 12,800 samples ending at 20.
        DepthSchedule { start: 6, step: 2, every: 1600, max: 20 }
    }
}

impl DepthSchedule {
    /// The depth of the proposal after `samples_drawn` earlier proposals.
    pub fn layers_at(&self, samples_drawn: u64) -> usize {
        let grown = samples_drawn.checked_div(self.every).unwrap_or(0) as usize;
        (self.start + self.step.saturating_mul(grown)).min(self.max.max(self.start))
    }
}

/// The CNN search space's settings (paper defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CnnSpace {
    /// Kernel heights to choose from, in pixels (odd). Paper: 1, 3, 5, 7.
    pub filter_heights: Vec<u32>,
    /// Kernel widths to choose from, in pixels (odd). Paper: 1, 3, 5, 7.
    pub filter_widths: Vec<u32>,
    /// Whether each layer also chooses its strides (the paper's "predicting
    /// strides" variant); otherwise every stride is 1.
    pub predict_strides: bool,
    /// Strides to choose from when `predict_strides`. Paper: 1, 2, 3.
    pub strides: Vec<u32>,
    /// Filter counts (output channels) to choose from. Paper: 24, 36, 48, 64.
    pub num_filters: Vec<u32>,
    /// Layer indices (0-based) after which a 2×2 max-pool is applied (v3).
    pub max_pool_after: Vec<usize>,
    /// How the number of layers grows during a search.
    pub depth: DepthSchedule,
}

impl Default for CnnSpace {
    fn default() -> Self {
        CnnSpace {
            filter_heights: vec![1, 3, 5, 7],
            filter_widths: vec![1, 3, 5, 7],
            predict_strides: false,
            strides: vec![1, 2, 3],
            num_filters: vec![24, 36, 48, 64],
            max_pool_after: vec![],
            depth: DepthSchedule::default(),
        }
    }
}

/// Decision-type indices of the CNN schema; fixed whatever the settings, so a
/// controller's embedding tables survive a change of depth.
pub const D_FILTER_HEIGHT: usize = 0;
/// Decision type of a layer's kernel width.
pub const D_FILTER_WIDTH: usize = 1;
/// Decision type of a layer's vertical stride (present with `predict_strides`).
pub const D_STRIDE_HEIGHT: usize = 2;
/// Decision type of a layer's horizontal stride (present with `predict_strides`).
pub const D_STRIDE_WIDTH: usize = 3;
/// Decision type of a layer's filter count.
pub const D_NUM_FILTERS: usize = 4;

/// One convolutional layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnLayer {
    /// Kernel height in pixels (odd).
    pub filter_height: u32,
    /// Kernel width in pixels (odd).
    pub filter_width: u32,
    /// Vertical stride in pixels (default 1).
    #[serde(default = "one")]
    pub stride_height: u32,
    /// Horizontal stride in pixels (default 1).
    #[serde(default = "one")]
    pub stride_width: u32,
    /// Number of filters: the layer's output channels.
    pub filters: u32,
    /// Earlier layers feeding this one (strictly increasing); empty = the image.
    #[serde(default)]
    pub inputs: Vec<usize>,
}

fn one() -> u32 {
    1
}

/// A CNN child architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnArch {
    /// The layers in order; a layer's inputs are earlier layers.
    pub layers: Vec<CnnLayer>,
    /// Layer indices (0-based, strictly increasing) after which a 2×2
    /// max-pool is applied: the space's fixed positions below the depth.
    #[serde(default)]
    pub max_pool_after: Vec<usize>,
}

fn values(v: &[u32]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

impl CnnSpace {
    fn per_layer(&self) -> usize {
        if self.predict_strides {
            5
        } else {
            3
        }
    }

    /// The token schema of an architecture with `layers` layers.
    pub fn schema(&self, layers: usize) -> TokenSchema {
        let decisions = vec![
            DecisionType { name: "filter_height".into(), choices: values(&self.filter_heights) },
            DecisionType { name: "filter_width".into(), choices: values(&self.filter_widths) },
            DecisionType { name: "stride_height".into(), choices: values(&self.strides) },
            DecisionType { name: "stride_width".into(), choices: values(&self.strides) },
            DecisionType { name: "num_filters".into(), choices: values(&self.num_filters) },
        ];
        let mut steps = Vec::new();
        for i in 0..layers {
            let mut choice = |d: usize| {
                steps.push(Step {
                    name: format!("layer {i} {}", decisions[d].name),
                    kind: StepKind::Choice { decision: d },
                })
            };
            choice(D_FILTER_HEIGHT);
            choice(D_FILTER_WIDTH);
            if self.predict_strides {
                choice(D_STRIDE_HEIGHT);
                choice(D_STRIDE_WIDTH);
            }
            choice(D_NUM_FILTERS);
            steps.push(Step { name: format!("layer {i} skip"), kind: StepKind::Anchor { layer: i } });
        }
        TokenSchema { decisions, steps }
    }

    /// Token count of an `l`-layer architecture.
    pub fn token_count(&self, l: usize) -> usize {
        l * self.per_layer() + l * l.saturating_sub(1) / 2
    }

    /// The layer count whose token count is `n`, if any.
    pub fn layers_for_token_count(&self, n: usize) -> Option<usize> {
        let mut l = 0;
        while self.token_count(l) < n {
            l += 1;
        }
        (self.token_count(l) == n).then_some(l)
    }

    /// The architecture a complete token sequence stands for; its length
    /// gives the depth. Errors name the nearest valid lengths or the
    /// offending token.
    pub fn decode(&self, tokens: &[u32]) -> Result<CnnArch, ArchError> {
        let l = self.layers_for_token_count(tokens.len()).ok_or_else(|| {
            let mut l = 0;
            while self.token_count(l + 1) < tokens.len() {
                l += 1;
            }
            ArchError::invalid(
                "tokens",
                format!(
                    "{} tokens is no layer count's length ({} layers = {}, {} layers = {})",
                    tokens.len(),
                    l,
                    self.token_count(l),
                    l + 1,
                    self.token_count(l + 1)
                ),
            )
        })?;
        if l == 0 {
            return Err(ArchError::invalid("layers", "an architecture needs at least one layer"));
        }
        self.schema(l).check_tokens(tokens)?;
        let mut it = tokens.iter().map(|&t| t as usize);
        let mut layers = Vec::with_capacity(l);
        // check_tokens proved every index is in range and the count is exact.
        let mut next = || it.next().unwrap_or(0);
        for i in 0..l {
            let filter_height = self.filter_heights[next()];
            let filter_width = self.filter_widths[next()];
            let (stride_height, stride_width) =
                if self.predict_strides { (self.strides[next()], self.strides[next()]) } else { (1, 1) };
            let filters = self.num_filters[next()];
            let inputs = (0..i).filter(|_| next() == 1).collect();
            layers.push(CnnLayer { filter_height, filter_width, stride_height, stride_width, filters, inputs });
        }
        let max_pool_after = self.max_pool_after.iter().copied().filter(|&p| p < l).collect();
        Ok(CnnArch { layers, max_pool_after })
    }

    /// The tokens of `arch`, the inverse of [`decode`](Self::decode); refuses
    /// an architecture this space cannot emit.
    pub fn encode(&self, arch: &CnnArch) -> Result<Vec<u32>, ArchError> {
        self.check_membership(arch)?;
        let idx = |set: &[u32], v: u32| set.iter().position(|&x| x == v).unwrap_or(0) as u32;
        let mut out = Vec::with_capacity(self.token_count(arch.layers.len()));
        for (i, layer) in arch.layers.iter().enumerate() {
            out.push(idx(&self.filter_heights, layer.filter_height));
            out.push(idx(&self.filter_widths, layer.filter_width));
            if self.predict_strides {
                out.push(idx(&self.strides, layer.stride_height));
                out.push(idx(&self.strides, layer.stride_width));
            }
            out.push(idx(&self.num_filters, layer.filters));
            out.extend((0..i).map(|j| layer.inputs.contains(&j) as u32));
        }
        Ok(out)
    }

    /// Checks that every value of `arch` is one this space can emit.
    pub fn check_membership(&self, arch: &CnnArch) -> Result<(), ArchError> {
        let member = |field: String, set: &[u32], v: u32| {
            if set.contains(&v) {
                Ok(())
            } else {
                Err(ArchError::invalid(field, format!("{v} is not one of {set:?}")))
            }
        };
        for (i, l) in arch.layers.iter().enumerate() {
            member(format!("layers[{i}].filter_height"), &self.filter_heights, l.filter_height)?;
            member(format!("layers[{i}].filter_width"), &self.filter_widths, l.filter_width)?;
            if self.predict_strides {
                member(format!("layers[{i}].stride_height"), &self.strides, l.stride_height)?;
                member(format!("layers[{i}].stride_width"), &self.strides, l.stride_width)?;
            } else {
                member(format!("layers[{i}].stride_height"), &[1], l.stride_height)?;
                member(format!("layers[{i}].stride_width"), &[1], l.stride_width)?;
            }
            member(format!("layers[{i}].filters"), &self.num_filters, l.filters)?;
        }
        let expected: Vec<usize> =
            self.max_pool_after.iter().copied().filter(|&p| p < arch.layers.len()).collect();
        if arch.max_pool_after != expected {
            return Err(ArchError::invalid(
                "max_pool_after",
                format!("{:?} differs from this space's fixed positions {:?}", arch.max_pool_after, expected),
            ));
        }
        Ok(())
    }
}

impl CnnArch {
    /// Structural validation against hard limits (whatever the space settings).
    pub fn validate(&self, limits: &ArchLimits) -> Result<(), ArchError> {
        let n = self.layers.len();
        if n == 0 || n > limits.max_layers {
            return Err(ArchError::invalid("layers", format!("{n} layers is outside 1..={}", limits.max_layers)));
        }
        for (i, l) in self.layers.iter().enumerate() {
            for (name, k) in [("filter_height", l.filter_height), ("filter_width", l.filter_width)] {
                if k == 0 || k > limits.max_kernel || k % 2 == 0 {
                    return Err(ArchError::invalid(
                        format!("layers[{i}].{name}"),
                        format!("{k} is not an odd size in 1..={}", limits.max_kernel),
                    ));
                }
            }
            for (name, s) in [("stride_height", l.stride_height), ("stride_width", l.stride_width)] {
                if s == 0 || s > limits.max_stride {
                    return Err(ArchError::invalid(
                        format!("layers[{i}].{name}"),
                        format!("{s} is outside 1..={}", limits.max_stride),
                    ));
                }
            }
            if l.filters == 0 || l.filters > limits.max_filters {
                return Err(ArchError::invalid(
                    format!("layers[{i}].filters"),
                    format!("{} is outside 1..={}", l.filters, limits.max_filters),
                ));
            }
            let mut prev: Option<usize> = None;
            for &j in &l.inputs {
                if j >= i {
                    return Err(ArchError::invalid(
                        format!("layers[{i}].inputs"),
                        format!("input {j} is not an earlier layer (must be < {i})"),
                    ));
                }
                if prev.is_some_and(|p| p >= j) {
                    return Err(ArchError::invalid(
                        format!("layers[{i}].inputs"),
                        "inputs must be strictly increasing (no duplicates)",
                    ));
                }
                prev = Some(j);
            }
        }
        let mut prev: Option<usize> = None;
        for &p in &self.max_pool_after {
            if p >= n || prev.is_some_and(|q| q >= p) {
                return Err(ArchError::invalid(
                    "max_pool_after",
                    format!("{:?} must be strictly increasing layer indices < {n}", self.max_pool_after),
                ));
            }
            prev = Some(p);
        }
        Ok(())
    }

    /// Applies the three rules and computes shapes and costs.
    /// `input` is (channels, height, width) of one image. Call `validate` first;
    /// this function assumes a structurally valid architecture.
    pub fn resolve(&self, input: (usize, usize, usize), classes: usize) -> CnnGraph {
        let (c0, h0, w0) = input;
        let n = self.layers.len();
        let mut consumed = vec![false; n];
        for l in &self.layers {
            for &j in &l.inputs {
                consumed[j] = true;
            }
        }
        // Output shape of each layer as seen by its consumers (after pooling).
        let mut outs: Vec<(usize, usize, usize)> = Vec::with_capacity(n);
        let mut layers = Vec::with_capacity(n);
        let mut total_params = 0u64;
        let mut total_macs = 0u64;
        let mut activations = 0u64;
        for (i, l) in self.layers.iter().enumerate() {
            let srcs: Vec<(usize, usize, usize)> =
                if l.inputs.is_empty() { vec![(c0, h0, w0)] } else { l.inputs.iter().map(|&j| outs[j]).collect() };
            let (cin, hin, win) = concat_shape(&srcs);
            let (kh, kw) = (l.filter_height as usize, l.filter_width as usize);
            let (sh, sw) = (l.stride_height as usize, l.stride_width as usize);
            let cout = l.filters as usize;
            let (hc, wc) = (hin.div_ceil(sh), win.div_ceil(sw));
            let pooled = self.max_pool_after.contains(&i);
            let (ho, wo) = if pooled { (hc.div_ceil(2), wc.div_ceil(2)) } else { (hc, wc) };
            let conv_params = (kh * kw * cin * cout) as u64;
            let bn_params = 2 * cout as u64;
            let macs = conv_params * (hc * wc) as u64;
            total_params += conv_params + bn_params;
            total_macs += macs;
            activations += (cout * hc * wc) as u64;
            outs.push((cout, ho, wo));
            layers.push(ResolvedLayer {
                takes_image: l.inputs.is_empty(),
                inputs: l.inputs.clone(),
                input_shape: [cin, hin, win],
                conv_output_shape: [cout, hc, wc],
                output_shape: [cout, ho, wo],
                pooled,
                params: conv_params + bn_params,
                macs,
            });
        }
        let final_inputs: Vec<usize> = (0..n).filter(|&i| !consumed[i]).collect();
        let (cf, hf, wf) = concat_shape(&final_inputs.iter().map(|&i| outs[i]).collect::<Vec<_>>());
        let classifier_params = (cf * classes + classes) as u64;
        total_params += classifier_params;
        total_macs += (cf * classes) as u64;
        CnnGraph {
            input_shape: [c0, h0, w0],
            classes,
            layers,
            final_inputs,
            final_shape: [cf, hf, wf],
            classifier_params,
            params: total_params,
            macs: total_macs,
            activation_elems: activations,
        }
    }
}

/// Shape after zero-padding every input to the largest H and W and
/// concatenating along channels (rule 3).
fn concat_shape(srcs: &[(usize, usize, usize)]) -> (usize, usize, usize) {
    let c = srcs.iter().map(|s| s.0).sum();
    let h = srcs.iter().map(|s| s.1).max().unwrap_or(0);
    let w = srcs.iter().map(|s| s.2).max().unwrap_or(0);
    (c, h, w)
}

/// One layer after the rules are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedLayer {
    /// Rule 1: no chosen input, so the image is the input.
    pub takes_image: bool,
    /// The earlier layers concatenated into this one's input.
    pub inputs: Vec<usize>,
    /// [C, H, W] after padding + concatenation of the inputs.
    pub input_shape: [usize; 3],
    /// [C, H, W] of the convolution's output, before any max-pool.
    pub conv_output_shape: [usize; 3],
    /// After the optional max-pool: what consumers see.
    pub output_shape: [usize; 3],
    /// Whether a 2×2 max-pool follows this layer.
    pub pooled: bool,
    /// Trainable parameters: convolution weights plus batch-norm weight and bias.
    pub params: u64,
    /// Multiply-accumulates of the convolution for one image.
    pub macs: u64,
}

/// The resolved network with its costs for one input shape and class count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CnnGraph {
    /// [C, H, W] of one input image.
    pub input_shape: [usize; 3],
    /// Number of classes of the classifier.
    pub classes: usize,
    /// Every layer, in order.
    pub layers: Vec<ResolvedLayer>,
    /// Rule 2: layers nobody consumes, concatenated into the classifier.
    pub final_inputs: Vec<usize>,
    /// [C, H, W] of that concatenation, before global average pooling.
    pub final_shape: [usize; 3],
    /// Weights and biases of the final linear layer.
    pub classifier_params: u64,
    /// Trainable parameters (conv weights, BN weight+bias, linear weight+bias).
    pub params: u64,
    /// Multiply-accumulates of one forward pass of one image (convs + linear).
    pub macs: u64,
    /// Elements of all conv outputs for one image: a proxy for activation memory.
    pub activation_elems: u64,
}

impl CnnGraph {
    /// FLOPs of one forward pass of one image, counting a multiply-add as 2.
    pub fn flops(&self) -> u64 {
        2 * self.macs
    }
}
