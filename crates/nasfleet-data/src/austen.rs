//! Jane Austen's six novels as a Penn-Treebank-style language-modelling corpus.
//!
//! The full PTB is in no package registry; Jane Austen is, in Debian's
//! `r-cran-janeaustenr` (public-domain text, MIT package) as an R lazy-load data base with
//! one character vector per novel, one element per printed line. [`fetch_austen`]
//! downloads that `.deb` once into a cache (never installing it: it would pull in R),
//! reads the novels with [`crate::rdata`], and writes PTB-format files:
//!
//! * `austen.{train,valid,test}.txt` — one sentence per line, lower case, every token
//!   containing a digit replaced by `N`, punctuation dropped, words outside the
//!   vocabulary replaced by `<unk>`;
//! * `austen.char.{train,valid,test}.txt` — the same sentences before the `<unk>`
//!   substitution, in the PTB-char convention (`t h e _ c a t`);
//! * `austen.report.json` — the counts of [`AustenReport`].
//!
//! Choices, and why:
//! * Sentences are split at `.`, `!`, `?` (plus closing quotes) followed by a space,
//!   except after titles and initials (`Mr.`, `Mrs.`, `Dr.`, `E.`), which Austen uses
//!   thousands of times, and except when the next word starts in lower case
//!   (`"Oh!" said she`), which continues the sentence.
//! * Words are runs of letters and digits; an apostrophe between two of them stays inside
//!   the word (`don't`, `emma's`), hyphens and dashes separate words. This yields 725,067
//!   words from the 717,537 whitespace-separated ones.
//! * The split is contiguous by sentence, 80/10/10, in publication order (Sense and
//!   Sensibility … Persuasion), so validation and test are later text, as in PTB.
//! * The vocabulary is the most frequent words of the *training* split, sized so that with
//!   `<unk>` and `<eos>` the model sees 10,000 types, as with PTB. Validation and test
//!   words outside it become `<unk>`, so no information flows from them into the
//!   vocabulary, and the word files load with [`crate::text::load_word_corpus`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::debian;
use crate::error::{DataError, Result};
use crate::fsutil::{default_cache_dir, write_if_changed};
use crate::rdata::{LazyLoadDb, RValue};
use crate::text::{CorpusFiles, UNK};

/// The novels: key in the R data base and title, in publication order.
pub const BOOKS: [(&str, &str); 6] = [
    ("sensesensibility", "Sense & Sensibility"),
    ("prideprejudice", "Pride & Prejudice"),
    ("mansfieldpark", "Mansfield Park"),
    ("emma", "Emma"),
    ("northangerabbey", "Northanger Abbey"),
    ("persuasion", "Persuasion"),
];
/// The Debian package.
pub const DEBIAN_PACKAGE: &str = "r-cran-janeaustenr";
/// Where the package keeps its data base, relative to the file-system root.
pub const DATA_DIR_IN_PACKAGE: &str = "usr/lib/R/site-library/janeaustenr/data";

/// One novel as printed lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    /// Short key of the novel in janeaustenr (e.g. `prideprejudice`).
    pub key: String,
    /// The novel's title (e.g. `Pride & Prejudice`).
    pub title: String,
    /// The printed lines, in order, as the R data base holds them.
    pub lines: Vec<String>,
}

/// Reads the six novels from a janeaustenr `data` directory (`Rdata.rdx`, `Rdata.rdb`).
pub fn read_books(data_dir: &Path) -> Result<Vec<Book>> {
    let db = LazyLoadDb::open_dir(data_dir)?;
    let rdb = data_dir.join("Rdata.rdb");
    BOOKS
        .iter()
        .map(|&(key, title)| {
            let obj = db.get(key)?;
            let RValue::Str(lines) = obj.value else {
                return Err(DataError::Invalid {
                    path: rdb.clone(),
                    detail: format!(
                        "entry `{key}` is a {}, expected a character vector",
                        obj.type_name()
                    ),
                });
            };
            let lines = lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    l.ok_or_else(|| DataError::Invalid {
                        path: rdb.clone(),
                        detail: format!("entry `{key}`: line {} is NA", i + 1),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if lines.is_empty() {
                return Err(DataError::Invalid {
                    path: rdb.clone(),
                    detail: format!("entry `{key}` has no lines"),
                });
            }
            Ok(Book {
                key: key.into(),
                title: title.into(),
                lines,
            })
        })
        .collect()
}

/// Titles and single-letter initials end in a period without ending the sentence.
const ABBREVIATIONS: [&str; 12] = [
    "mr", "mrs", "ms", "dr", "st", "messrs", "esq", "rev", "lieut", "capt", "col", "gen",
];

/// Whether `before` (the text up to a period) ends in an abbreviation or an initial.
fn ends_with_abbreviation(before: &str) -> bool {
    let word: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphabetic())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut chars = word.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.is_uppercase() && c != 'I',
        (Some(_), Some(_)) => ABBREVIATIONS.contains(&word.to_lowercase().as_str()),
        _ => false,
    }
}

/// Characters that may follow a sentence's final punctuation and still belong to it.
fn is_closer(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '_')
}

/// Splits a paragraph into sentences, trimmed (see the module documentation for the rules).
pub fn split_sentences(paragraph: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if !matches!(c, '.' | '!' | '?') {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && is_closer(chars[j].1) {
            j += 1;
        }
        let end = chars.get(j).map_or(paragraph.len(), |&(p, _)| p);
        let followed_by_space = chars.get(j).is_none_or(|&(_, c)| c.is_whitespace());
        let continues_lowercase = chars[j..]
            .iter()
            .map(|&(_, c)| c)
            .find(|&c| !(c.is_whitespace() || matches!(c, '"' | '\'' | '(' | '[' | '_')))
            .is_some_and(char::is_lowercase);
        let abbreviation = c == '.' && ends_with_abbreviation(&paragraph[start..pos]);
        if followed_by_space && !continues_lowercase && !abbreviation {
            sentences.push(paragraph[start..end].trim());
            start = end;
        }
        i = j;
    }
    sentences.push(paragraph[start..].trim());
    sentences.retain(|s| !s.is_empty());
    sentences
}

/// The words of a sentence, lower-cased, with `N` for any word containing a digit.
pub fn words(sentence: &str) -> Vec<String> {
    let chars: Vec<char> = sentence.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let inner_apostrophe = c == '\''
            && !current.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_apostrophe {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    for w in &mut words {
        if w.chars().any(|c| c.is_ascii_digit()) {
            *w = "N".into();
        }
    }
    words
}

/// A book's sentences as word lists: paragraphs are runs of non-blank lines.
pub fn book_sentences(lines: &[String]) -> Vec<Vec<String>> {
    let mut sentences = Vec::new();
    let mut paragraph = String::new();
    let mut flush = |paragraph: &mut String| {
        for s in split_sentences(paragraph) {
            let w = words(s);
            if !w.is_empty() {
                sentences.push(w);
            }
        }
        paragraph.clear();
    };
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            flush(&mut paragraph);
        } else {
            if !paragraph.is_empty() {
                paragraph.push(' ');
            }
            paragraph.push_str(line);
        }
    }
    flush(&mut paragraph);
    sentences
}

/// How to turn the novels into a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrepareConfig {
    /// Types the language model sees, counting `<unk>` and `<eos>` (PTB: 10,000).
    pub vocab_size: usize,
    /// Fraction of sentences for training; the next `valid_fraction` validate, the rest
    /// test.
    pub train_fraction: f64,
    /// Fraction of sentences for validation, after the training ones.
    pub valid_fraction: f64,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        Self {
            vocab_size: 10_000,
            train_fraction: 0.8,
            valid_fraction: 0.1,
        }
    }
}

/// Counts of one novel's source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookStats {
    /// Short key of the novel in janeaustenr.
    pub key: String,
    /// The novel's title.
    pub title: String,
    /// Lines of the source text.
    pub lines: usize,
    /// Whitespace-separated words of the printed text.
    pub words: usize,
    /// Sentences found by the splitter.
    pub sentences: usize,
}

/// Counts of one split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitStats {
    /// Sentences in the split.
    pub sentences: usize,
    /// Word tokens, not counting `<eos>`.
    pub words: usize,
    /// Word tokens the model sees: words plus one `<eos>` per sentence.
    pub tokens: usize,
    /// Words written as `<unk>`.
    pub unk: usize,
    /// Character tokens of the PTB-char file: characters, `_` separators and one `<eos>`
    /// per sentence.
    pub char_tokens: usize,
}

/// The prepared corpus: file contents and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Word-level files: train, valid, test.
    pub word_text: [String; 3],
    /// Character-level (PTB-char) files: train, valid, test.
    pub char_text: [String; 3],
    /// Counts of everything prepared.
    pub stats: CorpusStats,
}

/// Everything counted while preparing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusStats {
    /// Per novel, in the order they were read.
    pub books: Vec<BookStats>,
    /// Whitespace-separated words of the printed text (717,537).
    pub source_words: usize,
    /// Characters of the printed text, one newline per line included (4,025,028).
    pub source_chars: usize,
    /// Distinct characters of the printed text, newline included (81).
    pub source_symbols: usize,
    /// Sentences over all novels.
    pub sentences: usize,
    /// Words after tokenisation, over all splits, `<eos>` not counted.
    pub words: usize,
    /// Distinct words over all splits.
    pub word_types: usize,
    /// Types in the word files plus `<eos>`: the model's vocabulary size.
    pub vocab_size: usize,
    /// Fraction of training words inside the vocabulary.
    pub train_coverage: f64,
    /// Distinct character tokens in the character files, `<eos>` included.
    pub char_vocab_size: usize,
    /// Counts of the training split.
    pub train: SplitStats,
    /// Counts of the validation split.
    pub valid: SplitStats,
    /// Counts of the test split.
    pub test: SplitStats,
    /// The settings the corpus was prepared with.
    pub config: PrepareConfig,
}

/// Turns the novels into PTB-style word and character files (pure; no I/O).
pub fn prepare(books: &[Book], config: &PrepareConfig) -> Result<Prepared> {
    let fractions_ok = config.train_fraction > 0.0
        && config.valid_fraction > 0.0
        && config.train_fraction + config.valid_fraction < 1.0;
    if !fractions_ok {
        return Err(DataError::InvalidRequest(format!(
            "split fractions train {} / valid {} must be positive and leave some test data",
            config.train_fraction, config.valid_fraction
        )));
    }
    if config.vocab_size < 3 {
        return Err(DataError::InvalidRequest(format!(
            "vocabulary size {} leaves no room for words beside <unk> and <eos>",
            config.vocab_size
        )));
    }

    let mut book_stats = Vec::new();
    let mut sentences: Vec<Vec<String>> = Vec::new();
    let mut symbols = std::collections::BTreeSet::new();
    let (mut source_words, mut source_chars) = (0, 0);
    for book in books {
        let s = book_sentences(&book.lines);
        let words: usize = book
            .lines
            .iter()
            .map(|l| l.split_whitespace().count())
            .sum();
        source_words += words;
        for line in &book.lines {
            source_chars += line.chars().count() + 1;
            symbols.extend(line.chars());
        }
        book_stats.push(BookStats {
            key: book.key.clone(),
            title: book.title.clone(),
            lines: book.lines.len(),
            words,
            sentences: s.len(),
        });
        sentences.extend(s);
    }
    if !books.is_empty() {
        symbols.insert('\n');
    }

    let n = sentences.len();
    let train_end = (n as f64 * config.train_fraction).floor() as usize;
    let valid_end = (n as f64 * (config.train_fraction + config.valid_fraction)).floor() as usize;
    if train_end == 0 || valid_end == train_end || valid_end >= n {
        return Err(DataError::InvalidRequest(format!(
            "{n} sentences are too few for a {}/{}/rest split with every part non-empty",
            config.train_fraction, config.valid_fraction
        )));
    }
    let parts = [
        &sentences[..train_end],
        &sentences[train_end..valid_end],
        &sentences[valid_end..],
    ];

    // Vocabulary from the training split only: most frequent first, ties alphabetical.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in parts[0].iter().flatten() {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let mut by_freq: Vec<(&str, usize)> = counts.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by_freq.truncate(config.vocab_size - 2);
    let train_words: usize = parts[0].iter().map(Vec::len).sum();
    let covered: usize = by_freq.iter().map(|(_, c)| c).sum();
    let vocab: std::collections::HashSet<&str> = by_freq.iter().map(|(w, _)| *w).collect();

    let mut word_text: [String; 3] = Default::default();
    let mut char_text: [String; 3] = Default::default();
    let mut split_stats = Vec::new();
    let mut file_types: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut char_types: std::collections::HashSet<char> = std::collections::HashSet::new();
    for (k, part) in parts.iter().enumerate() {
        let mut stats = SplitStats {
            sentences: part.len(),
            words: 0,
            tokens: 0,
            unk: 0,
            char_tokens: 0,
        };
        for sentence in *part {
            let mapped: Vec<&str> = sentence
                .iter()
                .map(|w| {
                    if vocab.contains(w.as_str()) {
                        w.as_str()
                    } else {
                        stats.unk += 1;
                        UNK
                    }
                })
                .collect();
            file_types.extend(mapped.iter().copied());
            word_text[k].push_str(&mapped.join(" "));
            word_text[k].push('\n');
            stats.words += sentence.len();
            stats.tokens += sentence.len() + 1;

            // PTB-char: characters separated by spaces, ` _ ` between words.
            let out = &mut char_text[k];
            for (j, w) in sentence.iter().enumerate() {
                if j > 0 {
                    out.push_str(" _ ");
                }
                for (m, c) in w.chars().enumerate() {
                    if m > 0 {
                        out.push(' ');
                    }
                    out.push(c);
                    char_types.insert(c);
                    stats.char_tokens += 1;
                }
            }
            stats.char_tokens += sentence.len(); // the `_` separators and the `<eos>`
            if sentence.len() > 1 {
                char_types.insert('_');
            }
            out.push('\n');
        }
        split_stats.push(stats);
    }
    let [train, valid, test]: [SplitStats; 3] = split_stats
        .try_into()
        .map_err(|_| DataError::InvalidRequest("internal: expected three splits".into()))?;
    let word_types = sentences
        .iter()
        .flatten()
        .map(String::as_str)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let stats = CorpusStats {
        books: book_stats,
        source_words,
        source_chars,
        source_symbols: symbols.len(),
        sentences: n,
        words: sentences.iter().map(Vec::len).sum(),
        word_types,
        vocab_size: file_types.len() + 1,
        train_coverage: if train_words == 0 {
            0.0
        } else {
            covered as f64 / train_words as f64
        },
        char_vocab_size: char_types.len() + 1,
        train,
        valid,
        test,
        config: *config,
    };
    Ok(Prepared {
        word_text,
        char_text,
        stats,
    })
}

/// Where [`fetch_austen_with`] finds or caches the R data base.
#[derive(Debug, Clone, PartialEq)]
pub struct AustenOptions {
    /// Cache for the extracted package (default [`default_cache_dir`]).
    pub cache_dir: PathBuf,
    /// Use this janeaustenr `data` directory instead of looking for one.
    pub data_dir: Option<PathBuf>,
    /// How to split the novels and size the vocabulary.
    pub prepare: PrepareConfig,
}

impl Default for AustenOptions {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            data_dir: None,
            prepare: PrepareConfig::default(),
        }
    }
}

/// What [`fetch_austen`] produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AustenReport {
    /// The destination directory.
    pub dir: PathBuf,
    /// The word-level files (`ptb.{train,valid,test}.txt`).
    pub word_files: CorpusFiles,
    /// The character-level files (`ptb.char.{train,valid,test}.txt`).
    pub char_files: CorpusFiles,
    /// This report, as JSON.
    pub report_file: PathBuf,
    /// The janeaustenr `data` directory the text was read from.
    pub source: PathBuf,
    /// Counts of everything prepared.
    pub stats: CorpusStats,
}

/// Makes sure `dest` holds the prepared Austen corpus, downloading the Debian package
/// into the default cache if needed. Idempotent: a second call reads the cached package,
/// finds the files identical and rewrites nothing.
pub fn fetch_austen(dest: &Path) -> Result<AustenReport> {
    fetch_austen_with(dest, &AustenOptions::default())
}

/// [`fetch_austen`] with a chosen cache, source directory and preparation.
pub fn fetch_austen_with(dest: &Path, options: &AustenOptions) -> Result<AustenReport> {
    let source = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => locate_janeaustenr(&options.cache_dir)?,
    };
    let books = read_books(&source)?;
    let prepared = prepare(&books, &options.prepare)?;
    let word_files = CorpusFiles::austen(dest);
    let char_files = CorpusFiles::austen_char(dest);
    let targets = [
        (&word_files.train, &prepared.word_text[0]),
        (&word_files.valid, &prepared.word_text[1]),
        (&word_files.test, &prepared.word_text[2]),
        (&char_files.train, &prepared.char_text[0]),
        (&char_files.valid, &prepared.char_text[1]),
        (&char_files.test, &prepared.char_text[2]),
    ];
    for (path, text) in targets {
        write_if_changed(path, text.as_bytes())?;
    }
    let report = AustenReport {
        dir: dest.to_path_buf(),
        word_files,
        char_files,
        report_file: dest.join("austen.report.json"),
        source,
        stats: prepared.stats,
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| DataError::Invalid {
        path: report.report_file.clone(),
        detail: format!("could not encode the report: {e}"),
    })?;
    write_if_changed(&report.report_file, &json)?;
    Ok(report)
}

/// Finds a janeaustenr `data` directory (holding `Rdata.rdx` and `Rdata.rdb`): an
/// installed package, else the copy extracted under `cache_dir`, else a fresh
/// `apt-get download` + `dpkg -x` into `cache_dir`.
pub fn locate_janeaustenr(cache_dir: &Path) -> Result<PathBuf> {
    let has_db = |d: &Path| d.join("Rdata.rdx").is_file() && d.join("Rdata.rdb").is_file();
    let installed = Path::new("/").join(DATA_DIR_IN_PACKAGE);
    if has_db(&installed) {
        return Ok(installed);
    }
    let extracted = cache_dir.join(DEBIAN_PACKAGE);
    let data_dir = extracted.join(DATA_DIR_IN_PACKAGE);
    if has_db(&data_dir) {
        return Ok(data_dir);
    }
    // Extract into a fresh directory and rename it into place, so a concurrent caller
    // (two tests, two workers) sees either nothing or a complete extraction.
    let fail = |attempt: String| DataError::Fetch {
        dataset: format!(
            "Jane Austen ({DEBIAN_PACKAGE}) into {}",
            cache_dir.display()
        ),
        attempts: vec![attempt],
    };
    std::fs::create_dir_all(cache_dir).map_err(crate::error::io_err(cache_dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".janeaustenr-")
        .tempdir_in(cache_dir)
        .map_err(crate::error::io_err(cache_dir))?;
    debian::download_and_extract(DEBIAN_PACKAGE, tmp.path())
        .map_err(|e| fail(format!("apt-get download {DEBIAN_PACKAGE} + dpkg -x: {e}")))?;
    if !has_db(&tmp.path().join(DATA_DIR_IN_PACKAGE)) {
        return Err(fail(format!(
            "the package has no {DATA_DIR_IN_PACKAGE}/Rdata.rdx and Rdata.rdb"
        )));
    }
    match std::fs::rename(tmp.path(), &extracted) {
        Ok(()) => {}
        // Someone else finished first; theirs is complete, use it.
        Err(_) if has_db(&data_dir) => {}
        Err(source) => {
            return Err(DataError::Io {
                path: extracted,
                source,
            })
        }
    }
    Ok(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_respect_titles_initials_and_dialogue() {
        let p = "Mr. and Mrs. Dashwood met Dr. Grant. \"Oh!\" said she, \"is it you?\" \
                 She left. E. Watson stayed! Did he? Yes.";
        assert_eq!(
            split_sentences(p),
            [
                "Mr. and Mrs. Dashwood met Dr. Grant.",
                "\"Oh!\" said she, \"is it you?\"",
                "She left.",
                "E. Watson stayed!",
                "Did he?",
                "Yes."
            ]
        );
        assert_eq!(split_sentences("No final stop"), ["No final stop"]);
        assert!(split_sentences("").is_empty());
    }

    #[test]
    fn words_lowercase_keep_inner_apostrophes_and_replace_numbers() {
        assert_eq!(
            words("\"Don't,\" said Emma's sister-in-law--in 1811, the 3rd; '_quite_' £20."),
            [
                "don't", "said", "emma's", "sister", "in", "law", "in", "N", "the", "N", "quite",
                "N"
            ]
        );
    }

    #[test]
    fn paragraphs_join_lines_and_blank_lines_separate() {
        let lines: Vec<String> = ["CHAPTER I", "", "It was a truth", "universally known.", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            book_sentences(&lines),
            vec![
                vec!["chapter", "i"],
                vec!["it", "was", "a", "truth", "universally", "known"]
            ]
        );
    }

    #[test]
    fn prepare_splits_and_caps_the_vocabulary() {
        let text: Vec<String> = (0..20)
            .map(|i| format!("The cat number {i} sat on mat{}. The end.", i % 3))
            .collect();
        let book = Book {
            key: "k".into(),
            title: "T".into(),
            lines: text,
        };
        let config = PrepareConfig {
            vocab_size: 6,
            ..PrepareConfig::default()
        };
        let p = prepare(&[book], &config).unwrap();
        let s = &p.stats;
        assert_eq!(s.sentences, 40);
        assert_eq!(
            (s.train.sentences, s.valid.sentences, s.test.sentences),
            (32, 4, 4)
        );
        // The 4 most frequent training words (`the` and `N` 32 times each, then the
        // alphabetically first of those seen 16 times), `<unk>`, and `<eos>`.
        assert_eq!(s.vocab_size, 6);
        assert!(
            p.word_text[0].starts_with("the cat <unk> N <unk> <unk> N\nthe end\n"),
            "{}",
            &p.word_text[0][..60]
        );
        assert_eq!(s.train.unk, 16 * 3);
        assert!(p.char_text[0].starts_with("t h e _ c a t _ n u m b e r _ N _ s a t _ o n _ N\n"));
        let bad = PrepareConfig {
            train_fraction: 0.95,
            valid_fraction: 0.1,
            ..config
        };
        assert!(matches!(
            prepare(&[], &bad),
            Err(DataError::InvalidRequest(_))
        ));
        assert!(matches!(
            prepare(&[], &config),
            Err(DataError::InvalidRequest(_))
        ));
    }
}
