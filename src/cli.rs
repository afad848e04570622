//! The command line (clap derive). Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run large batches of AI video generations: resumable, rate-limited, crash-safe.
///
/// A manifest (TOML campaign or CSV of jobs) is expanded into generation
/// requests, submitted under a rate limit and a cap on tasks in flight,
/// polled until done, and every video is streamed to disk. A state file
/// records every task id and download, so running the same command again
/// resumes without paying twice.
#[derive(Debug, Parser)]
#[command(name = "runner", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More detail on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors on stderr; no progress lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// `runner models`.
#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    /// One model (or alias) to show in full.
    pub name: Option<String>,
    /// Print the catalogue as the Markdown table of README.md.
    #[arg(long, conflicts_with = "name")]
    pub markdown: bool,
    /// Include this campaign's `[models."NAME"]` entries (the manifest must be valid).
    #[arg(long, value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `run --summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a campaign; run it again to resume.
    ///
    /// Examples:
    ///   runner run jobs/campaign.toml
    ///   runner run examples/quickstart.toml --simulate
    ///   runner run jobs.csv --rate 1 --max-in-flight 4
    ///   runner run jobs/campaign.toml --dry-run          # the plan; nothing sent
    ///   runner run jobs/campaign.toml --retry failed     # new attempts for failed jobs
    ///   runner run jobs/campaign.toml --only dolphins-9x16,fox
    ///   runner run jobs/campaign.toml --shard 2/4        # this machine's quarter
    ///   runner run jobs/campaign.toml --summary json | jq .counts
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Show what the state files say about the campaign, without calling the API.
    ///
    /// A summary (counts, in flight and never sent, cost, time since the start),
    /// then the jobs that need attention with their reason. Every shard's state
    /// file is read unless --shard narrows it.
    ///
    /// Examples:
    ///   runner status jobs/campaign.toml
    ///   runner status jobs/campaign.toml --all            # every job
    ///   runner status jobs/campaign.toml --shard 2/3      # one shard
    ///   runner status jobs/campaign.toml --json | jq '.counts'
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),
    /// Rewrite the CSV report from the state files, without calling the API.
    ///
    /// Every shard's state file is read unless --shard narrows it.
    ///
    /// Examples:
    ///   runner report jobs/campaign.toml
    ///   runner report jobs/campaign.toml --html    # also report.html: every video playable
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// Expand and validate the manifest, print each request and the plan, send nothing.
    ///
    /// The requests (`id<TAB>JSON`, one line per job) go to stdout; the plan,
    /// its cost and the notes go to stderr, so a pipe gets only requests.
    ///
    /// Examples:
    ///   runner validate jobs/campaign.toml
    ///   runner validate prompts.csv | cut -f1      # just the job ids
    #[command(verbatim_doc_comment)]
    Validate(ManifestArg),
    /// The model catalogue: what each model accepts (durations, sizes, images, fields, rules).
    ///
    /// Examples:
    ///   runner models                      # every model, one line each
    ///   runner models gemini-omni-flash    # one model's fields and rules
    ///   runner models --markdown           # the table in README.md
    ///   runner models my-model --manifest jobs/campaign.toml   # with the campaign's [models]
    #[command(verbatim_doc_comment)]
    Models(ModelsArgs),
    /// Show the key's remaining balance beside the plan's estimated cost; sends no paid call.
    ///
    /// Examples:
    ///   runner balance jobs/campaign.toml
    ///   runner balance examples/walkthrough.toml --simulate
    #[command(verbatim_doc_comment)]
    Balance(BalanceArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   runner completions bash > /etc/bash_completion.d/runner
    ///   runner completions zsh > "${fpath[1]}/_runner"
    ///   runner completions fish > ~/.config/fish/completions/runner.fish
    #[command(verbatim_doc_comment)]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Serve the built-in API simulator on 127.0.0.1 until Ctrl-C.
    ///
    /// Example: runner simulate --port 8080 --time-scale 0.1 --fail-rate 0.1
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
pub struct ManifestArg {
    /// A `.toml` campaign or a `.csv` of jobs.
    pub manifest: PathBuf,
    /// The state file (default: from the manifest, `<output dir>/state.jsonl`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The output folder (default: from the manifest).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The report file (default: `<output dir>/report.csv`).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Against the built-in simulator, in-process; no key needed. Its files go to
    /// `<output dir>/simulated/`, so they never mix with real results (`status`
    /// and `report` take the flag too, to read them).
    #[arg(long)]
    pub simulate: bool,
    /// Shard K of N: only the jobs whose id hashes to K (1-based). Each shard keeps its
    /// own state and report (`state.shard-K-of-N.jsonl`), so shards can run on
    /// different machines or keys against one output folder.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub paths: ManifestArg,
    /// One JSON object for scripts: the summary's fields and every job (its
    /// report row and where it stands).
    #[arg(long)]
    pub json: bool,
    /// List every job, not only those that need attention.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub paths: ManifestArg,
    /// Also write a self-contained HTML page next to the CSV: every succeeded
    /// video playable in a grid, the failures with their reasons, a timeline.
    #[arg(long)]
    pub html: bool,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    #[command(flatten)]
    pub paths: ManifestArg,
    /// The API's base URL (overrides `api.base_url`).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub paths: ManifestArg,
    /// The API's base URL (overrides `api.base_url`).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// API requests per second, all calls together (overrides `limits.requests_per_second`).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Tasks in flight at most (overrides `limits.max_in_flight`).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Show what would be done, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run even when the plan's estimated cost is more than the key's balance
    /// (read once before the first paid call when `[pricing]` is set).
    #[arg(long)]
    pub ignore_balance: bool,
    /// Go ahead without asking, even above `limits.confirm_above` jobs to submit.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Resend jobs whose earlier submit has an unknown outcome (a task may exist: this may pay twice).
    #[arg(long)]
    pub resubmit_unknown: bool,
    /// Leave unsent (pending) the jobs whose output file already exists but is not in the state file, instead of refusing the run.
    #[arg(long)]
    pub skip_existing: bool,
    /// New attempts for jobs that ended `failed`, `timed_out` or `expired` (each costs a generation).
    #[arg(long, value_name = "WHICH", value_parser = ["failed"])]
    pub retry: Option<String>,
    /// Run only these jobs (ids as in the report; repeat the flag or separate with commas).
    #[arg(long, value_name = "ID", value_delimiter = ',', num_args = 1..)]
    pub only: Vec<String>,

    /// What the run prints at its end on stdout: `text` for a person, or
    /// `json`, one JSON object for scripts (counts, elapsed time, cost, report
    /// paths, exit code, the ids that did not succeed, the next commands); the
    /// text then goes to stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,

    /// How fast simulated time runs (0.01 = 100× faster than the real service):
    /// with --simulate [default: 0.01], or for a `runner simulate --time-scale F`
    /// at --base-url, so the run's polls and the provider's budgets keep its clock.
    #[arg(long, value_name = "FACTOR")]
    pub sim_time_scale: Option<f64>,
}

impl RunArgs {
    /// The clock of the service, against the real one: 1.0 unless simulated.
    pub fn time_scale(&self) -> f64 {
        self.sim_time_scale
            .unwrap_or(if self.paths.simulate { 0.01 } else { 1.0 })
    }
}

/// `--shard K/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 1/4")?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("`{k}` is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("shard {k}/{n}: K must be between 1 and N"));
    }
    Ok(Shard { k, n })
}

/// Shells for `runner completions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub config: crate::sim::SimConfig,
}
