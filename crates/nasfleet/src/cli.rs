//! Command-line definitions (clap derive), kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nasfleet_core::SpaceKind;

#[derive(Parser, Debug)]
#[command(
    name = "nasfleet",
    version,
    about = "Neural Architecture Search with reinforcement learning (Zoph & Le, 2017) on a fleet of workers",
    long_about = "nasfleet samples child architectures with an LSTM controller, trains them on workers \
                  (in process, or on many machines through Redis) and improves the controller with \
                  REINFORCE.\n\nStart with `nasfleet space describe cnn` to see what is searched."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Inspect search spaces and architecture files.
    #[command(subcommand)]
    Space(SpaceCommand),
}

/// Settings that shape a space; override the config file (or the paper's defaults).
#[derive(Args, Debug, Clone, Default)]
pub struct SpaceSettings {
    /// Experiment config (TOML) whose [cnn] / [rnn_cell] settings to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// CNN: number of layers (default: the depth schedule's start, 6).
    #[arg(long)]
    pub layers: Option<usize>,
    /// rnn-cell: number of leaves, a power of two (default 8).
    #[arg(long)]
    pub base: Option<usize>,
    /// CNN: also predict strides (the paper's v2 space).
    #[arg(long)]
    pub strides: bool,
    /// rnn-cell: add `max` and `sin` (the paper's control experiment 1).
    #[arg(long)]
    pub extended: bool,
}

#[derive(Subcommand, Debug)]
pub enum SpaceCommand {
    /// Print the token schema (every decision step and its choices) and the space's size.
    #[command(after_help = "Examples:\n  nasfleet space describe cnn --layers 15\n  nasfleet space describe rnn-cell --base 8\n  nasfleet space describe nb201")]
    Describe {
        /// cnn, rnn-cell or nb201
        space: SpaceKind,
        #[command(flatten)]
        settings: SpaceSettings,
        /// Print the schema as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a uniformly random valid architecture as JSON (deterministic per seed).
    #[command(after_help = "Example:\n  nasfleet space sample cnn --seed 7 --layers 12 > arch.json\n  nasfleet space check arch.json")]
    Sample {
        space: SpaceKind,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        settings: SpaceSettings,
    },
    /// Validate an architecture JSON file; print a one-line summary or a precise error.
    Check {
        file: PathBuf,
        /// Also check that every value is one the configured space can emit.
        #[arg(long)]
        config: Option<PathBuf>,
        /// CNN input shape as C,H,W for the parameter and FLOP counts.
        #[arg(long, default_value = "3,32,32")]
        input: String,
        /// CNN classifier outputs.
        #[arg(long, default_value_t = 10)]
        classes: usize,
    },
}
