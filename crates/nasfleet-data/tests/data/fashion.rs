//! Fashion-MNIST: verification, every fetch route except `apt-get install` (which would
//! change the machine), and the real dataset through `apt-get download` + `dpkg -x`.

use std::io::Write;
use std::path::{Path, PathBuf};

use nasfleet_data::fashion::FILES;
use nasfleet_data::{
    fetch_fashion_mnist_with, load_fashion_mnist, verify_fashion_mnist, DataError, FetchOptions,
    FetchSource,
};

fn gzip_to(path: &Path, bytes: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

/// Writes a synthetic dataset with the real one's shape: `train`/`test` 28×28 images
/// whose labels cycle through the ten classes.
fn synthetic(dir: &Path, train: u32, test: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (k, n) in [(0, train), (2, test)] {
        let mut images = 0x803u32.to_be_bytes().to_vec();
        for d in [n, 28, 28] {
            images.extend_from_slice(&d.to_be_bytes());
        }
        images.extend((0..n as usize * 784).map(|i| (i / 784 % 256) as u8));
        gzip_to(&dir.join(FILES[k]), &images);
        let mut labels = 0x801u32.to_be_bytes().to_vec();
        labels.extend_from_slice(&n.to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        gzip_to(&dir.join(FILES[k + 1]), &labels);
    }
}

fn only(system_dir: PathBuf) -> FetchOptions {
    FetchOptions {
        system_dir,
        apt_install: false,
        apt_download: false,
        http: false,
        ..FetchOptions::default()
    }
}

#[test]
fn verification_names_the_wrong_count() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 20, 10);
    assert_eq!(load_fashion_mnist(dir.path()).unwrap().train.len(), 20);
    let err = verify_fashion_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Verification { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("train set has 20 images, expected 60000"),
        "{err}"
    );
}

#[test]
fn system_copy_then_idempotent_then_repaired() {
    let system = tempfile::tempdir().unwrap();
    synthetic(system.path(), 60_000, 10_000);
    let dest = tempfile::tempdir().unwrap();
    let dest = dest.path().join("fm");
    let options = only(system.path().to_path_buf());

    let report = fetch_fashion_mnist_with(&dest, &options).unwrap();
    assert_eq!(
        report.source,
        FetchSource::SystemDir(system.path().to_path_buf())
    );
    assert_eq!((report.train_images, report.test_images), (60_000, 10_000));
    assert_eq!(report.files, FILES.map(|f| dest.join(f)).to_vec());

    let again = fetch_fashion_mnist_with(&dest, &options).unwrap();
    assert_eq!(again.source, FetchSource::AlreadyPresent);

    // A damaged copy in the destination is replaced from the next source.
    std::fs::write(dest.join(FILES[3]), b"garbage").unwrap();
    let repaired = fetch_fashion_mnist_with(&dest, &options).unwrap();
    assert!(matches!(repaired.source, FetchSource::SystemDir(_)));
    assert!(verify_fashion_mnist(&dest).is_ok());
}

#[test]
fn all_sources_failing_lists_every_attempt() {
    let system = tempfile::tempdir().unwrap();
    synthetic(system.path(), 30, 10); // present but fails verification
    let dest = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, so the request fails at once, offline.
    let options = FetchOptions {
        http: true,
        base_url: "http://127.0.0.1:1/".into(),
        ..only(system.path().to_path_buf())
    };
    let err = fetch_fashion_mnist_with(dest.path(), &options).unwrap_err();
    let DataError::Fetch { attempts, .. } = &err else {
        panic!("expected Fetch, got {err:?}")
    };
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(
        attempts[0].contains("train set has 30 images, expected 60000"),
        "{err}"
    );
    assert!(
        attempts[1].contains("GET http://127.0.0.1:1/train-images-idx3-ubyte.gz"),
        "{err}"
    );
    assert!(attempts[1].contains("network request failed"), "{err}");
}

#[test]
fn real_dataset_through_apt_download() {
    let dest = tempfile::tempdir().unwrap();
    let options = FetchOptions {
        apt_download: true,
        ..only(PathBuf::from("/nonexistent/fashion-mnist"))
    };
    let report = fetch_fashion_mnist_with(dest.path(), &options).unwrap();
    let FetchSource::AptDownload(deb) = &report.source else {
        panic!("expected AptDownload, got {:?}", report.source)
    };
    assert!(deb.starts_with("dataset-fashion-mnist_"), "{deb}");

    let data = verify_fashion_mnist(dest.path()).unwrap();
    assert_eq!(
        &data.test.labels()[..20],
        &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0]
    );
    assert_eq!(&data.train.labels()[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    // Test image 0 as decoded from foolbox 3.3.4's fashionMNIST_00_9.png, an independent
    // copy of the same image: row 14, columns 10..16, and the sum of all its pixels.
    let img = data.test.image(0).unwrap();
    assert_eq!(&img[14 * 28 + 10..14 * 28 + 16], &[0, 0, 98, 136, 110, 109]);
    assert_eq!(img.iter().map(|&p| u64::from(p)).sum::<u64>(), 33_456);
    assert_eq!(data.test.pixel(3, 0, 5, 14), Some(226));

    let again = fetch_fashion_mnist_with(dest.path(), &options).unwrap();
    assert_eq!(again.source, FetchSource::AlreadyPresent);
}
