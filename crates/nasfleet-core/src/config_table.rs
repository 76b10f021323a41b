//! `[train.table]`: how "training" works when `train.dataset = "nb201-table"`
//! (owned by the table trainer in `nasfleet-nb201`).
//!
//! A child is not trained: its measured accuracy is looked up in a
//! NAS-Bench-201 table, so a whole search runs in seconds and the search
//! strategy itself can be measured (paper.md §8). The job carries the
//! objective column and the simulated training time, so every worker scores a
//! child the same way; where the table file lives is normally the worker's own
//! business (`--table`), like any dataset's files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[train.table]`: which table column scores a child and how long a lookup
/// pretends to train (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableTrainConfig {
    /// The column to look up. `None`: the table's default, `baseline_accuracy`
    /// (AnalogNAS-Bench's test-set accuracy in percent after standard
    /// training) when the table has it, else its only value column.
    pub objective: Option<String>,
    /// Seconds each lookup pretends to train, so a fleet can be exercised
    /// with realistic job durations (0 = answer at once).
    pub simulated_seconds: f64,
    /// The table file, overriding the worker's own `--table` (a `.csv` is read
    /// as CSV, anything else as the AnalogNAS-Bench pickle). `None`: the
    /// worker's setting, else the cached download.
    pub path: Option<PathBuf>,
}

impl Default for TableTrainConfig {
    fn default() -> Self {
        TableTrainConfig { objective: None, simulated_seconds: 0.0, path: None }
    }
}

impl TableTrainConfig {
    /// The checks serde cannot express; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.objective.as_deref().is_some_and(|o| o.trim().is_empty()) {
            return Err("train.table.objective is empty".into());
        }
        if !(self.simulated_seconds.is_finite() && self.simulated_seconds >= 0.0) {
            return Err(format!("train.table.simulated_seconds {} is not a non-negative number", self.simulated_seconds));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field() {
        assert_eq!(TableTrainConfig::default().check(), Ok(()));
        let neg = TableTrainConfig { simulated_seconds: -1.0, ..Default::default() };
        assert!(neg.check().unwrap_err().contains("simulated_seconds -1"));
        let empty = TableTrainConfig { objective: Some(" ".into()), ..Default::default() };
        assert!(empty.check().unwrap_err().contains("objective"));
    }

    #[test]
    fn parses_from_the_train_section() {
        let cfg: crate::config::TrainConfig =
            toml::from_str("dataset = \"nb201-table\"\n[table]\nobjective = \"analog_accuracy\"\nsimulated_seconds = 0.5\n").unwrap();
        assert_eq!(cfg.table.objective.as_deref(), Some("analog_accuracy"));
        assert_eq!(cfg.table.simulated_seconds, 0.5);
        assert_eq!(cfg.table.path, None);
        let typo = toml::from_str::<crate::config::TrainConfig>("[table]\nobjectve = \"x\"\n").unwrap_err();
        assert!(typo.to_string().contains("objectve"), "{typo}");
    }
}
