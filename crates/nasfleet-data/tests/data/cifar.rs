//! The CIFAR-10 loader on 20 genuine test images, and its errors.

use std::path::{Path, PathBuf};

use nasfleet_data::cifar::{RECORD_BYTES, TEST_FILE, TRAIN_FILES};
use nasfleet_data::{load_cifar10, load_cifar10_batch, DataError};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cifar10_test20.bin")
}

#[test]
fn fixture_labels_and_pixels_match_the_pngs() {
    let set = load_cifar10_batch(&fixture()).unwrap();
    assert_eq!(set.len(), 20);
    assert_eq!(set.shape(), [3, 32, 32]);
    assert_eq!(
        set.labels(),
        &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    // Values printed by make_cifar_fixture.py from the decoded PNG rows (RGB interleaved),
    // so they check the planar conversion as well as the loader.
    let expected = [
        ((0, 0, 0, 0), 158),
        ((0, 1, 0, 0), 112),
        ((0, 2, 0, 0), 49),
        ((0, 0, 15, 16), 121),
        ((1, 1, 31, 31), 200),
        ((7, 2, 10, 3), 149),
        ((19, 0, 31, 0), 158),
        ((19, 2, 5, 27), 88),
    ];
    for ((i, c, r, x), v) in expected {
        assert_eq!(
            set.pixel(i, c, r, x),
            Some(v),
            "image {i} channel {c} ({r}, {x})"
        );
    }
    // N×C×H×W: the byte of (image 1, green, row 31, col 31) sits at this flat index.
    assert_eq!(set.pixels()[3072 + 1024 + 31 * 32 + 31], 200);
    assert_eq!(set.pixel(20, 0, 0, 0), None);
    assert_eq!(set.pixel(0, 3, 0, 0), None);
}

#[test]
fn truncated_file_says_how_much_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture()).unwrap();
    let path = dir.path().join("cut.bin");
    std::fs::write(&path, &bytes[..2 * RECORD_BYTES + 5]).unwrap();
    let err = load_cifar10_batch(&path).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cut.bin: truncated"), "{msg}");
    assert!(
        msg.contains("6151 bytes is not a whole number of 3073-byte records"),
        "{msg}"
    );
    assert!(msg.contains("2 records and then 5 bytes"), "{msg}");
}

#[test]
fn label_above_nine_is_rejected_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture()).unwrap();
    bytes[3 * RECORD_BYTES] = 10;
    let path = dir.path().join("bad.bin");
    std::fs::write(&path, &bytes).unwrap();
    let msg = load_cifar10_batch(&path).unwrap_err().to_string();
    assert!(
        msg.contains("bad.bin") && msg.contains("record 3") && msg.contains("label 10"),
        "{msg}"
    );
}

#[test]
fn empty_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        load_cifar10_batch(&path),
        Err(DataError::Empty { .. })
    ));
    let err = load_cifar10_batch(&dir.path().join("nope.bin")).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");

    // The directory loader lists every missing batch at once.
    std::fs::write(dir.path().join("data_batch_1.bin"), b"").unwrap();
    let msg = load_cifar10(dir.path()).unwrap_err().to_string();
    for f in ["data_batch_2.bin", "data_batch_5.bin", "test_batch.bin"] {
        assert!(msg.contains(f), "{msg}");
    }
    assert!(!msg.contains("data_batch_1.bin"), "{msg}");
}

/// Writes six official-size batches built by repeating the fixture; batch `k` starts with
/// the fixture image `k` so the concatenation order is visible.
fn write_full_dataset(dir: &Path, short: Option<&str>) {
    let fixture = std::fs::read(fixture()).unwrap();
    let records: Vec<&[u8]> = fixture.chunks_exact(RECORD_BYTES).collect();
    for (k, name) in TRAIN_FILES.iter().chain([&TEST_FILE]).enumerate() {
        let n = if Some(*name) == short { 9_999 } else { 10_000 };
        let mut bytes = Vec::with_capacity(n * RECORD_BYTES);
        for i in 0..n {
            bytes.extend_from_slice(records[(k + i) % records.len()]);
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn full_directory_concatenates_batches_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write_full_dataset(dir.path(), None);
    let data = load_cifar10(dir.path()).unwrap();
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    let fixture = load_cifar10_batch(&fixture()).unwrap();
    for k in 0..5 {
        assert_eq!(data.train.image(k * 10_000), fixture.image(k), "batch {k}");
        assert_eq!(data.train.labels()[k * 10_000], fixture.labels()[k]);
    }
    assert_eq!(data.test.image(0), fixture.image(5));
}

#[test]
fn short_official_batch_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_full_dataset(dir.path(), Some("data_batch_3.bin"));
    let err = load_cifar10(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("data_batch_3.bin: truncated"), "{msg}");
    assert!(msg.contains("found 9999 records"), "{msg}");
}
