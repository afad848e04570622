//! `runner status`: what the state files say about a campaign, without calling the API.
//!
//! A summary first (counts by status, where the unfinished jobs stand, money
//! by `[pricing]`, how long ago the run started), then the jobs that need
//! attention with their reason; `--all` lists every job, `--json` prints the
//! same as one object whose jobs are the report's rows ([`Row`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::app::AppError;
use crate::cli::{ManifestArg, Shard, StatusArgs};
use crate::exit;
use crate::manifest::{Campaign, Output};
use crate::plan::Cost;
use crate::report::{self, Row};
use crate::state::{JobState, Phase, Status};
use crate::view::{self, View};

/// Lines of jobs needing attention shown without `--all`.
const ATTENTION_LINES: usize = 50;

/// Where a job stands, finer than its report status: `pending` splits into
/// in flight, to download and not sent. Words that are not the provider's
/// task statuses (`queued`, `in_progress`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The video is on disk.
    Done,
    /// Ended without a video (`failed`, `timed_out`, `expired`).
    Ended,
    /// A submit whose outcome is unknown: a task may exist.
    Unknown,
    /// A task exists at the provider and has not finished.
    InFlight,
    /// The task finished; its video is not on disk yet.
    ToDownload,
    /// No task for the current attempt: never sent, or to be sent again.
    NotSent,
}

impl Stage {
    pub fn of(js: Option<&JobState>) -> Stage {
        let Some(js) = js else {
            return Stage::NotSent;
        };
        match js.phase {
            Phase::Succeeded { .. } => Stage::Done,
            Phase::Finished { .. } | Phase::TaskFailed { .. } => Stage::Ended,
            Phase::Submitting { .. } | Phase::Unknown { .. } => Stage::Unknown,
            Phase::Running { .. } => Stage::InFlight,
            Phase::Completed { .. } => Stage::ToDownload,
            Phase::Pending => Stage::NotSent,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Stage::Done => "done",
            Stage::Ended => "ended",
            Stage::Unknown => "unknown",
            Stage::InFlight => "in flight",
            Stage::ToDownload => "to download",
            Stage::NotSent => "not sent",
        }
    }
}

/// One job of `status --json`: the report's row and where it stands.
#[derive(Debug, Serialize)]
struct JobLine<'a> {
    #[serde(flatten)]
    row: &'a Row<'a>,
    stage: Stage,
}

/// A state file, for `--json`.
#[derive(Debug, Serialize)]
struct StateFile {
    path: PathBuf,
    shard: Option<String>,
    jobs: usize,
    running: bool,
}

/// Money by `[pricing]`: estimates, as the plan and `limits.budget` count them.
#[derive(Debug, Serialize, PartialEq)]
pub struct Money {
    pub currency: String,
    /// What the recorded attempts cost (each attempt is a paid generation).
    pub spent: f64,
    /// Every job with an attempt has a price (else `spent` is a lower bound).
    pub spent_complete: bool,
    /// What the jobs not sent would cost.
    pub to_spend: f64,
    pub to_spend_complete: bool,
    pub budget: Option<f64>,
}

/// The summary: the text's first lines and the `--json` object's fields.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub campaign: String,
    pub simulated: bool,
    /// `K/N` with `--shard`.
    pub shard: Option<String>,
    pub total: usize,
    /// Every report status, zeros included.
    pub counts: BTreeMap<&'static str, usize>,
    /// Of the pending: a task at the provider, not finished.
    pub in_flight: usize,
    /// Of the pending: finished, the video not on disk yet.
    pub to_download: usize,
    /// Of the pending: never sent.
    pub never_sent: usize,
    /// Of the pending: sent before, to be sent again (`--retry`, `--resubmit-unknown`).
    pub to_resend: usize,
    /// Of those not sent: kept back by `limits.budget`.
    pub over_budget: usize,
    pub needs_attention: usize,
    /// `None` without `[pricing]`.
    pub money: Option<Money>,
    /// The first and the latest record, RFC 3339.
    pub started_at: Option<String>,
    pub last_record_at: Option<String>,
    pub since_start_secs: Option<u64>,
    /// A run holds a state file's lock now.
    pub running: bool,
    /// Said when there are no results here but the other mode has some.
    pub hint: Option<String>,
    pub warnings: Vec<String>,
}

/// The campaign's view for `status` and `report`: every state file (or the
/// shard's), the budget's holds marked, and the hint when only the other mode
/// (simulated or real) has results. Warnings go to stderr.
pub fn read_view(
    args: &ManifestArg,
    campaign: &Campaign,
    other: &Output,
    entries: bool,
) -> Result<(View, Option<String>), AppError> {
    let mut view = view::gather(campaign, args.shard, entries)?;
    report::mark_over_budget(campaign, &mut view.state);
    for warning in &view.warnings {
        eprintln!("warning: {warning}");
    }
    let hint = if view.has_results() {
        None
    } else {
        view::other_has_results(&campaign.output, other).map(|path| {
            let mut command = format!("runner {{}} {}", args.manifest.display());
            if let Some(Shard { k, n }) = args.shard {
                command.push_str(&format!(" --shard {k}/{n}"));
            }
            if args.simulate {
                format!(
                    "no simulated run yet; a real run exists ({}): leave out --simulate to see it (`{}`)",
                    path.display(),
                    command
                )
            } else {
                format!(
                    "no run yet; a simulated run exists ({}): add --simulate to see it (`{} --simulate`)",
                    path.display(),
                    command
                )
            }
        })
    };
    Ok((view, hint))
}

/// `runner status`.
pub fn status(args: &StatusArgs) -> Result<i32, AppError> {
    let (campaign, other) = crate::app::load_with_other(&args.paths)?;
    let (view, hint) = read_view(&args.paths, &campaign, &other, false)?;
    let hint = hint.map(|h| h.replace("runner {}", "runner status"));
    let rows: Vec<Row> = report::rows(&campaign, &view.state).collect();
    let stages: Vec<Stage> = campaign
        .jobs
        .iter()
        .map(|job| Stage::of(view.state.job(&job.id)))
        .collect();
    let mut summary = summarize(&campaign, &view, &rows, &stages);
    summary.simulated = args.paths.simulate;
    summary.shard = args.paths.shard.map(|s| format!("{}/{}", s.k, s.n));
    summary.hint = hint;
    let text = if args.json {
        json(&summary, &view, &rows, &stages)
    } else {
        let next = next_steps(&args.paths, &summary, &view);
        render(&summary, &view, &rows, &stages, args.all, &next)
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write to standard output: {e}");
        return Ok(exit::LOCAL_IO);
    }
    Ok(exit::SUCCESS)
}

/// Ended without a video, unknown, or pending with a reason (kept back by
/// the budget, a download that failed): in flight and not sent are only counted.
fn needs_attention(row: &Row) -> bool {
    match row.status {
        Status::Succeeded => false,
        Status::Failed | Status::TimedOut | Status::Expired | Status::Unknown => true,
        Status::Pending => !row.error.is_empty(),
    }
}

/// The counts, money and times of the view.
pub fn summarize(campaign: &Campaign, view: &View, rows: &[Row], stages: &[Stage]) -> Summary {
    let mut counts: BTreeMap<&'static str, usize> =
        Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let (mut in_flight, mut to_download, mut never_sent, mut to_resend) = (0, 0, 0, 0);
    let mut over_budget = 0;
    let mut attention = 0;
    for (row, &stage) in rows.iter().zip(stages) {
        *counts.entry(row.status.as_str()).or_default() += 1;
        match stage {
            Stage::InFlight => in_flight += 1,
            Stage::ToDownload => to_download += 1,
            Stage::NotSent if row.attempts == 0 => never_sent += 1,
            Stage::NotSent => to_resend += 1,
            _ => {}
        }
        if stage == Stage::NotSent && row.error == report::OVER_BUDGET {
            over_budget += 1;
        }
        attention += usize::from(needs_attention(row));
    }
    let money = (!campaign.pricing.per_model.is_empty()).then(|| money(campaign, view));
    let now = std::time::SystemTime::now();
    let since_start_secs = view.first.and_then(|first| {
        let at = humantime::parse_rfc3339(&first.to_string()).ok()?;
        Some(now.duration_since(at).ok()?.as_secs())
    });
    Summary {
        campaign: campaign.name.clone(),
        simulated: false,
        shard: None,
        total: rows.len(),
        counts,
        in_flight,
        to_download,
        never_sent,
        to_resend,
        over_budget,
        needs_attention: attention,
        money,
        started_at: view.first.map(|s| s.to_string()),
        last_record_at: view.last.map(|s| s.to_string()),
        since_start_secs,
        running: view.running(),
        hint: None,
        warnings: view.warnings.clone(),
    }
}

/// Spent: every recorded attempt at its job's price. Still to spend: the jobs
/// a plain run would send (not sent, or failed before any task existed).
fn money(campaign: &Campaign, view: &View) -> Money {
    let pricing = &campaign.pricing;
    let spent = crate::plan::spent(campaign, &view.state);
    let mut to_send = Vec::new();
    for job in &campaign.jobs {
        let js = view.state.job(&job.id);
        let sends = js.is_none_or(|js| js.phase == Phase::Pending || js.failed_unpaid());
        if sends {
            to_send.push(job);
        }
    }
    let to_spend = crate::plan::plan_for(campaign, to_send).total_cost;
    Money {
        currency: pricing.currency.clone(),
        spent: spent.known(),
        spent_complete: spent.is_known(),
        to_spend: to_spend.known(),
        to_spend_complete: to_spend.is_known() || to_spend == Cost::Known(0.0),
        budget: campaign.limits.budget,
    }
}

fn json(summary: &Summary, view: &View, rows: &[Row], stages: &[Stage]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        summary: &'a Summary,
        /// The first file read (the shard's with `--shard`), as before there were several.
        state: &'a std::path::Path,
        states: Vec<StateFile>,
        jobs: Vec<JobLine<'a>>,
    }
    let out = Out {
        summary,
        state: view
            .sources
            .iter()
            .find(|s| s.jobs > 0)
            .or(view.sources.first())
            .map_or(std::path::Path::new(""), |s| s.path.as_path()),
        states: view
            .sources
            .iter()
            .map(|s| StateFile {
                path: s.path.clone(),
                shard: s.shard.map(|s| format!("{}/{}", s.k, s.n)),
                jobs: s.jobs,
                running: s.running,
            })
            .collect(),
        jobs: rows
            .iter()
            .zip(stages)
            .map(|(row, &stage)| JobLine { row, stage })
            .collect(),
    };
    match serde_json::to_string(&out) {
        Ok(text) => text + "\n",
        // Strings and numbers only: this cannot fail, but it is not unwrapped.
        Err(e) => format!("{{\"error\":\"{e}\"}}\n"),
    }
}

/// `1h 2m 3s` from seconds.
fn ago(secs: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The commands that take the campaign on from here.
fn next_steps(args: &ManifestArg, summary: &Summary, view: &View) -> Vec<String> {
    let mut run = format!("runner run {}", args.manifest.display());
    if args.simulate {
        run.push_str(" --simulate");
    }
    let sharded = view.sources.iter().any(|s| s.shard.is_some() && s.jobs > 0);
    match args.shard {
        Some(Shard { k, n }) => run.push_str(&format!(" --shard {k}/{n}")),
        None if sharded => run.push_str(" --shard K/N"),
        None => {}
    }
    let count = |s: &str| summary.counts.get(s).copied().unwrap_or(0);
    let mut next = Vec::new();
    if summary.running {
        next.push("a run is going on now: these figures move as it records".to_string());
        return next;
    }
    if summary.hint.is_some() {
        return next;
    }
    if !view.has_results() {
        if summary.total > summary.over_budget {
            next.push(format!("`{run}` starts the campaign"));
        }
    } else if summary.in_flight + summary.to_download + summary.to_resend + summary.never_sent
        > summary.over_budget
    {
        next.push(format!(
            "`{run}` resumes: it polls what is in flight, fetches what finished and sends the rest"
        ));
    }
    if summary.over_budget > 0 {
        next.push(format!(
            "{} job{} kept back by limits.budget: raise it in the manifest, then `{run}`",
            summary.over_budget,
            if summary.over_budget == 1 {
                " is"
            } else {
                "s are"
            }
        ));
    }
    let ended = count("failed") + count("timed_out") + count("expired");
    if ended > 0 {
        next.push(format!(
            "`{run} --retry failed` makes new attempts of the {ended} that ended without a video (each is paid again)"
        ));
    }
    if count("unknown") > 0 {
        next.push(format!(
            "check the unknown submits with the provider, then `{run} --resubmit-unknown` sends them again (this may pay twice)"
        ));
    }
    next
}

fn render(
    summary: &Summary,
    view: &View,
    rows: &[Row],
    stages: &[Stage],
    all: bool,
    next: &[String],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let parts: Vec<String> = Status::ALL
        .iter()
        .filter_map(|s| {
            let n = summary.counts.get(s.as_str()).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    let what = if summary.total == 0 {
        "no jobs".to_string()
    } else {
        parts.join(", ")
    };
    let _ = writeln!(
        out,
        "{}{}: {} job{}: {what}",
        summary.campaign,
        summary
            .shard
            .as_deref()
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default(),
        summary.total,
        if summary.total == 1 { "" } else { "s" },
    );
    let pending = summary.counts.get("pending").copied().unwrap_or(0);
    if pending > 0 {
        let mut parts = vec![
            format!("{} in flight", summary.in_flight),
            format!("{} to download", summary.to_download),
            format!("{} never sent", summary.never_sent),
        ];
        if summary.to_resend > 0 {
            parts.push(format!("{} to send again", summary.to_resend));
        }
        let budget = if summary.over_budget > 0 {
            format!(" ({} kept back by limits.budget)", summary.over_budget)
        } else {
            String::new()
        };
        let _ = writeln!(out, "  pending: {}{budget}", parts.join(", "));
    }
    if let Some(m) = &summary.money {
        let amount = |v: f64, complete: bool| {
            let text = crate::plan::money(v, &m.currency);
            if complete {
                text
            } else {
                format!("≥ {text}")
            }
        };
        let budget = m
            .budget
            .map(|b| format!(" (limits.budget {})", crate::plan::money(b, &m.currency)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  cost by [pricing]: {} spent, {} still to spend{budget}",
            amount(m.spent, m.spent_complete),
            amount(m.to_spend, m.to_spend_complete),
        );
    }
    match (&summary.started_at, summary.since_start_secs) {
        (Some(at), Some(secs)) => {
            let last = view
                .last
                .and_then(|l| {
                    let t = humantime::parse_rfc3339(&l.to_string()).ok()?;
                    let secs = std::time::SystemTime::now()
                        .duration_since(t)
                        .ok()?
                        .as_secs();
                    Some(format!(", last record {} ago", ago(secs)))
                })
                .unwrap_or_default();
            let _ = writeln!(out, "  started {} ago ({at}){last}", ago(secs));
        }
        (Some(at), None) => {
            let _ = writeln!(out, "  started {at}");
        }
        _ => {}
    }
    let shown: Vec<&view::Source> = view.sources.iter().filter(|s| s.jobs > 0).collect();
    match shown.as_slice() {
        [] => {
            let path = view.sources.first().map(|s| s.path.display().to_string());
            let _ = writeln!(
                out,
                "  no run yet: nothing recorded in {}",
                path.unwrap_or_default()
            );
        }
        [one] => {
            let _ = writeln!(out, "  state: {}", one.path.display());
        }
        many => {
            let _ = writeln!(out, "  state: {} files", many.len());
            for s in many {
                let jobs = if s.jobs == 1 { "job" } else { "jobs" };
                let _ = writeln!(out, "    {} ({} {jobs})", s.path.display(), s.jobs);
            }
        }
    }
    if let Some(hint) = &summary.hint {
        let _ = writeln!(out, "{hint}");
    }
    let listed: Vec<(&Row, Stage)> = rows
        .iter()
        .zip(stages.iter().copied())
        .filter(|(row, _)| all || needs_attention(row))
        .collect();
    if !listed.is_empty() {
        let width = listed
            .iter()
            .map(|(r, _)| r.job_id.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        if all {
            let _ = writeln!(out, "jobs ({}):", listed.len());
        } else {
            let _ = writeln!(out, "needs attention ({}):", listed.len());
        }
        let limit = if all { usize::MAX } else { ATTENTION_LINES };
        for (row, stage) in listed.iter().take(limit) {
            let reason = reason(row, *stage);
            let task = if row.task_id.is_empty() {
                String::new()
            } else {
                format!(" [task {}]", row.task_id)
            };
            if all {
                let _ = writeln!(
                    out,
                    "  {:<9}  {:<11}  {:<width$}  {reason}{task}",
                    row.status.as_str(),
                    stage.as_str(),
                    row.job_id,
                );
            } else {
                let _ = writeln!(
                    out,
                    "  {:<9}  {:<width$}  {reason}{task}",
                    row.status.as_str(),
                    row.job_id,
                );
            }
        }
        if listed.len() > limit {
            let _ = writeln!(
                out,
                "  … and {} more (--all lists every job; --json for scripts)",
                listed.len() - limit
            );
        }
    }
    for line in next {
        let _ = writeln!(out, "next: {line}");
    }
    out
}

/// Why a job is where it is, in a few words.
fn reason<'a>(row: &'a Row, stage: Stage) -> std::borrow::Cow<'a, str> {
    if !row.error.is_empty() {
        return std::borrow::Cow::Borrowed(&row.error);
    }
    std::borrow::Cow::Borrowed(match (row.status, stage) {
        (Status::Succeeded, _) => "",
        (_, Stage::InFlight) => "at the provider, not finished",
        (_, Stage::ToDownload) => "finished; the video is not on disk yet",
        (_, Stage::NotSent) if row.attempts == 0 => "never sent",
        (_, Stage::NotSent) => "to be sent again",
        (Status::Unknown, _) => "a submit's outcome is unknown: a task may exist",
        _ => "no reason was recorded",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Record;
    use crate::state::CampaignState;

    fn campaign() -> Campaign {
        let mut toml = String::from(
            "name = \"c\"\n[limits]\nbudget = 3.5\n[pricing]\ngemini_omni_flash = { per_video = 1 }\n[defaults]\nmodel = \"gemini_omni_flash\"\n",
        );
        for id in ["ok", "bad", "lost", "fly", "ready", "new1", "new2"] {
            toml.push_str(&format!("[[job]]\nid = \"{id}\"\nprompt = \"p {id}\"\n"));
        }
        crate::manifest::load_str(&toml, std::path::Path::new("/tmp/c.toml")).unwrap()
    }

    fn state() -> CampaignState {
        let t = "2026-01-01T00:00:00Z";
        let mut s = CampaignState::default();
        let submitted = |job: &str| Record::Submitted {
            job: job.into(),
            attempt: 1,
            task_id: format!("t-{job}"),
        };
        for job in ["ok", "bad", "fly", "ready"] {
            s.apply(t, submitted(job));
        }
        s.apply(
            t,
            Record::Downloaded {
                job: "ok".into(),
                task_id: "t-ok".into(),
                path: "ok.mp4".into(),
                bytes: 9,
                sha256: "ab".into(),
            },
        );
        s.apply(
            t,
            Record::TaskFailed {
                job: "bad".into(),
                task_id: "t-bad".into(),
                error: "the generation failed: content policy".into(),
            },
        );
        s.apply(
            t,
            Record::Completed {
                job: "ready".into(),
                task_id: "t-ready".into(),
                url: "u".into(),
                expires_at: None,
            },
        );
        s.apply(
            t,
            Record::Submitting {
                job: "lost".into(),
                attempt: 1,
                fingerprint: "f".into(),
                client_business_id: None,
            },
        );
        s.settle();
        s
    }

    fn summary_of(campaign: &Campaign, state: CampaignState) -> (Summary, String) {
        let mut view = View {
            state,
            ..View::default()
        };
        report::mark_over_budget(campaign, &mut view.state);
        let rows: Vec<Row> = report::rows(campaign, &view.state).collect();
        let stages: Vec<Stage> = campaign
            .jobs
            .iter()
            .map(|j| Stage::of(view.state.job(&j.id)))
            .collect();
        let summary = summarize(campaign, &view, &rows, &stages);
        let text = render(&summary, &view, &rows, &stages, false, &[]);
        let json = json(&summary, &view, &rows, &stages);
        (summary, text + "\n" + &json)
    }

    #[test]
    fn the_summary_splits_pending_and_counts_money() {
        let campaign = campaign();
        let (s, _) = summary_of(&campaign, state());
        assert_eq!(s.total, 7);
        assert_eq!(s.counts["succeeded"], 1);
        assert_eq!(s.counts["failed"], 1);
        assert_eq!(s.counts["unknown"], 1);
        assert_eq!(s.counts["pending"], 4);
        assert_eq!(
            s.counts["timed_out"], 0,
            "every status is counted, zeros too"
        );
        assert_eq!((s.in_flight, s.to_download, s.never_sent), (1, 1, 2));
        // Five attempts at 1 each spent: neither new job fits a budget of 3.5.
        assert_eq!(s.over_budget, 2);
        let m = s.money.unwrap();
        assert_eq!((m.spent, m.spent_complete), (5.0, true));
        assert_eq!((m.to_spend, m.to_spend_complete), (2.0, true));
        assert_eq!(m.budget, Some(3.5));
        assert_eq!(
            s.needs_attention, 4,
            "the failure, the unknown, two over budget"
        );
        assert_eq!(s.started_at, None, "no journal read");
    }

    #[test]
    fn the_text_gives_the_summary_then_the_reasons() {
        let campaign = campaign();
        let (_, text) = summary_of(&campaign, state());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "c: 7 jobs: 1 succeeded, 1 failed, 1 unknown, 4 pending"
        );
        assert_eq!(
            lines[1],
            "  pending: 1 in flight, 1 to download, 2 never sent (2 kept back by limits.budget)"
        );
        assert_eq!(
            lines[2],
            "  cost by [pricing]: $5.00 spent, $2.00 still to spend (limits.budget $3.50)"
        );
        assert!(text.contains("needs attention (4):"), "{text}");
        assert!(
            text.contains("failed     bad   the generation failed: content policy [task t-bad]"),
            "{text}"
        );
        assert!(
            text.contains("unknown    lost  the run stopped before"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pending    new1  {}", report::OVER_BUDGET)),
            "{text}"
        );
        assert!(
            !text.contains("  fly "),
            "in flight is counted, not listed: {text}"
        );
    }

    #[test]
    fn the_json_has_the_summary_and_each_row_with_its_stage() {
        let campaign = campaign();
        let (_, text) = summary_of(&campaign, state());
        let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(json["total"], 7);
        assert_eq!(json["counts"]["pending"], 4);
        assert_eq!(json["in_flight"], 1);
        assert_eq!(json["never_sent"], 2);
        assert_eq!(json["money"]["spent"], 5.0);
        let jobs = json["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 7, "every job");
        // The report's columns, then the stage.
        let keys: Vec<&str> = jobs[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for column in report::COLUMNS {
            assert!(keys.contains(column), "{column} in {keys:?}");
        }
        assert_eq!(jobs[0]["status"], "succeeded");
        assert_eq!(jobs[0]["bytes"], 9);
        assert_eq!(jobs[3]["stage"], "in_flight");
        assert_eq!(jobs[4]["stage"], "to_download");
        assert_eq!(jobs[5]["stage"], "not_sent");
        assert_eq!(jobs[5]["error"], report::OVER_BUDGET);
    }

    #[test]
    fn many_attention_lines_are_cut_unless_all() {
        let mut toml = String::from("name = \"m\"\n[defaults]\nmodel = \"gemini_omni_flash\"\n");
        let mut state = CampaignState::default();
        for i in 0..60 {
            toml.push_str(&format!("[[job]]\nid = \"j{i}\"\nprompt = \"p\"\n"));
            state.apply(
                "2026-01-01T00:00:00Z",
                Record::Finished {
                    job: format!("j{i}"),
                    status: "timed_out".into(),
                    error: "gave up".into(),
                },
            );
        }
        let campaign =
            crate::manifest::load_str(&toml, std::path::Path::new("/tmp/m.toml")).unwrap();
        let view = View {
            state,
            ..View::default()
        };
        let rows: Vec<Row> = report::rows(&campaign, &view.state).collect();
        let stages = vec![Stage::Ended; rows.len()];
        let summary = summarize(&campaign, &view, &rows, &stages);
        assert!(summary.money.is_none(), "no [pricing]");
        let short = render(&summary, &view, &rows, &stages, false, &[]);
        assert!(short.contains("… and 10 more (--all"), "{short}");
        let all = render(&summary, &view, &rows, &stages, true, &[]);
        assert_eq!(all.lines().filter(|l| l.contains("gave up")).count(), 60);
        assert!(
            all.contains("timed_out  ended        j59  gave up"),
            "{all}"
        );
    }
}
