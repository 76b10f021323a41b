//! The `nasfleet` binary's integration tests, one test binary: each module
//! runs the commands as a user would, or checks the workspace's invariants.

mod bench_search;
mod cli;
mod configs;
mod dashboard;
mod export;
mod deploy;
mod fleet;
mod invariants;
mod support;
mod train;
