//! The commands: each turns parsed arguments into work and an exit code.

use std::collections::BTreeMap;

use crate::api::{ApiKey, Client};
use crate::cli::{BalanceArgs, Cli, Command, ManifestArg, ReportArgs, RunArgs, SimulateArgs};
use crate::journal::JournalError;
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
    /// The plan would cost more than the key's balance: nothing was sent.
    #[error(
        "the estimated cost of this run, {estimate}, is more than the key's balance, {balance}; nothing was sent. Top up and run again, or add --ignore-balance to run anyway"
    )]
    BalanceShort { estimate: String, balance: String },
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
            AppError::BalanceShort { .. } => exit::API_FATAL,
            AppError::Run(e) => e.exit_code(),
            AppError::Io { .. } => exit::LOCAL_IO,
        }
    }
}

/// Runs a parsed command line; returns the exit code.
pub async fn main_impl(cli: Cli) -> Result<i32, AppError> {
    match cli.command {
        Command::Run(args) => {
            let log_json = cli.log_format == crate::cli::LogFormat::Json;
            let json = args.summary == crate::cli::SummaryFormat::Json;
            let manifest = args.paths.manifest.display().to_string();
            let result = run_command(args, cli.quiet, log_json).await;
            if json && let Err(e) = &result {
                // A script still gets its one object: refused before the start.
                outln!(
                    "{}",
                    crate::summary::refused_json(&manifest, e.exit_code(), &e.to_string())
                );
            }
            result
        }
        Command::Validate(args) => validate(&args),
        Command::Models(args) => models(&args),
        Command::Balance(args) => balance_command(&args).await,
        Command::Status(args) => crate::status::status(&args),
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
pub(crate) fn load(args: &ManifestArg) -> Result<Campaign, AppError> {
    Ok(load_with_other(args)?.0)
}

/// [`load`], and the output paths the other mode would use (without
/// `--simulate` when it is given, with it when not): `status` and `report`
/// point there when only the other mode has results.
pub(crate) fn load_with_other(
    args: &ManifestArg,
) -> Result<(Campaign, manifest::Output), AppError> {
    let started = std::time::Instant::now();
    let mut campaign = manifest::load(&args.manifest)?;
    tracing::debug!(
        "manifest: {} jobs in {:.0?}",
        campaign.jobs.len(),
        started.elapsed()
    );
    let mut other = campaign.output.clone();
    set_paths(&mut campaign.output, args, args.simulate);
    set_paths(&mut other, args, !args.simulate);
    if let Some(shard) = args.shard {
        campaign
            .jobs
            .retain(|job| shard_of(&job.id, shard.n) == shard.k);
    }
    Ok((campaign, other))
}

/// The path flags on the manifest's paths: `--simulate` moves everything to
/// `<dir>/simulated/`; a shard gets its own state and report files.
fn set_paths(output: &mut manifest::Output, args: &ManifestArg, simulate: bool) {
    if simulate {
        output.dir = output.dir.join("simulated");
        output.state = None;
        output.report = None;
    }
    if let Some(out) = &args.out {
        output.dir = out.clone();
    }
    if let Some(state) = &args.state {
        output.state = Some(state.clone());
    }
    if let Some(report) = &args.report {
        output.report = Some(report.clone());
    }
    if let Some(shard) = args.shard {
        output.state = Some(with_shard_suffix(output.state_path(), shard));
        output.report = Some(with_shard_suffix(output.report_path(), shard));
    }
}

/// `state.jsonl` → `state.shard-K-of-N.jsonl`.
pub(crate) fn with_shard_suffix(
    path: std::path::PathBuf,
    shard: crate::cli::Shard,
) -> std::path::PathBuf {
    let suffix = format!("shard-{}-of-{}", shard.k, shard.n);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{suffix}"),
    };
    path.with_file_name(name)
}

/// 1-based shard of a job id: stable across runs, machines and manifest order.
pub fn shard_of(id: &str, n: u32) -> u32 {
    let digest = crate::util::sha256_hex(id.as_bytes());
    let head = u64::from_str_radix(&digest[..16], 16).unwrap_or(0);
    (head % u64::from(n.max(1))) as u32 + 1
}

/// Another state file of this campaign (other shards, or the unsharded one)
/// records tasks of this run's jobs: this run's state does not, so it would
/// pay for them again. Refused (exit 2), nothing sent.
fn refuse_paying_again(
    campaign: &Campaign,
    shard: Option<crate::cli::Shard>,
) -> Result<(), AppError> {
    let elsewhere = crate::view::recorded_elsewhere(campaign, shard)?;
    if elsewhere.is_empty() {
        return Ok(());
    }
    let jobs: usize = elsewhere.iter().map(|(_, n)| n).sum();
    let files: Vec<String> = elsewhere
        .iter()
        .map(|(path, n)| format!("{} ({n})", path.display()))
        .collect();
    let this = match shard {
        Some(s) => format!(" (--shard {}/{})", s.k, s.n),
        None => " (no --shard)".to_string(),
    };
    Err(AppError::Usage(format!(
        "{jobs} job(s) of this run{this} already have tasks recorded in another state file \
         of this campaign: {}. This run's state file ({}) does not know those tasks, so it \
         would pay for them again. Run the way those files were written (the same --shard \
         K/N, or none), and see the whole campaign with `runner status`; move those files \
         away only if you mean to pay again",
        files.join(", "),
        campaign.output.state_path().display()
    )))
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

async fn run_command(args: RunArgs, quiet: bool, log_json: bool) -> Result<i32, AppError> {
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
    if !(args.time_scale().is_finite() && args.time_scale() > 0.0) {
        return Err(AppError::Usage(
            "--sim-time-scale must be a positive number".into(),
        ));
    }
    check_only(&campaign, &args.only)?;
    if let Some(shard) = args.paths.shard
        && campaign.jobs.is_empty()
    {
        let text = crate::summary::empty_shard_text(&campaign.name, shard.k, shard.n);
        if args.summary == crate::cli::SummaryFormat::Json {
            eprintln!("{text}");
            let manifest = args.paths.manifest.display().to_string();
            outln!(
                "{}",
                crate::summary::empty_shard_json(&campaign.name, &manifest, shard.k, shard.n)
            );
        } else {
            outln!("{text}");
        }
        return Ok(exit::SUCCESS);
    }
    refuse_paying_again(&campaign, args.paths.shard)?;
    if args.dry_run {
        return dry_run(&campaign, &args).await;
    }
    if !args.paths.simulate && !args.yes {
        confirm(&campaign, &args)?;
    }
    let opts = RunOptions {
        time_scale: args.time_scale(),
        resubmit_unknown: args.resubmit_unknown,
        skip_existing: args.skip_existing,
        retry_failed: args.retry.is_some(),
        only: (!args.only.is_empty()).then(|| args.only.iter().cloned().collect()),
        quiet,
        log_json,
        ..RunOptions::default()
    };
    // Shared, not cloned: at 100k jobs the manifest is tens of megabytes.
    let campaign = std::sync::Arc::new(campaign);
    let signals = run::shutdown::listen();
    let summary = if args.paths.simulate {
        let sim = start_sim(args.time_scale(), &campaign.catalogue).await?;
        tracing::info!(
            "simulator on {} (time runs {}× faster)",
            sim.base_url(),
            1.0 / args.time_scale()
        );
        let client = make_client(&sim.base_url(), ApiKey::new("simulated".into()))?;
        let summary = match check_balance(&client, &campaign, &args).await {
            Ok(()) => run::run(campaign.clone(), client, opts, signals).await,
            Err(e) => {
                sim.shutdown().await;
                return Err(e);
            }
        };
        sim.shutdown().await;
        summary?
    } else {
        let base_url = args
            .base_url
            .clone()
            .unwrap_or_else(|| campaign.api.base_url.clone());
        let key = api_key(&campaign.api.api_key_env)?;
        let client = make_client(&base_url, key)?;
        check_balance(&client, &campaign, &args).await?;
        run::run(campaign.clone(), client, opts, signals).await?
    };
    print_ending(&campaign, &summary, &args);
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

/// The in-process simulator of `--simulate`, its clock `time_scale` times the real one.
/// The built-in simulator for a campaign: it follows the campaign's catalogue
/// (with its `[models]`), so what validates also runs.
async fn start_sim(
    time_scale: f64,
    catalogue: &std::sync::Arc<crate::models::Catalogue>,
) -> Result<crate::sim::SimHandle, AppError> {
    let config = crate::sim::SimConfig {
        time_scale,
        revive: true,
        catalogue: Some(std::sync::Arc::clone(catalogue)),
        ..Default::default()
    };
    crate::sim::SimHandle::start(config)
        .await
        .map_err(|source| AppError::Io {
            what: "cannot start the simulator".into(),
            source,
        })
}

/// `12.34 USD left` or `unlimited`, with what was used when the answer says.
fn describe_balance(b: &crate::api::Balance) -> String {
    let used = b
        .used
        .map(|u| format!(" ({} used)", crate::plan::money(u, "USD")))
        .unwrap_or_default();
    match b.remain {
        Some(left) => format!("{} left on this key{used}", crate::plan::money(left, "USD")),
        None => format!("unlimited (unlimited_quota){used}"),
    }
}

/// What a run of `jobs` may spend, to hold against the balance: the plan's
/// known estimate, at most `limits.budget`. `None` when there is nothing to
/// compare: no `[pricing]`, or prices in another currency than the balance's USD.
fn spend_estimate(campaign: &Campaign, plan: &crate::plan::Plan) -> Option<f64> {
    if campaign.pricing.per_model.is_empty() || campaign.pricing.currency != "USD" {
        return None;
    }
    let estimate = plan.total_cost.known();
    Some(campaign.limits.budget.map_or(estimate, |b| estimate.min(b)))
}

/// Before the first paid call: the balance is read once, and a plan whose
/// estimate is more than it is refused (exit 3, nothing sent) unless
/// `--ignore-balance`. A key or server without the balance call still runs.
async fn check_balance(
    client: &Client,
    campaign: &Campaign,
    args: &RunArgs,
) -> Result<(), AppError> {
    if campaign.pricing.per_model.is_empty() {
        return Ok(());
    }
    let state = read_state(campaign)?;
    let to_submit = jobs_to_submit(campaign, &state, args);
    if to_submit.is_empty() {
        return Ok(());
    }
    let plan = crate::plan::plan_for(campaign, to_submit.iter().copied());
    let Some(estimate) = spend_estimate(campaign, &plan) else {
        tracing::info!(
            "prices are in {}, the balance in USD: the balance is not checked",
            campaign.pricing.currency
        );
        return Ok(());
    };
    let balance = match client.balance().await {
        Ok(balance) => balance,
        Err(e) => {
            tracing::warn!("the balance could not be read ({e}); running without checking it");
            return Ok(());
        }
    };
    let estimate_text = crate::plan::money(estimate, "USD");
    match balance.remain {
        Some(left) if estimate > left + 1e-9 => {
            let balance_text = crate::plan::money(left, "USD");
            if args.ignore_balance {
                tracing::warn!(
                    "the estimated cost, {estimate_text}, is more than the balance, {balance_text}; running anyway (--ignore-balance)"
                );
                return Ok(());
            }
            Err(AppError::BalanceShort {
                estimate: estimate_text,
                balance: balance_text,
            })
        }
        _ => {
            tracing::info!(
                "balance: {}; the estimated cost is {estimate_text}",
                describe_balance(&balance)
            );
            Ok(())
        }
    }
}

/// `runner balance`: the key's balance beside the plan's estimated cost.
async fn balance_command(args: &BalanceArgs) -> Result<i32, AppError> {
    let campaign = load(&args.paths)?;
    let state = read_state(&campaign)?;
    let run_args = RunArgs {
        paths: ManifestArg {
            manifest: args.paths.manifest.clone(),
            state: None,
            out: None,
            report: None,
            simulate: args.paths.simulate,
            shard: None,
        },
        base_url: None,
        rate: None,
        max_in_flight: None,
        dry_run: false,
        ignore_balance: false,
        yes: false,
        resubmit_unknown: false,
        skip_existing: false,
        retry: None,
        only: Vec::new(),
        summary: crate::cli::SummaryFormat::Text,
        sim_time_scale: None,
    };
    let to_submit = jobs_to_submit(&campaign, &state, &run_args);
    let plan = crate::plan::plan_for(&campaign, to_submit.iter().copied());
    let result = if args.paths.simulate {
        let sim = start_sim(0.01, &campaign.catalogue).await?;
        let client = make_client(&sim.base_url(), ApiKey::new("simulated".into()))?;
        let result = client.balance().await;
        sim.shutdown().await;
        result
    } else {
        let base_url = args
            .base_url
            .clone()
            .unwrap_or_else(|| campaign.api.base_url.clone());
        let client = make_client(&base_url, api_key(&campaign.api.api_key_env)?)?;
        client.balance().await
    };
    let balance = match result {
        Ok(balance) => balance,
        Err(e) if e.is_auth() => {
            return Err(AppError::Run(RunError::Auth {
                env: campaign.api.api_key_env.clone(),
                message: e.to_string(),
            }));
        }
        Err(e) => {
            eprintln!(
                "error: cannot read the balance: {e} (this key or server may have no balance call; `runner run` goes on without it)"
            );
            return Ok(exit::JOBS_FAILED);
        }
    };
    outln!(
        "{}",
        balance_lines(&campaign, &plan, &balance, to_submit.len())
    );
    Ok(exit::SUCCESS)
}

/// The balance, the plan's estimate, and whether one covers the other.
fn balance_lines(
    campaign: &Campaign,
    plan: &crate::plan::Plan,
    balance: &crate::api::Balance,
    jobs: usize,
) -> String {
    let currency = &campaign.pricing.currency;
    let mut text = format!(
        "balance: {}
plan: {jobs} jobs to submit, estimated cost {}",
        describe_balance(balance),
        plan.total_cost.display(currency)
    );
    if let Some(budget) = campaign.limits.budget {
        text.push_str(&format!(
            " (limits.budget stops at {})",
            crate::plan::money(budget, currency)
        ));
    }
    match (spend_estimate(campaign, plan), balance.remain) {
        (None, _) if campaign.pricing.per_model.is_empty() => {
            text.push_str("
no [pricing] in the manifest: the cost is unknown, and `runner run` does not check the balance");
        }
        (None, _) => text.push_str(&format!(
            "
prices are in {currency}, the balance in USD: not compared"
        )),
        (Some(_), None) => text.push_str("
the balance is unlimited: it covers the plan"),
        (Some(estimate), Some(left)) if estimate > left + 1e-9 => text.push_str(&format!(
            "
the balance does not cover the plan: {} short; `runner run` refuses it (exit 3) unless --ignore-balance",
            crate::plan::money(estimate - left, "USD")
        )),
        (Some(estimate), Some(left)) => text.push_str(&format!(
            "
the balance covers the plan: {} would be left",
            crate::plan::money(left - estimate, "USD")
        )),
    }
    text
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

/// The run's ending: text on stdout, or with `--summary json` one JSON object
/// on stdout and the text on stderr.
fn print_ending(campaign: &Campaign, summary: &RunSummary, args: &RunArgs) {
    let recap = crate::summary::Recap::new(campaign, summary, args);
    if args.summary == crate::cli::SummaryFormat::Json {
        eprintln!("{}", recap.text());
        outln!("{}", recap.json());
    } else {
        outln!("{}", recap.text());
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
    // The plan and the notes on stderr: `runner validate x | cut -f1` gets only requests.
    eprintln!("{}", plan_text(&campaign));
    for (name, loc) in &campaign.model_overrides {
        let Some(entry) = campaign.catalogue.entry(name) else {
            continue;
        };
        let fields: Vec<&str> = entry
            .fields
            .iter()
            .filter(|(_, f)| f.source == crate::models::Source::Manifest)
            .map(|(p, _)| p.as_str())
            .collect();
        let rules = entry
            .rules
            .iter()
            .filter(|r| r.source == crate::models::Source::Manifest)
            .count();
        let builtin = crate::models::Catalogue::builtin().entry(name).is_some();
        eprintln!(
            "model {} from the manifest ({loc}): {} {}; fields {}; {rules} rule{}",
            entry.model,
            if builtin {
                "amends the catalogue's entry"
            } else {
                "not in the catalogue, added"
            },
            if builtin { "with" } else { "as" },
            if fields.is_empty() {
                "none".to_owned()
            } else {
                fields.join(", ")
            },
            if rules == 1 { "" } else { "s" },
        );
    }
    Ok(exit::SUCCESS)
}

/// `runner models [NAME] [--markdown]`.
fn models(args: &crate::cli::ModelsArgs) -> Result<i32, AppError> {
    let campaign;
    let catalogue = match &args.manifest {
        Some(path) => {
            campaign = manifest::load(path)?;
            &campaign.catalogue
        }
        None => crate::models::Catalogue::builtin(),
    };
    if args.markdown {
        outln!("{}", catalogue.markdown().trim_end());
        return Ok(exit::SUCCESS);
    }
    if let Some(name) = &args.name {
        let Some(entry) = catalogue.entry(name) else {
            return Err(AppError::Usage(catalogue.unknown_message(name)));
        };
        outln!("{}", entry.describe().trim_end());
        return Ok(exit::SUCCESS);
    }
    let header = [
        "model",
        "aliases",
        "duration",
        "aspect_ratio",
        "resolution",
        "images",
    ];
    let rows: Vec<[String; 6]> = catalogue
        .entries()
        .into_iter()
        .map(|e| {
            [
                e.model.to_string(),
                if e.aliases.is_empty() {
                    "-".into()
                } else {
                    e.aliases.join(", ")
                },
                e.describe_field("duration"),
                e.describe_field("aspect_ratio").replace('"', ""),
                e.resolution_summary().replace(['`', '"'], ""),
                e.images_summary().replace('`', ""),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out
    };
    outln!("{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        outln!("{}", line(&cells));
    }
    outln!("`runner models NAME` shows one model's fields and rules");
    Ok(exit::SUCCESS)
}

/// The campaign's plan: its jobs, the table by model, the budget.
fn plan_text(campaign: &Campaign) -> String {
    let mut text = format!(
        "{}: {} jobs, all valid\n{}",
        campaign.name,
        campaign.jobs.len(),
        crate::plan::plan(campaign)
    );
    if let Some(budget) = campaign.limits.budget {
        text.push_str(&format!(
            "\nbudget: {}",
            crate::plan::money(budget, &campaign.pricing.currency)
        ));
    }
    text
}

/// `runner run --dry-run`: the plan against the state file; nothing sent
/// (but the balance call, when there is a key or `--simulate`).
async fn dry_run(campaign: &Campaign, args: &RunArgs) -> Result<i32, AppError> {
    outln!("{}", plan_text(campaign));
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
    let plan = crate::plan::plan_for(campaign, to_submit.iter().copied());
    let balance = if args.paths.simulate {
        let sim = start_sim(args.time_scale(), &campaign.catalogue).await?;
        let client = make_client(&sim.base_url(), ApiKey::new("simulated".into()))?;
        let result = client.balance().await;
        sim.shutdown().await;
        Some(result)
    } else {
        match api_key(&campaign.api.api_key_env) {
            Ok(key) => {
                let base_url = args
                    .base_url
                    .clone()
                    .unwrap_or_else(|| campaign.api.base_url.clone());
                Some(make_client(&base_url, key)?.balance().await)
            }
            Err(_) => None,
        }
    };
    match balance {
        Some(Ok(balance)) => outln!(
            "{}",
            balance_lines(campaign, &plan, &balance, to_submit.len())
        ),
        Some(Err(e)) => outln!("balance: could not be read ({e})"),
        None => {}
    }
    match crate::summary::budget_fit(campaign, &state, &to_submit) {
        Some(fit) => {
            outln!("{}", fit.text(&campaign.pricing.currency));
            let left = if fit.left.is_empty() {
                String::new()
            } else {
                format!(" ({} left pending by limits.budget)", fit.left.len())
            };
            outln!(
                "dry run: {} would be submitted{left}; nothing was sent",
                crate::summary::jobs(fit.fit.len())
            );
        }
        None => outln!(
            "dry run: {} would be submitted; nothing was sent",
            crate::summary::jobs(to_submit.len())
        ),
    }
    Ok(exit::SUCCESS)
}

/// The state file folded, refusing one that belongs to another campaign.
fn read_state(campaign: &Campaign) -> Result<CampaignState, AppError> {
    let path = campaign.output.state_path();
    let (state, replay) = CampaignState::load(&path, campaign.jobs.len())?;
    replay.check_campaign(&path, &campaign.name)?;
    Ok(state)
}

/// `runner report`: rewrite the CSV (and with `--html` the page) from every
/// state file of the campaign (or the shard's, with `--shard`).
fn rewrite_report(args: &ReportArgs) -> Result<i32, AppError> {
    let (campaign, other) = load_with_other(&args.paths)?;
    // The page's timeline needs every entry: then they are kept in memory.
    let (view, hint) = crate::status::read_view(&args.paths, &campaign, &other, args.html)?;
    if let Some(hint) = hint {
        eprintln!("note: {}", hint.replace("runner {}", "runner report"));
    }
    let (state, entries) = (view.state, view.entries);
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
        pricing: &campaign.pricing,
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
