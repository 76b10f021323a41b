//! The CIFAR-10 binary format (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`).
//!
//! Each record is one label byte (0–9) followed by 3,072 pixel bytes: the 1,024 red values
//! of the 32×32 image row by row, then the 1,024 green, then the 1,024 blue. That is
//! already C×H×W, so a batch becomes an [`ImageSet`] by copying record bodies end to end.

use std::path::{Path, PathBuf};

use crate::error::{read_file, DataError, Result};
use crate::images::ImageSet;

/// Side of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Pixel bytes per image (3 × 32 × 32).
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Bytes per record: the label then the pixels.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Records in each of the official batch files.
pub const RECORDS_PER_BATCH: usize = 10_000;
/// The ten classes, indexed by label.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Names of the five training batches, in the order they are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Name of the test batch.
pub const TEST_FILE: &str = "test_batch.bin";

/// Reads one file of CIFAR-10 records, however many it holds.
pub fn load_cifar10_batch(path: &Path) -> Result<ImageSet> {
    let bytes = read_file(path, "a CIFAR-10 binary batch")?;
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            what: "CIFAR-10 records of 3073 bytes".into(),
        });
    }
    let records = bytes.len() / RECORD_BYTES;
    let rest = bytes.len() % RECORD_BYTES;
    if rest != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes is not a whole number of {RECORD_BYTES}-byte records: {records} \
                 records and then {rest} bytes of a partial one",
                bytes.len()
            ),
        });
    }
    let mut labels = Vec::with_capacity(records);
    let mut pixels = Vec::with_capacity(records * IMAGE_BYTES);
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= CLASSES.len() {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                detail: format!(
                    "record {i} (byte offset {}) has label {label}; CIFAR-10 labels are 0..=9",
                    i * RECORD_BYTES
                ),
            });
        }
        labels.push(label);
        pixels.extend_from_slice(&record[1..]);
    }
    ImageSet::new(pixels, labels, [3, SIDE, SIDE], CLASSES.len())
}

/// The official CIFAR-10 split: 50,000 training and 10,000 test images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cifar10 {
    /// The five training batches, concatenated in order (50,000 images).
    pub train: ImageSet,
    /// `test_batch.bin` (10,000 images).
    pub test: ImageSet,
}

/// Loads `data_batch_1..5.bin` (concatenated, in order) and `test_batch.bin` from `dir`.
///
/// Each file must hold exactly 10,000 records, as the official ones do: a shorter file is
/// reported as truncated rather than silently training on less data.
pub fn load_cifar10(dir: &Path) -> Result<Cifar10> {
    let paths: Vec<PathBuf> = TRAIN_FILES
        .iter()
        .chain(std::iter::once(&TEST_FILE))
        .map(|f| dir.join(f))
        .collect();
    // Name every missing file at once: a user with a half-extracted archive wants the
    // whole list, not one file per attempt.
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what: format!(
                "the CIFAR-10 binary batches; missing: {}",
                missing.join(", ")
            ),
        });
    }
    let mut batches = Vec::with_capacity(paths.len());
    for path in &paths {
        batches.push(load_official_batch(path)?);
    }
    let test = batches.split_off(TRAIN_FILES.len());
    Ok(Cifar10 {
        train: ImageSet::concat(batches)?,
        test: ImageSet::concat(test)?,
    })
}

/// Loads a batch that must hold exactly [`RECORDS_PER_BATCH`] records.
fn load_official_batch(path: &Path) -> Result<ImageSet> {
    let batch = load_cifar10_batch(path)?;
    let detail = format!(
        "an official CIFAR-10 batch holds {RECORDS_PER_BATCH} records ({} bytes), found {} \
         records",
        RECORDS_PER_BATCH * RECORD_BYTES,
        batch.len()
    );
    match batch.len() {
        RECORDS_PER_BATCH => Ok(batch),
        n if n < RECORDS_PER_BATCH => Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail,
        }),
        _ => Err(DataError::Invalid {
            path: path.to_path_buf(),
            detail,
        }),
    }
}
