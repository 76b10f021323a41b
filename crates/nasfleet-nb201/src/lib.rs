//! NAS-Bench-201 as a lookup table: measured CIFAR-10 test-set accuracy for
//! every cell of the NB201 space, so a search strategy (the REINFORCE
//! controller, random search, evolution) can be evaluated in seconds instead of
//! GPU-days (paper §8).
//!
//! # Layout
//!
//! - [`fetch`]: obtains the table, `analognasbench/data.anb` from the PyPI wheel
//!   `analog-nasbench==0.1.3`, with the user's `pip`, into a cache directory
//!   (`$NASFLEET_CACHE`, else `~/.cache/nasfleet`). The wheel states no licence,
//!   so the file is downloaded on demand and never committed.
//! - [`Table`] (module `table`): one objective value per cell, a dense array
//!   indexed by the cell's NASLib tuple, plus a sorted copy for statistics
//!   (best, median, percentile rank, count at chance level).
//! - `pickle`: reads `data.anb` (a protocol-4 pickle of Python objects, read as
//!   plain dicts) and discovers its numeric columns: `baseline_accuracy`
//!   (standard training, the default objective), `ptq_accuracy`,
//!   `qat_accuracy`, `noisy_accuracy`, `analog_accuracy` and the eight drift
//!   columns `{baseline,analog}_drift_{60,3600,86400,2592000}`.
//! - `csv`: reads any other table from CSV (`arch,<column>...`), the arch being
//!   an NB201 string or a NASLib tuple.
//! - [`trainer`]: [`TableTrainer`], a `nasfleet_core` [`Trainer`] for
//!   `train.dataset = "nb201-table"`: a child's reward is its table value run
//!   through the job's reward rule, after an optional simulated training time,
//!   so the whole fleet (embedded or Redis) can run on the table.
//! - [`bench`](mod@bench): the search-efficiency benchmark: every strategy and seed
//!   through the same propose → table trainer → update loop; best found after
//!   50 … 1,000 samples, mean ± sample std, percentile ranks, the comparison
//!   with random search; JSON and text. Strategies come from a factory, so
//!   this crate needs no libtorch.
//! - [`plot`]: the bench's PNG (best-so-far curves with bands), drawn without
//!   any system font.
//!
//! [`Trainer`]: nasfleet_core::trainer::Trainer
//!
//! # Encodings
//!
//! Architectures are [`nasfleet_core::space::nb201::Nb201Arch`]; the table is
//! keyed by its NASLib tuple (ops 0 skip_connect, 1 none, 2 nor_conv_3x3,
//! 3 nor_conv_1x1, 4 avg_pool_3x3; positions = edges (0→1), (0→2), (0→3),
//! (1→2), (1→3), (2→3)), which is how the AnalogNAS-Bench file is keyed. The
//! NB201 string lists the same edges grouped by target node, so its 3rd and
//! 4th edges are swapped relative to the tuple; the core crate owns that
//! conversion so there is exactly one.
//!
//! # Invariants
//!
//! Pure: no tch, tokio or redis (the RL controller reaches the bench through
//! a strategy factory the binary passes in). Loading never panics on bad input; every
//! error names the file, the line or cell, and what is wrong. A table is
//! immutable plain data, cheap to share as `Arc<Table>`, with O(1) lookups.

pub mod bench;
pub mod fetch;
pub mod plot;
pub mod trainer;

mod csv;
mod pickle;
mod table;

use std::fs;
use std::path::Path;

pub use fetch::{default_cache_dir, fetch_table, FetchError};
pub use trainer::{TableCache, TableTrainer, WorkerTable};
pub use table::{
    LookupError, Table, TableError, TableStats, CELLS, CHANCE_ACCURACY, DEFAULT_OBJECTIVE,
};

impl Table {
    /// Loads the AnalogNAS-Bench pickle. `objective` picks the column; `None`
    /// means [`DEFAULT_OBJECTIVE`] (`baseline_accuracy`). An unknown column is
    /// an error listing the available ones.
    pub fn load_pickle(path: &Path, objective: Option<&str>) -> Result<Table, TableError> {
        let file = fs::File::open(path).map_err(|error| TableError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        pickle::read(
            std::io::BufReader::new(file),
            &path.display().to_string(),
            objective,
        )
    }

    /// Loads a CSV table (format in the `csv` module: `arch,<column>...`).
    /// `objective` picks the column; `None` means [`DEFAULT_OBJECTIVE`] if the
    /// file has it, else its only value column.
    pub fn load_csv(path: &Path, objective: Option<&str>) -> Result<Table, TableError> {
        let text = fs::read_to_string(path).map_err(|error| TableError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        csv::parse(&text, &path.display().to_string(), objective)
    }

    /// [`Table::load_csv`] on text already in memory; `origin` names it in errors.
    pub fn parse_csv(
        text: &str,
        origin: &str,
        objective: Option<&str>,
    ) -> Result<Table, TableError> {
        csv::parse(text, origin, objective)
    }

    /// Loads by file extension: `.csv` as CSV, anything else as the pickle.
    pub fn load(path: &Path, objective: Option<&str>) -> Result<Table, TableError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Table::load_csv(path, objective),
            _ => Table::load_pickle(path, objective),
        }
    }
}

/// Parses an architecture as the CSV loader does: an NB201 string
/// (`|nor_conv_3x3~0|+|...|`) or a NASLib tuple (`(2, 1, 3, 0, 4, 2)`,
/// `2,1,3,0,4,2`). For command-line arguments naming a cell.
pub fn parse_arch(s: &str) -> Result<nasfleet_core::space::nb201::Nb201Arch, String> {
    csv::parse_arch(s)
}
