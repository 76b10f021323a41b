//! Which corpus a job names, where its files are, and how token streams
//! become BPTT batches.
//!
//! Dataset names: `ptb` and `austen` (word level), `ptb-char` and
//! `austen-char` (character level, the PTB-char convention); `ptb` or
//! `austen` with `train.lm.char_level = true` also selects the character
//! files. PTB is the user's copy: `ptb.{train,valid,test}.txt` (and
//! `ptb.char.*.txt`) in `DATA_DIR/ptb/` or directly in `DATA_DIR`. Austen is
//! prepared by [`nasfleet_data::fetch_austen`] into `DATA_DIR/austen/` (the
//! Debian package itself is cached in nasfleet-data's cache directory).

use std::path::{Path, PathBuf};

use nasfleet_data::{fetch_austen, load_char_corpus, load_word_corpus, CharFormat, Corpus, CorpusFiles};
use tch::{Device, Kind, Tensor};

/// A corpus a language-model job can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LmCorpus {
    /// The Penn Treebank, from the user's files.
    Ptb,
    /// Jane Austen's novels, prepared from Debian's r-cran-janeaustenr.
    Austen,
}

/// A resolved dataset: which corpus, at which level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LmDataset {
    /// Which corpus.
    pub corpus: LmCorpus,
    /// Characters (PTB-char format) instead of words.
    pub char_level: bool,
}

impl LmDataset {
    /// Resolves `train.dataset` (and `train.lm.char_level`).
    pub fn resolve(name: &str, char_level: bool) -> Result<Self, String> {
        let (corpus, chars) = match name {
            "ptb" => (LmCorpus::Ptb, false),
            "ptb-char" => (LmCorpus::Ptb, true),
            "austen" => (LmCorpus::Austen, false),
            "austen-char" => (LmCorpus::Austen, true),
            other => {
                return Err(format!(
                    "dataset {other:?} is not a language-model corpus (expected ptb, ptb-char, austen or austen-char)"
                ))
            }
        };
        Ok(LmDataset { corpus, char_level: chars || char_level })
    }

    /// The dataset's name: `ptb`, `ptb-char`, `austen` or `austen-char`.
    pub fn name(&self) -> &'static str {
        match (self.corpus, self.char_level) {
            (LmCorpus::Ptb, false) => "ptb",
            (LmCorpus::Ptb, true) => "ptb-char",
            (LmCorpus::Austen, false) => "austen",
            (LmCorpus::Austen, true) => "austen-char",
        }
    }

    /// Finds (PTB) or prepares (Austen) the files under `data_dir` and loads them.
    pub fn load(&self, data_dir: &Path) -> Result<Corpus, String> {
        let files = match self.corpus {
            LmCorpus::Ptb => {
                let candidates = [data_dir.join("ptb"), data_dir.to_path_buf()];
                let pick = |dir: &PathBuf| {
                    if self.char_level {
                        CorpusFiles::ptb_char(dir)
                    } else {
                        CorpusFiles::ptb(dir)
                    }
                };
                match candidates.iter().map(pick).find(|f| f.train.is_file()) {
                    Some(f) => f,
                    None => {
                        let wanted = pick(&candidates[0]);
                        let file = wanted.train.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                        return Err(format!(
                            "the Penn Treebank is not in any package registry: put {file} (and its valid/test \
                             siblings) in {} or {}",
                            candidates[0].display(),
                            candidates[1].display()
                        ));
                    }
                }
            }
            LmCorpus::Austen => {
                let report = fetch_austen(&data_dir.join("austen")).map_err(|e| e.to_string())?;
                if self.char_level {
                    report.char_files
                } else {
                    report.word_files
                }
            }
        };
        let corpus = if self.char_level {
            load_char_corpus(&files, CharFormat::PtbChar)
        } else {
            load_word_corpus(&files)
        };
        corpus.map_err(|e| e.to_string())
    }
}

/// The first `max` tokens (all when None).
pub fn prefix(ids: &[u32], max: Option<usize>) -> &[u32] {
    &ids[..max.map_or(ids.len(), |m| m.min(ids.len()))]
}

/// Lays a token stream out as `batch` contiguous streams: `[steps, batch]`
/// int64 on `device`, column j holding tokens `j·steps .. (j+1)·steps`
/// (the tail that does not fill a column is dropped, as in every PTB
/// reader). Needs at least two steps (an input and its target).
pub fn batchify(ids: &[u32], batch: usize, device: Device, what: &str) -> Result<Tensor, String> {
    let steps = ids.len() / batch.max(1);
    if steps < 2 {
        return Err(format!(
            "{what}: {} tokens are too few for batch size {batch} (need at least {})",
            ids.len(),
            2 * batch
        ));
    }
    let used: Vec<i64> = ids[..steps * batch].iter().map(|&t| t as i64).collect();
    Ok(Tensor::from_slice(&used).view([batch as i64, steps as i64]).tr().contiguous().to_kind(Kind::Int64).to_device(device))
}

/// The BPTT segments of a `[steps, batch]` tensor: (start, length) pairs
/// with the inputs at `start..start+len` and the targets one step later.
pub fn segments(steps: i64, bptt: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..steps - 1).step_by(bptt.max(1) as usize).map(move |i| (i, bptt.min(steps - 1 - i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_the_char_flag() {
        assert_eq!(LmDataset::resolve("ptb", false), Ok(LmDataset { corpus: LmCorpus::Ptb, char_level: false }));
        assert_eq!(LmDataset::resolve("ptb", true).map(|d| d.name()), Ok("ptb-char"));
        assert_eq!(LmDataset::resolve("austen-char", false).map(|d| d.name()), Ok("austen-char"));
        assert!(LmDataset::resolve("wikitext", false).unwrap_err().contains("wikitext"));
    }

    #[test]
    fn batchify_lays_out_contiguous_streams_and_drops_the_tail() {
        let ids: Vec<u32> = (0..11).collect();
        let t = batchify(&ids, 2, Device::Cpu, "x").unwrap();
        assert_eq!(t.size(), [5, 2]);
        let got: Vec<i64> = Vec::try_from(t.reshape([-1])).unwrap();
        assert_eq!(got, [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]);
        let err = batchify(&ids, 6, Device::Cpu, "validation split").unwrap_err();
        assert!(err.contains("validation split") && err.contains("11 tokens"), "{err}");
        assert_eq!(prefix(&ids, Some(3)), &[0, 1, 2]);
        assert_eq!(prefix(&ids, Some(99)).len(), 11);
    }

    #[test]
    fn segments_cover_every_target_once() {
        assert_eq!(segments(10, 4).collect::<Vec<_>>(), [(0, 4), (4, 4), (8, 1)]);
        assert_eq!(segments(2, 35).collect::<Vec<_>>(), [(0, 1)]);
    }
}
