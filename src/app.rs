//! The commands: each turns parsed arguments into work and an exit code.

use std::collections::BTreeMap;

use crate::api::{ApiKey, Client};
use crate::cli::{Cli, Command, ManifestArg, ReportArgs, RunArgs, SimulateArgs, StatusArgs};
use crate::journal::{self, JournalError};
use crate::manifest::{self, Campaign, ManifestError};
use crate::run::{self, RunError, RunOptions, RunSummary};
use crate::state::{CampaignState, Status};
use crate::{exit, html, report};

/// Everything that ends a command before or instead of a normal run.
/// `println!` that ends the process quietly when standard output is a closed
/// pipe (`runner validate x.csv | head -1`) instead of panicking; the state
/// file is already saved whenever this prints.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            stdout_failed(e);
        }
    }};
}

/// Standard output cannot be written: a closed pipe is a quiet end; anything else is said.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(exit::SUCCESS);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(exit::LOCAL_IO);
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Usage(String),
    #[error(
        "the API key is missing: set the environment variable {env} (named by api.api_key_env), or use --simulate"
    )]
    MissingKey { env: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Manifest(_) | AppError::Usage(_) | AppError::MissingKey { .. } => {
                exit::BAD_INPUT
            }
            AppError::Journal(_) => exit::BAD_INPUT,
            AppError::Run(e) => e.exit_code(),
            AppError::Io { .. } => exit::LOCAL_IO,
        }
    }
}

/// Runs a parsed command line; returns the exit code.
pub async fn main_impl(cli: Cli) -> Result<i32, AppError> {
    match cli.command {
        Command::Run(args) => run_command(args, cli.quiet).await,
        Command::Validate(args) => validate(&args),
        Command::Status(args) => status(&args),
        Command::Report(args) => rewrite_report(&args),
        Command::Simulate(args) => simulate(args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let shell = match shell {
                crate::cli::Shell::Bash => clap_complete::Shell::Bash,
                crate::cli::Shell::Zsh => clap_complete::Shell::Zsh,
                crate::cli::Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "runner", &mut std::io::stdout());
            Ok(exit::SUCCESS)
        }
    }
}

/// Loads the manifest and applies the path flags.
fn load(args: &ManifestArg) -> Result<Campaign, AppError> {
    let started = std::time::Instant::now();
    let mut campaign = manifest::load(&args.manifest)?;
    tracing::debug!(
        "manifest: {} jobs in {:.0?}",
        campaign.jobs.len(),
        started.elapsed()
    );
    if args.simulate {
        campaign.output.dir = campaign.output.dir.join("simulated");
        campaign.output.state = None;
        campaign.output.report = None;
    }
    if let Some(out) = &args.out {
        campaign.output.dir = out.clone();
    }
    if let Some(state) = &args.state {
        campaign.output.state = Some(state.clone());
    }
    if let Some(report) = &args.report {
        campaign.output.report = Some(report.clone());
    }
    if let Some(shard) = args.shard {
        apply_shard(&mut campaign, shard);
    }
    Ok(campaign)
}

/// Keeps the shard's jobs and gives it its own state and report files.
fn apply_shard(campaign: &mut Campaign, shard: crate::cli::Shard) {
    campaign
        .jobs
        .retain(|job| shard_of(&job.id, shard.n) == shard.k);
    let suffix = format!("shard-{}-of-{}", shard.k, shard.n);
    let with_suffix = |path: std::path::PathBuf| {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match path.extension() {
            Some(ext) => format!("{stem}.{suffix}.{}", ext.to_string_lossy()),
            None => format!("{stem}.{suffix}"),
        };
        path.with_file_name(name)
    };
    campaign.output.state = Some(with_suffix(campaign.output.state_path()));
    campaign.output.report = Some(with_suffix(campaign.output.report_path()));
}

/// 1-based shard of a job id: stable across runs, machines and manifest order.
pub fn shard_of(id: &str, n: u32) -> u32 {
    let digest = crate::util::sha256_hex(id.as_bytes());
    let head = u64::from_str_radix(&digest[..16], 16).unwrap_or(0);
    (head % u64::from(n.max(1))) as u32 + 1
}

/// `--only`: every id must be a job of the manifest.
fn check_only(campaign: &Campaign, only: &[String]) -> Result<(), AppError> {
    let known: std::collections::HashSet<&str> =
        campaign.jobs.iter().map(|j| j.id.as_str()).collect();
    let mut problems = Vec::new();
    for id in only.iter().filter(|id| !known.contains(id.as_str())) {
        let nearest = campaign
            .jobs
            .iter()
            .map(|j| (strsim::jaro_winkler(id, &j.id), &j.id))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, near)| format!("; did you mean `{near}`?"))
            .unwrap_or_default();
        problems.push(format!(
            "--only: no job `{id}` in {}{nearest}",
            campaign.manifest_path.display()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Usage(problems.join("\n")))
    }
}

async fn run_command(args: RunArgs, quiet: bool) -> Result<i32, AppError> {
    let mut campaign = load(&args.paths)?;
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(AppError::Usage(format!(
                "--rate must be a positive number, got {rate}"
            )));
        }
        campaign.limits.requests_per_second = Some(rate);
    }
    if let Some(n) = args.max_in_flight {
        if n == 0 {
            return Err(AppError::Usage("--max-in-flight must be at least 1".into()));
        }
        campaign.limits.max_in_flight = n;
    }
    if args.paths.simulate && !(args.sim_time_scale.is_finite() && args.sim_time_scale > 0.0) {
        return Err(AppError::Usage(
            "--sim-time-scale must be a positive number".into(),
        ));
    }
    check_only(&campaign, &args.only)?;
    if args.dry_run {
        return dry_run(&campaign, &args);
    }
    if !args.paths.simulate && !args.yes {
        confirm(&campaign, &args)?;
    }
    let opts = RunOptions {
        time_scale: if args.paths.simulate {
            args.sim_time_scale
        } else {
            1.0
        },
        resubmit_unknown: args.resubmit_unknown,
        skip_existing: args.skip_existing,
        retry_failed: args.retry.is_some(),
        only: (!args.only.is_empty()).then(|| args.only.iter().cloned().collect()),
        quiet,
        ..RunOptions::default()
    };
    // Shared, not cloned: at 100k jobs the manifest is tens of megabytes.
    let campaign = std::sync::Arc::new(campaign);
    let signals = run::shutdown::listen();
    let summary = if args.paths.simulate {
        let config = crate::sim::SimConfig {
            time_scale: args.sim_time_scale,
            revive: true,
            ..Default::default()
        };
        let sim = crate::sim::SimHandle::start(config)
            .await
            .map_err(|source| AppError::Io {
                what: "cannot start the simulator".into(),
                source,
            })?;
        tracing::info!(
            "simulator on {} (time runs {}× faster)",
            sim.base_url(),
            1.0 / args.sim_time_scale
        );
        let client = make_client(&sim.base_url(), ApiKey::new("simulated".into()))?;
        let summary = run::run(campaign.clone(), client, opts, signals).await;
        sim.shutdown().await;
        summary?
    } else {
        let base_url = args
            .base_url
            .clone()
            .unwrap_or_else(|| campaign.api.base_url.clone());
        let key = api_key(&campaign.api.api_key_env)?;
        let client = make_client(&base_url, key)?;
        run::run(campaign.clone(), client, opts, signals).await?
    };
    print_summary(&campaign, &summary);
    if let Some(fatal) = &summary.fatal {
        eprintln!("error: {fatal}");
        let mut source = std::error::Error::source(fatal);
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        eprintln!("  {}", fatal.advice());
    }
    let code = summary.exit_code();
    // The process exits next: freeing 100k jobs and their states one by one
    // would only delay it (~50 ms at 100k jobs).
    std::mem::forget(summary);
    std::mem::forget(campaign);
    Ok(code)
}

/// The jobs `runner run` with these flags would submit: never submitted, plus
/// `unknown` ones with `--resubmit-unknown` and ended-badly ones with `--retry
/// failed`, within `--only`. The confirmation and `--dry-run` both count these.
fn jobs_to_submit<'a>(
    campaign: &'a Campaign,
    state: &CampaignState,
    args: &RunArgs,
) -> Vec<&'a manifest::Job> {
    campaign
        .jobs
        .iter()
        .filter(|job| args.only.is_empty() || args.only.contains(&job.id))
        .filter(|job| match state.job(&job.id) {
            None => true,
            Some(js) => match js.status() {
                Status::Pending => js.attempts == 0,
                Status::Unknown => args.resubmit_unknown,
                // Failed before any task existed: a plain rerun sends it again, unpaid.
                Status::Failed if js.failed_unpaid() => true,
                Status::Failed | Status::TimedOut | Status::Expired => args.retry.is_some(),
                Status::Succeeded => false,
            },
        })
        .collect()
}

/// Above `limits.confirm_above` jobs to submit, a paid run asks first; without a
/// terminal to ask on, it refuses unless `--yes` was given.
fn confirm(campaign: &Campaign, args: &RunArgs) -> Result<(), AppError> {
    let limit = campaign.limits.confirm_above;
    if limit == 0 {
        return Ok(());
    }
    let state = read_state(campaign)?;
    let to_submit = jobs_to_submit(campaign, &state, args);
    // New attempts of jobs whose task was paid for are paid again: always asked
    // for, whatever their number. A job that failed before any task existed is not.
    let retrying = args.retry.is_some()
        && to_submit.iter().any(|job| {
            state.job(&job.id).is_some_and(|js| {
                matches!(
                    js.status(),
                    Status::Failed | Status::TimedOut | Status::Expired
                ) && !js.failed_unpaid()
            })
        });
    if to_submit.len() <= limit && !retrying {
        return Ok(());
    }
    let plan = crate::plan::plan_for(campaign, to_submit.iter().copied());
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        let why = if to_submit.len() > limit {
            format!("more than limits.confirm_above = {limit}")
        } else {
            "new attempts of failed jobs, paid again".to_string()
        };
        return Err(AppError::Usage(format!(
            "this run would submit {} jobs (estimated cost {}), {why}; \
             nothing was sent. Add --yes to go ahead, or preview with --dry-run",
            to_submit.len(),
            plan.total_cost.display(&campaign.pricing.currency),
        )));
    }
    eprintln!("{plan}");
    eprint!("Submit {} jobs? [y/N] ", to_submit.len());
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        Err(AppError::Usage("not confirmed; nothing was sent".into()))
    }
}

fn make_client(base_url: &str, key: ApiKey) -> Result<Client, AppError> {
    Client::new(base_url, key).map_err(AppError::Usage)
}

fn api_key(env: &str) -> Result<ApiKey, AppError> {
    match std::env::var(env) {
        Ok(key) if key.trim().chars().any(|c| c.is_control() || !c.is_ascii()) => {
            Err(AppError::Usage(format!(
                "the API key in {env} holds a character an HTTP header cannot carry \
                 (a line break, a control character or a non-ASCII letter)"
            )))
        }
        Ok(key) if !key.trim().is_empty() => Ok(ApiKey::new(key.trim().to_string())),
        _ => Err(AppError::MissingKey { env: env.into() }),
    }
}

fn print_summary(campaign: &Campaign, summary: &RunSummary) {
    let total: usize = summary.counts.values().sum();
    let parts: Vec<String> = summary
        .counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let how = if summary.interrupted {
        " (interrupted; run the same command again to resume)"
    } else {
        ""
    };
    outln!("{}: {total} jobs: {}{how}", campaign.name, parts.join(", "));
    outln!("report: {}", summary.report_path.display());
    if summary.counts.get(&Status::Unknown).copied().unwrap_or(0) > 0 {
        outln!(
            "note: jobs marked unknown may have created a task that could not be confirmed; \
             check with the provider, then resend them with --resubmit-unknown"
        );
    }
}

/// `runner validate`: one line per job with the request it would send, then counts per model.
fn validate(args: &ManifestArg) -> Result<i32, AppError> {
    let campaign = load(args)?;
    for job in &campaign.jobs {
        let images: Vec<String> = job
            .images
            .iter()
            .map(|i| match i {
                manifest::ImageRef::Url(u) => u.clone(),
                manifest::ImageRef::Local(p) => format!("upload:{}", p.display()),
            })
            .collect();
        outln!("{}\t{}", job.id, job.request_body(&images));
    }
    print_plan(&campaign);
    Ok(exit::SUCCESS)
}

fn print_plan(campaign: &Campaign) {
    outln!("{}: {} jobs, all valid", campaign.name, campaign.jobs.len());
    outln!("{}", crate::plan::plan(campaign));
    if let Some(budget) = campaign.limits.budget {
        outln!(
            "budget: {}",
            crate::plan::money(budget, &campaign.pricing.currency)
        );
    }
}

/// `runner run --dry-run`: the plan against the state file; nothing sent.
fn dry_run(campaign: &Campaign, args: &RunArgs) -> Result<i32, AppError> {
    print_plan(campaign);
    let state = read_state(campaign)?;
    let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
    for job in &campaign.jobs {
        let status = state.job(&job.id).map_or(Status::Pending, |js| js.status());
        *counts.entry(status).or_default() += 1;
    }
    let to_submit = jobs_to_submit(campaign, &state, args);
    outln!(
        "still to submit:\n{}",
        crate::plan::plan_for(campaign, to_submit.iter().copied())
    );
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    outln!(
        "state {}: {}",
        campaign.output.state_path().display(),
        parts.join(", ")
    );
    outln!(
        "dry run: {} jobs would be submitted; nothing was sent",
        to_submit.len()
    );
    Ok(exit::SUCCESS)
}

/// The state file folded, refusing one that belongs to another campaign.
fn read_state(campaign: &Campaign) -> Result<CampaignState, AppError> {
    let path = campaign.output.state_path();
    let (state, replay) = CampaignState::load(&path, campaign.jobs.len())?;
    replay.check_campaign(&path, &campaign.name)?;
    Ok(state)
}

/// The journal's entries, all in memory (for the HTML timeline).
fn read_journal(campaign: &Campaign) -> Result<Vec<journal::Entry>, AppError> {
    let path = campaign.output.state_path();
    let (replay, entries) = journal::read(&path)?;
    replay.check_campaign(&path, &campaign.name)?;
    Ok(entries)
}

/// `runner status`: counts, then every job that is not done with its reason.
fn status(args: &StatusArgs) -> Result<i32, AppError> {
    let campaign = load(&args.paths)?;
    let state = read_state(&campaign)?;
    let rows: Vec<_> = report::rows(&campaign, &state).collect();
    let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
    for row in &rows {
        *counts.entry(row.status).or_default() += 1;
    }
    if args.json {
        let jobs: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "job_id": r.job_id, "status": r.status.as_str(), "task_id": r.task_id,
                    "attempts": r.attempts, "output_path": r.output_path, "bytes": r.bytes,
                    "sha256": r.sha256, "error": r.error,
                })
            })
            .collect();
        let counts: serde_json::Map<String, serde_json::Value> = Status::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str().to_string(),
                    counts.get(s).copied().unwrap_or(0).into(),
                )
            })
            .collect();
        let out = serde_json::json!({
            "campaign": campaign.name,
            "state": campaign.output.state_path(),
            "total": rows.len(),
            "counts": counts,
            "jobs": jobs,
        });
        outln!("{out}");
        return Ok(exit::SUCCESS);
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    outln!(
        "{}: {} jobs: {}",
        campaign.name,
        rows.len(),
        parts.join(", ")
    );
    for row in rows.iter().filter(|r| r.status != Status::Succeeded) {
        let task = if row.task_id.is_empty() {
            "-"
        } else {
            &row.task_id
        };
        outln!(
            "  {:<10} {:<32} {:<30} {}",
            row.status.as_str(),
            row.job_id,
            task,
            row.error
        );
    }
    Ok(exit::SUCCESS)
}

/// `runner report`: rewrite the CSV (and with `--html` the page) from the state file.
fn rewrite_report(args: &ReportArgs) -> Result<i32, AppError> {
    let campaign = load(&args.paths)?;
    // The page's timeline needs every entry: then the file is read once, into memory.
    let (state, entries) = if args.html {
        let entries = read_journal(&campaign)?;
        (CampaignState::from_entries(&entries), entries)
    } else {
        (read_state(&campaign)?, Vec::new())
    };
    let path = campaign.output.report_path();
    let cannot_write = |source| AppError::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    if !args.html {
        // Rendered on every core, never held whole.
        report::write_campaign(&path, &campaign, &state).map_err(cannot_write)?;
        outln!("report: {} ({} jobs)", path.display(), campaign.jobs.len());
        return Ok(exit::SUCCESS);
    }
    let rows: Vec<_> = report::rows(&campaign, &state).collect();
    report::write_csv(&path, &rows).map_err(cannot_write)?;
    outln!("report: {} ({} jobs)", path.display(), rows.len());
    let html_path = html::path_next_to(&path);
    let dir = html_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let page = html::Page {
        campaign: &campaign.name,
        dir,
        rows: &rows,
        timeline: html::timeline_from_journal(&entries),
    };
    html::write(&html_path, &html::render(&page)).map_err(|source| AppError::Io {
        what: format!("cannot write {}", html_path.display()),
        source,
    })?;
    outln!("html: {}", html_path.display());
    Ok(exit::SUCCESS)
}

/// `runner simulate`: serve until Ctrl-C.
async fn simulate(args: SimulateArgs) -> Result<i32, AppError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|source| AppError::Io {
            what: format!("cannot listen on 127.0.0.1:{}", args.port),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Io {
        what: "cannot read the listening address".into(),
        source,
    })?;
    outln!("simulator listening on http://{addr} (Ctrl-C to stop)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::sim::serve(listener, args.config, shutdown)
        .await
        .map_err(|source| AppError::Io {
            what: "simulator failed".into(),
            source,
        })?;
    Ok(exit::SUCCESS)
}
