//! Token schemas: the generic shape of a search space that the controller walks.
//!
//! A schema is a list of *decision types* (each with its own value set; the
//! controller keeps one embedding table and one softmax head per type) and a
//! list of *steps*. A `Choice` step emits one token in `0..choices`; an
//! `Anchor { layer: i }` step emits `i` independent yes/no tokens, token `j`
//! saying whether earlier layer `j` feeds layer `i` (the paper's anchor points;
//! layer 0's anchor emits none but still exists, because its hidden state is
//! what later layers attend to). An architecture's tokens are the flat
//! concatenation of every step's tokens, in order.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::ArchError;

/// A kind of decision with its own value set (the controller keeps one
/// embedding table and one softmax head per type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionType {
    /// The decision's name, e.g. `filter_height`.
    pub name: String,
    /// The values a token of this type selects, by index, as text.
    pub choices: Vec<String>,
}

/// What a step emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    /// One categorical token drawn from `decisions[decision].choices`.
    Choice {
        /// Index into [`TokenSchema::decisions`].
        decision: usize,
    },
    /// `layer` binary tokens (skip connections from layers `0..layer`).
    Anchor {
        /// The layer this anchor belongs to (0-based); it emits one bit per earlier layer.
        layer: usize,
    },
}

/// One step of the controller's walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// A readable name for errors, e.g. `layer 3 filter_height`.
    pub name: String,
    /// What the step emits.
    pub kind: StepKind,
}

/// The shape of a search space's token sequences (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSchema {
    /// The decision types, indexed by a `Choice` step's `decision`.
    pub decisions: Vec<DecisionType>,
    /// The steps, in token order.
    pub steps: Vec<Step>,
}

impl TokenSchema {
    /// Number of tokens a complete architecture has under this schema.
    pub fn token_count(&self) -> usize {
        self.steps.iter().map(|s| self.tokens_in(s)).sum()
    }

    fn tokens_in(&self, s: &Step) -> usize {
        match s.kind {
            StepKind::Choice { .. } => 1,
            StepKind::Anchor { layer } => layer,
        }
    }

    /// Number of choices of the token at a `Choice` step.
    pub fn choices(&self, step: &Step) -> usize {
        match step.kind {
            StepKind::Choice { decision } => self.decisions[decision].choices.len(),
            StepKind::Anchor { .. } => 2,
        }
    }

    /// The number of values each token of a complete sequence can take, in
    /// token order: a choice step's number of choices, 2 for every skip bit
    /// of an anchor step. Its length is [`token_count`](Self::token_count).
    pub fn token_choices(&self) -> impl Iterator<Item = u32> + '_ {
        self.steps
            .iter()
            .flat_map(move |s| (0..self.tokens_in(s)).map(move |_| self.choices(s) as u32))
    }

    /// Checks count and range of every token, naming the first offender.
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<(), ArchError> {
        let expected = self.token_count();
        if tokens.len() != expected {
            return Err(ArchError::TokenCount { expected, found: tokens.len() });
        }
        let mut pos = 0;
        for step in &self.steps {
            let n = self.choices(step);
            for k in 0..self.tokens_in(step) {
                let v = tokens[pos];
                if v as usize >= n {
                    let name = match step.kind {
                        StepKind::Anchor { .. } => format!("{} from layer {}", step.name, k),
                        StepKind::Choice { .. } => step.name.clone(),
                    };
                    return Err(ArchError::TokenOutOfRange { position: pos, step: name, value: v, choices: n });
                }
                pos += 1;
            }
        }
        Ok(())
    }

    /// log10 of the number of distinct token sequences (= architectures: the
    /// encoding is a bijection). A log because a 20-layer CNN space is ~10^70.
    pub fn log10_size(&self) -> f64 {
        self.steps
            .iter()
            .map(|s| match s.kind {
                StepKind::Choice { .. } => (self.choices(s) as f64).log10(),
                StepKind::Anchor { layer } => layer as f64 * 2f64.log10(),
            })
            .sum()
    }

    /// A uniformly random token sequence: each categorical token uniform, each
    /// skip bit a fair coin. Since decode is a bijection onto the space, this is
    /// a uniformly random architecture.
    pub fn sample_uniform<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.token_count());
        for step in &self.steps {
            match step.kind {
                StepKind::Choice { .. } => out.push(rng.gen_range(0..self.choices(step) as u32)),
                StepKind::Anchor { layer } => out.extend((0..layer).map(|_| rng.gen_bool(0.5) as u32)),
            }
        }
        out
    }
}
