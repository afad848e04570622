//! The driver: runs the [`Engine`]'s commands with tokio, reqwest and the
//! journal, and feeds their results back as events. It decides nothing.
//!
//! One loop: ask the engine what may start now ([`Engine::pump`]), carry out
//! the commands in order (records are appended, a `Sync` makes them durable
//! before the submits after it leave, calls and downloads are spawned as
//! workers), then wait for a worker's answer, the engine's next wake-up, a
//! signal or the progress ticker. After each batch of answers: one fsync of
//! the journal, then the renames of the videos it recorded (group commit).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::RunError;
use super::download::{self, DownloadError};
use super::engine::{Command, Ending, Engine, Event, Now, UploadError};
use super::progress::Progress;
use super::shutdown::Signal;
use crate::api::Client;
use crate::journal::Journal;

/// The clocks, read once per step.
fn now() -> Now {
    Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

/// An image uploaded before is still the file on disk (same sha256).
pub(super) fn upload_is_fresh(path: &str, uploaded: &crate::state::Uploaded) -> bool {
    std::fs::read(path)
        .map(|bytes| crate::util::sha256_hex(&bytes) == uploaded.sha256)
        .unwrap_or(false)
}

pub(super) struct Driver {
    engine: Engine,
    client: Client,
    journal: Journal,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    workers: JoinSet<()>,
    progress: Progress,
    /// Videos recorded as downloaded, renamed at the next [`Driver::commit`].
    renames: Vec<PathBuf>,
}

impl Driver {
    pub(super) fn new(
        engine: Engine,
        client: Client,
        journal: Journal,
        progress: Progress,
    ) -> Driver {
        let (tx, rx) = mpsc::unbounded_channel();
        Driver {
            engine,
            client,
            journal,
            tx,
            rx,
            workers: JoinSet::new(),
            progress,
            renames: Vec::new(),
        }
    }

    pub(super) fn into_engine(self) -> Engine {
        self.engine
    }

    /// The main loop, to the end of the run.
    pub(super) async fn run(&mut self, mut signals: mpsc::UnboundedReceiver<Signal>) -> Ending {
        let mut ticker = tokio::time::interval(self.progress.tick_every());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.engine.pump(now());
            self.execute();
            if let Some(ending) = self.engine.ending(now()) {
                self.finish_workers().await;
                self.progress.finish(&self.engine.counts());
                return ending;
            }
            let sleep_until = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(event) = self.rx.recv() => {
                    let mut next = Some(event);
                    while let Some(event) = next {
                        self.engine.handle(event, now());
                        self.execute();
                        next = self.rx.try_recv().ok();
                    }
                    if let Err(e) = self.commit() {
                        self.engine.fail_fatal(e);
                    }
                    self.reap_workers();
                }
                _ = tokio::time::sleep_until(sleep_until) => {}
                signal = signals.recv() => match signal {
                    Some(Signal::Stop) => self.engine.begin_stop(now()),
                    Some(Signal::Abort) => {
                        let _ = self.commit();
                        self.workers.abort_all();
                        self.progress.finish(&self.engine.counts());
                        return Ending::Interrupted;
                    }
                    None => {}
                },
                _ = ticker.tick() => {
                    let at = Instant::now();
                    let held = self.engine.held(at);
                    self.progress.tick(&self.engine.counts(), held.paused, held.outage, held.slowed);
                }
            }
        }
    }

    /// Carries out the engine's commands, in order. A journal that cannot be
    /// written ends the run (exit 74): no paid call leaves after it.
    fn execute(&mut self) {
        for command in self.engine.take_commands() {
            if let Err(e) = self.execute_one(command) {
                self.engine.fail_fatal(e);
                // What is still queued is not sent: its write-ahead record may be missing.
                for command in self.engine.take_commands() {
                    self.engine.not_sent(&command);
                }
                return;
            }
        }
    }

    fn execute_one(&mut self, command: Command) -> Result<(), RunError> {
        match command {
            Command::Record(t, record) => self.journal.append_at(&t, &record)?,
            Command::Sync => self.journal.sync()?,
            Command::Rename(path) => self.renames.push(path),
            Command::Submit { job, attempt, body } => {
                let (client, tx) = (self.client.clone(), self.tx.clone());
                self.workers.spawn(async move {
                    let result = client.submit(&body).await;
                    let _ = tx.send(Event::Submitted {
                        job,
                        attempt,
                        result,
                    });
                });
            }
            Command::Poll { job, task_id } => {
                let (client, tx) = (self.client.clone(), self.tx.clone());
                self.workers.spawn(async move {
                    let result = client.poll(&task_id).await;
                    let _ = tx.send(Event::Polled { job, result });
                });
            }
            Command::Lookup {
                job,
                client_business_id,
            } => {
                let (client, tx) = (self.client.clone(), self.tx.clone());
                self.workers.spawn(async move {
                    let result = client.poll(&client_business_id).await;
                    let _ = tx.send(Event::LookedUp { job, result });
                });
            }
            Command::Upload { path } => {
                let (client, tx) = (self.client.clone(), self.tx.clone());
                self.workers.spawn(async move {
                    let result = match tokio::fs::read(&path).await {
                        Ok(bytes) => {
                            let sha = crate::util::sha256_hex(&bytes);
                            client
                                .upload(std::path::Path::new(&path), bytes)
                                .await
                                .map(|url| (sha, url))
                                .map_err(UploadError::Api)
                        }
                        Err(e) => Err(UploadError::Read(format!("cannot read {path}: {e}"))),
                    };
                    let _ = tx.send(Event::Uploaded { path, result });
                });
            }
            Command::Download {
                job,
                url,
                path,
                limits,
                start,
            } => {
                let (client, tx) = (self.client.clone(), self.tx.clone());
                self.workers.spawn(async move {
                    let result = if path.exists() {
                        Err(DownloadError::InTheWay(format!(
                            "{} already exists and is not recorded in the state file; move it away and run again to download the video",
                            path.display()
                        )))
                    } else {
                        let part = download::part_path(&path);
                        download::fetch(&client, &url, &part, &limits, start).await
                    };
                    let _ = tx.send(Event::Downloaded { job, result });
                });
            }
        }
        Ok(())
    }

    /// Group commit, after each batch of events: one journal fsync for every record
    /// of the batch, then the renames of the videos it recorded, then one fsync per
    /// folder so the renames survive a power loss too.
    fn commit(&mut self) -> Result<(), RunError> {
        self.journal.sync()?;
        let mut folders: Vec<PathBuf> = Vec::new();
        for path in std::mem::take(&mut self.renames) {
            rename_part(&path)?;
            if let Some(dir) = path.parent().map(PathBuf::from)
                && !folders.contains(&dir)
            {
                folders.push(dir);
            }
        }
        for dir in folders {
            crate::util::sync_dir(&dir);
        }
        Ok(())
    }

    /// Frees the tasks of workers that have finished: a `JoinSet` keeps each one
    /// until it is joined, which at 100k jobs is hundreds of megabytes. A worker
    /// that panicked (a bug) would never send its event, so it ends the run.
    fn reap_workers(&mut self) {
        while let Some(done) = self.workers.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                self.engine.fail_fatal(RunError::Io {
                    what: "internal error: a worker task panicked (please report this bug)".into(),
                    source: Arc::new(std::io::Error::other(e.to_string())),
                });
            }
        }
    }

    async fn finish_workers(&mut self) {
        let _ = self.journal.sync();
        self.workers.abort_all();
        while self.workers.join_next().await.is_some() {}
        // Answers that arrived before the abort are still worth recording.
        while let Ok(event) = self.rx.try_recv() {
            self.engine.handle(event, now());
            // Only records: nothing new is sent once the run is ending.
            for command in self.engine.take_commands() {
                match command {
                    Command::Record(t, record) => {
                        let _ = self.journal.append_at(&t, &record);
                    }
                    Command::Rename(path) => self.renames.push(path),
                    _ => {}
                }
            }
        }
        let _ = self.commit();
    }
}

/// `.part` → final name, then the folder is synced so the rename survives a crash.
pub(super) fn finish_file(path: &std::path::Path) -> Result<(), RunError> {
    rename_part(path)?;
    if let Some(dir) = path.parent() {
        crate::util::sync_dir(dir);
    }
    Ok(())
}

/// `.part` → final name.
fn rename_part(path: &std::path::Path) -> Result<(), RunError> {
    let part = download::part_path(path);
    std::fs::rename(&part, path).map_err(|source| RunError::Io {
        what: format!("cannot rename {} to {}", part.display(), path.display()),
        source: Arc::new(source),
    })
}
