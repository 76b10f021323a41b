//! Integration tests of nasfleet-data, one binary, one module per loader:
//!
//! * `idx` — the IDX reader on files built here, raw and gzip'd.
//! * `cifar` — the CIFAR-10 loader on 20 genuine test images
//!   (`tests/fixtures/cifar10_test20.bin`).
//! * `fashion` — Fashion-MNIST: verification, the fetch routes, the real
//!   dataset through `apt-get download`.
//! * `ptb` — the Penn Treebank loaders on the hand-written fixture in
//!   `tests/fixtures/ptb/`.
//! * `rdata` — R's XDR serialization and lazy-load data bases.
//! * `austen` — Jane Austen from Debian's r-cran-janeaustenr, end to end.
//! * `split` — the seeded train/validation split.
//!
//! Every test works in its own temporary directory or reads fixtures and the
//! shared cache, so they run in parallel threads of one process.

mod austen;
mod cifar;
mod fashion;
mod idx;
mod ptb;
mod rdata;
mod split;
