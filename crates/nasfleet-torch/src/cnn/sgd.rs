//! SGD with (Nesterov) momentum and weight decay, over one flat buffer.
//!
//! Written here rather than taken from `tch::nn::Optimizer` for two reasons:
//! - a preempted child must resume bit for bit, which needs the momentum
//!   buffers, and tch's optimizer keeps them inside libtorch out of reach;
//! - small children are launch-bound on a GPU: a per-parameter loop (what
//!   PyTorch runs on the CPU) costs ~5 kernels per tensor, and the
//!   multi-tensor `_foreach` kernels PyTorch uses on CUDA are not exposed by
//!   tch. Here every trainable tensor is rebound (`set_data`) to a view of
//!   one flat fp32 buffer, gradients are gathered with one `cat`, and the
//!   update is a handful of whole-buffer kernels whatever the depth.
//!
//! The update is PyTorch's `torch.optim.SGD` (dampening 0):
//! `g ← ∇ + wd·θ; b ← μ·b + g; g ← g + μ·b (Nesterov) or b; θ ← θ − lr·g`,
//! with the buffer starting at zero (so the first step gives `b = g`, as
//! PyTorch's lazy initialisation does).

use tch::{Kind, Tensor};

use super::CnnError;

/// Momentum, Nesterov and weight decay (the learning rate comes per step so a
/// schedule needs no optimiser state).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Momentum coefficient (0 = plain SGD).
    pub momentum: f64,
    /// Nesterov momentum instead of heavy-ball momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient as `weight_decay · p` (0 = none).
    pub weight_decay: f64,
}

/// The optimiser and the flat parameter storage it owns.
#[derive(Debug)]
pub struct FlatSgd {
    vars: Vec<Tensor>,
    /// The zero padding after each variable (possibly empty).
    zeros: Vec<Tensor>,
    params: Tensor,
    momentum: Tensor,
    numel: i64,
    config: SgdConfig,
}

/// Alignment of every variable in the flat buffer, in fp32 values (64 bytes).
const ALIGN: i64 = 16;

impl FlatSgd {
    /// Moves `vars` (fp32 leaf tensors that require gradients, all on one
    /// device) into one flat buffer; their values are kept.
    pub fn new(vars: Vec<Tensor>, config: SgdConfig) -> Result<FlatSgd, CnnError> {
        let first = vars.first().ok_or_else(|| CnnError::Invalid("no trainable variables to optimise".into()))?;
        let device = first.device();
        if let Some(v) = vars.iter().find(|v| v.kind() != Kind::Float || v.device() != device) {
            return Err(CnnError::Invalid(format!(
                "the optimiser needs fp32 variables on one device; got {:?} on {:?}",
                v.kind(),
                v.device()
            )));
        }
        // Every variable starts on a 64-byte boundary, as a tensor of its own
        // would: convolution kernels read misaligned weights measurably
        // slower (a 6-layer child's forward pass took 88 ms instead of 72 on
        // the CPU). The gaps hold zeros and receive zero gradients.
        let gaps: Vec<i64> = vars.iter().map(|v| (ALIGN - v.numel() as i64 % ALIGN) % ALIGN).collect();
        let zeros = gaps
            .iter()
            .map(|&g| Tensor::f_zeros([g], (Kind::Float, device)))
            .collect::<Result<Vec<_>, _>>()?;
        let flat = tch::no_grad(|| {
            let mut parts = Vec::with_capacity(2 * vars.len());
            for (v, z) in vars.iter().zip(&zeros) {
                parts.push(v.f_reshape([-1])?);
                parts.push(z.shallow_clone());
            }
            Tensor::f_cat(&parts, 0)
        })?;
        let mut vars = vars;
        let mut offset = 0i64;
        for (v, gap) in vars.iter_mut().zip(&gaps) {
            let n = v.numel() as i64;
            let view = flat.f_narrow(0, offset, n)?.f_view(v.size().as_slice())?;
            // The variable keeps its identity (autograd leaf, VarStore entry,
            // the network's handle) and now reads and writes the flat buffer.
            v.set_data(&view);
            offset += n + gap;
        }
        let momentum = flat.f_zeros_like()?;
        let numel = vars.iter().map(|v| v.numel() as i64).sum();
        Ok(FlatSgd { vars, zeros, params: flat, momentum, numel, config })
    }

    /// Number of scalars optimised.
    pub fn numel(&self) -> i64 {
        self.numel
    }

    /// All trainable values, in VarStore order, as one flat tensor (shared
    /// storage; each variable padded with zeros to a multiple of 16 values).
    pub fn params(&self) -> &Tensor {
        &self.params
    }

    /// The momentum buffer, aligned with [`FlatSgd::params`].
    pub fn momentum(&self) -> &Tensor {
        &self.momentum
    }

    /// Overwrites parameters and momentum (checkpoint restore).
    pub fn load(&mut self, params: &Tensor, momentum: &Tensor) -> Result<(), CnnError> {
        // Both checked before either is written.
        for (name, src, dst) in [("params", params, &self.params), ("momentum", momentum, &self.momentum)] {
            if src.size() != dst.size() {
                return Err(CnnError::Invalid(format!(
                    "checkpoint {name} has shape {:?}, this network needs {:?}",
                    src.size(),
                    dst.size()
                )));
            }
        }
        tch::no_grad(|| -> Result<(), CnnError> {
            self.params.f_copy_(params)?;
            self.momentum.f_copy_(momentum)?;
            Ok(())
        })
    }

    /// Back-propagates `loss` into the variables and applies one update.
    pub fn step(&mut self, loss: &Tensor, lr: f64) -> Result<(), CnnError> {
        // `run_backward` returns the gradients instead of accumulating them
        // into `.grad`, so there is nothing to zero between steps.
        let grads = Tensor::f_run_backward(&[loss], &self.vars, false, false)?;
        let SgdConfig { momentum, nesterov, weight_decay } = self.config;
        tch::no_grad(|| -> Result<(), CnnError> {
            let mut parts = Vec::with_capacity(2 * grads.len());
            for ((g, v), z) in grads.iter().zip(&self.vars).zip(&self.zeros) {
                parts.push(if g.defined() { g.f_reshape([-1])? } else { v.f_zeros_like()?.f_reshape([-1])? });
                parts.push(z.shallow_clone());
            }
            let mut g = Tensor::f_cat(&parts, 0)?;
            if weight_decay != 0.0 {
                g = g.f_add(&self.params.f_mul_scalar(weight_decay)?)?;
            }
            let update = if momentum != 0.0 {
                let _ = self.momentum.f_mul_scalar_(momentum)?;
                let _ = self.momentum.f_add_(&g)?;
                if nesterov {
                    g.f_add(&self.momentum.f_mul_scalar(momentum)?)?
                } else {
                    self.momentum.shallow_clone()
                }
            } else {
                g
            };
            let _ = self.params.f_sub_(&update.f_mul_scalar(lr)?)?;
            Ok(())
        })
    }
}
