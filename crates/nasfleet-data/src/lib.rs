//! Datasets for nasfleet, as plain Rust data.
//!
//! This crate finds, fetches, verifies and parses the datasets the project trains child
//! networks on, and hands them over as bytes and token ids: images as a `Vec<u8>` in
//! N×C×H×W order with a `Vec<u8>` of labels ([`ImageSet`]), text as `Vec<u32>` token ids
//! with a [`Vocab`]. Turning those into tensors is the torch crate's job; this crate
//! depends on neither tch, tokio nor redis, so it builds and tests anywhere in seconds.
//!
//! # Layout
//!
//! * [`idx`] — IDX files (MNIST, Fashion-MNIST), gzip'd or raw.
//! * [`cifar`] — the CIFAR-10 binary batches.
//! * [`images`] — [`ImageSet`], the shape-checked container both produce.
//! * [`split`] — the seeded train/validation split (the paper's 45,000/5,000).
//! * [`fashion`] — [`fetch_fashion_mnist`]: find the files, or get them from Debian or the
//!   dataset's site, verify them (60,000/10,000 images, 6,000/1,000 per class), load them.
//! * [`text`] — Penn-Treebank-format corpora, word and character level.
//! * [`rdata`] — a minimal reader of R's XDR serialization and lazy-load data bases.
//! * [`austen`] — [`fetch_austen`]: Jane Austen's novels from Debian's
//!   `r-cran-janeaustenr`, prepared into PTB-format files.
//! * [`debian`] — `apt-get install` / `apt-get download` + `dpkg -x`.
//!
//! # Why these datasets
//!
//! The machines this project runs on reach package registries and nothing else. CIFAR-10
//! and the Penn Treebank are in no registry, so their loaders are real but are exercised on
//! small fixtures (20 genuine CIFAR-10 test images, a hand-written PTB snippet); the demo
//! and measurements use Fashion-MNIST and Jane Austen, which Debian ships in full. Results
//! must name the dataset they were measured on.
//!
//! # Errors
//!
//! Every fallible function returns [`DataError`]; messages name the file and say what was
//! expected and what was found. Malformed input never panics: lengths read from files are
//! checked before they are trusted, and recursion over R data is bounded.

pub mod austen;
pub mod cifar;
pub mod debian;
mod error;
pub mod fashion;
mod fsutil;
pub mod idx;
pub mod images;
pub mod rdata;
pub mod split;
pub mod text;

pub use austen::{fetch_austen, fetch_austen_with, AustenOptions, AustenReport, PrepareConfig};
pub use cifar::{load_cifar10, load_cifar10_batch, Cifar10};
pub use error::{DataError, Result};
pub use fashion::{
    fetch_fashion_mnist, fetch_fashion_mnist_with, load_fashion_mnist, verify_fashion_mnist,
    FashionMnist, FetchOptions, FetchReport, FetchSource,
};
pub use fsutil::default_cache_dir;
pub use idx::{load_idx_pair, read_idx_images, read_idx_labels};
pub use images::ImageSet;
pub use split::{split_indices, split_set, Split, SplitConfig};
pub use text::{
    load_char_corpus, load_ptb, load_ptb_char, load_word_corpus, CharFormat, Corpus, CorpusFiles,
    Vocab,
};
