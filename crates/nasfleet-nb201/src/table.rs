//! [`Table`]: one objective value per NAS-Bench-201 cell, stored densely.
//!
//! The space has only 5^6 = 15,625 cells, so the table is a flat array indexed
//! by the NASLib tuple read as a base-5 number: a lookup is one multiply-add
//! chain and one load, with no hashing, and a partial table costs the same as a
//! full one. A sorted copy of the values answers median and percentile-rank
//! queries by binary search. The table is immutable after construction and
//! holds only plain data, so an `Arc<Table>` shares it between threads.

use std::fmt;
use std::path::PathBuf;

use nasfleet_core::space::nb201::Nb201Arch;
use thiserror::Error;

/// Number of cells in the NAS-Bench-201 space (5 ops on each of 6 edges).
pub const CELLS: usize = 15_625;

/// The column used when none is chosen: test-set accuracy (percent) of
/// standard training, as measured by the table's authors.
pub const DEFAULT_OBJECTIVE: &str = "baseline_accuracy";

/// CIFAR-10 chance level (percent). Cells with no path from input to output
/// score exactly this.
pub const CHANCE_ACCURACY: f64 = 10.0;

/// Why a table could not be loaded; every message names the file (or the
/// origin given for text), the line or cell, and what is wrong.
#[derive(Debug, Error)]
pub enum TableError {
    // The underlying errors are part of the message and deliberately not
    // `source()`s, so a report that prints the whole chain (anyhow's `{:#}`)
    // does not say them twice.
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The table file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The file is not a pickle the reader understands.
    #[error("{origin}: not a readable pickle: {error}")]
    Pickle {
        /// The file (or the name given to the bytes).
        origin: String,
        /// The pickle reader's error.
        error: serde_pickle::Error,
    },
    /// The pickle parses but is not shaped like the AnalogNAS-Bench table.
    #[error("{origin}: unexpected layout: {message}")]
    Layout {
        /// The file (or the name given to the bytes).
        origin: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A CSV line is malformed (header, arch or value).
    #[error("{origin}: line {line}: {message}")]
    Csv {
        /// The file (or the name given to the text).
        origin: String,
        /// The line, 1-based.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The requested objective column is not in the table.
    #[error("unknown objective column {objective:?}; available: {}", available.join(", "))]
    UnknownObjective {
        /// The column asked for.
        objective: String,
        /// The table's value columns.
        available: Vec<String>,
    },
    /// No column was asked for and the table has several, none of them
    /// [`DEFAULT_OBJECTIVE`].
    #[error("no objective chosen and the table has several columns without {DEFAULT_OBJECTIVE:?} among them ({}); choose one (--objective)", available.join(", "))]
    AmbiguousObjective {
        /// The table's value columns.
        available: Vec<String>,
    },
    /// A cell has two rows.
    #[error("architecture {} appears twice", describe(arch))]
    Duplicate {
        /// The repeated cell.
        arch: Nb201Arch,
    },
    /// A cell's objective value is NaN or infinite.
    #[error(
        "architecture {}: {objective} is {value}, not a finite number",
        describe(arch)
    )]
    NonFinite {
        /// The cell.
        arch: Nb201Arch,
        /// The objective column.
        objective: String,
        /// The value found.
        value: f64,
    },
    /// The table has no rows.
    #[error("the table holds no cells")]
    Empty,
}

/// A lookup that the table cannot answer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LookupError {
    /// The cell has no row in this table (a partial table).
    #[error(
        "architecture {} is not in the table ({present} of {CELLS} cells present)",
        describe(arch)
    )]
    NotInTable {
        /// The cell looked up.
        arch: Nb201Arch,
        /// Cells the table has (of [`CELLS`]).
        present: usize,
    },
    /// A NASLib tuple with an index outside 0..=4.
    #[error("NASLib tuple {tuple:?} is not an architecture: {message}")]
    InvalidTuple {
        /// The tuple given.
        tuple: [u8; 6],
        /// Which index is wrong.
        message: String,
    },
}

/// `|nor_conv_3x3~0|+...| (NASLib tuple (2, 2, ...))`: both spellings, because
/// users meet both (NB201's papers use the string, NASLib-based tables the tuple).
pub(crate) fn describe(arch: &Nb201Arch) -> String {
    let t = arch.to_naslib_tuple();
    format!(
        "{arch} (NASLib tuple ({}, {}, {}, {}, {}, {}))",
        t[0], t[1], t[2], t[3], t[4], t[5]
    )
}

/// Position of a cell in the dense array: its NASLib tuple as a base-5 number.
fn index_of(arch: &Nb201Arch) -> usize {
    arch.to_naslib_tuple()
        .iter()
        .fold(0, |acc, &d| acc * 5 + usize::from(d))
}

fn arch_at(index: usize) -> Nb201Arch {
    let mut t = [0u8; 6];
    let mut rest = index;
    for slot in t.iter_mut().rev() {
        *slot = (rest % 5) as u8;
        rest /= 5;
    }
    // Every digit is below 5, which is exactly the valid NASLib range.
    Nb201Arch::from_naslib_tuple(t).expect("base-5 digits are valid NASLib op indices")
}

/// Picks the objective column: the requested one if the source has it; with no
/// request, [`DEFAULT_OBJECTIVE`] if present, else the only column.
pub(crate) fn choose_objective(
    requested: Option<&str>,
    available: &[String],
) -> Result<String, TableError> {
    let has = |c: &str| available.iter().any(|a| a == c);
    match requested {
        Some(c) if has(c) => Ok(c.to_string()),
        Some(c) => Err(TableError::UnknownObjective {
            objective: c.to_string(),
            available: available.to_vec(),
        }),
        None if has(DEFAULT_OBJECTIVE) => Ok(DEFAULT_OBJECTIVE.to_string()),
        None if available.len() == 1 => Ok(available[0].clone()),
        None => Err(TableError::AmbiguousObjective {
            available: available.to_vec(),
        }),
    }
}

/// Objective values for some or all NAS-Bench-201 cells.
#[derive(Clone)]
pub struct Table {
    objective: String,
    columns: Vec<String>,
    /// Indexed by [`index_of`]; `None` for cells the source did not cover.
    values: Box<[Option<f64>]>,
    /// Every present value, ascending.
    sorted: Box<[f64]>,
    best: (Nb201Arch, f64),
}

impl fmt::Debug for Table {
    // The derived form would print 15,625 entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("objective", &self.objective)
            .field("columns", &self.columns)
            .field("cells", &self.len())
            .field("best", &self.best)
            .finish()
    }
}

impl Table {
    /// Builds a table from `(architecture, value)` pairs of the column
    /// `objective`; `columns` lists every column the source offered (for
    /// reports). Rejects duplicates, non-finite values and an empty table.
    pub fn from_cells(
        objective: impl Into<String>,
        columns: Vec<String>,
        cells: impl IntoIterator<Item = (Nb201Arch, f64)>,
    ) -> Result<Table, TableError> {
        let objective = objective.into();
        let mut values = vec![None; CELLS].into_boxed_slice();
        let mut sorted = Vec::new();
        let mut best: Option<(Nb201Arch, f64)> = None;
        for (arch, value) in cells {
            if !value.is_finite() {
                return Err(TableError::NonFinite {
                    arch,
                    objective,
                    value,
                });
            }
            let slot = &mut values[index_of(&arch)];
            if slot.is_some() {
                return Err(TableError::Duplicate { arch });
            }
            *slot = Some(value);
            sorted.push(value);
        }
        // Chosen in index order so ties go to the smallest NASLib tuple,
        // whatever order the source listed the cells in.
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = *v {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((arch_at(i), v));
                }
            }
        }
        let best = best.ok_or(TableError::Empty)?;
        sorted.sort_by(f64::total_cmp);
        Ok(Table {
            objective,
            columns,
            values,
            sorted: sorted.into_boxed_slice(),
            best,
        })
    }

    /// The column this table holds.
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// Every objective column the source offered (any of them can be chosen
    /// when loading).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of cells present.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Always false: construction rejects empty tables. Present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Whether all [`CELLS`] cells are present.
    pub fn is_complete(&self) -> bool {
        self.len() == CELLS
    }

    /// The value of `arch`, or `None` if the source did not cover it.
    pub fn get(&self, arch: &Nb201Arch) -> Option<f64> {
        self.values[index_of(arch)]
    }

    /// The value of `arch`, or an error naming it.
    pub fn value(&self, arch: &Nb201Arch) -> Result<f64, LookupError> {
        self.get(arch).ok_or(LookupError::NotInTable {
            arch: *arch,
            present: self.len(),
        })
    }

    /// The value of the cell with this NASLib tuple.
    pub fn value_of_tuple(&self, tuple: [u8; 6]) -> Result<f64, LookupError> {
        let arch = Nb201Arch::from_naslib_tuple(tuple).map_err(|e| LookupError::InvalidTuple {
            tuple,
            message: e.to_string(),
        })?;
        self.value(&arch)
    }

    /// Present cells in NASLib-tuple order.
    pub fn iter(&self) -> impl Iterator<Item = (Nb201Arch, f64)> + '_ {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (arch_at(i), v)))
    }

    /// The highest-scoring cell (ties: the smallest NASLib tuple).
    pub fn best(&self) -> (Nb201Arch, f64) {
        self.best
    }

    /// The lowest value.
    pub fn worst(&self) -> f64 {
        self.sorted[0]
    }

    /// The median value (mean of the two middle values for an even count).
    pub fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        }
    }

    /// Percentile rank of `value`, "at or below" convention: the fraction of
    /// present cells whose value is ≤ `value`, in [0, 1]. The best cell's own
    /// value has rank 1.0; NaN has rank 0.0.
    pub fn percentile_rank(&self, value: f64) -> f64 {
        self.sorted.partition_point(|&v| v <= value) as f64 / self.len() as f64
    }

    /// Number of cells whose value is exactly `value`.
    pub fn count_at(&self, value: f64) -> usize {
        self.sorted.partition_point(|&v| v <= value) - self.sorted.partition_point(|&v| v < value)
    }

    /// Summary numbers, for reports.
    pub fn stats(&self) -> TableStats {
        let (best_arch, best) = self.best;
        TableStats {
            objective: self.objective.clone(),
            cells: self.len(),
            best_arch,
            best,
            median: self.median(),
            worst: self.worst(),
            at_chance: self.count_at(CHANCE_ACCURACY),
        }
    }
}

/// Summary of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct TableStats {
    /// The objective column the table holds.
    pub objective: String,
    /// Cells with a value (at most [`CELLS`]).
    pub cells: usize,
    /// The cell with the best value.
    pub best_arch: Nb201Arch,
    /// The best value (the optimum).
    pub best: f64,
    /// The median value.
    pub median: f64,
    /// The worst value.
    pub worst: f64,
    /// Cells at exactly [`CHANCE_ACCURACY`] (for accuracy columns: the cells
    /// with no path from input to output).
    pub at_chance: usize,
}

impl fmt::Display for TableStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} of {CELLS} cells; best {} ({}); median {}; worst {}; {} at exactly {CHANCE_ACCURACY:.1}",
            self.objective,
            self.cells,
            self.best,
            describe(&self.best_arch),
            self.median,
            self.worst,
            self.at_chance
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(t: [u8; 6]) -> Nb201Arch {
        Nb201Arch::from_naslib_tuple(t).unwrap()
    }

    #[test]
    fn dense_index_round_trips_every_cell() {
        // index_of ∘ arch_at = identity on 0..CELLS, so arch_at is injective
        // and every cell has its own slot.
        for i in 0..CELLS {
            assert_eq!(index_of(&arch_at(i)), i);
        }
        assert_eq!(index_of(&arch([4, 4, 4, 4, 4, 4])), CELLS - 1);
        // Base-5 with the first tuple position most significant.
        assert_eq!(index_of(&arch([0, 0, 0, 0, 0, 1])), 1);
        assert_eq!(index_of(&arch([1, 0, 0, 0, 0, 0])), 3125);
    }

    #[test]
    fn stats_by_hand() {
        let cells = vec![
            (arch([0, 0, 0, 0, 0, 0]), 10.0),
            (arch([1, 1, 1, 1, 1, 1]), 10.0),
            (arch([2, 2, 2, 2, 2, 2]), 93.0),
            (arch([3, 3, 3, 3, 3, 3]), 80.0),
        ];
        let t = Table::from_cells("acc", vec!["acc".into()], cells).unwrap();
        assert_eq!(t.len(), 4);
        assert!(!t.is_complete());
        assert_eq!(t.best(), (arch([2, 2, 2, 2, 2, 2]), 93.0));
        assert_eq!(t.worst(), 10.0);
        // Even count: mean of 10 and 80.
        assert_eq!(t.median(), 45.0);
        assert_eq!(t.count_at(10.0), 2);
        assert_eq!(t.count_at(80.0), 1);
        assert_eq!(t.count_at(50.0), 0);
        // ≤ convention: 2 of 4 cells are ≤ 10, 3 of 4 are ≤ 80.
        assert_eq!(t.percentile_rank(10.0), 0.5);
        assert_eq!(t.percentile_rank(9.99), 0.0);
        assert_eq!(t.percentile_rank(85.0), 0.75);
        assert_eq!(t.percentile_rank(93.0), 1.0);
        assert_eq!(t.percentile_rank(f64::NAN), 0.0);
        assert_eq!(t.stats().at_chance, 2);
        let order: Vec<_> = t.iter().map(|(a, _)| a.to_naslib_tuple()[0]).collect();
        assert_eq!(order, [0, 1, 2, 3]);
    }

    #[test]
    fn best_ties_go_to_the_smallest_tuple() {
        let cells = vec![
            (arch([4, 0, 0, 0, 0, 0]), 90.0),
            (arch([0, 0, 0, 0, 0, 4]), 90.0),
        ];
        let t = Table::from_cells("acc", vec![], cells).unwrap();
        assert_eq!(t.best().0.to_naslib_tuple(), [0, 0, 0, 0, 0, 4]);
    }

    #[test]
    fn construction_errors() {
        let a = arch([2, 1, 3, 0, 4, 2]);
        let dup = Table::from_cells("acc", vec![], vec![(a, 1.0), (a, 2.0)]).unwrap_err();
        assert!(matches!(dup, TableError::Duplicate { .. }), "{dup}");
        assert!(dup.to_string().contains("(2, 1, 3, 0, 4, 2)"), "{dup}");
        let nan = Table::from_cells("acc", vec![], vec![(a, f64::NAN)]).unwrap_err();
        assert!(matches!(nan, TableError::NonFinite { .. }), "{nan}");
        let empty = Table::from_cells("acc", vec![], Vec::new()).unwrap_err();
        assert!(matches!(empty, TableError::Empty), "{empty}");
    }

    #[test]
    fn lookups_name_what_is_missing() {
        let t = Table::from_cells("acc", vec![], vec![(arch([2, 2, 2, 2, 2, 2]), 93.0)]).unwrap();
        assert_eq!(t.value_of_tuple([2, 2, 2, 2, 2, 2]), Ok(93.0));
        let missing = t.value_of_tuple([0, 1, 2, 3, 4, 0]).unwrap_err();
        assert!(matches!(
            missing,
            LookupError::NotInTable { present: 1, .. }
        ));
        let msg = missing.to_string();
        assert!(
            msg.contains("(0, 1, 2, 3, 4, 0)") && msg.contains("|skip_connect~0|"),
            "{msg}"
        );
        let invalid = t.value_of_tuple([0, 0, 0, 0, 0, 5]).unwrap_err();
        assert!(
            matches!(invalid, LookupError::InvalidTuple { .. }),
            "{invalid}"
        );
    }

    #[test]
    fn objective_choice() {
        let cols = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_objective(None, &cols(&["x", DEFAULT_OBJECTIVE])).unwrap(),
            DEFAULT_OBJECTIVE
        );
        assert_eq!(
            choose_objective(None, &cols(&["accuracy"])).unwrap(),
            "accuracy"
        );
        assert_eq!(
            choose_objective(Some("x"), &cols(&["x", "y"])).unwrap(),
            "x"
        );
        let amb = choose_objective(None, &cols(&["x", "y"])).unwrap_err();
        assert!(
            matches!(amb, TableError::AmbiguousObjective { .. }),
            "{amb}"
        );
        let unknown = choose_objective(Some("z"), &cols(&["x", "y"])).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown objective column \"z\"; available: x, y"
        );
    }
}
