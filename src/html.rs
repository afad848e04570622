//! The HTML report: one self-contained page (inline CSS, an inline SVG timeline, a few lines of JS).
//!
//! The page is written next to the CSV report and plays the videos from disk:
//! every `src` is relative to the page's folder, so it works opened from disk
//! (`file://`) and served over HTTP from the output folder. Everything that
//! comes from a manifest, the API or the file system is escaped with
//! [`escape`].

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::journal::{Entry, Record};
use crate::report::Row;
use crate::state::Status;
use crate::util::{human_bytes, relative_path, url_path};

/// Everything the page shows, gathered from the campaign, the journal and the report rows.
#[derive(Debug)]
pub struct Page<'a> {
    /// The campaign's name, the page's title.
    pub campaign: &'a str,
    /// The folder the page is written to: video `src`s are relative to it.
    pub dir: &'a Path,
    /// The report rows, in manifest order.
    pub rows: &'a [Row<'a>],
    /// From [`timeline_from_journal`].
    pub timeline: Vec<TimelineEvent>,
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

    fn label(self) -> &'static str {
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

/// The timeline of a journal, oldest first: every `submitted`, `completed` or
/// `task_failed` and `downloaded` record. Records whose timestamp does not
/// parse are left out. A journal spanning several runs gives one timeline with
/// the gaps between them.
pub fn timeline_from_journal(entries: &[Entry]) -> Vec<TimelineEvent> {
    let mut points: Vec<(SystemTime, TimelineKind)> = entries
        .iter()
        .filter_map(|entry| {
            let kind = match entry.record {
                Record::Submitted { .. } => TimelineKind::Submitted,
                Record::Completed { .. } | Record::TaskFailed { .. } => TimelineKind::Finished,
                Record::Downloaded { .. } => TimelineKind::Downloaded,
                _ => return None,
            };
            let at = humantime::parse_rfc3339(&entry.t).ok()?;
            Some((at, kind))
        })
        .collect();
    points.sort_by_key(|(at, _)| *at);
    let Some(&(first, _)) = points.first() else {
        return Vec::new();
    };
    points
        .into_iter()
        .map(|(at, kind)| TimelineEvent {
            at_secs: at
                .duration_since(first)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            kind,
        })
        .collect()
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

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The URL of `video` for a page in folder `page_dir`: a relative, percent-encoded
/// URL when one exists (relative paths are taken from the current folder), else a
/// `file://` URL.
pub fn video_src(page_dir: &Path, video: &Path) -> String {
    let page_dir = std::path::absolute(page_dir).unwrap_or_else(|_| page_dir.to_path_buf());
    let video_abs = std::path::absolute(video).unwrap_or_else(|_| video.to_path_buf());
    if let Some(rel) = relative_path(&page_dir, &video_abs) {
        return url_path(&rel);
    }
    let encoded = url_path(&video_abs);
    if encoded.starts_with('/') {
        format!("file://{encoded}")
    } else {
        format!("file:///{encoded}")
    }
}

/// `report.csv` → `report.html`, in the same folder.
pub fn path_next_to(csv_report: &Path) -> PathBuf {
    csv_report.with_extension("html")
}

/// Writes the page atomically: a temp file in the same folder, fsynced, renamed over the old one.
pub fn write(path: &Path, html: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = crate::util::temp_file_in(dir, path)?;
    tmp.write_all(html.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `48 s`, `2 min 8 s`, `1 h 3 min`.
fn human_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
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

/// The timeline as an inline SVG: cumulative counts as step lines, a legend, labelled axes.
fn timeline_svg(timeline: &[TimelineEvent]) -> String {
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

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="timeline" viewBox="0 0 {W} {H}" role="img" aria-label="Cumulative tasks submitted, finished and downloaded over time" xmlns="http://www.w3.org/2000/svg">"##
    );
    // Horizontal grid lines and count labels.
    let y_step = nice_step(y_top, 4.0, COUNT_STEPS);
    let mut n = 0.0;
    while n <= y_top + 1e-9 {
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{n}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(n) + 4.0,
            yy = y(n),
        );
        n += y_step;
    }
    // Time ticks.
    let x_step = nice_step(span, 6.0, TIME_STEPS);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let _ = write!(
            svg,
            r##"<line class="axis" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"/><text class="tick" x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 16.0,
            axis_time(t),
            xx = x(t),
        );
        t += x_step;
    }
    // Axes and their labels.
    let _ = write!(
        svg,
        r##"<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b:.1}"/><line class="axis" x1="{LEFT}" x2="{r:.1}" y1="{b:.1}" y2="{b:.1}"/><text class="label" x="{cx:.1}" y="{ly:.1}" text-anchor="middle">time since the first task was submitted</text><text class="label" x="{LEFT}" y="{ty:.1}" text-anchor="middle">tasks</text>"##,
        b = TOP + plot_h,
        r = LEFT + plot_w,
        cx = LEFT + plot_w / 2.0,
        ly = H - 6.0,
        ty = TOP - 10.0,
    );
    // Legend, above the plot so no line can run under it.
    let mut lx = LEFT + plot_w;
    for (kind, points) in series.iter().rev() {
        let (colour, dash) = kind.style();
        let text = format!("{} ({})", kind.label(), points.len());
        lx -= 34.0 + 7.0 * text.len() as f64;
        let _ = write!(
            svg,
            r##"<g class="legend"><line x1="{lx:.1}" x2="{:.1}" y1="12" y2="12" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}"/><text class="tick" x="{:.1}" y="16">{text}</text></g>"##,
            lx + 20.0,
            lx + 25.0,
        );
    }
    if timeline.is_empty() {
        let _ = write!(
            svg,
            r##"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">no task has been submitted yet</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0,
        );
    }
    for (kind, points) in &series {
        if points.is_empty() {
            continue;
        }
        let (colour, dash) = kind.style();
        // A step line: flat until each event, then up by one; flat to the end of the run.
        let mut coords = vec![(x(0.0), y(0.0))];
        let mut last = 0usize;
        for &(t, count) in points {
            coords.push((x(t), y(last as f64)));
            coords.push((x(t), y(count as f64)));
            last = count;
        }
        coords.push((x(span), y(last as f64)));
        let pts: Vec<String> = coords
            .iter()
            .map(|(px, py)| format!("{px:.1},{py:.1}"))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline class="series" data-kind="{}" fill="none" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}" stroke-linejoin="round" points="{}"/>"##,
            kind.label(),
            pts.join(" "),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Succeeded => "ok",
        Status::Failed => "bad",
        Status::TimedOut | Status::Unknown => "warn",
        Status::Expired => "exp",
        Status::Pending => "idle",
    }
}

const CSS: &str = r#"
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7f9; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1240px; margin:0 auto; padding:24px 28px 48px; }
header { display:grid; grid-template-columns:minmax(0, 5fr) minmax(0, 6fr); gap:24px; align-items:stretch; }
@media (max-width: 860px) { header { grid-template-columns:1fr; } }
h1 { margin:0; font-size:24px; font-weight:650; letter-spacing:-0.01em; overflow-wrap:anywhere; }
.eyebrow { margin:0 0 2px; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.06em; }
.totals { margin:4px 0 0; color:var(--muted); }
.totals b { color:var(--ink); font-weight:600; }
.counts { display:grid; grid-template-columns:repeat(3, minmax(0, 1fr)); gap:8px; margin:16px 0 0; padding:0; list-style:none; }
.counts li { padding:8px 12px; background:var(--card); border:1px solid var(--line); border-radius:8px; }
.counts b { display:block; font-size:20px; line-height:1.1; font-variant-numeric:tabular-nums; }
.counts span { color:var(--muted); font-size:12px; }
.counts li.zero { opacity:.45; }
.counts li.ok b { color:#047857; } .counts li.bad b { color:#b91c1c; } .counts li.warn b { color:#b45309; }
.counts li.exp b { color:#7c3aed; } .counts li.idle b { color:#4b5563; }
main > section { margin-top:28px; }
h2 { margin:0 0 12px; font-size:16px; font-weight:650; }
h2 .n { color:var(--muted); font-weight:400; }
.none { color:var(--muted); margin:0; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); gap:16px; }
.card { margin:0; background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:hidden;
  display:flex; flex-direction:column; }
.card video { display:block; width:100%; aspect-ratio:16/9; background:#111827; object-fit:contain; }
.card figcaption { padding:10px 12px 12px; display:flex; flex-direction:column; gap:6px; flex:1; }
.card .id { font:600 13px/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap:anywhere; }
.card .prompt { margin:0; color:#374151; display:-webkit-box; -webkit-line-clamp:3; -webkit-box-orient:vertical; overflow:hidden; }
.card .meta { display:flex; flex-wrap:wrap; gap:4px 6px; margin-top:auto; }
.tag { padding:1px 7px; border-radius:999px; background:#f3f4f6; color:#4b5563; font-size:12px; white-space:nowrap; }
.card .broken { display:none; color:#b91c1c; font-size:12px; }
.card[data-state=error] .broken { display:block; }
.table-wrap { overflow-x:auto; background:var(--card); border:1px solid var(--line); border-radius:10px; }
table { width:100%; border-collapse:collapse; }
th, td { padding:9px 12px; text-align:left; vertical-align:top; border-bottom:1px solid var(--line); }
tbody tr:last-child td { border-bottom:0; }
th { font-size:12px; font-weight:600; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; background:#fafafa; }
td.mono { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; white-space:nowrap; }
td.err { min-width:240px; overflow-wrap:break-word; }
td.prompt { color:#4b5563; min-width:200px; }
th.num, td.num { text-align:right; font-variant-numeric:tabular-nums; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
.badge.ok { background:#d1fae5; color:#065f46; } .badge.bad { background:#fee2e2; color:#991b1b; }
.badge.warn { background:#fef3c7; color:#92400e; } .badge.exp { background:#ede9fe; color:#5b21b6; }
.badge.idle { background:#f3f4f6; color:#374151; }
.chart { margin:0; background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 14px 6px; }
.chart h2 { margin-bottom:4px; }
svg.timeline { display:block; width:100%; max-width:900px; height:auto; font-family:inherit; }
svg .grid { stroke:#eef0f3; } svg .axis { stroke:#9ca3af; }
svg .tick { font-size:11px; fill:#6b7280; } svg .label { font-size:11px; fill:#374151; }
svg .empty { font-size:13px; fill:#9ca3af; }
footer { margin-top:32px; color:var(--muted); font-size:12px; }
"#;

/// Marks each card `data-state="loaded"` or `"error"`, so a moved or unplayable file shows.
const JS: &str = r#"
for (const v of document.querySelectorAll('.card video')) {
  const card = v.closest('.card'), mark = s => { card.dataset.state = s; };
  v.addEventListener('loadedmetadata', () => mark('loaded'));
  v.addEventListener('error', () => mark('error'));
  if (v.error) mark('error'); else if (v.readyState > 0) mark('loaded');
}
"#;

/// The whole page.
pub fn render(page: &Page) -> String {
    let rows = page.rows;
    let succeeded: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == Status::Succeeded)
        .collect();
    let others: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status != Status::Succeeded)
        .collect();
    let bytes: u64 = succeeded.iter().filter_map(|r| r.bytes).sum();
    let seconds: u64 = succeeded.iter().map(|r| u64::from(r.duration)).sum();
    let name = escape(page.campaign);

    let mut h = String::with_capacity(16 * 1024 + rows.len() * 800);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} — runner report</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<div class="summary">
<p class="eyebrow">runner report</p>
<h1>{name}</h1>
<p class="totals"><b>{jobs}</b> · <b>{video}</b> of video · <b>{size}</b> on disk</p>
<ul class="counts">"#,
        jobs = plural(rows.len(), "job"),
        video = human_secs(seconds),
        size = human_bytes(bytes),
    );
    for status in Status::ALL {
        let n = rows.iter().filter(|r| r.status == status).count();
        let zero = if n == 0 { " zero" } else { "" };
        let _ = write!(
            h,
            r#"<li class="{}{zero}" data-status="{status}"><b>{n}</b><span>{status}</span></li>"#,
            status_class(status),
        );
    }
    // The timeline sits beside the counts: both answer "how did the run go?".
    let _ = write!(
        h,
        "</ul>\n</div>\n<section id=\"timeline\" class=\"chart\"><h2>Timeline</h2>{}</section>\n</header>\n",
        timeline_svg(&page.timeline)
    );

    // What did not succeed.
    let _ = write!(
        h,
        r#"<section id="failures"><h2>Did not succeed <span class="n">({})</span></h2>"#,
        others.len()
    );
    if others.is_empty() {
        h.push_str(r#"<p class="none">Every job succeeded.</p>"#);
    } else {
        h.push_str(
            "\n<div class=\"table-wrap\"><table>\n<thead><tr><th>Job</th><th>Status</th><th class=\"num\">Attempts</th><th>Task</th><th>Reason</th><th>Prompt</th></tr></thead>\n<tbody>\n",
        );
        for row in &others {
            let task = if row.task_id.is_empty() {
                "–".to_string()
            } else {
                escape(&row.task_id)
            };
            let reason = if row.error.is_empty() {
                match row.status {
                    Status::Pending => "not finished yet".to_string(),
                    _ => "–".to_string(),
                }
            } else {
                escape(&row.error)
            };
            let _ = writeln!(
                h,
                r#"<tr data-job="{id}" data-status="{status}"><td class="mono">{id}</td><td><span class="badge {class}">{status}</span></td><td class="num">{attempts}</td><td class="mono">{task}</td><td class="err">{reason}</td><td class="prompt">{prompt}</td></tr>"#,
                id = escape(&row.job_id),
                status = row.status,
                class = status_class(row.status),
                attempts = row.attempts,
                prompt = escape(&row.prompt),
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>\n");

    // The videos.
    let _ = write!(
        h,
        r#"<section id="videos"><h2>Videos <span class="n">({})</span></h2>"#,
        succeeded.len()
    );
    if succeeded.is_empty() {
        h.push_str(r#"<p class="none">No video has been downloaded yet.</p>"#);
    } else {
        h.push_str("\n<div class=\"grid\">\n");
        for row in &succeeded {
            let src = video_src(page.dir, Path::new(&*row.output_path));
            let size = row.bytes.map(human_bytes).unwrap_or_default();
            let _ = writeln!(
                h,
                r#"<figure class="card" data-job="{id}"><video controls preload="metadata" src="{src}"></video><figcaption><div class="id">{id}</div><p class="prompt" title="{prompt}">{prompt}</p><div class="meta"><span class="tag">{model}</span><span class="tag">{ar}</span><span class="tag">{dur} s</span><span class="tag">{size}</span></div><div class="broken">cannot play {path} from here</div></figcaption></figure>"#,
                id = escape(&row.job_id),
                src = escape(&src),
                prompt = escape(&row.prompt),
                model = escape(&row.model),
                ar = escape(&row.aspect_ratio),
                dur = row.duration,
                path = escape(&row.output_path),
            );
        }
        h.push_str("</div>");
    }
    h.push_str("</section>\n");

    let _ = write!(
        h,
        "<footer>Written by runner {} from the state file. Videos play from their paths relative to this page.</footer>\n</main>\n<script>{JS}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: Status, path: &str) -> Row<'static> {
        Row {
            job_id: id.to_string().into(),
            status,
            task_id: format!("task-{id}").into(),
            model: "veo3.1-fast".into(),
            prompt: format!("prompt of {id}").into(),
            output_path: path.to_string().into(),
            bytes: (status == Status::Succeeded).then_some(1_500_000),
            sha256: "".into(),
            error: if status == Status::Succeeded {
                "".into()
            } else {
                format!("error of {id}").into()
            },
            attempts: 1,
            aspect_ratio: "16:9".into(),
            duration: 8,
            image_urls: "".into(),
            submitted_at: "".into(),
            completed_at: "".into(),
            downloaded_at: "".into(),
            task_ids: "".into(),
        }
    }

    fn entry(t: &str, record: Record) -> Entry {
        Entry {
            t: t.into(),
            record,
        }
    }

    fn submitted(job: &str) -> Record {
        Record::Submitted {
            job: job.into(),
            attempt: 1,
            task_id: format!("t-{job}"),
        }
    }

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" + 'y')</script> & co"#),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; co"
        );
        assert_eq!(escape("plain — ünïcode"), "plain — ünïcode");
        assert_eq!(
            escape("&amp;"),
            "&amp;amp;",
            "escaping is not idempotent, on purpose"
        );
    }

    #[cfg(unix)]
    #[test]
    fn relative_paths() {
        let rel = |from: &str, to: &str| {
            relative_path(Path::new(from), Path::new(to)).map(|p| p.display().to_string())
        };
        assert_eq!(rel("/a/out", "/a/out/x.mp4").as_deref(), Some("x.mp4"));
        assert_eq!(
            rel("/a/out", "/a/out/sub/x.mp4").as_deref(),
            Some("sub/x.mp4")
        );
        assert_eq!(
            rel("/a/out/", "/a/other/x.mp4").as_deref(),
            Some("../other/x.mp4")
        );
        assert_eq!(
            rel("/a/out/deep", "/b/x.mp4").as_deref(),
            Some("../../../b/x.mp4")
        );
        assert_eq!(
            rel("/a/./out/../out", "/a/out/./x.mp4").as_deref(),
            Some("x.mp4")
        );
        assert_eq!(rel("/", "/x.mp4").as_deref(), Some("x.mp4"));
        assert_eq!(rel("/a/out", "/a/out").as_deref(), Some("."));
        assert_eq!(rel("out", "/a/x.mp4"), None, "relative input");
    }

    #[cfg(unix)]
    #[test]
    fn video_src_is_relative_and_percent_encoded() {
        assert_eq!(
            video_src(Path::new("/srv/out"), Path::new("/srv/out/a.mp4")),
            "a.mp4"
        );
        assert_eq!(
            video_src(Path::new("/srv/out"), Path::new("/srv/my clips/#1?:x%.mp4")),
            "../my%20clips/%231%3F%3Ax%25.mp4"
        );
        assert_eq!(
            video_src(Path::new("/srv/out"), Path::new("/srv/out/é.mp4")),
            "%C3%A9.mp4"
        );
        // Relative paths are taken from the current folder, like the runner's own.
        assert_eq!(
            video_src(Path::new("out"), Path::new("out/v/a.mp4")),
            "v/a.mp4"
        );
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
        assert_eq!(timeline.len(), 6, "{timeline:?}");
        assert_eq!(timeline[0].at_secs, 0.0);
        assert_eq!(
            cumulative(&timeline, TimelineKind::Submitted),
            [(0.0, 1), (0.0, 2), (29.0, 3)]
        );
        assert_eq!(
            cumulative(&timeline, TimelineKind::Finished),
            [(28.0, 1), (60.0, 2)]
        );
        assert_eq!(cumulative(&timeline, TimelineKind::Downloaded), [(63.0, 1)]);
        assert!(timeline_from_journal(&[]).is_empty());
    }

    #[test]
    fn timeline_svg_handles_zero_one_and_many_events() {
        let svg = timeline_svg(&[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert!(svg.contains("no task has been submitted yet"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));

        let one = [TimelineEvent {
            at_secs: 0.0,
            kind: TimelineKind::Submitted,
        }];
        let svg = timeline_svg(&one);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));

        let many: Vec<TimelineEvent> = (0..300)
            .map(|i| TimelineEvent {
                at_secs: f64::from(i) * 7.5,
                kind: TimelineKind::ALL[i as usize % 3],
            })
            .collect();
        let svg = timeline_svg(&many);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("submitted (100)"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // A bounded number of ticks whatever the span.
        assert!(svg.matches(r#"class="tick""#).count() < 30);
    }

    #[test]
    fn render_has_a_video_per_success_and_a_row_per_failure() {
        let rows = vec![
            row("a", Status::Succeeded, "/srv/out/a.mp4"),
            row("b", Status::Failed, ""),
            row("c", Status::Succeeded, "/srv/out/c.mp4"),
            row("d", Status::Expired, ""),
            row("e", Status::Pending, ""),
            row("f", Status::Succeeded, "/srv/out/f.mp4"),
        ];
        let html = render(&Page {
            campaign: "spring <launch>",
            dir: Path::new("/srv/out"),
            rows: &rows,
            timeline: Vec::new(),
        });
        assert_eq!(html.matches("<video ").count(), 3);
        assert!(html.contains(r#"<video controls preload="metadata" src="c.mp4">"#));
        assert_eq!(html.matches("<tr data-job=").count(), 3);
        for id in ["b", "d", "e"] {
            assert!(html.contains(&format!(r#"<tr data-job="{id}""#)), "{id}");
        }
        assert!(html.contains("error of d"));
        assert!(html.contains("<title>spring &lt;launch&gt; — runner report</title>"));
        assert!(html.contains(r#"data-status="succeeded"><b>3</b>"#));
        assert!(html.contains(r#"data-status="timed_out"><b>0</b>"#));
        assert!(html.contains("4.5 MB"), "total bytes");
        assert!(html.contains("24 s"), "total seconds of video");
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only the page's own script"
        );
        for external in ["src=\"http", "href=", "@import", "url("] {
            assert!(!html.contains(external), "nothing external: {external}");
        }
    }

    #[test]
    fn render_escapes_everything_user_provided() {
        let mut bad = row("x", Status::Failed, "");
        bad.prompt = "<script>alert(1)</script>".into();
        bad.error = r#"400: "bad" <b>"#.into();
        bad.task_id = "<t>".into();
        let mut good = row("y", Status::Succeeded, r#"/srv/out/"q'<.mp4"#);
        good.prompt = r#"" onmouseover="alert(1)"#.into();
        let rows = [bad, good];
        let html = render(&Page {
            campaign: "c",
            dir: Path::new("/srv/out"),
            rows: &rows,
            timeline: Vec::new(),
        });
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("400: &quot;bad&quot; &lt;b&gt;"));
        assert!(html.contains("&lt;t&gt;"));
        assert!(!html.contains(r#"" onmouseover"#));
        assert!(html.contains(r#"src="%22q%27%3C.mp4""#));
    }

    #[test]
    fn render_with_nothing_done() {
        let html = render(&Page {
            campaign: "c",
            dir: Path::new("/srv/out"),
            rows: &[],
            timeline: Vec::new(),
        });
        assert!(html.contains("No video has been downloaded yet."));
        assert!(html.contains("Every job succeeded."));
        assert!(html.contains("0 jobs"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(31_400_000), "31.4 MB");
        assert_eq!(human_secs(48), "48 s");
        assert_eq!(human_secs(120), "2 min");
        assert_eq!(human_secs(128), "2 min 8 s");
        assert_eq!(human_secs(3780), "1 h 3 min");
        assert_eq!(
            path_next_to(Path::new("out/report.csv")),
            Path::new("out/report.html")
        );
    }
}
