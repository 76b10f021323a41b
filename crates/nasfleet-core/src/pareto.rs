//! The Pareto front of a search's children: accuracy (higher is better)
//! against parameters and against FLOPs (lower is better), as kept in a run
//! directory's `pareto.json` and drawn by the bench's plot.
//!
//! A child is on the front of a cost when no other child is at least as
//! accurate and at least as cheap with one of the two strictly better. Of
//! children with the same accuracy and cost (e.g. one architecture trained
//! twice) the first one given is kept.

use serde::{Deserialize, Serialize};

use crate::arch::Architecture;
use crate::cost::{arch_cost, ArchCost, CostMetric};

/// One child: what it is, how accurate and how costly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoPoint {
    /// The architecture (an NB201 string, or the architecture's JSON).
    pub arch: String,
    /// Its accuracy (the caller's unit: a fraction or percent).
    pub accuracy: f64,
    /// Trainable parameters.
    pub params: u64,
    /// FLOPs per image (a multiply-add counts 2).
    pub flops: u64,
}

impl ParetoPoint {
    /// A point from an architecture, its accuracy and its cost.
    pub fn new(arch: &Architecture, accuracy: f64, cost: ArchCost) -> Self {
        let label = match arch {
            Architecture::Nb201(a) => a.to_string(),
            other => other.to_json(),
        };
        ParetoPoint { arch: label, accuracy, params: cost.params, flops: cost.flops }
    }

    /// The point's cost of `metric`.
    pub fn cost(&self, metric: CostMetric) -> u64 {
        match metric {
            CostMetric::Params => self.params,
            CostMetric::Flops => self.flops,
        }
    }
}

/// The non-dominated points for `metric`, cheapest first (accuracy then
/// strictly increases along the front). Non-finite accuracies are ignored.
pub fn pareto_front(points: &[ParetoPoint], metric: CostMetric) -> Vec<ParetoPoint> {
    let mut order: Vec<usize> = (0..points.len()).filter(|&i| points[i].accuracy.is_finite()).collect();
    // Cheapest first, most accurate first among equal costs, first given on ties.
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        pa.cost(metric)
            .cmp(&pb.cost(metric))
            .then(pb.accuracy.total_cmp(&pa.accuracy))
            .then(a.cmp(&b))
    });
    let mut out: Vec<ParetoPoint> = Vec::new();
    for i in order {
        if out.last().is_none_or(|l| points[i].accuracy > l.accuracy) {
            out.push(points[i].clone());
        }
    }
    out
}

/// Both fronts of a set of children: the content of `pareto.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoFronts {
    /// Children considered (those with a cost and a finite accuracy).
    pub children: usize,
    /// Accuracy against parameters, cheapest first.
    pub params: Vec<ParetoPoint>,
    /// Accuracy against FLOPs, cheapest first.
    pub flops: Vec<ParetoPoint>,
}

impl ParetoFronts {
    /// The fronts of `points`.
    pub fn of_points(points: &[ParetoPoint]) -> Self {
        ParetoFronts {
            children: points.iter().filter(|p| p.accuracy.is_finite()).count(),
            params: pareto_front(points, CostMetric::Params),
            flops: pareto_front(points, CostMetric::Flops),
        }
    }

    /// The fronts of finished children given as (architecture, accuracy).
    /// Costs come from [`arch_cost`] with the dataset's `input` = (C, H, W)
    /// and `classes` (NB201 cells have their own); children without a cost
    /// (recurrent cells) are left out.
    pub fn of_children<'a>(
        children: impl IntoIterator<Item = (&'a Architecture, f64)>,
        input: (usize, usize, usize),
        classes: usize,
    ) -> Self {
        let points: Vec<ParetoPoint> = children
            .into_iter()
            .filter_map(|(a, acc)| arch_cost(a, input, classes).map(|c| ParetoPoint::new(a, acc, c)))
            .collect();
        Self::of_points(&points)
    }

    /// Pretty JSON, as written to `pareto.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, accuracy: f64, params: u64, flops: u64) -> ParetoPoint {
        ParetoPoint { arch: name.into(), accuracy, params, flops }
    }

    #[test]
    fn fronts_by_hand() {
        let pts = [
            p("a", 0.90, 100, 50),
            p("b", 0.80, 50, 60),
            p("c", 0.85, 100, 10), // dominated by a on params, best on flops
            p("d", 0.95, 300, 300),
            p("e", 0.80, 60, 5),  // dominated by b on params
            p("f", 0.90, 100, 50), // a again: the first is kept
            p("g", f64::NAN, 1, 1),
        ];
        let names = |v: Vec<ParetoPoint>| v.into_iter().map(|x| x.arch).collect::<Vec<_>>();
        assert_eq!(names(pareto_front(&pts, CostMetric::Params)), ["b", "a", "d"]);
        assert_eq!(names(pareto_front(&pts, CostMetric::Flops)), ["e", "c", "a", "d"]);
        let f = ParetoFronts::of_points(&pts);
        assert_eq!(f.children, 6);
        let back: ParetoFronts = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn children_of_the_nb201_space() {
        use crate::space::nb201::Nb201Arch;
        let a = Architecture::Nb201(Nb201Arch::from_naslib_tuple([2; 6]).unwrap());
        let b = Architecture::Nb201(Nb201Arch::from_naslib_tuple([1; 6]).unwrap());
        let f = ParetoFronts::of_children([(&a, 0.93), (&b, 0.10)], (3, 32, 32), 10);
        assert_eq!(f.params.len(), 2);
        assert_eq!(f.params[0].params, 73_306);
        assert!(f.params[1].arch.contains("nor_conv_3x3"));
    }
}
