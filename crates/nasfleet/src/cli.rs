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
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Benchmarks: search efficiency on a NAS-Bench-201 table.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspect search spaces and architecture files.
    #[command(subcommand)]
    Space(SpaceCommand),
    /// A whole search on this machine: the controller and N workers in one
    /// process, over an in-memory queue.
    #[command(after_help = "Example:\n  nasfleet local --config config/cifar10.toml --workers 2\n\n\
                            The run directory (default runs/<run>) gets the resolved config, the controller \
                            checkpoint, history.jsonl and best.json; stop with Ctrl-C and continue with \
                            --resume --run <run>.")]
    Local(LocalArgs),
    /// A fleet worker: takes jobs from a Redis queue and trains them.
    #[command(after_help = "Example:\n  nasfleet worker --redis redis://worker:PASSWORD@queue-host:6379/ --run cifar10 --device cuda:0\n\n\
                            A job carries everything needed to train it, and the run carries its fleet \
                            settings (lease, heartbeat, limits: published by its controller from the config's \
                            [fleet] section), so a worker needs only the queue's address, the run, its device \
                            and local data paths; it waits for the controller if started first. Settings: \
                            flags override NASFLEET_* environment variables override the run's override the \
                            defaults; run-wide ones (lease, heartbeat, deliveries) may not disagree with the \
                            run. SIGTERM/SIGINT: the trainer checkpoints, the job goes back to the queue (no \
                            attempt spent) and the worker exits.")]
    Worker(WorkerArgs),
    /// The controller of a fleet search on Redis.
    #[command(subcommand)]
    Controller(ControllerCommand),
    /// Fetch and prepare the real datasets available on this machine.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train one architecture end to end (the paper's final training of the best child).
    Train(TrainArgs),
    /// Export an architecture, and its trained weights, as plain PyTorch, TorchScript, a picture or JSON.
    Export(ExportArgs),
    /// Serve web pages of a run (or of every run in a directory), live while it runs.
    #[command(after_help = "Examples:\n  nasfleet dashboard --run <run>                      # runs/<run>, http://127.0.0.1:8080/\n  \
                            nasfleet dashboard                                  # every run under runs/\n  \
                            nasfleet dashboard --run cifar10 --redis redis://viewer:PASSWORD@queue-host:6379/\n\n\
                            Views: runs, overview, best so far, learning curves, children (sortable, filterable), \
                            each child (its architecture drawn, JSON, metrics), controller (reward and baseline, \
                            entropy, choice heat map), fleet (workers, in flight, dead letters: with --redis). \
                            Embedded runs need only their run directory; --redis adds the live queue and workers of \
                            a fleet run. The dashboard only reads the run directory. It has no authentication: it \
                            listens on 127.0.0.1 unless --listen says otherwise.")]
    Dashboard(DashboardArgs),
    /// Write a run's dashboard as one self-contained HTML file plus PNGs of the main plots.
    #[command(after_help = "Example:\n  nasfleet report --run <run> --out report/   # report/<run>.html, report/<run>-best.png, ...")]
    Report(ReportArgs),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct DashboardArgs {
    /// The run to show (runs-dir/RUN); without it, every run in --runs-dir.
    #[arg(long, env = "NASFLEET_RUN")]
    pub run: Option<String>,
    /// The directory holding the run directories.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// A run directory elsewhere (instead of --runs-dir/--run).
    #[arg(long, conflicts_with = "runs_dir")]
    pub run_dir: Option<PathBuf>,
    /// The fleet's Redis, for the live queue and workers: `redis://[user:password@]host:port/` (a `viewer` user is enough).
    #[arg(long, env = "NASFLEET_REDIS")]
    pub redis: Option<String>,
    /// CA certificate to trust for rediss://.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Address to listen on; anything but loopback exposes the run to the network without authentication.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ReportArgs {
    /// The run (runs-dir/RUN).
    #[arg(long, env = "NASFLEET_RUN", required_unless_present = "run_dir")]
    pub run: Option<String>,
    /// The directory holding the run directories.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// A run directory elsewhere (instead of --runs-dir/--run).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Where to write the HTML file and the PNGs.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DataCommand {
    /// Get a dataset, verify it, and report where it is (idempotent).
    #[command(after_help = "Datasets:\n  fashion-mnist  60k/10k 28x28 grey images (Debian dataset-fashion-mnist, else the public URL)\n  austen         Jane Austen's six novels as PTB-style word and character files (Debian r-cran-janeaustenr)\n\nExample:\n  nasfleet data fetch fashion-mnist --dir ~/.cache/nasfleet/fashion-mnist")]
    Fetch {
        /// fashion-mnist or austen
        dataset: String,
        /// Where to put it (default: the cache dir, ~/.cache/nasfleet/<dataset>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Settings that shape a space; override the config file (or the paper's defaults).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SpaceSettings {
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
pub(crate) enum SpaceCommand {
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
    /// Draw an architecture JSON file as a picture (SVG, or Graphviz dot) on stdout.
    #[command(after_help = "Examples:\n  nasfleet space draw runs/<run>/best.json > arch.svg\n  \
                            nasfleet space draw arch.json --format dot | dot -Tpng > arch.png\n  \
                            nasfleet space draw arch.json --input 1,28,28 --classes 10 > arch.svg   # CNN: with output shapes\n\n\
                            CNN: layers as boxes (filter size, filters, strides) and every skip connection as an edge; \
                            recurrent cell: the tree of combinations and activations with the cell inject; NB201: the \
                            4-node cell with its 6 edge operations.")]
    Draw {
        /// Architecture JSON (as written by `space sample`, or a run's best.json).
        file: PathBuf,
        /// svg or dot.
        #[arg(long, default_value = "svg")]
        format: DrawFormat,
        /// CNN input shape as C,H,W: adds each layer's output shape.
        #[arg(long)]
        input: Option<String>,
        /// CNN classifier outputs (with --input).
        #[arg(long, default_value_t = 10)]
        classes: usize,
    },
}

/// What `space draw` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DrawFormat {
    /// A self-contained SVG picture.
    Svg,
    /// Graphviz dot text.
    Dot,
}

#[derive(Subcommand, Debug)]
pub(crate) enum BenchCommand {
    /// Search efficiency on a NAS-Bench-201 table: best accuracy found after 50, 100, 200, 500
    /// and 1,000 samples by each strategy over many seeds (mean ± sample std, percentile rank
    /// within the table, comparison with random search); writes JSON, text and a PNG plot.
    #[command(after_help = "The strategies run through the same propose → table trainer → update loop as a \
                            real search, with the settings of config/nb201.toml unless --config is given.\n\n\
                            Examples:\n  nasfleet bench search --budget 1000 --seeds 20\n  \
                            nasfleet bench search --table my.csv --objective accuracy --strategies rl,random --out runs/b1")]
    Search(BenchSearchArgs),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct BenchSearchArgs {
    /// The table: the AnalogNAS-Bench pickle (data.anb) or a CSV (arch,<column>...).
    /// Default: the pickle, fetched with pip into the cache on first use.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// The column to search (default: baseline_accuracy, or a CSV's only column).
    #[arg(long)]
    pub objective: Option<String>,
    /// Samples per run.
    #[arg(long, default_value_t = 1000)]
    pub budget: usize,
    /// Seeds per strategy (seeds first-seed .. first-seed + N).
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Comma-separated: rl (REINFORCE), rl-ppo (the same controller with
    /// PPO updates), random, evolution, local.
    #[arg(long, default_value = "rl,random,evolution")]
    pub strategies: String,
    /// Where to write search.json, search.txt, search.png and config.toml.
    #[arg(long, default_value = "nasfleet-bench/search")]
    pub out: PathBuf,
    /// Experiment config (search.space = "nb201"); default: the built-in config/nb201.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override search.batch (m, rewards per update; every strategy gets the same).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Override controller.lr.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Override controller.baseline_decay.
    #[arg(long)]
    pub baseline_decay: Option<f64>,
    /// Override controller.entropy_weight.
    #[arg(long)]
    pub entropy_weight: Option<f64>,
    /// Override the accuracy reward's power (reward = (accuracy / 100) ^ power).
    #[arg(long)]
    pub reward_power: Option<f64>,
    /// Multi-objective reward (MnasNet): multiply the accuracy reward by
    /// (cost / --cost-target) ^ w, the cost being `params` or `flops` of the
    /// cell in NB201's CIFAR-10 network. Sets the config's [reward.cost].
    #[arg(long, value_parser = ["params", "flops"], requires = "cost_target")]
    pub cost: Option<String>,
    /// The cost target T (parameters or FLOPs), with --cost.
    #[arg(long, requires = "cost")]
    pub cost_target: Option<f64>,
    /// soft (w = --cost-weight on both sides of T) or hard (w = 0 within T, −1 beyond).
    #[arg(long, value_parser = ["soft", "hard"], requires = "cost")]
    pub cost_mode: Option<String>,
    /// The soft rule's exponent w (≤ 0; default −0.07, MnasNet's).
    #[arg(long, requires = "cost", allow_hyphen_values = true)]
    pub cost_weight: Option<f64>,
    /// Override controller.ppo_epochs (the rl-ppo strategy).
    #[arg(long)]
    pub ppo_epochs: Option<usize>,
    /// Override controller.ppo_clip (the rl-ppo strategy).
    #[arg(long)]
    pub ppo_clip: Option<f64>,
}

/// Where the queue is: a Redis URL and, for `rediss://`, certificates.
#[derive(Args, Debug, Clone)]
pub(crate) struct RedisArgs {
    /// `redis://[user:password@]host:port/` or `rediss://...` (TLS).
    #[arg(long, env = "NASFLEET_REDIS")]
    pub redis: String,
    /// The run (namespaces every key: nasfleet:{RUN}:...).
    #[arg(long, env = "NASFLEET_RUN", default_value = "default")]
    pub run: String,
    /// CA certificate to trust for rediss:// (instead of the system roots).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, for servers that require one (with --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (with --tls-cert).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// auto (CUDA 0 when available, else CPU), cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Exit 0 after handling this many children (jobs).
    #[arg(long, alias = "max-jobs", env = "NASFLEET_MAX_CHILDREN")]
    pub max_children: Option<u64>,
    /// Watch the cloud's instance metadata for a spot/preemption notice
    /// and, on one, do what SIGTERM does (checkpoint, give the job back
    /// without spending an attempt, exit 0): `aws` (EC2 spot
    /// instance-action, IMDSv2), `gcp` (instance/preempted) or an
    /// `http://` URL that answers 200 on a notice and 404 otherwise.
    #[arg(long, env = "NASFLEET_PREEMPTION_NOTICE", value_parser = clap::value_parser!(nasfleet_fleet::NoticeSource))]
    pub preemption_notice: Option<nasfleet_fleet::NoticeSource>,
    /// How often to poll for a preemption notice (AWS warns 2 minutes
    /// ahead, GCP 30 seconds).
    #[arg(long, env = "NASFLEET_NOTICE_POLL", default_value = "5s", value_parser = nasfleet_fleet::parse_duration)]
    pub notice_poll: std::time::Duration,
    /// Where the `aws` / `gcp` metadata service is, when not at its usual
    /// address (a proxy, a test double).
    #[arg(long, env = "NASFLEET_METADATA_BASE")]
    pub metadata_base: Option<String>,
    /// Exit 0 after waiting this long without a job (e.g. 10m): an empty
    /// queue on a machine you pay for. Default: wait until the run is over.
    #[arg(long, env = "NASFLEET_IDLE_EXIT", value_parser = nasfleet_fleet::parse_duration)]
    pub idle_exit: Option<std::time::Duration>,
    /// Where datasets are (default: the cache, ~/.cache/nasfleet).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Per-job checkpoints (<DIR>/<run>/<job>); on storage shared by workers a
    /// preempted job resumes on any machine. Default: ~/.cache/nasfleet/work.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Run-wide: a job whose worker has not heartbeaten for this long goes to
    /// another worker. Default: the run's ([fleet] lease_ms of the
    /// controller's config, published in the queue); a value that disagrees
    /// with it is refused.
    #[arg(long, env = "NASFLEET_LEASE", value_parser = nasfleet_fleet::parse_duration)]
    pub lease: Option<std::time::Duration>,
    /// Run-wide: heartbeat period while training. Default: the run's.
    #[arg(long, env = "NASFLEET_HEARTBEAT", value_parser = nasfleet_fleet::parse_duration)]
    pub heartbeat: Option<std::time::Duration>,
    /// Run-wide: deliveries before a job that keeps crashing workers is
    /// dead-lettered. Default: the run's.
    #[arg(long, env = "NASFLEET_MAX_DELIVERIES")]
    pub max_deliveries: Option<u32>,
    /// After SIGTERM, how long to wait for the trainer's checkpoint before
    /// giving the job back anyway. Default: the run's (25s unless its config says).
    #[arg(long, env = "NASFLEET_STOP_GRACE", value_parser = nasfleet_fleet::parse_duration)]
    pub stop_grace: Option<std::time::Duration>,
    /// How long one queue call keeps retrying while Redis is unreachable.
    /// Default: the run's (2m unless its config says).
    #[arg(long, env = "NASFLEET_RETRY_FOR", value_parser = nasfleet_fleet::parse_duration)]
    pub retry_for: Option<std::time::Duration>,
    /// Largest job payload accepted (checked before parsing). Default: the run's.
    #[arg(long, env = "NASFLEET_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// Refuse CNN children with more trainable parameters (0: no cap).
    /// Default: the run's (1e9 unless its config says).
    #[arg(long, env = "NASFLEET_MAX_PARAMS")]
    pub max_params: Option<u64>,
    /// Refuse CNN children with more forward FLOPs per image (0: no cap).
    /// Default: the run's (1e12 unless its config says).
    #[arg(long, env = "NASFLEET_MAX_FLOPS")]
    pub max_flops: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ControllerCommand {
    /// Run the controller: keep jobs in flight, apply rewards, checkpoint.
    #[command(after_help = "Example:\n  nasfleet controller start --config config/cifar10.toml --redis redis://controller:PASSWORD@queue-host:6379/ --run cifar10\n\n\
                            Stop it with Ctrl-C (or lose the machine) and continue with --resume: nothing is \
                            lost or counted twice.")]
    Start(ControllerStartArgs),
    /// A run's state: queue depth, jobs in flight, live workers, dead letters, best so far, pace and ETA.
    #[command(after_help = "Example:\n  nasfleet controller status --redis redis://viewer:PASSWORD@queue-host:6379/ --run cifar10")]
    Status(ControllerStatusArgs),
    /// Stop a run: its controller stops issuing jobs and checkpoints, workers finish the child in hand and exit 0.
    #[command(after_help = "Example:\n  nasfleet controller stop --redis redis://controller:PASSWORD@queue-host:6379/ --run cifar10\n\n\
                            The run's lifecycle in the queue becomes `stopping`; the controller (wherever it runs) \
                            sees it within a step, checkpoints, marks the run `stopped` and exits. Children already \
                            being trained are finished and their results wait in the queue; workers then exit 0, so \
                            autoscalers release their machines. Continue with `nasfleet controller start --resume` \
                            (exactly as if the run had never stopped) and start workers again.")]
    Stop(ControllerStopArgs),
    /// Put dead-lettered children back in the queue after a fix (all of them, those of one --reason, or the JOBs named).
    #[command(after_help = "Examples:\n  nasfleet controller requeue --redis redis://controller:PASSWORD@queue-host:6379/ --run cifar10\n  \
                            nasfleet controller requeue --redis ... --run cifar10 --reason trainer_error\n  \
                            nasfleet controller requeue --redis ... --run cifar10 cifar10-000042 cifar10-000057\n\n\
                            `controller status` lists the dead letters with their reasons. Each requeued child \
                            leaves the dead letters and runs again with a fresh delivery count. The controller \
                            already applied it as a failure; its new result is applied once, as a late child: it \
                            counts for the best child, best.json and the totals, and is a `late: true` line in \
                            history.jsonl, but it does not enter the strategy's update (its batch was applied \
                            without it). If the run has finished or stopped, resume its controller \
                            (`nasfleet controller start --resume`) to collect the results: it waits for the \
                            requeued children before finishing.")]
    Requeue(ControllerRequeueArgs),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ControllerRequeueArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Only dead letters with this reason (e.g. trainer_error, max_deliveries, invalid_payload); ignored when JOBs are named.
    #[arg(long)]
    pub reason: Option<String>,
    /// Job ids to requeue (default: every dead letter of the run).
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ControllerStartArgs {
    /// Experiment config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Continue the run from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Run directory (default runs/<run>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ControllerStopArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// How long to wait for the controller to confirm (0: do not wait).
    #[arg(long, default_value = "2m", value_parser = nasfleet_fleet::parse_duration)]
    pub wait: std::time::Duration,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ControllerStatusArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Most jobs in flight and dead letters listed.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct LocalArgs {
    /// Experiment config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Workers (default: [fleet] workers of the config, 1).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Run id (default: the config file's stem and the start time).
    #[arg(long)]
    pub run: Option<String>,
    /// Run directory (default runs/<run>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue the run (give --run or --run-dir).
    #[arg(long)]
    pub resume: bool,
    /// auto, cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Where datasets are (default: the cache, ~/.cache/nasfleet).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Serve the run's dashboard while it runs (on ADDR, default 127.0.0.1:8080).
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub dashboard: Option<String>,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  nasfleet train --arch runs/<run>/best.json --config config/fashion-mnist-demo.toml --epochs 20 \\\n    --checkpoint-dir runs/<run>/final\n  nasfleet train --arch cell.json --config config/austen-char.toml   # bits per character\n\n\
    The [train] section of the config is the recipe. Progress is one line per epoch on stderr (and a bar on a \
    terminal); the report gives the validation accuracy and the accuracy on the dataset's untouched test set, \
    parameters and FLOPs (language-model cells: validation and test perplexity, bits per character). Ctrl-C \
    stops at the next step; with --checkpoint-dir the same command resumes after the last finished epoch.")]
pub(crate) struct TrainArgs {
    /// Architecture JSON (as written by `space sample`, or a run's best.json).
    #[arg(long)]
    pub arch: PathBuf,
    /// Experiment config whose [train] and [reward] sections to use.
    #[arg(long)]
    pub config: PathBuf,
    /// Override train.epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Where datasets are (default: the cache, ~/.cache/nasfleet).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// auto, cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Keep per-epoch checkpoints here; rerunning with the same directory resumes.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Seed of the training run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the final weights here (safetensors, named for `nasfleet export --format pytorch`).
    #[arg(long)]
    pub save_weights: Option<PathBuf>,
}

/// What `nasfleet export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    /// A readable Python file defining the child as an `nn.Module` (with
    /// --weights, also OUT's stem + .safetensors, loadable into it by name).
    Pytorch,
    /// A TorchScript file of the trained child (needs --weights).
    Torchscript,
    /// ONNX: not produced (see the README); refused with the reason.
    Onnx,
    /// The architecture as an SVG picture.
    Svg,
    /// The architecture as a Graphviz dot graph.
    Dot,
    /// The canonical architecture JSON.
    Json,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  nasfleet train --arch runs/<run>/best.json --config config/fashion-mnist-demo.toml --save-weights child.safetensors\n  \
    nasfleet export --arch runs/<run>/best.json --config config/fashion-mnist-demo.toml --format pytorch \\\n    --weights child.safetensors --out child.py   # writes child.py and child.safetensors\n\n\
    OUT is written through a temporary file and renamed, so a failed export leaves nothing half-written.")]
pub(crate) struct ExportArgs {
    /// Architecture JSON (as written by `space sample`, or a run's best.json).
    #[arg(long)]
    pub arch: PathBuf,
    /// Experiment config of the search space and recipe (input shape, classes, model sizes).
    #[arg(long)]
    pub config: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Trained weights, from `nasfleet train --save-weights`.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Where datasets are (default: the cache, ~/.cache/nasfleet).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}
