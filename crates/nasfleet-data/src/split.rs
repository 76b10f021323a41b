//! Deterministic train/validation splits.
//!
//! The paper holds out 5,000 of CIFAR-10's 50,000 training images as the validation set
//! whose accuracy is the controller's reward, and trains children on the other 45,000.
//! Every worker in the fleet must carve out the *same* validation set, so the split is a
//! pure function of the labels and a seed. It uses ChaCha8 with our own Fisher–Yates and
//! bounded sampling rather than `rand`'s `shuffle`, so the indices stay the same across
//! `rand` versions (a test pins them).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::images::ImageSet;

/// How to split a training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConfig {
    /// Examples held out for validation.
    pub valid_size: usize,
    /// Examples kept for training; `None` keeps every example not held out. A smaller
    /// number gives a random subset, for cheap proxy training.
    pub train_size: Option<usize>,
    /// Seed of the shuffle; the same seed and labels always give the same split.
    pub seed: u64,
    /// Draw the same number of examples from every class (the remainder of a size that is
    /// not a multiple of the class count goes one each to the lowest labels). With
    /// `train_size: None` the training part is simply everything left.
    pub class_balanced: bool,
}

impl Default for SplitConfig {
    /// The paper's CIFAR-10 split: 5,000 validation, the remaining 45,000 for training.
    fn default() -> Self {
        Self {
            valid_size: 5_000,
            train_size: None,
            seed: 0,
            class_balanced: false,
        }
    }
}

/// Indices into the original set; each part is sorted ascending, and the parts are
/// disjoint. The order within a part carries no meaning: training shuffles per epoch with
/// its own seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Indices of the training part.
    pub train: Vec<usize>,
    /// Indices of the validation part.
    pub valid: Vec<usize>,
}

/// A uniform draw from `0..n` (`n > 0`), without modulo bias: values below
/// `2^64 mod n` are rejected so that every residue is equally likely.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let x = rng.next_u64();
        if x >= threshold {
            return x % n;
        }
    }
}

/// A seeded permutation of `0..len`.
pub fn permutation(len: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut perm: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm
}

/// Per-class quotas for drawing `total` examples from `classes` classes.
fn quotas(total: usize, classes: usize) -> Vec<usize> {
    (0..classes)
        .map(|c| total / classes + usize::from(c < total % classes))
        .collect()
}

/// Splits the examples with these `labels` (each below `num_classes`).
pub fn split_indices(labels: &[u8], num_classes: usize, config: &SplitConfig) -> Result<Split> {
    let n = labels.len();
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(DataError::InvalidRequest(format!(
            "example {i} has label {l}, not below the class count {num_classes}"
        )));
    }
    let train_size = config
        .train_size
        .unwrap_or(n.saturating_sub(config.valid_size));
    if config.valid_size.saturating_add(train_size) > n {
        return Err(DataError::InvalidRequest(format!(
            "a split of {} validation + {train_size} training examples needs {} examples, \
             the set has {n}",
            config.valid_size,
            config.valid_size.saturating_add(train_size)
        )));
    }
    let perm = permutation(n, config.seed);
    let (mut train, mut valid) = if config.class_balanced {
        if num_classes == 0 {
            return Err(DataError::InvalidRequest(
                "a class-balanced split needs at least one class".into(),
            ));
        }
        // Bucket the shuffled indices by class; each bucket is then a shuffle of its class.
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
        for &i in &perm {
            by_class[usize::from(labels[i])].push(i);
        }
        let valid_quota = quotas(config.valid_size, num_classes);
        let train_quota = config.train_size.map(|t| quotas(t, num_classes));
        let mut train = Vec::new();
        let mut valid = Vec::new();
        for (class, members) in by_class.iter().enumerate() {
            let v = valid_quota[class];
            let t = train_quota
                .as_ref()
                .map_or(members.len().saturating_sub(v), |q| q[class]);
            if v + t > members.len() {
                return Err(DataError::InvalidRequest(format!(
                    "class {class} has {} examples; a class-balanced split needs {v} for \
                     validation and {t} for training",
                    members.len()
                )));
            }
            valid.extend_from_slice(&members[..v]);
            train.extend_from_slice(&members[v..v + t]);
        }
        (train, valid)
    } else {
        let valid = perm[..config.valid_size].to_vec();
        let train = perm[config.valid_size..config.valid_size + train_size].to_vec();
        (train, valid)
    };
    train.sort_unstable();
    valid.sort_unstable();
    Ok(Split { train, valid })
}

/// Splits an image set into (train, validation) sets.
pub fn split_set(set: &ImageSet, config: &SplitConfig) -> Result<(ImageSet, ImageSet)> {
    let split = split_indices(set.labels(), set.num_classes(), config)?;
    Ok((set.select(&split.train)?, set.select(&split.valid)?))
}
