//! The IDX reader on files built here, raw and gzip'd, and its errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use nasfleet_data::{load_idx_pair, read_idx_images, read_idx_labels, DataError};

fn images_bytes(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..n * rows * cols).map(|i| (i % 251) as u8));
    b
}

fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = 0x0000_0801u32.to_be_bytes().to_vec();
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn raw_and_gzip_load_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let raw_i = write(dir.path(), "i.idx", &images_bytes(3, 2, 4));
    let raw_l = write(dir.path(), "l.idx", &labels_bytes(&[7, 0, 9]));
    let gz_i = write(dir.path(), "i.idx.gz", &gzip(&images_bytes(3, 2, 4)));
    let gz_l = write(dir.path(), "l.idx.gz", &gzip(&labels_bytes(&[7, 0, 9])));
    let a = load_idx_pair(&raw_i, &raw_l, 10).unwrap();
    let b = load_idx_pair(&gz_i, &gz_l, 10).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    assert_eq!(a.shape(), [1, 2, 4]);
    assert_eq!(a.labels(), &[7, 0, 9]);
    assert_eq!(a.image(1).unwrap(), &[8, 9, 10, 11, 12, 13, 14, 15]);
    assert_eq!(a.pixel(2, 0, 1, 3), Some(23));
    assert_eq!(read_idx_images(&gz_i).unwrap().pixels.len(), 24);
}

#[test]
fn truncated_images_report_header_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = images_bytes(3, 2, 2);
    bytes.pop();
    let p = write(dir.path(), "imgs.gz", &gzip(&bytes));
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.ends_with("imgs.gz: truncated: header says 3×2×2 = 12 bytes, found 11"),
        "{msg}"
    );
}

#[test]
fn extra_bytes_are_an_error_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = labels_bytes(&[1, 2]);
    bytes.push(3);
    let p = write(dir.path(), "labels", &bytes);
    let msg = read_idx_labels(&p).unwrap_err().to_string();
    assert!(
        msg.contains("header says 2 = 2 bytes, found 3 (1 bytes too many)"),
        "{msg}"
    );
}

#[test]
fn swapped_files_give_wrong_magic_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "train-images", &images_bytes(2, 1, 1));
    let l = write(dir.path(), "train-labels", &labels_bytes(&[1, 2]));
    let err = load_idx_pair(&l, &i, 10).unwrap_err();
    match &err {
        DataError::BadMagic {
            path,
            expected,
            found,
            ..
        } => {
            assert_eq!(path, &l);
            assert_eq!((*expected, *found), (0x803, 0x801));
        }
        other => panic!("expected BadMagic, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("wrong magic number 0x00000801, expected 0x00000803"),
        "{msg}"
    );
    assert!(msg.contains("this is an IDX label file"), "{msg}");
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "i", &images_bytes(3, 1, 1));
    let l = write(dir.path(), "l", &labels_bytes(&[1, 2]));
    let err = load_idx_pair(&i, &l, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&i.display().to_string()) && msg.contains(&l.display().to_string()));
    assert!(msg.ends_with("3 images but 2 labels"), "{msg}");
}

#[test]
fn label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "i", &images_bytes(2, 1, 1));
    let l = write(dir.path(), "l", &labels_bytes(&[1, 10]));
    let msg = load_idx_pair(&i, &l, 10).unwrap_err().to_string();
    assert!(
        msg.contains("example 1 has label 10, but there are only 10 classes"),
        "{msg}"
    );
}

#[test]
fn short_corrupt_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tiny", &[0, 0]);
    let msg = read_idx_labels(&p).unwrap_err().to_string();
    assert!(msg.contains("tiny: truncated: 2 bytes"), "{msg}");

    let p = write(dir.path(), "header-only", &0x0000_0803u32.to_be_bytes());
    let msg = read_idx_images(&p).unwrap_err().to_string();
    assert!(msg.contains("shorter than the 16-byte header"), "{msg}");

    let gz = gzip(&images_bytes(10, 4, 4));
    let p = write(dir.path(), "cut.gz", &gz[..gz.len() / 2]);
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    assert!(err.to_string().contains("gzip stream ends early"), "{err}");

    let mut bad = gz.clone();
    for b in &mut bad[12..40] {
        *b ^= 0x5a;
    }
    let p = write(dir.path(), "bad.gz", &bad);
    let msg = read_idx_images(&p).unwrap_err().to_string();
    assert!(msg.contains("bad.gz"), "{msg}");

    let err = read_idx_images(&dir.path().join("absent.gz")).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.gz: not found"), "{err}");
}

#[test]
fn huge_header_dimensions_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [u32::MAX, u32::MAX, u32::MAX] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let p = write(dir.path(), "huge", &b);
    let msg = read_idx_images(&p).unwrap_err().to_string();
    assert!(msg.contains("huge"), "{msg}");
}
