//! What a child costs: trainable parameters and FLOPs of one forward pass of
//! one image, for the multi-objective reward ([`crate::reward::CostRule`])
//! and the Pareto front ([`crate::pareto`]).
//!
//! - CNN children: [`crate::space::CnnArch::resolve`]'s counts for the
//!   dataset's input shape and class count.
//! - NAS-Bench-201 cells: the benchmark's own CIFAR-10 network, counted here
//!   by hand (Dong & Yang 2020, xautodl's `TinyNetwork`): a 3×3 stem
//!   convolution to 16 channels with batch norm; three stages of 5 cells at
//!   16, 32 and 64 channels on 32×32, 16×16 and 8×8 maps, separated by two
//!   residual reduction blocks (ReLU-conv3×3/2-BN, ReLU-conv3×3-BN, and a
//!   2×2 average pool + 1×1 convolution shortcut); batch norm, global
//!   average pool and a linear layer to 10 classes. In a cell, a `nor_conv`
//!   edge is ReLU-conv-BN without bias (weights + BN weight and bias); `none`,
//!   `skip_connect` and `avg_pool_3x3` have no parameters and no
//!   multiply-adds. This gives 73,306 parameters for a cell without
//!   convolutions and 1,531,546 for six 3×3 convolutions (NB201 reports
//!   0.07 M and 1.53 M).
//! - Recurrent cells: no cost is defined (`None`).
//!
//! FLOPs count a multiply-add as 2, as [`crate::space::cnn::CnnGraph::flops`]
//! does (NB201's own "FLOPs" figures count multiply-adds, half of these).

use serde::{Deserialize, Serialize};

use crate::arch::Architecture;
use crate::space::nb201::{Nb201Arch, Nb201Op};

/// A child's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchCost {
    /// Trainable parameters.
    pub params: u64,
    /// FLOPs of one forward pass of one image (a multiply-add counts 2).
    pub flops: u64,
}

/// Which cost a rule or a plot uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostMetric {
    /// Trainable parameters.
    Params,
    /// FLOPs per image.
    Flops,
}

impl CostMetric {
    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CostMetric::Params => "params",
            CostMetric::Flops => "flops",
        }
    }

    /// `params` or `flops`.
    pub fn from_name(s: &str) -> Option<CostMetric> {
        match s {
            "params" | "parameters" => Some(CostMetric::Params),
            "flops" => Some(CostMetric::Flops),
            _ => None,
        }
    }
}

impl ArchCost {
    /// The value of one metric.
    pub fn get(&self, metric: CostMetric) -> u64 {
        match metric {
            CostMetric::Params => self.params,
            CostMetric::Flops => self.flops,
        }
    }
}

/// A conv without bias plus its batch norm: (parameters, multiply-adds on a
/// `side`×`side` output).
fn conv_bn(k: u64, cin: u64, cout: u64, side: u64) -> (u64, u64) {
    let w = k * k * cin * cout;
    (w + 2 * cout, w * side * side)
}

/// The cost of an NB201 cell in the benchmark's CIFAR-10 network (module docs).
pub fn nb201_cost(arch: &Nb201Arch) -> ArchCost {
    let (mut params, mut macs) = (0u64, 0u64);
    let mut add = |(p, m): (u64, u64)| {
        params += p;
        macs += m;
    };
    add(conv_bn(3, 3, 16, 32)); // stem
    for (stage, (c, side)) in [(16u64, 32u64), (32, 16), (64, 8)].into_iter().enumerate() {
        if stage > 0 {
            let cin = c / 2;
            add(conv_bn(3, cin, c, side)); // conv_a, stride 2
            add(conv_bn(3, c, c, side)); // conv_b
            add((cin * c, cin * c * side * side)); // shortcut: avg pool + 1×1 conv
        }
        for _ in 0..5 {
            for op in arch.ops {
                match op {
                    Nb201Op::NorConv1x1 => add(conv_bn(1, c, c, side)),
                    Nb201Op::NorConv3x3 => add(conv_bn(3, c, c, side)),
                    Nb201Op::None | Nb201Op::SkipConnect | Nb201Op::AvgPool3x3 => {}
                }
            }
        }
    }
    add((2 * 64, 0)); // last batch norm
    add((64 * 10 + 10, 64 * 10)); // classifier
    ArchCost { params, flops: 2 * macs }
}

/// The cost of `arch`: a CNN's for `input` = (C, H, W) and `classes`, an
/// NB201 cell's in the benchmark's CIFAR-10 network (which fixes both), none
/// for a recurrent cell.
pub fn arch_cost(arch: &Architecture, input: (usize, usize, usize), classes: usize) -> Option<ArchCost> {
    match arch {
        Architecture::Cnn(a) => {
            let g = a.resolve(input, classes);
            Some(ArchCost { params: g.params, flops: g.flops() })
        }
        Architecture::Nb201(a) => Some(nb201_cost(a)),
        Architecture::RnnCell(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(t: [u8; 6]) -> Nb201Arch {
        Nb201Arch::from_naslib_tuple(t).unwrap()
    }

    #[test]
    fn nb201_extremes_match_the_published_sizes() {
        // NASLib indices: 0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avg pool.
        let empty = nb201_cost(&cell([1; 6]));
        assert_eq!(empty.params, 73_306);
        assert_eq!(nb201_cost(&cell([0; 6])), empty);
        assert_eq!(nb201_cost(&cell([4; 6])), empty);
        let full = nb201_cost(&cell([2; 6]));
        assert_eq!(full.params, 1_531_546);
        // Each 3×3 edge costs 9·C²·side² = 2,359,296 multiply-adds in every
        // stage (C doubles as the side halves): 15 cells × 6 edges of them.
        assert_eq!(full.flops - empty.flops, 2 * 90 * 2_359_296);
        // NB201 reports ≈ 220 M (multiply-adds) for this cell.
        assert!((215e6..225e6).contains(&(full.flops as f64 / 2.0)), "{}", full.flops);
        let one_by_one = nb201_cost(&cell([3; 6]));
        assert_eq!(one_by_one.flops - empty.flops, 2 * 90 * 262_144);
    }
}
