//! Fashion-MNIST: finding or fetching the four files, verifying them, loading them.
//!
//! The demo dataset of the project, because it is the one real image set a Debian package
//! ships in full (`dataset-fashion-mnist`). [`fetch_fashion_mnist`] tries, in order: the
//! destination itself (so a second call costs one verification), the package's install
//! directory, `apt-get install` (root), `apt-get download` + `dpkg -x` (anyone), and the
//! dataset's public HTTP mirror. Whatever the source, the files are copied into the
//! destination and verified there, so the caller always gets one self-contained directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::debian;
use crate::error::{DataError, Result};
use crate::fsutil::write_atomically;
use crate::idx::load_idx_pair;
use crate::images::ImageSet;

/// The four gzip'd IDX files, as the dataset and the Debian package name them.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
/// Where `dataset-fashion-mnist` installs them.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The Debian package.
pub const DEBIAN_PACKAGE: &str = "dataset-fashion-mnist";
/// The dataset's public download site (plain HTTP; see [`FetchOptions::base_url`]).
pub const DEFAULT_BASE_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
/// Training images, and per class.
pub const TRAIN_COUNT: usize = 60_000;
/// Test images, and per class.
pub const TEST_COUNT: usize = 10_000;
/// The ten classes, indexed by label.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The full dataset: 60,000 training and 10,000 test images, 1×28×28.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FashionMnist {
    /// The 60,000 training images with their labels.
    pub train: ImageSet,
    /// The 10,000 test images with their labels.
    pub test: ImageSet,
}

/// Loads the four files from `dir` (no checks beyond the format; see
/// [`verify_fashion_mnist`]).
pub fn load_fashion_mnist(dir: &Path) -> Result<FashionMnist> {
    Ok(FashionMnist {
        train: load_idx_pair(&dir.join(FILES[0]), &dir.join(FILES[1]), CLASSES.len())?,
        test: load_idx_pair(&dir.join(FILES[2]), &dir.join(FILES[3]), CLASSES.len())?,
    })
}

/// Loads the files from `dir` and checks what is known of the real dataset: 28×28 images,
/// 60,000 / 10,000 of them, exactly 6,000 / 1,000 per class.
pub fn verify_fashion_mnist(dir: &Path) -> Result<FashionMnist> {
    let data = load_fashion_mnist(dir)?;
    for (part, set, count) in [
        ("train", &data.train, TRAIN_COUNT),
        ("test", &data.test, TEST_COUNT),
    ] {
        let fail = |detail: String| DataError::Verification {
            dataset: "Fashion-MNIST".into(),
            dir: dir.to_path_buf(),
            detail,
        };
        if set.shape() != [1, 28, 28] {
            return Err(fail(format!(
                "{part} images are {:?}, expected 1×28×28",
                set.shape()
            )));
        }
        if set.len() != count {
            return Err(fail(format!(
                "{part} set has {} images, expected {count}",
                set.len()
            )));
        }
        let per_class = count / CLASSES.len();
        let counts = set.class_counts();
        if counts.iter().any(|&c| c != per_class) {
            return Err(fail(format!(
                "{part} class counts are {counts:?}, expected {per_class} each"
            )));
        }
    }
    Ok(data)
}

/// Where the files came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "from")]
pub enum FetchSource {
    /// They were already in the destination and verified.
    AlreadyPresent,
    /// Copied from an installed `dataset-fashion-mnist`.
    SystemDir(PathBuf),
    /// `apt-get install -y dataset-fashion-mnist`, then copied.
    AptInstall,
    /// `apt-get download` + `dpkg -x` of this `.deb`, then copied.
    AptDownload(String),
    /// Downloaded from this base URL.
    Http(String),
}

/// What [`fetch_fashion_mnist`] did and what is now in the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchReport {
    /// The destination directory holding the four files.
    pub dir: PathBuf,
    /// The four files, in [`FILES`] order.
    pub files: Vec<PathBuf>,
    /// Where the files came from this time.
    pub source: FetchSource,
    /// Images in the verified training file (60,000).
    pub train_images: usize,
    /// Images in the verified test file (10,000).
    pub test_images: usize,
}

/// Which sources [`fetch_fashion_mnist_with`] may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// An installed copy to take the files from (default [`SYSTEM_DIR`]).
    pub system_dir: PathBuf,
    /// Run `apt-get install -y dataset-fashion-mnist` when root.
    pub apt_install: bool,
    /// Run `apt-get download` + `dpkg -x` into a temp dir.
    pub apt_download: bool,
    /// Download from `base_url` (a directory URL ending in `/`). Plain HTTP only: the
    /// crate is built without a TLS stack to keep it light.
    pub http: bool,
    /// The directory URL the HTTP fallback downloads from, ending in `/`.
    pub base_url: String,
    /// Per-request timeout of the HTTP fallback.
    pub http_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            system_dir: PathBuf::from(SYSTEM_DIR),
            apt_install: true,
            apt_download: true,
            http: true,
            base_url: DEFAULT_BASE_URL.into(),
            http_timeout: Duration::from_secs(60),
        }
    }
}

/// Makes sure `dest` holds a verified copy of Fashion-MNIST, fetching it if needed, with
/// every source allowed. Idempotent: when `dest` already verifies nothing is fetched.
pub fn fetch_fashion_mnist(dest: &Path) -> Result<FetchReport> {
    fetch_fashion_mnist_with(dest, &FetchOptions::default())
}

/// [`fetch_fashion_mnist`] with a choice of sources.
pub fn fetch_fashion_mnist_with(dest: &Path, options: &FetchOptions) -> Result<FetchReport> {
    let mut attempts = Vec::new();

    if FILES.iter().all(|f| dest.join(f).is_file()) {
        match verify_fashion_mnist(dest) {
            Ok(data) => return Ok(make_report(dest, FetchSource::AlreadyPresent, &data)),
            // Bad files are replaced from the next source that works.
            Err(e) => attempts.push(format!("the files already in the destination: {e}")),
        }
    }

    let system = &options.system_dir;
    if FILES.iter().all(|f| system.join(f).is_file()) {
        let outcome = copy_files(system, dest).map(|()| FetchSource::SystemDir(system.clone()));
        if let Some(r) = settle(
            dest,
            &mut attempts,
            format!("copy from {}", system.display()),
            outcome,
        ) {
            return Ok(r);
        }
    } else {
        attempts.push(format!(
            "no installed copy: {} does not hold the four files",
            system.display()
        ));
    }

    if options.apt_install {
        let outcome = if debian::is_root() {
            debian::apt_install(DEBIAN_PACKAGE)
                .and_then(|()| copy_files(Path::new(SYSTEM_DIR), dest))
                .map(|()| FetchSource::AptInstall)
        } else {
            Err("skipped: not running as root".into())
        };
        if let Some(r) = settle(
            dest,
            &mut attempts,
            format!("apt-get install {DEBIAN_PACKAGE}"),
            outcome,
        ) {
            return Ok(r);
        }
    }

    if options.apt_download {
        let outcome = (|| {
            // The temp dir lives until the files are copied out of it.
            let tmp =
                tempfile::tempdir().map_err(|e| format!("could not create a temp dir: {e}"))?;
            let deb = debian::download_and_extract(DEBIAN_PACKAGE, tmp.path())?;
            copy_files(&tmp.path().join(SYSTEM_DIR.trim_start_matches('/')), dest)?;
            Ok(FetchSource::AptDownload(deb))
        })();
        let label = format!("apt-get download {DEBIAN_PACKAGE} + dpkg -x");
        if let Some(r) = settle(dest, &mut attempts, label, outcome) {
            return Ok(r);
        }
    }

    if options.http {
        let base = &options.base_url;
        let outcome = download_files(base, dest, options.http_timeout)
            .map(|()| FetchSource::Http(base.clone()));
        if let Some(r) = settle(
            dest,
            &mut attempts,
            format!("download from {base}"),
            outcome,
        ) {
            return Ok(r);
        }
    }

    Err(DataError::Fetch {
        dataset: format!("Fashion-MNIST into {}", dest.display()),
        attempts,
    })
}

fn make_report(dest: &Path, source: FetchSource, data: &FashionMnist) -> FetchReport {
    FetchReport {
        dir: dest.to_path_buf(),
        files: FILES.iter().map(|f| dest.join(f)).collect(),
        source,
        train_images: data.train.len(),
        test_images: data.test.len(),
    }
}

/// Concludes one fetch attempt. A source either filled `dest` or explains why it could
/// not; `dest` is verified after every one, so a bad source cannot pass off unverified
/// files as success. Failures are recorded under `label` for the final error.
fn settle(
    dest: &Path,
    attempts: &mut Vec<String>,
    label: String,
    outcome: std::result::Result<FetchSource, String>,
) -> Option<FetchReport> {
    let verified = outcome.and_then(|source| {
        verify_fashion_mnist(dest)
            .map(|data| make_report(dest, source, &data))
            .map_err(|e| e.to_string())
    });
    match verified {
        Ok(r) => Some(r),
        Err(e) => {
            attempts.push(format!("{label}: {e}"));
            None
        }
    }
}

/// Copies the four files from `src` into `dest`, each through a temporary name and a
/// rename, so an interrupted copy never leaves a half file under the real name.
fn copy_files(src: &Path, dest: &Path) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for f in FILES {
        let from = src.join(f);
        let bytes = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        write_atomically(&dest.join(f), &bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Downloads the four files from `base` into `dest`.
fn download_files(base: &str, dest: &Path, timeout: Duration) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(Duration::from_secs(15)))
        .timeout(timeout)
        .build();
    for f in FILES {
        let url = format!("{base}{f}");
        let response = agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: the network request failed: {e}"))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
            .map_err(|e| format!("GET {url}: the network failed mid-download: {e}"))?;
        write_atomically(&dest.join(f), &bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}
