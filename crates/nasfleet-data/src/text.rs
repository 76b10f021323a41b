//! Penn-Treebank-style text corpora, word level and character level.
//!
//! The format (`ptb.train.txt`, `ptb.valid.txt`, `ptb.test.txt`): one sentence per line,
//! tokens separated by whitespace, rare words already replaced by `<unk>`. Every line
//! ends in an `<eos>` token, as in the reference readers (Mikolov's, TensorFlow's), so a
//! blank line still contributes one `<eos>`. The vocabulary is built from the training
//! file alone — a validation or test token it does not know becomes `<unk>`, or is an
//! error naming the file and line when the corpus has no `<unk>` (a sign that the files
//! do not belong together). The same reader serves the Austen files this crate writes.
//!
//! The character level reads either the PTB-char convention (characters separated by
//! spaces, `_` between words, as in `ptb.char.train.txt`) or plain text, where every
//! character of a line, spaces included, is a token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{read_file, DataError, Result};

/// End-of-sentence token appended to every line.
pub const EOS: &str = "<eos>";
/// Out-of-vocabulary token.
pub const UNK: &str = "<unk>";

/// Token ↔ id mapping. Ids are dense, `0..len()`, ordered by decreasing frequency in the
/// training file (ties by token), so the ids are stable for a given training file and the
/// most frequent tokens get the smallest ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Builds a vocabulary from token counts.
    fn from_counts(counts: HashMap<&str, usize>) -> Self {
        let mut by_freq: Vec<(&str, usize)> = counts.into_iter().collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let tokens: Vec<String> = by_freq.into_iter().map(|(t, _)| t.to_string()).collect();
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self { tokens, ids }
    }

    /// Number of distinct tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True for a vocabulary without tokens (never the case for a loaded corpus).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of `token`.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The token with this id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// All tokens, by id.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}

/// A tokenised corpus: the vocabulary of the training file and the three id streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// The vocabulary, built from the training file.
    pub vocab: Vocab,
    /// Token ids of the training file, `<eos>` after each sentence.
    pub train: Vec<u32>,
    /// Token ids of the validation file.
    pub valid: Vec<u32>,
    /// Token ids of the test file.
    pub test: Vec<u32>,
    /// How many validation and test tokens were mapped to `<unk>` by the loader (always 0
    /// for PTB, whose files share one vocabulary).
    pub oov_mapped_to_unk: usize,
}

/// The three files of a corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorpusFiles {
    /// The training file.
    pub train: PathBuf,
    /// The validation file.
    pub valid: PathBuf,
    /// The test file.
    pub test: PathBuf,
}

impl CorpusFiles {
    /// `PREFIX.train.txt`, `PREFIX.valid.txt`, `PREFIX.test.txt` in `dir`.
    pub fn with_prefix(dir: &Path, prefix: &str) -> Self {
        Self {
            train: dir.join(format!("{prefix}.train.txt")),
            valid: dir.join(format!("{prefix}.valid.txt")),
            test: dir.join(format!("{prefix}.test.txt")),
        }
    }

    /// The word-level Penn Treebank files (`ptb.train.txt`, …).
    pub fn ptb(dir: &Path) -> Self {
        Self::with_prefix(dir, "ptb")
    }

    /// The character-level Penn Treebank files (`ptb.char.train.txt`, …).
    pub fn ptb_char(dir: &Path) -> Self {
        Self::with_prefix(dir, "ptb.char")
    }

    /// The word-level Austen files written by [`crate::austen`].
    pub fn austen(dir: &Path) -> Self {
        Self::with_prefix(dir, "austen")
    }

    /// The character-level (PTB-char convention) Austen files.
    pub fn austen_char(dir: &Path) -> Self {
        Self::with_prefix(dir, "austen.char")
    }

    fn all(&self) -> [&Path; 3] {
        [&self.train, &self.valid, &self.test]
    }
}

/// How a character-level file spells its characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharFormat {
    /// Characters separated by single spaces, `_` standing for the space between words:
    /// `t h e _ c a t`. Each whitespace-separated token must be one character.
    PtbChar,
    /// Every character of a line is a token, spaces included.
    Plain,
    /// `PtbChar` when every whitespace-separated token of the training file is a single
    /// character, else `Plain`.
    Auto,
}

/// Reads a corpus file as UTF-8 text, refusing missing, empty and non-UTF-8 files.
fn read_text(path: &Path) -> Result<String> {
    let bytes = read_file(path, "a text corpus file")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DataError::Invalid {
            path: path.to_path_buf(),
            detail: format!("line {line} (byte {offset}) is not valid UTF-8"),
        }
    })?;
    if text.trim().is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            what: "one sentence per line".into(),
        });
    }
    Ok(text)
}

/// Splits one line (number `line`, 1-based) into tokens, without the `<eos>`. Tokens
/// borrow from the file's text: a character-level corpus has millions of them.
type Tokenizer = for<'a> fn(&Path, usize, &'a str) -> Result<Vec<&'a str>>;

fn word_tokens<'a>(_path: &Path, _line: usize, text: &'a str) -> Result<Vec<&'a str>> {
    Ok(text.split_whitespace().collect())
}

fn ptb_char_tokens<'a>(path: &Path, line: usize, text: &'a str) -> Result<Vec<&'a str>> {
    text.split_whitespace()
        .map(|t| {
            if t.chars().count() == 1 {
                Ok(t)
            } else {
                Err(DataError::Invalid {
                    path: path.to_path_buf(),
                    detail: format!(
                        "line {line}: token {t:?} is not a single character; PTB-char files \
                         separate characters by spaces (load it as plain text instead?)"
                    ),
                })
            }
        })
        .collect()
}

fn plain_char_tokens<'a>(_path: &Path, _line: usize, text: &'a str) -> Result<Vec<&'a str>> {
    Ok(text
        .char_indices()
        .map(|(i, c)| &text[i..i + c.len_utf8()])
        .collect())
}

/// Tokenises every line of a file; each line's tokens are followed by `<eos>`.
fn tokenize<'a>(
    path: &Path,
    text: &'a str,
    tokenizer: Tokenizer,
) -> Result<Vec<(usize, Vec<&'a str>)>> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let mut tokens = tokenizer(path, i + 1, line.trim_end_matches('\r'))?;
            tokens.push(EOS);
            Ok((i + 1, tokens))
        })
        .collect()
}

/// Maps tokenised lines to ids, sending unknown tokens to `<unk>` or failing.
fn to_ids(
    path: &Path,
    lines: &[(usize, Vec<&str>)],
    vocab: &Vocab,
    unk_count: &mut usize,
) -> Result<Vec<u32>> {
    let unk = vocab.id(UNK);
    let mut ids = Vec::with_capacity(lines.iter().map(|(_, t)| t.len()).sum());
    for (line, tokens) in lines {
        for token in tokens {
            match (vocab.id(token), unk) {
                (Some(id), _) => ids.push(id),
                (None, Some(unk)) => {
                    *unk_count += 1;
                    ids.push(unk);
                }
                (None, None) => {
                    return Err(DataError::OutOfVocabulary {
                        path: path.to_path_buf(),
                        line: *line,
                        token: token.to_string(),
                    })
                }
            }
        }
    }
    Ok(ids)
}

fn load_with(files: &CorpusFiles, tokenizer: Tokenizer) -> Result<Corpus> {
    // Read all three first so a missing test file is reported before any work is done.
    let texts = files.all().map(|p| read_text(p).map(|t| (p, t)));
    let [train, valid, test] = texts;
    let (train, valid, test) = (train?, valid?, test?);
    let train_lines = tokenize(train.0, &train.1, tokenizer)?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, tokens) in &train_lines {
        for &t in tokens {
            *counts.entry(t).or_default() += 1;
        }
    }
    let vocab = Vocab::from_counts(counts);
    let mut oov = 0;
    let train_ids = to_ids(train.0, &train_lines, &vocab, &mut oov)?;
    let valid_ids = to_ids(
        valid.0,
        &tokenize(valid.0, &valid.1, tokenizer)?,
        &vocab,
        &mut oov,
    )?;
    let test_ids = to_ids(
        test.0,
        &tokenize(test.0, &test.1, tokenizer)?,
        &vocab,
        &mut oov,
    )?;
    Ok(Corpus {
        vocab,
        train: train_ids,
        valid: valid_ids,
        test: test_ids,
        oov_mapped_to_unk: oov,
    })
}

/// Loads a word-level corpus (PTB format).
pub fn load_word_corpus(files: &CorpusFiles) -> Result<Corpus> {
    load_with(files, word_tokens)
}

/// Loads a character-level corpus; [`CharFormat::Auto`] decides from the training file.
pub fn load_char_corpus(files: &CorpusFiles, format: CharFormat) -> Result<Corpus> {
    let format = match format {
        CharFormat::Auto => {
            let train = read_text(&files.train)?;
            if train.split_whitespace().all(|t| t.chars().count() == 1) {
                CharFormat::PtbChar
            } else {
                CharFormat::Plain
            }
        }
        f => f,
    };
    let tokenizer: Tokenizer = match format {
        CharFormat::PtbChar => ptb_char_tokens,
        _ => plain_char_tokens,
    };
    load_with(files, tokenizer)
}

/// Loads `ptb.train.txt`, `ptb.valid.txt`, `ptb.test.txt` from `dir`.
pub fn load_ptb(dir: &Path) -> Result<Corpus> {
    load_word_corpus(&CorpusFiles::ptb(dir))
}

/// Loads `ptb.char.train.txt`, `ptb.char.valid.txt`, `ptb.char.test.txt` from `dir`.
pub fn load_ptb_char(dir: &Path) -> Result<Corpus> {
    load_char_corpus(&CorpusFiles::ptb_char(dir), CharFormat::PtbChar)
}
