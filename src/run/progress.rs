//! What the user sees while a run goes: periodic one-line summaries through tracing.

use std::time::{Duration, Instant};

use super::RunOptions;

/// Jobs by where they are now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub queued: usize,
    pub generating: usize,
    pub downloading: usize,
    pub done: usize,
    pub failed: usize,
    pub unknown: usize,
}

#[derive(Debug)]
pub struct Progress {
    total: usize,
    started: Instant,
    quiet: bool,
    last: Option<Counts>,
}

impl Progress {
    pub fn new(opts: &RunOptions, total: usize) -> Progress {
        Progress {
            total,
            started: Instant::now(),
            quiet: opts.quiet,
            last: None,
        }
    }

    /// A summary line, when something changed since the last one.
    pub fn tick(&mut self, counts: &Counts, paused: Option<Duration>) {
        if self.quiet || self.last.as_ref() == Some(counts) && paused.is_none() {
            return;
        }
        self.last = Some(*counts);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            counts.done as f64 / elapsed * 60.0
        } else {
            0.0
        };
        let pause = paused
            .map(|p| {
                format!(
                    ", rate-limited by the API: waiting {:.0}s",
                    p.as_secs_f64().ceil()
                )
            })
            .unwrap_or_default();
        tracing::info!(
            "{}/{} done, {} generating, {} downloading, {} queued, {} failed, {} unknown ({:.1}/min{pause})",
            counts.done,
            self.total,
            counts.generating,
            counts.downloading,
            counts.queued,
            counts.failed,
            counts.unknown,
            rate,
        );
    }

    pub fn finish(&mut self, _counts: &Counts) {}
}
