//! The controller against PyTorch: the same network with the same weights
//! (set by an exact integer formula on both sides) gives the same
//! log-probabilities and entropies of fixed action sequences, and one
//! REINFORCE + Adam update gives the same loss, gradient norm and new
//! log-probabilities. The numbers come from
//! `tests/reference/controller_reference.py` (torch 2.11.0), an independent,
//! unbatched implementation; rerun it to regenerate them.

use nasfleet_core::config::{ControllerConfig, EmptyAnchorInput};
use nasfleet_core::space::cnn::{CnnSpace, DepthSchedule};
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::strategy::{Feedback, StrategyError};
use nasfleet_core::Space;
use nasfleet_torch::controller::{use_one_libtorch_thread, Controller};

/// A controller on this test thread, with libtorch single-threaded here as on
/// the policy thread (see `use_one_libtorch_thread`).
fn pinned(space: Space, cfg: ControllerConfig, seed: u64) -> Result<Controller, StrategyError> {
    use_one_libtorch_thread();
    Controller::with_parts(space, cfg, seed)
}


/// Element k of the variable at sorted position p (the script's formula).
fn formula_values(p: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|k| {
            let x = (k * 2_654_435_761 + p * 40_503 + 12_345) % (1 << 32) % 10_007;
            (x as f64 / 10_006.0 * 0.8 - 0.4) as f32
        })
        .collect()
}

struct Case {
    space: Space,
    empty: EmptyAnchorInput,
    sequences: [Vec<u32>; 2],
    rewards: [f64; 2],
    lr: f64,
    entropy_weight: f64,
    grad_clip: Option<f64>,
    /// Expected (from the script).
    log_probs: [f64; 2],
    entropies: [f64; 2],
    loss: f64,
    grad_norm: f64,
    log_probs_after: [f64; 2],
}

const CNN_NAMES: [(&str, &[i64]); 27] = [
    ("embed.0.weight", &[4, 35]),
    ("embed.1.weight", &[4, 35]),
    ("embed.2.weight", &[3, 35]),
    ("embed.3.weight", &[3, 35]),
    ("embed.4.weight", &[4, 35]),
    ("head.0.bias", &[4]),
    ("head.0.weight", &[4, 35]),
    ("head.1.bias", &[4]),
    ("head.1.weight", &[4, 35]),
    ("head.2.bias", &[3]),
    ("head.2.weight", &[3, 35]),
    ("head.3.bias", &[3]),
    ("head.3.weight", &[3, 35]),
    ("head.4.bias", &[4]),
    ("head.4.weight", &[4, 35]),
    ("lstm.bias_hh_l0", &[140]),
    ("lstm.bias_hh_l1", &[140]),
    ("lstm.bias_ih_l0", &[140]),
    ("lstm.bias_ih_l1", &[140]),
    ("lstm.weight_hh_l0", &[140, 35]),
    ("lstm.weight_hh_l1", &[140, 35]),
    ("lstm.weight_ih_l0", &[140, 35]),
    ("lstm.weight_ih_l1", &[140, 35]),
    ("start", &[1, 35]),
    ("v.weight", &[1, 35]),
    ("w_curr.weight", &[35, 35]),
    ("w_prev.weight", &[35, 35]),
];

fn controller(case: &Case) -> Controller {
    let cfg = ControllerConfig {
        lr: case.lr,
        entropy_weight: case.entropy_weight,
        grad_clip: case.grad_clip,
        empty_anchor_input: case.empty,
        ..Default::default()
    };
    let mut c = pinned(case.space.clone(), cfg, 0).unwrap();
    for (p, info) in c.parameters().into_iter().enumerate() {
        let n: i64 = info.shape.iter().product();
        c.set_parameter(&info.name, &formula_values(p as u64, n as usize)).unwrap();
    }
    c
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, PyTorch {want} (tolerance {tol})");
}

fn check(case: Case) {
    let mut c = controller(&case);
    let scored = c.score(&case.sequences).unwrap();
    for (k, s) in scored.iter().enumerate() {
        close(s.log_prob, case.log_probs[k], 5e-5, &format!("log P(sequence {k})"));
        close(s.entropy, case.entropies[k], 5e-5, &format!("entropy of sequence {k}"));
    }
    let batch: Vec<Feedback> = case
        .sequences
        .iter()
        .zip(case.rewards)
        .map(|(a, r)| Feedback { actions: a.clone(), reward: r })
        .collect();
    let stats = c.update(&batch).unwrap();
    close(stats.baseline, (case.rewards[0] + case.rewards[1]) / 2.0, 1e-12, "baseline");
    close(stats.loss, case.loss, 1e-5, "loss");
    close(stats.grad_norm, case.grad_norm, 1e-5, "gradient norm");
    assert_eq!(stats.policy_version, 1);
    let after = c.score(&case.sequences).unwrap();
    for (k, s) in after.iter().enumerate() {
        close(s.log_prob, case.log_probs_after[k], 1e-4, &format!("log P(sequence {k}) after the update"));
    }
}

#[test]
fn variable_names_and_shapes_are_pytorchs() {
    let c = pinned(Space::Cnn(CnnSpace::default()), ControllerConfig::default(), 0).unwrap();
    let got: Vec<(String, Vec<i64>)> = c.parameters().into_iter().map(|p| (p.name, p.shape)).collect();
    let want: Vec<(String, Vec<i64>)> = CNN_NAMES.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect();
    assert_eq!(got, want);
}

#[test]
fn cnn_space_with_strides_and_skips_matches_pytorch() {
    check(Case {
        space: Space::Cnn(CnnSpace {
            predict_strides: true,
            depth: DepthSchedule { start: 5, ..Default::default() },
            ..Default::default()
        }),
        empty: EmptyAnchorInput::Zeros,
        sequences: [
            vec![
                1, 1, 0, 0, 3, //
                2, 0, 1, 2, 0, 1, //
                3, 3, 2, 0, 1, 0, 0, //
                0, 2, 0, 1, 2, 1, 0, 1, //
                1, 3, 1, 1, 3, 1, 1, 1, 1,
            ],
            vec![
                0, 3, 2, 1, 1, //
                1, 1, 0, 0, 2, 0, //
                2, 1, 1, 1, 3, 1, 1, //
                3, 0, 2, 2, 0, 0, 1, 0, //
                1, 2, 0, 1, 2, 0, 0, 1, 0,
            ],
        ],
        rewards: [1.0, 0.2],
        lr: 0.001,
        entropy_weight: 0.0,
        grad_clip: None,
        log_probs: [-38.26005554199219, -39.58485794067383],
        entropies: [37.689231872558594, 37.71240997314453],
        loss: -0.26496028900146484,
        grad_norm: 3.1072811788738735,
        log_probs_after: [-38.071659088134766, -40.131591796875],
    });
}

#[test]
fn cnn_space_with_start_input_after_empty_anchors_matches_pytorch() {
    check(Case {
        space: Space::Cnn(CnnSpace::default()),
        empty: EmptyAnchorInput::Start,
        sequences: [
            vec![1, 1, 3, 2, 0, 0, 0, 3, 3, 1, 1, 0, 2, 1, 2, 0, 0, 0],
            vec![0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 1, 3, 3, 3, 1, 1, 1],
        ],
        rewards: [0.3, 0.9],
        lr: 0.002,
        entropy_weight: 0.05,
        grad_clip: None,
        log_probs: [-21.144943237304688, -20.44436264038086],
        entropies: [20.339168548583984, 20.338336944580078],
        loss: -1.1220250129699707,
        grad_norm: 2.7231343887810584,
        log_probs_after: [-22.215402603149414, -19.976192474365234],
    });
}

#[test]
fn cell_space_matches_pytorch_with_entropy_bonus_and_clipping() {
    check(Case {
        space: Space::RnnCell(CellSpace::default()),
        empty: EmptyAnchorInput::Zeros,
        sequences: [
            // The paper's cell (TensorFlow Addons NASCell).
            vec![
                0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, 1, 1, 0, 1, 1, 1, 0, 2, 1, 0, 0, 1, 1, 1, 0, 1, 8, 12,
            ],
            vec![
                1, 0, 1, 1, 0, 3, 0, 0, 1, 2, 0, 3, 1, 1, 0, 0, 1, 2, 0, 3, 0, 1, 1, 2, 0, 0, 1, 0, 1, 2, 1, 3, 13, 0,
            ],
        ],
        rewards: [0.8, 0.1],
        lr: 0.005,
        entropy_weight: 0.1,
        grad_clip: Some(0.05),
        log_probs: [-38.540367126464844, -39.273590087890625],
        entropies: [37.83171463012695, 37.82274627685547],
        loss: -3.9110372066497803,
        grad_norm: 3.1386688733742165,
        log_probs_after: [-36.73223876953125, -40.09933853149414],
    });
}
