//! Command-line handling shared by the examples (`mod common;` in each).
//! Each example uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use nasfleet_core::ExperimentConfig;
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::tch::Device;

/// The value after `key`, if any.
pub fn arg<'a>(args: &'a [String], key: &str) -> Option<&'a str> {
    args.iter().position(|a| a == key).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// The number after `key`, or `default` when the key is absent.
pub fn num<T: std::str::FromStr>(args: &[String], key: &str, default: T) -> Result<T, String> {
    match arg(args, key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{key} {v:?} is not a number")),
    }
}

/// What `cnn_children` and `lm_children` both take: `--config FILE
/// [--workers W] [--threads T] [--seed S] [--device D] [--data-dir DIR]
/// [--epochs E]` (the config's `train.epochs` replaced by E).
pub struct ChildrenArgs {
    pub cfg: ExperimentConfig,
    pub workers: usize,
    pub threads: usize,
    pub seed: u64,
    pub device: Device,
    pub data_dir: PathBuf,
}

impl ChildrenArgs {
    pub fn parse(args: &[String]) -> Result<ChildrenArgs, String> {
        let config = arg(args, "--config").ok_or("--config FILE is required")?;
        let mut cfg = ExperimentConfig::load(std::path::Path::new(config)).map_err(|e| e.to_string())?;
        cfg.train.epochs = num(args, "--epochs", cfg.train.epochs)?;
        Ok(ChildrenArgs {
            workers: num(args, "--workers", 1)?,
            threads: num(args, "--threads", 1)?,
            seed: num(args, "--seed", cfg.search.seed)?,
            device: arg(args, "--device").unwrap_or("cpu").parse::<DeviceSpec>()?.resolve()?,
            data_dir: arg(args, "--data-dir").map(PathBuf::from).unwrap_or_else(nasfleet_data::default_cache_dir),
            cfg,
        })
    }
}
