//! Plain SGD for language-model children (the usual recipe, Zaremba et al.
//! 2014), after global-norm gradient clipping, written out on the model's
//! tensors. It has no state beyond the learning rate, which follows from the
//! epoch, so a checkpoint needs nothing from it. Adam, the other choice
//! (`train.lm.optimizer`), is [`crate::optim`]'s, shared with the controller.

use tch::Tensor;

use crate::optim::{clip_scale, with_grads};

/// Plain SGD: `p ← p − lr·(clip(g) + weight_decay·p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// The learning rate of this step.
    pub lr: f64,
    /// L2 penalty added to the gradient as `weight_decay · p` (0 = none).
    pub weight_decay: f64,
    /// Largest global gradient norm; 0 = no clipping.
    pub grad_clip: f64,
}

impl Sgd {
    /// One update from the gradients currently held by `params`.
    pub fn step(&self, params: &[(String, Tensor)]) {
        tch::no_grad(|| {
            let grads = with_grads(params);
            // One scale for clipping and learning rate: one pass over each
            // gradient instead of two.
            let factor = clip_scale(&grads, self.grad_clip).map(|s| s * self.lr);
            for (i, g) in grads {
                let p = &params[i].1;
                let mut update = match &factor {
                    Some(f) => g * f,
                    None => g * self.lr,
                };
                if self.weight_decay > 0.0 {
                    update += p * (self.weight_decay * self.lr);
                }
                let _ = p.shallow_clone().g_sub_(&update);
            }
        });
    }
}
