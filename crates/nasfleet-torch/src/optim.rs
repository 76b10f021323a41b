//! Adam and global-norm gradient clipping, written once for the controller
//! and the language-model children.
//!
//! tch's `nn::Optimizer` keeps its moments inside libtorch where they cannot
//! be read or written, so a checkpoint could not restore them and a resumed
//! run would drift from an uninterrupted one. Owning m, v and the step count
//! here makes them plain state that checkpoints carry bit for bit.
//!
//! The update is PyTorch's `torch.optim.Adam` (β = 0.9, 0.999, ε = 1e-8, no
//! amsgrad; weight decay added to the gradient):
//! ```text
//! m ← β1·m + (1−β1)·g        v ← β2·v + (1−β2)·g²
//! p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
//! ```
//! Every parameter is stepped on every update. A parameter whose gradient is
//! undefined (it has taken part in no backward pass in this process, e.g.
//! right after a restore) counts as gradient zero: its moments decay, as in
//! textbook Adam, exactly as they do for a parameter whose gradient was
//! zeroed. That keeps a resumed run on the same path as an uninterrupted one.
//!
//! Clipping is `torch.nn.utils.clip_grad_norm_`: scale every gradient by
//! `min(1, max_norm / (‖g‖ + 1e-6))`, computed as a tensor so the step never
//! waits for the device. The controller clips on the host instead (it
//! reports the norm) and passes `grad_clip = 0` here.

use tch::{Kind, Tensor};

/// PyTorch's defaults; the paper gives only the learning rate.
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// Adam's state: the step count and the moments, one pair per parameter in
/// the order of the parameter slice it was built for.
#[derive(Debug)]
pub(crate) struct Adam {
    /// Updates applied so far (t in the bias corrections).
    pub(crate) step: u64,
    /// First moments, one per parameter.
    pub(crate) m: Vec<Tensor>,
    /// Second moments, one per parameter.
    pub(crate) v: Vec<Tensor>,
}

impl Adam {
    /// Zero moments at step 0 for `params`.
    pub(crate) fn new(params: &[(String, Tensor)]) -> Self {
        Adam {
            step: 0,
            m: params.iter().map(|(_, p)| p.zeros_like()).collect(),
            v: params.iter().map(|(_, p)| p.zeros_like()).collect(),
        }
    }

    /// One update with learning rate `lr` from the gradients held by
    /// `params` (the slice [`Adam::new`] was given), after clipping their
    /// global norm to `grad_clip` (0 = no clipping) and adding
    /// `weight_decay · p` (0 = none).
    pub(crate) fn update(&mut self, params: &[(String, Tensor)], lr: f64, weight_decay: f64, grad_clip: f64) {
        self.step += 1;
        let t = self.step as f64;
        let bias1 = 1.0 - BETA1.powf(t);
        let bias2_sqrt = (1.0 - BETA2.powf(t)).sqrt();
        let step_size = lr / bias1;
        tch::no_grad(|| {
            let grads = with_grads(params);
            let scale = clip_scale(&grads, grad_clip);
            let mut grads = grads.into_iter().peekable();
            for (i, ((_, p), (m, v))) in params.iter().zip(self.m.iter_mut().zip(&mut self.v)).enumerate() {
                let g = match grads.next_if(|(k, _)| *k == i) {
                    Some((_, g)) => match &scale {
                        Some(s) => g * s,
                        None => g,
                    },
                    None => p.zeros_like(),
                };
                let g = if weight_decay > 0.0 { &g + p * weight_decay } else { g };
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
                let denom = v.sqrt() / bias2_sqrt + EPS;
                let _ = p.shallow_clone().g_sub_(&(&*m / denom * step_size));
            }
        });
    }
}

/// The parameters that have a gradient, by index, with their gradient.
pub(crate) fn with_grads(params: &[(String, Tensor)]) -> Vec<(usize, Tensor)> {
    params
        .iter()
        .enumerate()
        .filter_map(|(i, (_, p))| {
            let g = p.grad();
            g.defined().then_some((i, g))
        })
        .collect()
}

/// `min(1, max_norm / (‖g‖ + 1e-6))` over all gradients, as a 0-d tensor
/// (None when clipping is off).
pub(crate) fn clip_scale(grads: &[(usize, Tensor)], grad_clip: f64) -> Option<Tensor> {
    (grad_clip > 0.0 && !grads.is_empty()).then(|| {
        let sq: Vec<Tensor> = grads.iter().map(|(_, g)| g.pow_tensor_scalar(2).sum(Kind::Float)).collect();
        let norm = Tensor::stack(&sq, 0).sum(Kind::Float).sqrt();
        (grad_clip / (norm + 1e-6)).clamp_max(1.0)
    })
}
