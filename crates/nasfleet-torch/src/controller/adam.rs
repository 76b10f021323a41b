//! Adam, written out on the policy's tensors.
//!
//! tch's `nn::Optimizer` keeps its moments inside libtorch where they cannot
//! be read or written, so a checkpoint could not restore them and a resumed
//! run would drift from an uninterrupted one. Owning m, v and the step count
//! here makes them plain state that checkpoints carry bit for bit.
//!
//! The update is PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad):
//! ```text
//! m ← β1·m + (1−β1)·g        v ← β2·v + (1−β2)·g²
//! p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
//! ```
//! with every parameter stepped on every update (a parameter that did not take
//! part in the batch has gradient zero: its moments decay, as in textbook Adam).

use tch::Tensor;

/// PyTorch's defaults; the paper gives only the learning rate.
pub(crate) const BETA1: f64 = 0.9;
pub(crate) const BETA2: f64 = 0.999;
pub(crate) const EPS: f64 = 1e-8;

pub(crate) struct Adam {
    pub lr: f64,
    /// Updates applied so far (t in the bias corrections).
    pub step: u64,
    /// First and second moments, one per parameter, in the policy's order.
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    pub fn new(lr: f64, params: &[(String, Tensor)]) -> Self {
        Adam {
            lr,
            step: 0,
            m: params.iter().map(|(_, p)| p.zeros_like()).collect(),
            v: params.iter().map(|(_, p)| p.zeros_like()).collect(),
        }
    }

    /// One step from the gradients currently held by `params`.
    pub fn step(&mut self, params: &[(String, Tensor)]) {
        self.step += 1;
        let t = self.step as f64;
        let bias1 = 1.0 - BETA1.powf(t);
        let bias2_sqrt = (1.0 - BETA2.powf(t)).sqrt();
        let step_size = self.lr / bias1;
        tch::no_grad(|| {
            for (((_, p), m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                let g = if g.defined() { g } else { p.zeros_like() };
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
                let denom = v.sqrt() / bias2_sqrt + EPS;
                let _ = p.shallow_clone().g_sub_(&(&*m / denom * step_size));
            }
        });
    }
}
