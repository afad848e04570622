//! What the user sees while a run goes: one line redrawn on a terminal, a
//! one-line summary every few seconds through tracing anywhere else.
//!
//! Log lines and the bar share stderr: [`LogWriter`] prints every log line
//! through [`MultiProgress::suspend`], so the bar is never torn.
//!
//! The line is built by [`line`], a pure function of what the run knows and
//! the terminal's width: it never passes the width (fields are shortened, then
//! dropped, least useful first), so it never wraps and a redraw after a resize
//! replaces it whole. The pace and the ETA ([`pace`]) count only this run's
//! finishes: jobs already done when it started say nothing about its speed.
//! The words are the run's, never the provider's (`queued`, `in_progress`):
//! `to send` (not yet submitted), `in flight` (submitted, not finished).

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

/// The jobs this run works on (with `--only`, the selected ones), by where they are now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Not submitted yet (never sent, or to be sent again).
    pub to_send: usize,
    /// Submitted (or being submitted) and not finished.
    pub in_flight: usize,
    /// Finished by the provider, the video not on disk yet.
    pub downloading: usize,
    pub done: usize,
    pub failed: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.to_send + self.in_flight + self.downloading + self.done + self.failed + self.unknown
    }

    /// Jobs with an outcome: succeeded, failed or unknown.
    pub fn finished(&self) -> usize {
        self.done + self.failed + self.unknown
    }
}

/// How fast this run goes and when it should end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// No job has finished in this run yet: nothing to go on.
    Estimating,
    /// Jobs finished per minute in this run, and the time left at that pace.
    Rate { per_min: f64, eta: Duration },
    /// Every job has an outcome.
    Done,
}

/// The pace from this run's own finishes: `finished` jobs have an outcome now,
/// `at_start` had one when the run started, `total` is every job the run
/// works on, `elapsed` the time since it started.
pub fn pace(finished: usize, at_start: usize, total: usize, elapsed: Duration) -> Pace {
    let remaining = total.saturating_sub(finished);
    if remaining == 0 {
        return Pace::Done;
    }
    let this_run = finished.saturating_sub(at_start);
    let secs = elapsed.as_secs_f64();
    if this_run == 0 || secs <= 0.0 {
        return Pace::Estimating;
    }
    let per_sec = this_run as f64 / secs;
    Pace::Rate {
        per_min: per_sec * 60.0,
        eta: Duration::from_secs_f64((remaining as f64 / per_sec).min(1e9)),
    }
}

/// `3.2s`, `42s`, `1m 12s`, `2h 03m`: as precise as a person reads a duration.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1}s")
    } else if secs < 60.0 {
        format!("{}s", secs.round() as u64)
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    }
}

/// What holds the run back right now (from [`super::engine::Engine::held`]).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Hold<'a> {
    /// A 429's pause, still this long.
    pub paused: Option<Duration>,
    /// The service has been unreachable this long: the run is paused for it.
    pub outage: Option<Duration>,
    /// A budget slowed by 429s: its name and its rate now, per second.
    pub slowed: Option<(&'a str, f64)>,
}

/// Everything one progress line shows.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub counts: Counts,
    /// Jobs the run works on.
    pub total: usize,
    pub elapsed: Duration,
    pub pace: Pace,
    pub hold: Hold<'a>,
    /// On a terminal: the spinner's frame (the bar is drawn too). `None` in a log line.
    pub frame: Option<usize>,
}

/// One field of the line, with when it gets shorter and when it goes (lower
/// levels first; `None`: never).
struct Field {
    long: String,
    short: Option<(String, u8)>,
    drop: Option<u8>,
    /// Part of the `spinner elapsed [bar]` head, separated by spaces, not ` · `.
    head: bool,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

fn bar(filled: usize, total: usize, width: usize) -> String {
    let full = (filled * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    let mut text = String::with_capacity(width + 2);
    text.push('[');
    text.push_str(&"=".repeat(full));
    if full < width {
        text.push('>');
        text.push_str(&" ".repeat(width - full - 1));
    }
    text.push(']');
    text
}

fn fields(view: &View) -> Vec<Field> {
    let c = &view.counts;
    let mut out = Vec::new();
    let field = |long: String, short: Option<(String, u8)>, drop: Option<u8>| Field {
        long,
        short,
        drop,
        head: false,
    };
    // How soon a count goes: at once when it is zero.
    let count_drop = |n: usize, level: u8| Some(if n == 0 { 10 } else { level });
    if let Some(frame) = view.frame {
        out.push(Field {
            long: SPINNER[frame % SPINNER.len()].to_string(),
            short: None,
            drop: Some(12),
            head: true,
        });
        out.push(Field {
            long: short_duration(view.elapsed),
            short: None,
            drop: Some(30),
            head: true,
        });
        out.push(Field {
            long: bar(c.finished(), view.total, 20),
            short: Some((bar(c.finished(), view.total, 8), 15)),
            drop: Some(35),
            head: true,
        });
    }
    out.push(field(
        format!("{}/{} done", c.done, view.total),
        Some((format!("{}/{}", c.done, view.total), 80)),
        None,
    ));
    out.push(field(
        format!("{} in flight", c.in_flight),
        None,
        count_drop(c.in_flight, 65),
    ));
    out.push(field(
        format!("{} downloading", c.downloading),
        Some((format!("{} dl", c.downloading), 40)),
        count_drop(c.downloading, 55),
    ));
    out.push(field(
        format!("{} to send", c.to_send),
        None,
        count_drop(c.to_send, 60),
    ));
    out.push(field(
        format!("{} failed", c.failed),
        None,
        count_drop(c.failed, 75),
    ));
    out.push(field(
        format!("{} unknown", c.unknown),
        None,
        count_drop(c.unknown, 74),
    ));
    match view.pace {
        Pace::Estimating => out.push(field(
            "ETA estimating…".into(),
            Some(("ETA …".into(), 45)),
            Some(70),
        )),
        Pace::Rate { per_min, eta } => {
            out.push(field(format!("{per_min:.1}/min"), None, Some(20)));
            out.push(field(
                format!("ETA {}", short_duration(eta)),
                None,
                Some(90),
            ));
        }
        Pace::Done => {}
    }
    if let Some(p) = view.hold.paused {
        let secs = p.as_secs_f64().ceil();
        out.push(field(
            format!("429: waiting {secs:.0}s"),
            Some((format!("429 {secs:.0}s"), 50)),
            Some(85),
        ));
    }
    if let Some(down) = view.hold.outage {
        let secs = down.as_secs_f64();
        out.push(field(
            format!("service unreachable for {secs:.0}s: paused, probing"),
            Some((format!("offline {secs:.0}s"), 50)),
            Some(95),
        ));
    }
    if let Some((bucket, rate)) = view.hold.slowed {
        out.push(field(
            format!("{bucket}s slowed to {rate:.2}/s"),
            Some((format!("{bucket}s {rate:.2}/s"), 25)),
            Some(45),
        ));
    }
    if view.frame.is_none() {
        out.push(field(
            format!("after {}", short_duration(view.elapsed)),
            None,
            Some(30),
        ));
    }
    out
}

fn render(fields: &[(bool, &str)]) -> String {
    let mut text = String::new();
    let mut prev_head = None;
    for &(head, part) in fields {
        match prev_head {
            None => {}
            Some(true) => text.push(' '),
            Some(false) => text.push_str(" · "),
        }
        text.push_str(part);
        prev_head = Some(head);
    }
    text
}

/// The progress line for `view`, at most `width` columns wide (`None`: as
/// long as it needs, for a log line). As the width narrows, fields are
/// shortened, then dropped, least useful first (zero counts, the spinner,
/// the pace, the elapsed time, the bar…); `done`, the ETA and an outage stay
/// longest; what still does not fit is cut with `…`.
pub fn line(view: &View, width: Option<usize>) -> String {
    let fields = fields(view);
    let mut short = vec![false; fields.len()];
    let mut dropped = vec![false; fields.len()];
    let build = |short: &[bool], dropped: &[bool]| {
        let parts: Vec<(bool, &str)> = fields
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped[*i])
            .map(|(i, f)| {
                let text = match (&f.short, short[i]) {
                    (Some((s, _)), true) => s.as_str(),
                    _ => f.long.as_str(),
                };
                (f.head, text)
            })
            .collect();
        render(&parts)
    };
    let mut text = build(&short, &dropped);
    let Some(width) = width else {
        return text;
    };
    // Every step that makes the line narrower, in the order they are taken.
    let mut steps: Vec<(u8, usize, bool)> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if let Some((_, level)) = f.short {
            steps.push((level, i, false));
        }
        if let Some(level) = f.drop {
            steps.push((level, i, true));
        }
    }
    steps.sort_by_key(|&(level, i, drop)| (level, drop, i));
    for (_, i, drop) in steps {
        if text.chars().count() <= width {
            return text;
        }
        if drop {
            dropped[i] = true;
        } else {
            short[i] = true;
        }
        text = build(&short, &dropped);
    }
    if text.chars().count() <= width {
        return text;
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    cut
}

/// The terminal's width in columns, one less so that the cursor never sits
/// past the last column (where some terminals wrap).
fn terminal_width() -> usize {
    let cols = console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, cols)| usize::from(cols));
    cols.saturating_sub(1).max(1)
}

#[derive(Debug)]
pub struct Progress {
    /// The jobs the run works on, as they were when it started.
    start: Counts,
    total: usize,
    started: Instant,
    quiet: bool,
    /// JSON logs: the counts go out as fields of the log line too.
    fields: bool,
    last: Option<Counts>,
    last_line: Option<Instant>,
    every: Duration,
    bar: Option<ProgressBar>,
    frame: usize,
}

/// How often the bar is redrawn (the summary line keeps its own, slower pace).
pub const BAR_TICK: Duration = Duration::from_millis(250);

impl Progress {
    /// Give it the jobs this run works on with [`Progress::start_from`] before the first tick.
    pub fn new(opts: &RunOptions) -> Progress {
        let on_terminal = std::io::stderr().is_terminal() && !opts.quiet;
        let bar = on_terminal.then(|| {
            let bars =
                BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            let style = ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bars.add(ProgressBar::new(0).with_style(style))
        });
        Progress {
            start: Counts::default(),
            total: 0,
            started: Instant::now(),
            quiet: opts.quiet,
            fields: opts.log_json,
            last: None,
            last_line: None,
            every: opts.progress_every,
            bar,
            frame: 0,
        }
    }

    /// The jobs this run works on, before anything is sent: their number, and
    /// how many already have an outcome (a resume), which the pace leaves out.
    pub fn start_from(&mut self, start: Counts) {
        self.start = start;
        self.total = start.total();
        self.started = Instant::now();
        if let Some(bar) = &self.bar {
            bar.set_length(self.total as u64);
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
        let elapsed = self.started.elapsed();
        let pace = pace(
            counts.finished(),
            self.start.finished(),
            self.total,
            elapsed,
        );
        let mut view = View {
            counts: *counts,
            total: self.total,
            elapsed,
            pace,
            hold: Hold {
                paused,
                outage,
                slowed,
            },
            frame: None,
        };
        if let Some(bar) = &self.bar {
            self.frame = self.frame.wrapping_add(1);
            view.frame = Some(self.frame);
            bar.set_position(counts.finished() as u64);
            bar.set_message(line(&view, Some(terminal_width())));
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
        let text = line(&view, None);
        if self.fields {
            let (per_min, eta_secs) = match pace {
                Pace::Rate { per_min, eta } => (Some(per_min), Some(eta.as_secs())),
                Pace::Estimating | Pace::Done => (None, None),
            };
            tracing::info!(
                done = counts.done,
                total = self.total,
                in_flight = counts.in_flight,
                downloading = counts.downloading,
                to_send = counts.to_send,
                failed = counts.failed,
                unknown = counts.unknown,
                elapsed_secs = elapsed.as_secs(),
                per_min,
                eta_secs,
                paused_secs = paused.map(|p| p.as_secs()),
                outage_secs = outage.map(|d| d.as_secs()),
                "{text}"
            );
        } else {
            tracing::info!("{text}");
        }
    }

    pub fn finish(&mut self, _counts: &Counts) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> Counts {
        Counts {
            to_send: 58,
            in_flight: 10,
            downloading: 2,
            done: 28,
            failed: 1,
            unknown: 1,
        }
    }

    fn view(pace: Pace, hold: Hold<'static>) -> View<'static> {
        View {
            counts: counts(),
            total: 100,
            elapsed: Duration::from_secs(72),
            pace,
            hold,
            frame: Some(0),
        }
    }

    fn rate() -> Pace {
        Pace::Rate {
            per_min: 25.0,
            eta: Duration::from_secs(168),
        }
    }

    fn width_of(text: &str) -> usize {
        text.chars().count()
    }

    #[test]
    fn the_pace_waits_for_a_finish_of_this_run() {
        // Nothing finished yet: no ETA of 0 s, no rate.
        assert_eq!(pace(0, 0, 10, Duration::from_secs(5)), Pace::Estimating);
        // A resume: 40 were done before; none yet in this run.
        assert_eq!(pace(40, 40, 100, Duration::from_secs(30)), Pace::Estimating);
        // No time has passed.
        assert_eq!(pace(1, 0, 10, Duration::ZERO), Pace::Estimating);
        assert_eq!(pace(10, 3, 10, Duration::from_secs(5)), Pace::Done);
    }

    #[test]
    fn the_pace_counts_only_this_runs_finishes() {
        // A resume with 1000 done before: 2 more in 60 s is 2/min, and 98
        // left take 49 minutes, not seconds.
        let Pace::Rate { per_min, eta } = pace(1002, 1000, 1100, Duration::from_secs(60)) else {
            panic!("a rate once something finished");
        };
        assert!((per_min - 2.0).abs() < 1e-9, "{per_min}");
        assert_eq!(eta, Duration::from_secs(49 * 60));
        // More finishes than at the start can only come from this run; fewer (a
        // retried job left `failed`) never makes a negative count.
        assert_eq!(pace(5, 7, 10, Duration::from_secs(9)), Pace::Estimating);
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(short_duration(Duration::from_millis(3_240)), "3.2s");
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(72)), "1m 12s");
        assert_eq!(
            short_duration(Duration::from_secs(2 * 3600 + 180)),
            "2h 03m"
        );
    }

    #[test]
    fn a_wide_terminal_gets_every_field() {
        let text = line(&view(rate(), Hold::default()), Some(159));
        assert_eq!(
            text,
            "⠋ 1m 12s [======>             ] 28/100 done · 10 in flight · 2 downloading · 58 to send · 1 failed · 1 unknown · 25.0/min · ETA 2m 48s"
        );
    }

    #[test]
    fn the_line_fits_120_80_60_and_40_columns() {
        for width in [120, 80, 60, 40] {
            for pace in [rate(), Pace::Estimating, Pace::Done] {
                let text = line(&view(pace, Hold::default()), Some(width));
                assert!(width_of(&text) <= width, "{width}: {text}");
                assert!(text.contains("28/100"), "done stays: {width}: {text}");
                if pace == rate() {
                    assert!(text.contains("ETA 2m 48s"), "{width}: {text}");
                }
            }
        }
        assert_eq!(
            line(&view(rate(), Hold::default()), Some(120)),
            "1m 12s [==>     ] 28/100 done · 10 in flight · 2 downloading · 58 to send · 1 failed · 1 unknown · 25.0/min · ETA 2m 48s"
        );
        assert_eq!(
            line(&view(rate(), Hold::default()), Some(80)),
            "28/100 done · 10 in flight · 58 to send · 1 failed · 1 unknown · ETA 2m 48s"
        );
        assert_eq!(
            line(&view(rate(), Hold::default()), Some(60)),
            "28/100 done · 1 failed · 1 unknown · ETA 2m 48s"
        );
        assert_eq!(
            line(&view(rate(), Hold::default()), Some(40)),
            "28/100 done · 1 failed · ETA 2m 48s"
        );
    }

    #[test]
    fn before_any_finish_it_says_estimating_never_0s() {
        let text = line(&view(Pace::Estimating, Hold::default()), Some(120));
        assert!(text.contains("ETA estimating…"), "{text}");
        assert!(!text.contains("/min"), "{text}");
        let text = line(&view(Pace::Estimating, Hold::default()), Some(40));
        assert!(text.contains("ETA …") || !text.contains("ETA"), "{text}");
        assert!(!text.contains("0s"), "{text}");
    }

    #[test]
    fn an_outage_and_a_429_pause_show_at_every_width() {
        let hold = Hold {
            paused: Some(Duration::from_millis(2_100)),
            outage: Some(Duration::from_secs(31)),
            slowed: Some(("submit", 2.5)),
        };
        let wide = line(&view(rate(), hold), Some(240));
        assert!(
            wide.contains("429: waiting 3s")
                && wide.contains("service unreachable for 31s: paused, probing")
                && wide.contains("submits slowed to 2.50/s"),
            "{wide}"
        );
        for width in [120, 80, 60, 40] {
            let text = line(&view(rate(), hold), Some(width));
            assert!(width_of(&text) <= width, "{width}: {text}");
            assert!(
                text.contains("service unreachable for 31s") || text.contains("offline 31s"),
                "{width}: {text}"
            );
        }
        assert!(line(&view(rate(), hold), Some(80)).contains("429"));
    }

    #[test]
    fn the_words_are_not_the_providers_statuses() {
        let hold = Hold {
            paused: Some(Duration::from_secs(1)),
            outage: None,
            slowed: None,
        };
        for width in [None, Some(200), Some(80), Some(40)] {
            let text = line(&view(Pace::Estimating, hold), width);
            for word in ["queued", "in_progress", "completed"] {
                assert!(!text.contains(word), "{width:?}: {text}");
            }
        }
    }

    #[test]
    fn a_log_line_has_no_bar_and_no_width_limit() {
        let mut v = view(rate(), Hold::default());
        v.frame = None;
        assert_eq!(
            line(&v, None),
            "28/100 done · 10 in flight · 2 downloading · 58 to send · 1 failed · 1 unknown · 25.0/min · ETA 2m 48s · after 1m 12s"
        );
    }

    #[test]
    fn an_impossibly_narrow_terminal_gets_a_cut_line() {
        let text = line(&view(rate(), Hold::default()), Some(5));
        assert_eq!(width_of(&text), 5, "{text}");
        assert!(text.ends_with('…'), "{text}");
    }

    #[test]
    fn the_bar_fills_with_finished_jobs() {
        assert_eq!(bar(0, 10, 4), "[>   ]");
        assert_eq!(bar(5, 10, 4), "[==> ]");
        assert_eq!(bar(10, 10, 4), "[====]");
        assert_eq!(bar(0, 0, 4), "[====]");
    }
}
