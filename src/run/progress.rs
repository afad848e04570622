//! What the user sees while a run goes: an indicatif bar on a terminal, a
//! one-line summary every few seconds through tracing anywhere else.
//!
//! Log lines and the bar share stderr: [`LogWriter`] prints every log line
//! through [`MultiProgress::suspend`], so the bar is never torn.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::RunOptions;

/// The process's bars, when stderr is a terminal and a run is drawing them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// A `tracing` writer that keeps log lines and progress bars apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

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
    last_line: Option<Instant>,
    every: Duration,
    bar: Option<ProgressBar>,
}

/// How often the bar is redrawn (the summary line keeps its own, slower pace).
pub const BAR_TICK: Duration = Duration::from_millis(250);

impl Progress {
    pub fn new(opts: &RunOptions, total: usize) -> Progress {
        let on_terminal = std::io::stderr().is_terminal() && !opts.quiet;
        let bar = on_terminal.then(|| {
            let bars = BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30.green/dim}] {pos}/{len} done  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bars.add(ProgressBar::new(total as u64).with_style(style))
        });
        Progress {
            total,
            started: Instant::now(),
            quiet: opts.quiet,
            last: None,
            last_line: None,
            every: opts.progress_every,
            bar,
        }
    }

    /// How often the driver should call [`Progress::tick`].
    pub fn tick_every(&self) -> Duration {
        if self.bar.is_some() {
            BAR_TICK
        } else {
            self.every
        }
    }

    /// Redraws the bar, or logs a summary line when something changed.
    /// `outage`: how long the service has been unreachable, while the run is paused for it.
    pub fn tick(
        &mut self,
        counts: &Counts,
        paused: Option<Duration>,
        outage: Option<Duration>,
        slowed: Option<(&str, f64)>,
    ) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let per_min = if elapsed > 0.0 {
            counts.done as f64 / elapsed * 60.0
        } else {
            0.0
        };
        let mut state = format!(
            "{} generating · {} downloading · {} queued · {} failed · {} unknown · {per_min:.1}/min",
            counts.generating, counts.downloading, counts.queued, counts.failed, counts.unknown
        );
        if let Some(p) = paused {
            state.push_str(&format!(" · 429: waiting {:.0}s", p.as_secs_f64().ceil()));
        }
        if let Some(down) = outage {
            state.push_str(&format!(
                " · service unreachable for {:.0}s: paused, probing",
                down.as_secs_f64()
            ));
        }
        if let Some((bucket, rate)) = slowed {
            state.push_str(&format!(" · {bucket}s slowed to {rate:.2}/s"));
        }
        if let Some(bar) = &self.bar {
            bar.set_position((counts.done + counts.failed + counts.unknown) as u64);
            bar.set_message(state);
            bar.tick();
            return;
        }
        let due = self.last_line.is_none_or(|at| at.elapsed() >= self.every);
        if self.quiet
            || !due
            || (self.last.as_ref() == Some(counts) && paused.is_none() && outage.is_none())
        {
            return;
        }
        self.last = Some(*counts);
        self.last_line = Some(Instant::now());
        tracing::info!("{}/{} done · {state}", counts.done, self.total);
    }

    pub fn finish(&mut self, _counts: &Counts) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
