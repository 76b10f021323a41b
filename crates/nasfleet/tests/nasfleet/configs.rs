//! Every config shipped in `config/` parses (unknown keys are errors) and the
//! paper's configs keep the paper's values.

use std::path::PathBuf;

use nasfleet_core::ExperimentConfig;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

#[test]
fn every_shipped_config_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(config_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            ExperimentConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[test]
fn paper_configs_hold_the_paper_values() {
    let cifar = ExperimentConfig::load(&config_dir().join("cifar10.toml")).unwrap();
    assert_eq!(cifar, ExperimentConfig::default(), "cifar10.toml must equal the built-in paper defaults");
    let ptb = ExperimentConfig::load(&config_dir().join("ptb.toml")).unwrap();
    assert_eq!(ptb.controller.lr, 0.0005);
    assert_eq!(ptb.rnn_cell.base, 8);
    assert_eq!(ptb.reward, nasfleet_core::reward::RewardConfig::Perplexity { c: 80.0 });
    assert_eq!(ptb.train.epochs, 35);
    // The paper trained every child to the end: early stopping stays off.
    assert!(!cifar.early_stop.enabled() && !ptb.early_stop.enabled());
}
