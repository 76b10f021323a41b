//! `[train.lm]`: how language-model children are trained (owned by the RNN trainer).
//!
//! Every knob of a language-model child lives here, including the ones that
//! share a name with `[train]` (`lr`, `batch_size`, `weight_decay`): the
//! `[train]` defaults are the CIFAR DenseNet recipe (lr 0.1, batch 128,
//! weight decay 1e-4), which would quietly ruin a word-level LSTM-style model.
//! From `[train]` the LM trainer reads only `dataset` and `epochs`.
//!
//! The defaults are the "medium" recipe of Zaremba et al. (2014), which the
//! paper's children are sized against (hidden 650, 2 layers, BPTT 35, batch
//! 20, SGD decayed by 0.8 per epoch after epoch 6, weights uniform in ±0.05,
//! dropout 0.5 between layers), with the learning rate and clipping of
//! PyTorch's word-language-model example (lr 20, clip 0.25: our loss is the
//! mean over tokens, theirs summed over time steps), plus the two
//! regularisers paper.md §6 names: embedding (word) dropout and variational
//! recurrent dropout (Gal & Ghahramani 2016).

use serde::{Deserialize, Serialize};

/// The children's optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmOptimizer {
    /// Plain SGD.
    Sgd,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// `[train.lm]`: model size, optimiser, schedule and regularisers of
/// language-model children (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmTrainConfig {
    /// Hidden size of each cell layer; the embedding has the same size (so
    /// that input and output embeddings can be tied).
    pub hidden: usize,
    /// When set, `hidden` is ignored and chosen as the largest size whose
    /// child has at most this many parameters (the paper matches the
    /// "medium" baselines: 19.8M for Zaremba's medium LSTM on a 10k vocabulary).
    pub match_params: Option<u64>,
    /// Refuse (permanently) a child with more parameters than this.
    pub max_params: Option<u64>,
    /// Stacked cell layers. Paper: 2.
    pub layers: usize,
    /// Truncated back-propagation through time length.
    pub bptt: usize,
    /// Training batch size (parallel streams of the corpus).
    pub batch_size: usize,
    /// Batch size of validation and test evaluation.
    pub eval_batch_size: usize,
    /// `sgd` (the paper-era recipe) or `adam` (quick searches: see `lr`).
    pub optimizer: LmOptimizer,
    /// Learning rate. The loss is the mean cross-entropy per token, so SGD
    /// wants ~20 (PyTorch's word-language-model recipe; Zaremba's lr 1 is
    /// on a loss summed over the 35 steps, i.e. 35 here); Adam ~2e-3.
    pub lr: f64,
    /// After epoch `lr_decay_start`, the learning rate is multiplied by
    /// `lr_decay` once per epoch (epoch e uses lr·decay^max(0, e − start)).
    pub lr_decay: f64,
    /// The last epoch (1-based) trained at the full learning rate; see
    /// `lr_decay`.
    pub lr_decay_start: usize,
    /// L2 penalty added to the gradient (0 = off).
    pub weight_decay: f64,
    /// Clip the gradients' global norm to this value (0 = off; PyTorch's
    /// recipe: 0.25 with lr 20; Zaremba's 5 on the summed loss). A number
    /// rather than an Option because the default is on, and TOML cannot
    /// write None: a saved config would silently turn clipping back on.
    pub grad_clip: f64,
    /// The embedding and softmax weights are drawn uniformly from
    /// [-init_range, init_range].
    pub init_range: f64,
    /// The cells' projections are drawn uniformly from ±gain/√hidden, so
    /// their outputs keep the same scale at every hidden size. The default
    /// 1.25 is Zaremba's ±0.05 at hidden 650. Sampled cells multiply
    /// sigmoids and products of small numbers: at small hidden sizes an
    /// absolute ±0.05 leaves h_t nearly constant and a short run learns no
    /// context, which is why this is relative and separate.
    pub cell_init_gain: f64,
    /// Start the softmax bias at the log unigram frequencies of the training
    /// tokens (add-one smoothed), so a child starts at the unigram
    /// perplexity and short runs spend their updates on context. Not in the
    /// paper (whose children train 35 epochs); on for quick searches.
    pub unigram_bias_init: bool,
    /// Word-level dropout on the embedding matrix: whole rows (word types)
    /// are zeroed for a batch (Gal & Ghahramani 2016).
    pub embed_dropout: f64,
    /// Dropout on the embedded input, one mask per sequence shared by every
    /// time step.
    pub input_dropout: f64,
    /// Variational recurrent dropout: a mask on h_{t-1} before its
    /// projections, the same at every time step of a sequence.
    pub recurrent_dropout: f64,
    /// Dropout on each layer's output (between layers and before the
    /// softmax), one mask per sequence shared by every time step.
    pub output_dropout: f64,
    /// Share the input embedding and the softmax weights (the paper's 25M model).
    pub tie_weights: bool,
    /// Add a bias to every leaf's h_{t-1} projection, as TensorFlow's
    /// `NASCell` does. The paper's formulas (and the default) have none.
    pub leaf_bias: bool,
    /// Train on characters (`*.char.*.txt` files); reports bits per character.
    pub char_level: bool,
    /// Use only the first N training tokens (quick runs; None = all).
    pub max_train_tokens: Option<usize>,
    /// Use only the first N validation (and test) tokens (None = all).
    pub max_valid_tokens: Option<usize>,
    /// After the last epoch, also measure test perplexity (final training of
    /// a found cell; never during a search, whose reward is validation-only).
    pub evaluate_test: bool,
}

impl Default for LmTrainConfig {
    fn default() -> Self {
        LmTrainConfig {
            hidden: 650,
            match_params: None,
            max_params: None,
            layers: 2,
            bptt: 35,
            batch_size: 20,
            eval_batch_size: 10,
            optimizer: LmOptimizer::Sgd,
            lr: 20.0,
            lr_decay: 0.8,
            lr_decay_start: 6,
            weight_decay: 0.0,
            grad_clip: 0.25,
            init_range: 0.05,
            cell_init_gain: 1.25,
            unigram_bias_init: false,
            embed_dropout: 0.1,
            input_dropout: 0.5,
            recurrent_dropout: 0.2,
            output_dropout: 0.5,
            tie_weights: false,
            leaf_bias: false,
            char_level: false,
            max_train_tokens: None,
            max_valid_tokens: None,
            evaluate_test: false,
        }
    }
}

impl LmTrainConfig {
    /// Cross-field checks; the message names the `train.lm` key.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("bptt", self.bptt),
            ("batch_size", self.batch_size),
            ("eval_batch_size", self.eval_batch_size),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("train.lm.{key} must be at least 1"));
            }
        }
        for (key, v) in [
            ("embed_dropout", self.embed_dropout),
            ("input_dropout", self.input_dropout),
            ("recurrent_dropout", self.recurrent_dropout),
            ("output_dropout", self.output_dropout),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("train.lm.{key} = {v} is outside [0, 1)"));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("train.lm.lr = {} is not a positive number", self.lr));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(format!("train.lm.lr_decay = {} is outside (0, 1]", self.lr_decay));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!("train.lm.weight_decay = {} is not a non-negative number", self.weight_decay));
        }
        if !(self.init_range > 0.0 && self.init_range.is_finite()) {
            return Err(format!("train.lm.init_range = {} is not a positive number", self.init_range));
        }
        if !(self.cell_init_gain > 0.0 && self.cell_init_gain.is_finite()) {
            return Err(format!("train.lm.cell_init_gain = {} is not a positive number", self.cell_init_gain));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return Err(format!("train.lm.grad_clip = {} is not a non-negative number (0 = off)", self.grad_clip));
        }
        for (key, v) in [("max_train_tokens", self.max_train_tokens), ("max_valid_tokens", self.max_valid_tokens)] {
            if v == Some(0) {
                return Err(format!("train.lm.{key} = 0 leaves no data (omit it to use the whole split)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_name_their_key() {
        assert_eq!(LmTrainConfig::default().check(), Ok(()));
        let bad = LmTrainConfig { recurrent_dropout: 1.0, ..Default::default() };
        assert!(bad.check().unwrap_err().contains("train.lm.recurrent_dropout"));
        let bad = LmTrainConfig { bptt: 0, ..Default::default() };
        assert!(bad.check().unwrap_err().contains("train.lm.bptt"));
        let bad = LmTrainConfig { grad_clip: f64::NAN, ..Default::default() };
        assert!(bad.check().unwrap_err().contains("train.lm.grad_clip"));
        let bad = LmTrainConfig { max_train_tokens: Some(0), ..Default::default() };
        assert!(bad.check().unwrap_err().contains("train.lm.max_train_tokens"));
    }

    #[test]
    fn toml_round_trip_keeps_optional_knobs() {
        let c = LmTrainConfig { match_params: Some(19_800_000), grad_clip: 0.0, max_params: Some(30_000_000), ..Default::default() };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<LmTrainConfig>(&text).unwrap(), c);
        let err = toml::from_str::<LmTrainConfig>("hiden = 3").unwrap_err().to_string();
        assert!(err.contains("hiden"), "{err}");
    }
}
