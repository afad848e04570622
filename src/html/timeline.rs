//! The run's timeline: when tasks were created, ended and downloaded, from the
//! journal, and its inline SVG (cumulative counts as step lines).
//!
//! The SVG stays small whatever the run's size: events that fall in the same
//! column of the plot are drawn as one step, so a 100k-job run gives a few
//! hundred points per line, not 100k.

use std::time::SystemTime;

use maud::{Markup, html};

use crate::journal::{Entry, Record};

/// What the journal says about the run's time: its events, and its first and last record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Oldest first; `at_secs` counts from the first of them.
    pub events: Vec<TimelineEvent>,
    /// The first record of any kind (the run's date); `None` for an empty journal.
    pub first_record: Option<SystemTime>,
    /// The last record of any kind.
    pub last_record: Option<SystemTime>,
}

impl Timeline {
    /// From the first record to the last, in whole seconds.
    pub fn span_secs(&self) -> Option<u64> {
        let (first, last) = (self.first_record?, self.last_record?);
        Some(last.duration_since(first).map_or(0, |d| d.as_secs()))
    }
}

/// One point of the run's timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineEvent {
    /// Seconds since the first event of the timeline.
    pub at_secs: f64,
    pub kind: TimelineKind,
}

/// What the timeline counts: tasks created, tasks ended, videos on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineKind {
    /// A task was created (`submitted`).
    Submitted,
    /// A task ended, with a video or failed (`completed`, `task_failed`).
    Finished,
    /// A video is on disk (`downloaded`).
    Downloaded,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 3] = [
        TimelineKind::Submitted,
        TimelineKind::Finished,
        TimelineKind::Downloaded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TimelineKind::Submitted => "submitted",
            TimelineKind::Finished => "finished",
            TimelineKind::Downloaded => "downloaded",
        }
    }

    /// Line colour and dash pattern: the dash tells the lines apart without colour.
    fn style(self) -> (&'static str, &'static str) {
        match self {
            TimelineKind::Submitted => ("#2563eb", ""),
            TimelineKind::Finished => ("#d97706", "6 4"),
            TimelineKind::Downloaded => ("#059669", "2 3"),
        }
    }
}

/// The timeline of a journal: every `submitted`, `completed` or `task_failed`
/// and `downloaded` record, oldest first, and the first and last record of any
/// kind. Records whose timestamp does not parse are left out. A journal spanning
/// several runs gives one timeline with the gaps between them; the entries of
/// several state files (the shards of a campaign) may be chained in any order.
pub fn timeline_from_journal<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Timeline {
    let mut first_record: Option<SystemTime> = None;
    let mut last_record: Option<SystemTime> = None;
    let mut points: Vec<(SystemTime, TimelineKind)> = Vec::new();
    for entry in entries {
        let Ok(at) = humantime::parse_rfc3339_weak(&entry.t) else {
            continue;
        };
        first_record = Some(first_record.map_or(at, |t| t.min(at)));
        last_record = Some(last_record.map_or(at, |t| t.max(at)));
        let kind = match entry.record {
            Record::Submitted { .. } => TimelineKind::Submitted,
            Record::Completed { .. } | Record::TaskFailed { .. } => TimelineKind::Finished,
            Record::Downloaded { .. } => TimelineKind::Downloaded,
            _ => continue,
        };
        points.push((at, kind));
    }
    points.sort_by_key(|(at, _)| *at);
    let events = match points.first() {
        None => Vec::new(),
        Some(&(first, _)) => points
            .into_iter()
            .map(|(at, kind)| TimelineEvent {
                at_secs: at
                    .duration_since(first)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
                kind,
            })
            .collect(),
    };
    Timeline {
        events,
        first_record,
        last_record,
    }
}

/// The cumulative count of `kind` after each of its events: `(at_secs, count)`, in time order.
pub fn cumulative(timeline: &[TimelineEvent], kind: TimelineKind) -> Vec<(f64, usize)> {
    let mut times: Vec<f64> = timeline
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.at_secs)
        .collect();
    times.sort_by(f64::total_cmp);
    times
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i + 1))
        .collect()
}

/// A tick label on the time axis.
fn axis_time(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.0}h", secs / 3600.0)
    }
}

/// The smallest "round" step that cuts `span` into at most `max_ticks` parts.
fn nice_step(span: f64, max_ticks: f64, steps: &[f64]) -> f64 {
    steps
        .iter()
        .copied()
        .find(|step| span / step <= max_ticks)
        .unwrap_or_else(|| (span / max_ticks).ceil())
}

const TIME_STEPS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    10800.0, 21600.0, 43200.0, 86400.0,
];

const COUNT_STEPS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 2500.0,
    5000.0, 10000.0, 20000.0, 25000.0, 50000.0, 100000.0,
];

/// The points of a step line through `points` (`(x, y)` in plot units, x
/// ascending), flat until each event, then up; events in the same half unit of
/// x are one step, so the line has at most 4 points per unit of width.
fn step_points(points: impl IntoIterator<Item = (f64, f64)>, start: (f64, f64)) -> String {
    use std::fmt::Write as _;
    let round_x = |v: f64| (v * 2.0).round() / 2.0;
    let round_y = |v: f64| (v * 10.0).round() / 10.0;
    let mut coords: Vec<(f64, f64)> = vec![(round_x(start.0), round_y(start.1))];
    let mut last_y = round_y(start.1);
    for (x, y) in points {
        let (x, y) = (round_x(x), round_y(y));
        match coords.as_mut_slice() {
            // Same column as the previous step: move its top.
            [.., (bx, _), (tx, ty)] if *bx == x && *tx == x => *ty = y,
            _ => {
                coords.push((x, last_y));
                coords.push((x, y));
            }
        }
        last_y = y;
    }
    let mut out = String::with_capacity(coords.len() * 12);
    for (i, (x, y)) in coords.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{x:.1},{y:.1}");
    }
    out
}

/// The timeline as an inline SVG: cumulative counts as step lines, a legend, labelled axes.
pub fn svg(timeline: &[TimelineEvent]) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 230.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 34.0;
    const BOTTOM: f64 = 40.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;

    let series: Vec<(TimelineKind, Vec<(f64, usize)>)> = TimelineKind::ALL
        .iter()
        .map(|&kind| (kind, cumulative(timeline, kind)))
        .collect();
    let t_end = timeline.iter().map(|e| e.at_secs).fold(0.0_f64, f64::max);
    // A little room after the last event, so a step at the very end stays visible.
    let span = if t_end > 0.0 { t_end * 1.02 } else { 1.0 };
    let y_top = series
        .iter()
        .map(|(_, points)| points.len())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |t: f64| LEFT + t / span * plot_w;
    let y = |n: f64| TOP + plot_h - n / y_top * plot_h;

    let y_step = nice_step(y_top, 4.0, COUNT_STEPS);
    let y_ticks: Vec<f64> = (0..)
        .map(|i| f64::from(i) * y_step)
        .take_while(|n| *n <= y_top + 1e-9)
        .collect();
    let x_step = nice_step(span, 6.0, TIME_STEPS);
    let x_ticks: Vec<f64> = (0..)
        .map(|i| f64::from(i) * x_step)
        .take_while(|t| *t <= span + 1e-9)
        .collect();
    // Legend, right-aligned above the plot so no line can run under it.
    let mut legend = Vec::new();
    let mut lx = LEFT + plot_w;
    for (kind, points) in series.iter().rev() {
        let text = format!("{} ({})", kind.label(), points.len());
        lx -= 34.0 + 7.0 * text.len() as f64;
        legend.push((*kind, lx, text));
    }
    let bottom = TOP + plot_h;
    let f1 = |v: f64| format!("{v:.1}");
    html! {
        svg.timeline viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label="Cumulative tasks submitted, finished and downloaded over time"
            xmlns="http://www.w3.org/2000/svg" {
            @for n in &y_ticks {
                line.grid x1=(LEFT) x2=(f1(LEFT + plot_w)) y1=(f1(y(*n))) y2=(f1(y(*n))) {}
                text.tick x=(f1(LEFT - 6.0)) y=(f1(y(*n) + 4.0)) text-anchor="end" { (n) }
            }
            @for t in &x_ticks {
                line.axis x1=(f1(x(*t))) x2=(f1(x(*t))) y1=(f1(bottom)) y2=(f1(bottom + 4.0)) {}
                text.tick x=(f1(x(*t))) y=(f1(bottom + 16.0)) text-anchor="middle" { (axis_time(*t)) }
            }
            line.axis x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(f1(bottom)) {}
            line.axis x1=(LEFT) x2=(f1(LEFT + plot_w)) y1=(f1(bottom)) y2=(f1(bottom)) {}
            text.label x=(f1(LEFT + plot_w / 2.0)) y=(f1(H - 6.0)) text-anchor="middle" {
                "time since the first task was submitted"
            }
            text.label x=(LEFT) y=(f1(TOP - 10.0)) text-anchor="middle" { "tasks" }
            @for (kind, lx, text) in &legend {
                @let (colour, dash) = kind.style();
                g.legend {
                    line x1=(f1(*lx)) x2=(f1(lx + 20.0)) y1="12" y2="12" stroke=(colour)
                        stroke-width="2.5" stroke-dasharray=(dash) {}
                    text.tick x=(f1(lx + 25.0)) y="16" { (text) }
                }
            }
            @if timeline.is_empty() {
                text.empty x=(f1(LEFT + plot_w / 2.0)) y=(f1(TOP + plot_h / 2.0)) text-anchor="middle" {
                    "no task has been submitted yet"
                }
            }
            @for (kind, points) in &series {
                @if !points.is_empty() {
                    @let (colour, dash) = kind.style();
                    @let last = points.last().map_or(0, |p| p.1) as f64;
                    @let steps = points
                        .iter()
                        .map(|&(t, n)| (x(t), y(n as f64)))
                        .chain([(x(span), y(last))]);
                    polyline.series data-kind=(kind.label()) fill="none" stroke=(colour)
                        stroke-width="2.5" stroke-dasharray=(dash) stroke-linejoin="round"
                        points=(step_points(steps, (x(0.0), y(0.0)))) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::submitted;

    fn entry(t: &str, record: Record) -> Entry {
        Entry {
            t: t.into(),
            record,
        }
    }

    #[test]
    fn timeline_counts_are_cumulative_and_relative_to_the_first_event() {
        let entries = vec![
            entry(
                "2026-01-01T10:00:00Z",
                Record::Header {
                    version: 1,
                    campaign: "c".into(),
                    manifest: "c.toml".into(),
                },
            ),
            entry(
                "2026-01-01T10:00:01Z",
                Record::Submitting {
                    job: "a".into(),
                    attempt: 1,
                    fingerprint: "f".into(),
                    client_business_id: None,
                },
            ),
            entry("2026-01-01T10:00:02Z", submitted("a")),
            entry("2026-01-01T10:00:02Z", submitted("b")),
            entry(
                "2026-01-01T10:00:30Z",
                Record::TaskFailed {
                    job: "b".into(),
                    task_id: "t-b".into(),
                    error: "x".into(),
                },
            ),
            entry("2026-01-01T10:00:31Z", submitted("b")),
            entry(
                "2026-01-01T10:01:02Z",
                Record::Completed {
                    job: "a".into(),
                    task_id: "t-a".into(),
                    url: "u".into(),
                    expires_at: None,
                },
            ),
            entry("not a time", submitted("c")),
            entry(
                "2026-01-01T10:01:05Z",
                Record::Downloaded {
                    job: "a".into(),
                    task_id: "t-a".into(),
                    path: "a.mp4".into(),
                    bytes: 1,
                    sha256: "s".into(),
                },
            ),
        ];
        let timeline = timeline_from_journal(&entries);
        let events = &timeline.events;
        assert_eq!(events.len(), 6, "{timeline:?}");
        assert_eq!(events[0].at_secs, 0.0);
        assert_eq!(
            cumulative(events, TimelineKind::Submitted),
            [(0.0, 1), (0.0, 2), (29.0, 3)]
        );
        assert_eq!(
            cumulative(events, TimelineKind::Finished),
            [(28.0, 1), (60.0, 2)]
        );
        assert_eq!(cumulative(events, TimelineKind::Downloaded), [(63.0, 1)]);
        // The run's date and span come from every record, the header included.
        assert_eq!(timeline.span_secs(), Some(65));
        assert_eq!(
            timeline.first_record,
            humantime::parse_rfc3339("2026-01-01T10:00:00Z").ok()
        );
        let empty = timeline_from_journal(&[]);
        assert!(empty.events.is_empty() && empty.span_secs().is_none());
    }

    #[test]
    fn svg_handles_zero_one_and_many_events() {
        let svg = svg(&[]).into_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert!(svg.contains("no task has been submitted yet"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));

        let one = [TimelineEvent {
            at_secs: 0.0,
            kind: TimelineKind::Submitted,
        }];
        let svg1 = super::svg(&one).into_string();
        assert_eq!(svg1.matches("<polyline").count(), 1);
        assert!(!svg1.contains("NaN") && !svg1.contains("inf"));

        let many: Vec<TimelineEvent> = (0..300)
            .map(|i| TimelineEvent {
                at_secs: f64::from(i) * 7.5,
                kind: TimelineKind::ALL[i as usize % 3],
            })
            .collect();
        let svg = super::svg(&many).into_string();
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("submitted (100)"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // A bounded number of ticks whatever the span.
        assert!(svg.matches(r#"class="tick""#).count() < 30);
    }

    #[test]
    fn a_100k_job_timeline_stays_small() {
        let many: Vec<TimelineEvent> = (0..300_000)
            .map(|i| TimelineEvent {
                at_secs: f64::from(i / 3) * 0.25 + f64::from(i % 3) * 40.0,
                kind: TimelineKind::ALL[i as usize % 3],
            })
            .collect();
        let svg = svg(&many).into_string();
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("submitted (100000)"));
        // At most two points per half unit of width (656 units) per line.
        assert!(svg.len() < 100_000, "{} bytes", svg.len());
        let points: usize = svg
            .split("points=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap_or("").split(' ').count())
            .sum();
        assert!(points <= 3 * (2 * 1313 + 2), "{points} points");
    }

    #[test]
    fn steps_in_one_column_merge() {
        let pts = step_points([(1.0, 10.0), (1.2, 9.0), (2.0, 8.0)], (0.0, 10.0));
        assert_eq!(pts, "0.0,10.0 1.0,10.0 1.0,9.0 2.0,9.0 2.0,8.0");
    }
}
