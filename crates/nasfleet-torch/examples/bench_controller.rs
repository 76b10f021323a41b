//! Benchmark (not a test): median time to sample one architecture and to
//! apply one REINFORCE update with m = 8, at 6 and at 20 layers of the CNN
//! space, on the CPU. Prints one JSON line per (depth, threading): once with
//! libtorch single-threaded on the controller's thread (what `RlStrategy`
//! does) and once with libtorch's default intra-op pool, side by side, since
//! on a shared machine only ratios measured in one run mean much.
//!
//! ```text
//! cargo run --release -p nasfleet-torch --example bench_controller [-- REPEATS]
//! ```

use std::time::Instant;

use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::space::cnn::DepthSchedule;
use nasfleet_core::strategy::{Feedback, SyntheticCnnReward};
use nasfleet_torch::controller::{use_one_libtorch_thread, Controller};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let repeats: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    for layers in [6usize, 20] {
        for one_thread in [true, false] {
            // A fresh thread per configuration: the threading choice is per thread.
            std::thread::spawn(move || {
                if one_thread {
                    use_one_libtorch_thread();
                }
                measure(layers, repeats, if one_thread { "one" } else { "default" });
            })
            .join()
            .expect("benchmark thread");
        }
    }
}

fn measure(layers: usize, repeats: usize, threads: &str) {
    let reward = SyntheticCnnReward::default();
    let mut cfg = ExperimentConfig::default();
    cfg.cnn.depth = DepthSchedule { start: layers, step: 0, every: 0, max: layers };
    let mut c = Controller::new(&cfg).expect("controller");
    let rewarded = |c: &Controller, samples: Vec<nasfleet_torch::controller::Sample>| -> Vec<Feedback> {
        samples
            .into_iter()
            .map(|s| {
                let arch = c.space().decode(&s.actions).expect("decode");
                Feedback { reward: reward.reward_of(&arch).expect("cnn"), actions: s.actions }
            })
            .collect()
    };
    // Warm-up: the first calls allocate and initialise libtorch kernels.
    for _ in 0..3 {
        let s = c.sample(8).expect("sample");
        let batch = rewarded(&c, s);
        c.update(&batch).expect("update");
    }
    let (mut sample_ms, mut sample8_ms, mut update_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let one = c.sample(1).expect("sample");
        sample_ms.push(t.elapsed().as_secs_f64() * 1e3);
        tokens = one[0].actions.len();
        let t = Instant::now();
        let eight = c.sample(8).expect("sample");
        sample8_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let batch = rewarded(&c, eight);
        let t = Instant::now();
        c.update(&batch).expect("update");
        update_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{{\"bench\":\"controller\",\"space\":\"cnn\",\"layers\":{layers},\"tokens\":{tokens},\"threads\":\"{threads}\",\
         \"repeats\":{repeats},\"sample_one_ms\":{:.3},\"sample_batch8_ms\":{:.3},\"update_m8_ms\":{:.3},\
         \"hidden\":{},\"lstm_layers\":{}}}",
        median(sample_ms),
        median(sample8_ms),
        median(update_ms),
        cfg.controller.hidden,
        cfg.controller.lstm_layers
    );
}
