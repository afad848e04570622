//! One view of a campaign from every state file it has: the unsharded one and
//! each `--shard K/N` one beside it (`state.shard-K-of-N.jsonl`).
//!
//! `status` and `report` read this. Each job's state comes whole from one
//! file, never pieced together from two: the file that names it, or, when
//! several do (the campaign was resharded, or run unsharded and then
//! sharded), the one whose shard owns the job by [`shard_of`], the newest
//! such file first; the others are named in a warning.

use std::path::{Path, PathBuf};

use foldhash::{HashMap, HashMapExt};

use crate::app::shard_of;
use crate::cli::Shard;
use crate::journal::{self, Entry, JournalError};
use crate::manifest::{Campaign, Output};
use crate::state::{CampaignState, Stamp};

/// One state file the view read.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// The shard its name says, `None` for the unsharded file.
    pub shard: Option<Shard>,
    /// Jobs of the manifest this file's state is shown for.
    pub jobs: usize,
    /// A run holds its lock now.
    pub running: bool,
}

/// The campaign as its state files say, merged.
#[derive(Debug, Default)]
pub struct View {
    /// Every job's state, each from the file that owns it.
    pub state: CampaignState,
    /// With `entries`: the owning files' records of the manifest's jobs, oldest first.
    pub entries: Vec<Entry>,
    /// The files found, in order: the unsharded one, then by N and K.
    pub sources: Vec<Source>,
    /// The earliest and the latest record of any file.
    pub first: Option<Stamp>,
    pub last: Option<Stamp>,
    /// Said on stderr by the commands: jobs found in more than one file.
    pub warnings: Vec<String>,
}

impl View {
    /// Whether any file records anything about a job.
    pub fn has_results(&self) -> bool {
        !self.state.is_empty()
    }

    pub fn running(&self) -> bool {
        self.sources.iter().any(|s| s.running)
    }
}

/// Reads the campaign's state: with `shard`, that shard's file alone
/// (`campaign.output` already names it); without, every file beside the
/// campaign's state path. `entries` keeps the records (for the HTML timeline).
pub fn gather(
    campaign: &Campaign,
    shard: Option<Shard>,
    entries: bool,
) -> Result<View, JournalError> {
    let base = campaign.output.state_path();
    let files: Vec<(PathBuf, Option<Shard>)> = match shard {
        Some(shard) => vec![(base, Some(shard))],
        None => state_files(&base),
    };
    let mut loaded = Vec::with_capacity(files.len());
    for (path, shard) in files {
        loaded.push(read_one(&path, shard, campaign, entries)?);
    }
    Ok(merge(campaign, loaded))
}

/// Before a run: the other state files of this campaign (another shard
/// split, or the unsharded file when this run is a shard, or the reverse)
/// that record a task of one of this run's jobs, with how many. This run's
/// own state knows nothing of those tasks, so it would pay for them again.
pub fn recorded_elsewhere(
    campaign: &Campaign,
    shard: Option<Shard>,
) -> Result<Vec<(PathBuf, usize)>, JournalError> {
    let this = campaign.output.state_path();
    let base = match shard {
        Some(shard) => unsharded(&this, shard),
        None => this.clone(),
    };
    let mut found = Vec::new();
    for (path, file_shard) in state_files(&base) {
        if path == this || !path.exists() {
            continue;
        }
        let state = read_one(&path, file_shard, campaign, false)?.state;
        let paid = campaign
            .jobs
            .iter()
            .filter(|job| state.job(&job.id).is_some_and(|js| js.attempts > 0))
            .count();
        if paid > 0 {
            found.push((path, paid));
        }
    }
    Ok(found)
}

/// `state.shard-2-of-3.jsonl` → `state.jsonl`.
fn unsharded(path: &Path, shard: Shard) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!(".shard-{}-of-{}", shard.k, shard.n);
    path.with_file_name(name.replacen(&suffix, "", 1))
}

/// The state files of a campaign whose unsharded state is `base`: `base`
/// itself, then every `<stem>.shard-K-of-N.<ext>` beside it, by N then K.
/// Files that do not exist are left out, but `base` is always first.
pub fn state_files(base: &Path) -> Vec<(PathBuf, Option<Shard>)> {
    let mut files = vec![(base.to_path_buf(), None)];
    let dir = match base.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Ok(read) = std::fs::read_dir(dir) else {
        return files;
    };
    let mut shards: Vec<(Shard, PathBuf)> = read
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let shard = shard_in_name(base, &name.to_string_lossy())?;
            Some((shard, entry.path()))
        })
        .collect();
    shards.sort_by_key(|(s, _)| (s.n, s.k));
    files.extend(shards.into_iter().map(|(s, p)| (p, Some(s))));
    files
}

/// `state.shard-2-of-3.jsonl` beside `state.jsonl` → shard 2/3.
fn shard_in_name(base: &Path, name: &str) -> Option<Shard> {
    let stem = base.file_stem()?.to_string_lossy();
    let rest = name.strip_prefix(&*stem)?.strip_prefix(".shard-")?;
    let rest = match base.extension() {
        Some(ext) => rest
            .strip_suffix(&*ext.to_string_lossy())?
            .strip_suffix('.')?,
        None => rest,
    };
    let (k, n) = rest.split_once("-of-")?;
    let (k, n): (u32, u32) = (k.parse().ok()?, n.parse().ok()?);
    (k >= 1 && k <= n).then_some(Shard { k, n })
}

/// One state file, folded.
struct Loaded {
    path: PathBuf,
    shard: Option<Shard>,
    state: CampaignState,
    entries: Vec<Entry>,
    first: Option<Stamp>,
    last: Option<Stamp>,
    running: bool,
}

fn read_one(
    path: &Path,
    shard: Option<Shard>,
    campaign: &Campaign,
    keep: bool,
) -> Result<Loaded, JournalError> {
    let mut state = CampaignState::with_capacity(if shard.is_some() {
        campaign.jobs.len() / 2
    } else {
        campaign.jobs.len()
    });
    let mut entries = Vec::new();
    let (mut first, mut last) = (None, None);
    let replay = journal::replay(path, |entry| {
        let at = Stamp::parse(&entry.t);
        first = first.or(at);
        last = at.or(last);
        if keep {
            entries.push(entry.clone());
        }
        state.apply(&entry.t, entry.record);
    })?;
    replay.check_campaign(path, &campaign.name)?;
    state.settle();
    Ok(Loaded {
        path: path.to_path_buf(),
        shard,
        state,
        entries,
        first,
        last,
        running: replay.records > 0 && is_locked(path),
    })
}

/// A run of this state file holds its lock now (`runner status` during a run).
fn is_locked(path: &Path) -> bool {
    let Ok(lock) = std::fs::File::open(journal::lock_path(path)) else {
        return false;
    };
    matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Which file each job's state is shown from, then the states moved there.
fn merge(campaign: &Campaign, loaded: Vec<Loaded>) -> View {
    let mut view = View {
        first: loaded.iter().filter_map(|l| l.first).min(),
        last: loaded.iter().filter_map(|l| l.last).max(),
        ..View::default()
    };
    // The owner of each manifest job that some file names: the index of its file.
    let mut owner: HashMap<&str, usize> = HashMap::with_capacity(campaign.jobs.len());
    // (shown from, also in) → jobs, for the warning.
    let mut doubles: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    let mut counts = vec![0usize; loaded.len()];
    for job in &campaign.jobs {
        let mut holders = loaded
            .iter()
            .enumerate()
            .filter(|(_, l)| l.state.contains(&job.id));
        let Some((first, _)) = holders.next() else {
            continue;
        };
        let mut chosen = first;
        let mut others = Vec::new();
        for (i, _) in holders {
            if better(&loaded[i], &loaded[chosen], &job.id) {
                others.push(chosen);
                chosen = i;
            } else {
                others.push(i);
            }
        }
        for other in others {
            *doubles.entry((chosen, other)).or_default() += 1;
        }
        counts[chosen] += 1;
        owner.insert(&job.id, chosen);
    }
    for ((shown, also), jobs) in doubles {
        view.warnings.push(format!(
            "{jobs} job{s} recorded in both {} and {} (was the campaign resharded?): \
             shown from {}, by the shard each job hashes to, else the newer file",
            loaded[shown].path.display(),
            loaded[also].path.display(),
            loaded[shown].path.display(),
            s = if jobs == 1 { "" } else { "s" },
        ));
    }
    let single = loaded.len() == 1;
    let mut merged = CampaignState::default();
    for (i, l) in loaded.into_iter().enumerate() {
        view.sources.push(Source {
            path: l.path,
            shard: l.shard,
            jobs: counts[i],
            running: l.running,
        });
        view.entries.extend(
            l.entries
                .into_iter()
                .filter(|e| e.record.job().and_then(|j| owner.get(j)) == Some(&i)),
        );
        if single {
            merged = l.state;
            continue;
        }
        merged.uploads.extend(l.state.uploads.clone());
        for (id, js) in l.state.into_jobs() {
            if owner.get(id.as_str()) == Some(&i) {
                merged.insert(&id, js);
            }
        }
    }
    // Stamps are all written alike (RFC 3339, seconds, UTC): text order is time order.
    if !single {
        view.entries.sort_by(|a, b| a.t.cmp(&b.t));
    }
    view.state = merged;
    view
}

/// Whether file `a` is a better source for `job` than `b`: its shard owns the
/// job by [`shard_of`] and `b`'s does not; else the newer file.
fn better(a: &Loaded, b: &Loaded, job: &str) -> bool {
    let owns_job = |l: &Loaded| l.shard.is_none_or(|s| shard_of(job, s.n) == s.k);
    match (owns_job(a), owns_job(b)) {
        (true, false) => true,
        (false, true) => false,
        _ => a.last > b.last,
    }
}

/// Whether the other mode's files (simulated when this is not, or real when
/// this is) hold any result: the state path it names, and its shards.
pub fn other_has_results(this: &Output, other: &Output) -> Option<PathBuf> {
    let path = other.state_path();
    if path == this.state_path() {
        return None;
    }
    state_files(&path)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0) && has_job_record(p))
}

/// The file names at least one job (a header alone is no result).
fn has_job_record(path: &Path) -> bool {
    let mut found = false;
    let _ = journal::replay(path, |entry| found |= entry.record.job().is_some());
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, Record};

    #[test]
    fn shard_files_are_told_from_others() {
        let base = Path::new("/x/state.jsonl");
        let shard = |name| shard_in_name(base, name);
        assert_eq!(
            shard("state.shard-2-of-3.jsonl"),
            Some(Shard { k: 2, n: 3 })
        );
        assert_eq!(shard("state.shard-2-of-3.jsonl.lock"), None);
        assert_eq!(shard("state.shard-4-of-3.jsonl"), None);
        assert_eq!(shard("state.shard-0-of-3.jsonl"), None);
        assert_eq!(shard("state.jsonl"), None);
        assert_eq!(shard("other.shard-1-of-2.jsonl"), None);
        assert_eq!(shard("state.shard-x-of-2.jsonl"), None);
        let bare = Path::new("/x/journal");
        assert_eq!(
            shard_in_name(bare, "journal.shard-1-of-2"),
            Some(Shard { k: 1, n: 2 })
        );
    }

    fn campaign(dir: &Path, n: usize) -> Campaign {
        let mut toml = String::from(
            "name = \"c\"\n[output]\ndir = \"out\"\n[defaults]\nmodel = \"gemini_omni_flash\"\n",
        );
        for i in 0..n {
            toml.push_str(&format!("[[job]]\nid = \"j{i}\"\nprompt = \"p {i}\"\n"));
        }
        crate::manifest::load_str(&toml, &dir.join("c.toml")).unwrap()
    }

    fn write(path: &Path, jobs: &[(&str, &str)]) {
        let (mut journal, _) = Journal::open(path, "c", "c.toml", |_| {}).unwrap();
        for (job, task) in jobs {
            journal
                .append(&Record::Submitted {
                    job: (*job).into(),
                    attempt: 1,
                    task_id: (*task).into(),
                })
                .unwrap();
        }
        journal.sync().unwrap();
    }

    #[test]
    fn every_shard_is_read_and_each_job_comes_from_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign(dir.path(), 12);
        let base = campaign.output.state_path();
        // Each job in its shard's file; j0 also in a wrong shard's file, with another task.
        let n = 3;
        for k in 1..=n {
            let mut jobs: Vec<(String, String)> = campaign
                .jobs
                .iter()
                .filter(|j| shard_of(&j.id, n) == k)
                .map(|j| (j.id.clone(), format!("t-{}-{k}", j.id)))
                .collect();
            if k == shard_of("j0", n) % n + 1 {
                jobs.push(("j0".into(), "stray".into()));
            }
            let jobs: Vec<(&str, &str)> =
                jobs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            write(
                &crate::app::with_shard_suffix(base.clone(), Shard { k, n }),
                &jobs,
            );
        }
        let view = gather(&campaign, None, true).unwrap();
        assert_eq!(view.sources.len(), 4, "the unsharded path and three shards");
        assert_eq!(view.sources[0].jobs, 0);
        assert_eq!(view.sources.iter().map(|s| s.jobs).sum::<usize>(), 12);
        for job in &campaign.jobs {
            let k = shard_of(&job.id, n);
            assert_eq!(
                view.state.job(&job.id).unwrap().task_id(),
                Some(format!("t-{}-{k}", job.id).as_str()),
                "{} from its own shard",
                job.id
            );
        }
        assert_eq!(view.warnings.len(), 1, "{:?}", view.warnings);
        assert!(view.warnings[0].contains("1 job recorded in both"));
        assert_eq!(
            view.entries.len(),
            12,
            "the stray record is not the timeline's"
        );
        assert!(view.entries.windows(2).all(|w| w[0].t <= w[1].t));
        assert!(view.first.is_some() && view.first <= view.last);

        // --shard narrows to one file.
        let mut one = campaign.clone();
        let shard = Shard { k: 2, n };
        one.output.state = Some(crate::app::with_shard_suffix(base.clone(), shard));
        one.jobs.retain(|j| shard_of(&j.id, n) == 2);
        let view = gather(&one, Some(shard), false).unwrap();
        assert_eq!(view.sources.len(), 1);
        assert_eq!(view.sources[0].jobs, one.jobs.len());
        assert!(view.entries.is_empty());
    }

    #[test]
    fn a_file_of_another_campaign_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign(dir.path(), 2);
        let path =
            crate::app::with_shard_suffix(campaign.output.state_path(), Shard { k: 1, n: 2 });
        let (journal, _) = Journal::open(&path, "other", "o.toml", |_| {}).unwrap();
        drop(journal);
        let err = gather(&campaign, None, false).unwrap_err();
        assert!(matches!(err, JournalError::OtherCampaign { .. }), "{err}");
    }

    #[test]
    fn the_other_mode_is_found_only_with_a_job_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign(dir.path(), 2);
        let mut sim = campaign.output.clone();
        sim.dir = sim.dir.join("simulated");
        assert_eq!(other_has_results(&campaign.output, &sim), None);
        let sim_state = sim.state_path();
        write(&sim_state, &[]);
        assert_eq!(
            other_has_results(&campaign.output, &sim),
            None,
            "a header alone"
        );
        write(&sim_state, &[("j0", "t")]);
        assert_eq!(other_has_results(&campaign.output, &sim), Some(sim_state));
        assert_eq!(other_has_results(&campaign.output, &campaign.output), None);
    }
}
