//! The children's optimisers, written out on the model's tensors: plain SGD
//! (the usual language-model recipe, Zaremba et al. 2014) and Adam (for short
//! runs: the sampled cells' gradients are tiny at first, and a per-parameter
//! step size gets them moving in a few hundred updates where SGD needs
//! thousands), both after global-norm gradient clipping.
//!
//! Owning the update keeps the optimiser's whole state in plain data (SGD has
//! none beyond the learning rate, which follows from the epoch; Adam has its
//! step count and moments), so a checkpoint restores it exactly; tch's
//! `nn::Optimizer` hides its state inside libtorch. Clipping is
//! `torch.nn.utils.clip_grad_norm_`: scale every gradient by
//! `min(1, max_norm / (‖g‖ + 1e-6))`, computed as a tensor so the step never
//! waits for the device. Adam is `torch.optim.Adam` (β = 0.9, 0.999, ε = 1e-8;
//! weight decay added to the gradient).

use tch::{Kind, Tensor};

/// Plain SGD: `p ← p − lr·(clip(g) + weight_decay·p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub weight_decay: f64,
    /// 0 = no clipping.
    pub grad_clip: f64,
}

/// The parameters that have a gradient, with their gradient.
fn with_grads(params: &[(String, Tensor)]) -> Vec<(usize, Tensor)> {
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
fn clip_scale(grads: &[(usize, Tensor)], grad_clip: f64) -> Option<Tensor> {
    (grad_clip > 0.0 && !grads.is_empty()).then(|| {
        let sq: Vec<Tensor> = grads.iter().map(|(_, g)| g.pow_tensor_scalar(2).sum(Kind::Float)).collect();
        let norm = Tensor::stack(&sq, 0).sum(Kind::Float).sqrt();
        (grad_clip / (norm + 1e-6)).clamp_max(1.0)
    })
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

pub(crate) const BETA1: f64 = 0.9;
pub(crate) const BETA2: f64 = 0.999;
pub(crate) const EPS: f64 = 1e-8;

/// Adam's state: the step count and the moments, one pair per parameter in
/// the model's (sorted) order.
#[derive(Debug)]
pub struct Adam {
    pub step: u64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    pub fn new(params: &[(String, Tensor)]) -> Self {
        Adam {
            step: 0,
            m: params.iter().map(|(_, p)| p.zeros_like()).collect(),
            v: params.iter().map(|(_, p)| p.zeros_like()).collect(),
        }
    }

    /// One update with learning rate `lr` from the gradients held by `params`.
    pub fn update(&mut self, params: &[(String, Tensor)], lr: f64, weight_decay: f64, grad_clip: f64) {
        self.step += 1;
        let t = self.step as f64;
        let bias1 = 1.0 - BETA1.powf(t);
        let bias2_sqrt = (1.0 - BETA2.powf(t)).sqrt();
        tch::no_grad(|| {
            let grads = with_grads(params);
            let scale = clip_scale(&grads, grad_clip);
            for (i, g) in grads {
                let mut g = match &scale {
                    Some(s) => g * s,
                    None => g,
                };
                if weight_decay > 0.0 {
                    g = &g + &params[i].1 * weight_decay;
                }
                let (m, v) = (&mut self.m[i], &mut self.v[i]);
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
                let denom = v.sqrt() / bias2_sqrt + EPS;
                let _ = params[i].1.shallow_clone().g_sub_(&(&*m / denom * (lr / bias1)));
            }
        });
    }
}
