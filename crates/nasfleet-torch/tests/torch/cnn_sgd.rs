//! The flat SGD against PyTorch's `torch.optim.SGD` update rule, written out
//! in plain f64 arithmetic.

use nasfleet_torch::cnn::{FlatSgd, SgdConfig};
use nasfleet_torch::tch::{nn, Device, Kind, Tensor};

/// loss(θ) = Σ_i c_i θ_i² / 2 + Σ_i d_i θ_i, so ∇_i = c_i θ_i + d_i.
fn coefficients(n: usize) -> (Vec<f64>, Vec<f64>) {
    ((0..n).map(|i| 0.5 + i as f64 * 0.25).collect(), (0..n).map(|i| (i as f64 - 2.0) * 0.1).collect())
}

fn reference(theta0: &[f64], cfg: SgdConfig, lrs: &[f64]) -> Vec<f64> {
    let (c, d) = coefficients(theta0.len());
    let mut theta = theta0.to_vec();
    let mut buf = vec![0.0; theta.len()];
    for &lr in lrs {
        for i in 0..theta.len() {
            let mut g = c[i] * theta[i] + d[i] + cfg.weight_decay * theta[i];
            buf[i] = cfg.momentum * buf[i] + g;
            g = if cfg.nesterov { g + cfg.momentum * buf[i] } else { buf[i] };
            theta[i] -= lr * g;
        }
    }
    theta
}

fn run_flat(theta0: &[f64], cfg: SgdConfig, lrs: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    // Three variables of different shapes, as a network has.
    let a = root.var_copy("a", &Tensor::from_slice(&theta0[..6]).to_kind(Kind::Float).view([2, 3]));
    let b = root.var_copy("b", &Tensor::from_slice(&theta0[6..10]).to_kind(Kind::Float));
    let z = root.var_copy("z", &Tensor::from_slice(&theta0[10..]).to_kind(Kind::Float).view([1, 1, 2]));
    let (c, d) = coefficients(theta0.len());
    let c = Tensor::from_slice(&c).to_kind(Kind::Float);
    let d = Tensor::from_slice(&d).to_kind(Kind::Float);
    let mut sgd = FlatSgd::new(vs.trainable_variables(), cfg).unwrap();
    assert_eq!(sgd.numel(), 12);
    for &lr in lrs {
        let theta = Tensor::cat(&[a.flatten(0, -1), b.flatten(0, -1), z.flatten(0, -1)], 0);
        let loss = (&c * theta.square()).sum(Kind::Float) / 2.0 + (&d * &theta).sum(Kind::Float);
        sgd.step(&loss, lr).unwrap();
    }
    // The network's own handles see the updates (they share the flat
    // storage), and each starts on a 64-byte boundary.
    for v in [&a, &b, &z] {
        assert_eq!(v.data_ptr() as usize % 64, 0, "variable of shape {:?} is misaligned", v.size());
    }
    let through_vars = Tensor::cat(&[a.flatten(0, -1), b.flatten(0, -1), z.flatten(0, -1)], 0);
    let flat = sgd.params();
    assert_eq!(flat.numel(), 16 + 16 + 16, "6, 4 and 2 values, each padded to 16");
    let unpadded = Tensor::cat(&[flat.narrow(0, 0, 6), flat.narrow(0, 16, 4), flat.narrow(0, 32, 2)], 0);
    assert!(through_vars.equal(&unpadded));
    let m = sgd.momentum();
    let momentum = Tensor::cat(&[m.narrow(0, 0, 6), m.narrow(0, 16, 4), m.narrow(0, 32, 2)], 0);
    (
        Vec::<f64>::try_from(through_vars.to_kind(Kind::Double)).unwrap(),
        Vec::<f64>::try_from(momentum.to_kind(Kind::Double)).unwrap(),
    )
}

#[test]
fn nesterov_momentum_and_weight_decay_follow_pytorch_sgd() {
    let theta0: Vec<f64> = (0..12).map(|i| (i as f64 - 5.5) / 4.0).collect();
    let lrs = [0.1, 0.1, 0.05, 0.2, 0.1];
    for cfg in [
        SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 1e-4 },
        SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 0.01 },
        SgdConfig { momentum: 0.0, nesterov: false, weight_decay: 0.0 },
    ] {
        let want = reference(&theta0, cfg, &lrs);
        let (got, _) = run_flat(&theta0, cfg, &lrs);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-5 * (1.0 + w.abs()), "{cfg:?} θ[{i}]: {g} vs {w}");
        }
    }
}

#[test]
fn state_round_trips_through_load() {
    let cfg = SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 1e-4 };
    let vs = nn::VarStore::new(Device::Cpu);
    let w = vs.root().var_copy("w", &Tensor::zeros([12], (Kind::Float, Device::Cpu)));
    let mut sgd = FlatSgd::new(vs.trainable_variables(), cfg).unwrap();
    assert_eq!((sgd.numel(), sgd.params().numel()), (12, 16));
    let p = Tensor::arange(16, (Kind::Float, Device::Cpu));
    let m = Tensor::arange(16, (Kind::Float, Device::Cpu)) * 2.0;
    sgd.load(&p, &m).unwrap();
    assert!(w.equal(&p.narrow(0, 0, 12)) && sgd.momentum().equal(&m));
    let err = sgd.load(&Tensor::zeros([12], (Kind::Float, Device::Cpu)), &m).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
}

#[test]
fn no_variables_or_wrong_kinds_are_errors() {
    let cfg = SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 0.0 };
    assert!(FlatSgd::new(vec![], cfg).is_err());
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = vs.root().var_copy("d", &Tensor::zeros([2], (Kind::Float, Device::Cpu)));
    let half = Tensor::zeros([2], (Kind::Half, Device::Cpu)).set_requires_grad(true);
    let mut vars = vs.trainable_variables();
    vars.push(half);
    let err = FlatSgd::new(vars, cfg).unwrap_err().to_string();
    assert!(err.contains("fp32"), "{err}");
}
