//! # nasfleet (the binary)
//!
//! A thin layer that parses the command line ([`cli`]) and wires the library
//! crates together; no search logic lives here. Errors are `anyhow` with
//! context and go to stderr with a non-zero exit; results go to stdout.

mod bench_cmd;
mod cli;
mod dashboard_cmd;
mod data_cmd;
mod export_cmd;
mod fleet_cmd;
mod space_cmd;
mod train_cmd;
mod choose;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose);
    let result = match args.command {
        cli::Command::Space(cmd) => space_cmd::run(cmd),
        cli::Command::Local(args) => fleet_cmd::local(args),
        cli::Command::Worker(args) => fleet_cmd::worker(args),
        cli::Command::Controller(cmd) => fleet_cmd::controller(cmd),
        cli::Command::Bench(cmd) => bench_cmd::run(cmd),
        cli::Command::Data(cmd) => data_cmd::run(cmd),
        cli::Command::Train(args) => train_cmd::run(args),
        cli::Command::Export(args) => export_cmd::run(args),
        cli::Command::Dashboard(args) => dashboard_cmd::dashboard(args),
        cli::Command::Report(args) => dashboard_cmd::report(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `-v` raises the level, `RUST_LOG` overrides it.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,nasfleet=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
