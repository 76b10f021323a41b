//! The run's Pareto fronts (`pareto.json`): every rewarded child's accuracy
//! against its parameters and against its FLOPs, reduced to the children
//! no other child beats on both (see [`nasfleet_core::pareto`]).
//!
//! The accuracy is the one the reward is made of — the best of the last
//! `last_k` validation accuracies, before the power and any cost rule — so
//! a multi-objective run's front is comparable with an unconstrained one's.
//! The cost is the one the child's worker counted for the job's dataset
//! (`JobResult::cost`); children without one (recurrent cells), and
//! children early stopping ended (their accuracy is of fewer epochs), are
//! left out. Only the fronts are kept: the front of a set is the front of its
//! previous front plus the new children, so memory stays bounded however
//! long the run. A resumed controller rebuilds them from `history.jsonl`
//! (already cut back to its checkpoint).

use std::path::Path;

use nasfleet_core::cost::CostMetric;
use nasfleet_core::pareto::{pareto_front, ParetoFronts, ParetoPoint};
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::{ArchLimits, Architecture};

use crate::error::Result;
use crate::rundir::{files, read_lines, write_atomic, HistoryLine};

/// See the module documentation.
#[derive(Debug)]
pub(super) struct ParetoBook {
    reward: RewardConfig,
    fronts: ParetoFronts,
}

impl ParetoBook {
    /// An empty book for children rewarded by `reward`.
    pub(super) fn new(reward: &RewardConfig) -> Self {
        ParetoBook { reward: reward.clone(), fronts: ParetoFronts { children: 0, params: Vec::new(), flops: Vec::new() } }
    }

    /// The book of the lines already in `dir`'s `history.jsonl`.
    pub(super) fn rebuild(reward: &RewardConfig, dir: &Path) -> Result<Self> {
        let mut book = Self::new(reward);
        let path = dir.join(files::HISTORY);
        if path.exists() {
            book.add(&read_lines::<HistoryLine>("history", &path)?);
        }
        Ok(book)
    }

    /// The point of a rewarded child with a cost and an accuracy.
    fn point(&self, line: &HistoryLine) -> Option<ParetoPoint> {
        if line.status != "ok" {
            return None;
        }
        let cost = line.cost?;
        let accs: Vec<f64> = line
            .metrics
            .as_array()?
            .iter()
            .filter_map(|m| m.get("valid_accuracy").and_then(serde_json::Value::as_f64))
            .collect();
        let accuracy = self.reward.accuracy_of(&accs)?;
        // NB201 cells read best as their string form; others as their JSON.
        let arch = match Architecture::from_value(line.arch.clone(), &ArchLimits::default()) {
            Ok(Architecture::Nb201(cell)) => cell.to_string(),
            _ => line.arch.to_string(),
        };
        Some(ParetoPoint { arch, accuracy, params: cost.params, flops: cost.flops })
    }

    /// Takes in newly applied history lines; returns whether any of them
    /// counted (then `pareto.json` is out of date: its child count at least).
    pub(super) fn add(&mut self, lines: &[HistoryLine]) -> bool {
        let new: Vec<ParetoPoint> = lines.iter().filter_map(|l| self.point(l)).collect();
        if new.is_empty() {
            return false;
        }
        self.fronts.children += new.len();
        for (front, metric) in [(&mut self.fronts.params, CostMetric::Params), (&mut self.fronts.flops, CostMetric::Flops)] {
            let mut all = std::mem::take(front);
            all.extend(new.iter().cloned());
            *front = pareto_front(&all, metric);
        }
        true
    }

    /// The fronts so far.
    #[cfg(test)]
    pub(super) fn fronts(&self) -> &ParetoFronts {
        &self.fronts
    }

    /// Writes `pareto.json` into `dir` (atomically; nothing before the
    /// first child with a cost).
    pub(super) fn write(&self, dir: &Path) -> Result<()> {
        if self.fronts.children == 0 {
            return Ok(());
        }
        let mut text = self.fronts.to_json();
        text.push('\n');
        write_atomic("pareto", &dir.join(files::PARETO), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_core::cost::ArchCost;

    fn line(seq: u64, status: &str, accs: &[f64], cost: Option<(u64, u64)>) -> HistoryLine {
        let metrics: Vec<serde_json::Value> = accs.iter().map(|a| serde_json::json!({"epoch": 1, "valid_accuracy": a})).collect();
        HistoryLine {
            job_id: format!("r-{seq:06}"),
            seq,
            batch: 0,
            status: status.into(),
            reward: Some(0.5),
            arch: serde_json::json!({"kind": "cnn", "seq": seq}),
            actions: vec![],
            policy_version: 0,
            metrics: serde_json::Value::Array(metrics),
            worker: "w".into(),
            started_ms: None,
            finished_ms: None,
            applied_ms: 0,
            reason: None,
            detail: None,
            late: false,
            cost: cost.map(|(params, flops)| ArchCost { params, flops }),
            stopped_at: None,
            attempt: None,
        }
    }

    #[test]
    fn the_fronts_grow_incrementally_like_the_front_of_everything() {
        let reward = RewardConfig::accuracy(2, 3.0);
        let all = [
            line(0, "ok", &[0.5, 0.8, 0.7], Some((100, 50))), // accuracy: best of the last 2 = 0.8
            line(1, "ok", &[0.6], Some((50, 60))),
            line(2, "dead", &[0.99], Some((1, 1))),
            line(3, "ok", &[0.9], None),
            line(4, "ok", &[0.95], Some((300, 10))),
            line(5, "ok", &[0.55], Some((60, 70))),
        ];
        let mut book = ParetoBook::new(&reward);
        assert!(book.add(&all[..2]));
        assert!(!book.add(&all[2..4]), "a dead child and one without a cost do not count");
        assert!(book.add(&all[4..5]));
        let before = book.fronts().clone();
        assert!(book.add(&all[5..]), "a dominated child counts");
        let f = book.fronts();
        assert_eq!((&f.params, &f.flops), (&before.params, &before.flops), "but changes no front");
        assert_eq!(f.children, 4);
        let accs = |v: &[ParetoPoint]| v.iter().map(|p| p.accuracy).collect::<Vec<_>>();
        assert_eq!(accs(&f.params), [0.6, 0.8, 0.95]);
        assert_eq!(accs(&f.flops), [0.95]);
        // The same as the front of every child at once.
        let pts: Vec<ParetoPoint> = all.iter().filter_map(|l| book.point(l)).collect();
        assert_eq!(pareto_front(&pts, CostMetric::Params), f.params);
    }

    #[test]
    fn pareto_json_is_written_once_there_is_a_point_and_rebuilt_from_history() {
        let dir = nasfleet_queue::testing::TempDir::new("nasfleet-pareto").unwrap();
        let reward = RewardConfig::default();
        let book = ParetoBook::new(&reward);
        book.write(dir.path()).unwrap();
        assert!(!dir.path().join(files::PARETO).exists());
        let lines = [line(0, "ok", &[0.8], Some((10, 20))), line(1, "ok", &[0.9], Some((30, 10)))];
        let mut h = crate::rundir::JsonLines::create("history", dir.path().join(files::HISTORY)).unwrap();
        h.append(&lines).unwrap();
        let back = ParetoBook::rebuild(&reward, dir.path()).unwrap();
        back.write(dir.path()).unwrap();
        let f: ParetoFronts = serde_json::from_str(&std::fs::read_to_string(dir.path().join(files::PARETO)).unwrap()).unwrap();
        assert_eq!((f.children, f.params.len(), f.flops.len()), (2, 2, 1));
    }
}
