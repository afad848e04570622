//! What a run says when it ends (text for a person, one JSON object for a
//! script), and what a dry run says `limits.budget` would leave unsent.
//!
//! Pure: built from the [`RunSummary`], the campaign and the command line as
//! typed, so the next command it prints is the one to copy.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cli::RunArgs;
use crate::manifest::{Campaign, Job};
use crate::plan::{Cost, money};
use crate::run::RunSummary;
use crate::run::progress::short_duration;
use crate::state::{CampaignState, JobState, Phase, Status};

/// Why some jobs did not succeed, and the command that deals with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Paid failures with no attempt left (failed, timed out, expired).
    RetryFailed,
    /// A submit whose outcome is unknown: a task may exist.
    ResubmitUnknown,
    /// Failed before any task existed: nothing paid; the service said why.
    FailedUnpaid,
    /// Left unsent by `limits.budget`.
    Budget,
    /// Left unsent by `--skip-existing`: a file is in the way.
    SkipExisting,
    /// Not finished (stopped, interrupted, an attempt left, a download to
    /// finish): a plain rerun resumes it.
    Resume,
}

impl Step {
    /// What the jobs are, then what to do, for `N {what}: {advice}`.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Step::RetryFailed => (
                "ended failed, timed_out or expired",
                "new attempts (each a new paid generation)",
            ),
            Step::ResubmitUnknown => (
                "unknown",
                "a task may exist for each: check with the provider, then resend them (this may pay twice)",
            ),
            Step::FailedUnpaid => (
                "failed before any task existed (nothing was paid)",
                "see the report's error column, fix the manifest if it says so, then run again",
            ),
            Step::Budget => (
                "not sent: limits.budget reached",
                "raise limits.budget in the manifest, then run again",
            ),
            Step::SkipExisting => (
                "not sent: a file is already at their output path (--skip-existing)",
                "move those files away, then run again",
            ),
            Step::Resume => ("not finished", "run again to resume"),
        }
    }

    /// The flag the next command adds.
    fn flag(self) -> Option<&'static str> {
        match self {
            Step::RetryFailed => Some("--retry failed"),
            Step::ResubmitUnknown => Some("--resubmit-unknown"),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Step::RetryFailed => "retry_failed",
            Step::ResubmitUnknown => "resubmit_unknown",
            Step::FailedUnpaid => "failed_unpaid",
            Step::Budget => "budget",
            Step::SkipExisting => "skip_existing",
            Step::Resume => "resume",
        }
    }
}

/// The step for a job that did not succeed (`None` for one that did).
fn step_of(js: Option<&JobState>, max_attempts: u32) -> Option<Step> {
    let Some(js) = js else {
        return Some(Step::Resume);
    };
    let not_sent = |why: &str| {
        js.attempts == 0
            && js
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("not submitted:") && e.contains(why))
    };
    match js.status() {
        Status::Succeeded => None,
        Status::Unknown => Some(Step::ResubmitUnknown),
        Status::Failed if js.failed_unpaid() => Some(Step::FailedUnpaid),
        // An attempt left: a plain rerun sends it.
        Status::Failed
            if matches!(js.phase, Phase::TaskFailed { .. }) && js.attempts < max_attempts =>
        {
            Some(Step::Resume)
        }
        Status::Failed | Status::TimedOut | Status::Expired => Some(Step::RetryFailed),
        Status::Pending if not_sent("limits.budget") => Some(Step::Budget),
        Status::Pending if not_sent("--skip-existing") => Some(Step::SkipExisting),
        Status::Pending => Some(Step::Resume),
    }
}

/// A word as a POSIX shell reads it back: as is when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./,:=@%+-".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `runner run MANIFEST` with the flags that say which campaign, which files,
/// which server and which jobs, as typed: the start of every next command.
pub fn rerun_command(args: &RunArgs) -> String {
    let mut words = campaign_words("run", args);
    if let Some(url) = &args.base_url {
        words.extend(["--base-url".into(), url.clone()]);
    }
    if let Some(scale) = args.sim_time_scale {
        words.extend(["--sim-time-scale".into(), scale.to_string()]);
    }
    if !args.only.is_empty() {
        words.extend(["--only".into(), args.only.join(",")]);
    }
    join_words(&words)
}

/// `runner report MANIFEST --html` for the same campaign and files.
pub fn html_command(args: &RunArgs) -> String {
    let mut words = campaign_words("report", args);
    words.push("--html".into());
    join_words(&words)
}

/// `runner COMMAND MANIFEST` and the flags that pick the campaign's files.
fn campaign_words(command: &str, args: &RunArgs) -> Vec<String> {
    let mut words = vec![
        "runner".to_owned(),
        command.to_owned(),
        args.paths.manifest.display().to_string(),
    ];
    if args.paths.simulate {
        words.push("--simulate".into());
    }
    if let Some(shard) = args.paths.shard {
        words.extend(["--shard".into(), format!("{}/{}", shard.k, shard.n)]);
    }
    for (flag, path) in [
        ("--state", &args.paths.state),
        ("--out", &args.paths.out),
        ("--report", &args.paths.report),
    ] {
        if let Some(path) = path {
            words.extend([flag.to_owned(), path.display().to_string()]);
        }
    }
    words
}

fn join_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One next step: the jobs it concerns and the command.
#[derive(Debug, Clone, PartialEq)]
pub struct NextStep {
    pub step: Step,
    pub jobs: usize,
    pub command: String,
}

/// Everything the ending says.
#[derive(Debug)]
pub struct Recap<'a> {
    campaign: &'a Campaign,
    summary: &'a RunSummary,
    /// Jobs of the campaign (in this shard).
    total: usize,
    /// Jobs this run worked on.
    selected: usize,
    only: bool,
    /// Every job the tasks recorded cost, and what this run added.
    spent: Cost,
    spent_this_run: Cost,
    ids: BTreeMap<Status, Vec<&'a str>>,
    next: Vec<NextStep>,
    manifest: String,
    html_command: String,
}

impl<'a> Recap<'a> {
    /// `args`: the command line that ran (the next commands are built from it).
    pub fn new(campaign: &'a Campaign, summary: &'a RunSummary, args: &RunArgs) -> Recap<'a> {
        let rerun = rerun_command(args);
        let only = &args.only;
        let selected_only: Option<std::collections::HashSet<&str>> =
            (!only.is_empty()).then(|| only.iter().map(String::as_str).collect());
        let mut ids: BTreeMap<Status, Vec<&str>> = BTreeMap::new();
        let mut steps: BTreeMap<Step, usize> = BTreeMap::new();
        let mut selected = 0;
        for job in &campaign.jobs {
            if selected_only
                .as_ref()
                .is_some_and(|only| !only.contains(job.id.as_str()))
            {
                continue;
            }
            selected += 1;
            let js = summary.state.job(&job.id);
            let status = js.map_or(Status::Pending, JobState::status);
            if status != Status::Succeeded {
                ids.entry(status).or_default().push(&job.id);
            }
            if let Some(step) = step_of(js, campaign.limits.max_attempts) {
                *steps.entry(step).or_default() += 1;
            }
        }
        let next = steps
            .into_iter()
            .map(|(step, jobs)| NextStep {
                step,
                jobs,
                command: match step.flag() {
                    Some(flag) => format!("{rerun} {flag}"),
                    None => rerun.clone(),
                },
            })
            .collect();
        let spent = crate::run::spent(campaign, &summary.state);
        let spent_this_run = match (spent, summary.spent_before) {
            (Cost::Known(now), Cost::Known(before)) => Cost::Known((now - before).max(0.0)),
            (now, before) => Cost::Partial {
                known: (now.known() - before.known()).max(0.0),
            },
        };
        Recap {
            campaign,
            summary,
            total: campaign.jobs.len(),
            selected,
            only: selected_only.is_some(),
            spent,
            spent_this_run,
            ids,
            next,
            manifest: args.paths.manifest.display().to_string(),
            html_command: html_command(args),
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.summary.exit_code()
    }

    pub fn next_steps(&self) -> &[NextStep] {
        &self.next
    }

    fn html_path(&self) -> std::path::PathBuf {
        crate::html::path_next_to(&self.summary.report_path)
    }

    /// What the run did, for a person (no trailing newline).
    pub fn text(&self) -> String {
        let s = self.summary;
        let counts: Vec<String> = s
            .selected
            .iter()
            .map(|(st, n)| format!("{n} {st}"))
            .collect();
        let counts = if counts.is_empty() {
            "nothing to do".to_owned()
        } else {
            counts.join(", ")
        };
        let elapsed = short_duration(s.elapsed);
        let mut out = String::new();
        if self.only {
            let _ = write!(
                out,
                "{}: {} of {} jobs selected (--only), in {elapsed}: {counts}",
                self.campaign.name, self.selected, self.total
            );
        } else {
            let _ = write!(
                out,
                "{}: {} jobs in {elapsed}: {counts}",
                self.campaign.name, self.total
            );
        }
        if s.interrupted {
            out.push_str(" (interrupted)");
        }
        let pricing = &self.campaign.pricing;
        if pricing.per_model.is_empty() {
            out.push_str("\ncost: not estimated (no [pricing] in the manifest)");
        } else {
            let currency = &pricing.currency;
            let _ = write!(
                out,
                "\ncost: {} by the price table, {} of it in this run",
                self.spent.display(currency),
                self.spent_this_run.display(currency)
            );
            if !self.spent.is_known() && self.spent != Cost::Known(0.0) {
                out.push_str(" (a model in use has no price)");
            }
        }
        let _ = write!(
            out,
            "\nreport: {}\nhtml: {} writes {}",
            s.report_path.display(),
            self.html_command,
            self.html_path().display()
        );
        // After a fatal error its own advice says what to do.
        if s.fatal.is_some() || self.next.is_empty() {
            return out;
        }
        out.push_str("\nnext:");
        for step in &self.next {
            let (what, advice) = step.step.words();
            let _ = write!(
                out,
                "\n  {} {what}: {advice}:\n    {}",
                step.jobs, step.command
            );
        }
        out
    }

    /// What the run did, for a script: one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let s = self.summary;
        let counts: serde_json::Map<String, serde_json::Value> = Status::ALL
            .iter()
            .map(|st| {
                let n = s.selected.get(st).copied().unwrap_or(0);
                (st.as_str().to_owned(), n.into())
            })
            .collect();
        let ids: serde_json::Map<String, serde_json::Value> = self
            .ids
            .iter()
            .map(|(st, ids)| (st.as_str().to_owned(), serde_json::json!(ids)))
            .collect();
        let cost = if self.campaign.pricing.per_model.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!({
                "currency": self.campaign.pricing.currency,
                "spent": self.spent.known(),
                "spent_this_run": self.spent_this_run.known(),
                "complete": self.spent.is_known(),
            })
        };
        let next: Vec<serde_json::Value> = self
            .next
            .iter()
            .map(|n| serde_json::json!({"reason": n.step.name(), "jobs": n.jobs, "command": n.command}))
            .collect();
        serde_json::json!({
            "campaign": self.campaign.name,
            "manifest": self.manifest,
            "exit_code": self.exit_code(),
            "interrupted": s.interrupted,
            "error": s.fatal.as_ref().map(ToString::to_string),
            "elapsed_secs": (s.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "total": self.total,
            "selected": self.selected,
            "counts": counts,
            "cost": cost,
            "report": {
                "csv": s.report_path,
                "html": self.html_path(),
            },
            "not_succeeded": ids,
            "next": next,
        })
    }
}

/// An empty shard, for a person.
pub fn empty_shard_text(campaign: &str, k: u32, n: u32) -> String {
    format!(
        "{campaign}: shard {k}/{n} has no jobs (every job id hashes to another shard); nothing to do"
    )
}

/// A run refused before it started (exit 2 or 3: nothing was sent), for a
/// script: the run's JSON with its error and no counts.
pub fn refused_json(manifest: &str, exit_code: i32, error: &str) -> serde_json::Value {
    serde_json::json!({
        "campaign": null,
        "manifest": manifest,
        "exit_code": exit_code,
        "interrupted": false,
        "error": error,
        "elapsed_secs": 0.0,
        "total": null,
        "selected": null,
        "counts": null,
        "cost": null,
        "report": null,
        "not_succeeded": {},
        "next": [],
    })
}

/// An empty shard, for a script: the run's JSON with nothing in it.
pub fn empty_shard_json(campaign: &str, manifest: &str, k: u32, n: u32) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = Status::ALL
        .iter()
        .map(|st| (st.as_str().to_owned(), 0.into()))
        .collect();
    serde_json::json!({
        "campaign": campaign,
        "manifest": manifest,
        "exit_code": crate::exit::SUCCESS,
        "interrupted": false,
        "error": null,
        "elapsed_secs": 0.0,
        "total": 0,
        "selected": 0,
        "counts": counts,
        "cost": null,
        "report": null,
        "not_succeeded": {},
        "next": [],
        "shard": format!("{k}/{n}"),
        "note": empty_shard_text(campaign, k, n),
    })
}

/// What `limits.budget` lets a run of `to_submit` send, in the order the
/// engine sends them: the same test it makes (what the recorded tasks cost,
/// plus this job, at most the budget), so a cheaper job after one that does
/// not fit may still fit. Before any retry within the run.
#[derive(Debug)]
pub struct BudgetFit<'a> {
    pub budget: f64,
    /// What the tasks already recorded cost.
    pub spent: f64,
    pub fit: Vec<&'a Job>,
    pub left: Vec<&'a Job>,
    /// What the jobs that fit cost.
    pub cost: f64,
}

pub fn budget_fit<'a>(
    campaign: &Campaign,
    state: &CampaignState,
    to_submit: &[&'a Job],
) -> Option<BudgetFit<'a>> {
    let budget = campaign.limits.budget?;
    let spent = crate::run::spent(campaign, state).known();
    let mut fit = Vec::new();
    let mut left = Vec::new();
    let mut total = spent;
    for &job in to_submit {
        let cost = crate::plan::job_cost(&campaign.pricing, job).unwrap_or(0.0);
        if crate::plan::fits_budget(total, cost, budget) {
            total += cost;
            fit.push(job);
        } else {
            left.push(job);
        }
    }
    Some(BudgetFit {
        budget,
        spent,
        fit,
        left,
        cost: total - spent,
    })
}

impl BudgetFit<'_> {
    /// `budget: $2.50 ($0.00 spent before): 2 of 6 jobs fit ($2.00); 4 would be left pending: a, b, c, d`.
    pub fn text(&self, currency: &str) -> String {
        let mut text = format!(
            "budget: {} ({} spent before): {} of {} jobs fit ({})",
            money(self.budget, currency),
            money(self.spent, currency),
            self.fit.len(),
            self.fit.len() + self.left.len(),
            money(self.cost, currency),
        );
        if !self.left.is_empty() {
            let ids: Vec<&str> = self.left.iter().map(|j| j.id.as_str()).collect();
            let _ = write!(
                text,
                "; {} would be left pending: {}",
                self.left.len(),
                preview(&ids, 10)
            );
        }
        text
    }
}

/// `1 job`, `2 jobs`.
pub fn jobs(n: usize) -> String {
    if n == 1 {
        "1 job".into()
    } else {
        format!("{n} jobs")
    }
}

fn preview(ids: &[&str], n: usize) -> String {
    let mut text = ids.iter().take(n).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > n {
        let _ = write!(text, " and {} more", ids.len() - n);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_a_copy_and_paste() {
        assert_eq!(shell_word("jobs/campaign.toml"), "jobs/campaign.toml");
        assert_eq!(shell_word("my jobs.toml"), "'my jobs.toml'");
        assert_eq!(shell_word("it's.toml"), r"'it'\''s.toml'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn each_job_gets_the_step_that_helps_it() {
        let mut js = JobState::NEW;
        assert_eq!(step_of(None, 2), Some(Step::Resume));
        assert_eq!(step_of(Some(&js), 2), Some(Step::Resume));
        js.last_error = Some("not submitted: limits.budget reached".into());
        assert_eq!(step_of(Some(&js), 2), Some(Step::Budget));
        js.last_error = Some("not submitted: out/a.mp4 already exists (--skip-existing)".into());
        assert_eq!(step_of(Some(&js), 2), Some(Step::SkipExisting));
        js.last_error = None;
        js.attempts = 1;
        js.phase = Phase::Unknown { attempt: 1 };
        assert_eq!(step_of(Some(&js), 2), Some(Step::ResubmitUnknown));
        js.phase = Phase::TaskFailed {
            task_id: "t".into(),
        };
        assert_eq!(step_of(Some(&js), 2), Some(Step::Resume), "an attempt left");
        assert_eq!(step_of(Some(&js), 1), Some(Step::RetryFailed));
        js.phase = Phase::Finished {
            status: Status::TimedOut,
        };
        assert_eq!(step_of(Some(&js), 2), Some(Step::RetryFailed));
        js.phase = Phase::Finished {
            status: Status::Failed,
        };
        js.ended_unpaid = true;
        assert_eq!(step_of(Some(&js), 2), Some(Step::FailedUnpaid));
    }
}
