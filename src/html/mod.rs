//! The HTML report: one self-contained page for a campaign of 1 or 100,000 jobs.
//!
//! The page is built with [maud] (everything interpolated is escaped) and holds
//! everything inline: its CSS, the run's timeline as an SVG ([`timeline`]), every
//! job as one embedded JSON array ([`data`]) and the script that shows them
//! (`page.js`): a paged list of jobs, as video cards or a sortable table, with
//! filters by status and model, a search over id and prompt, and a detail panel
//! per job. The view is named in the URL's fragment (`report.html#status=failed&q=cat`),
//! so a filtered view can be shared or bookmarked. Videos are only `<video
//! preload="none">` elements of the shown page, given their `src` when scrolled
//! into view: a 100k-job page never holds 100k players.
//!
//! The page is written next to the CSV report and plays the videos from disk:
//! every `src` is relative to the page's folder, so it works opened from disk
//! (`file://`) and served over HTTP from the output folder.
//!
//! The one entry point is [`render`] of a [`Page`]; [`write`] puts it on disk.

mod data;
mod paths;
mod timeline;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::util::human_bytes;

pub use paths::{Srcs, video_src};
pub use timeline::{Timeline, TimelineEvent, TimelineKind, cumulative, timeline_from_journal};

use crate::manifest::{Price, Pricing};
use crate::plan::Cost;
use crate::report::Row;
use crate::state::Status;

/// Everything the page shows: the campaign's name and prices, the report rows
/// and the journal's timeline.
///
/// For a campaign run in shards, give the rows of every shard (one per job, in
/// manifest order) and the timeline of every shard's journal chained:
/// `timeline_from_journal(shard1.iter().chain(&shard2))`.
#[derive(Debug)]
pub struct Page<'a> {
    /// The campaign's name, the page's title.
    pub campaign: &'a str,
    /// The folder the page is written to: video `src`s are relative to it.
    pub dir: &'a Path,
    /// The report rows, in manifest order.
    pub rows: &'a [Row<'a>],
    /// The campaign's `[pricing]`: what was spent is the price of the succeeded jobs.
    pub pricing: &'a Pricing,
    /// From [`timeline_from_journal`]: the chart, the run's date and its span.
    pub timeline: Timeline,
}

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

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

/// `2026-01-01 10:00:00 UTC`.
fn human_time(at: SystemTime) -> String {
    let t = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", t.trim_end_matches('Z').replacen('T', " ", 1))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
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

/// What `rows` cost by `prices` (model name → price); `Known(0)` for no rows.
fn cost<'r>(
    rows: impl Iterator<Item = &'r Row<'r>>,
    prices: &HashMap<&str, Option<Price>>,
) -> Cost {
    rows.fold(None, |total: Option<Cost>, row| {
        let one = match prices.get(&*row.model).copied().flatten() {
            Some(price) => Cost::Known(price.cost(row.duration)),
            None => Cost::Unknown,
        };
        Some(total.map_or(one, |t| t.plus(one)))
    })
    .unwrap_or(Cost::Known(0.0))
}

/// The whole page.
pub fn render(page: &Page) -> String {
    let rows = page.rows;
    let mut prices: HashMap<&str, Option<Price>> = HashMap::new();
    for row in rows {
        prices
            .entry(&*row.model)
            .or_insert_with(|| data::price_of(page.pricing, &row.model));
    }
    let succeeded = || rows.iter().filter(|r| r.status == Status::Succeeded);
    let n_succeeded = succeeded().count();
    let bytes: u64 = succeeded().filter_map(|r| r.bytes).sum();
    let seconds: u64 = succeeded().map(|r| u64::from(r.duration)).sum();
    let currency = page.pricing.currency.as_str();
    let spent = cost(succeeded(), &prices).display(currency);
    let whole = cost(rows.iter(), &prices).display(currency);
    let timeline = &page.timeline;
    let base = timeline
        .first_record
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0);
    let json = data::json(rows, page.pricing, page.dir, base);
    let counts: Vec<(Status, usize)> = Status::ALL
        .iter()
        .map(|&s| (s, rows.iter().filter(|r| r.status == s).count()))
        .collect();

    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.campaign) " — runner report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    header {
                        div.summary {
                            p.eyebrow { "runner report" }
                            h1 { (page.campaign) }
                            p.run {
                                @match (timeline.first_record, timeline.last_record) {
                                    (Some(first), Some(last)) => {
                                        "Started " b { (human_time(first)) }
                                        " · last record " b { (human_time(last)) }
                                        " · " b.span { (human_secs(timeline.span_secs().unwrap_or(0))) }
                                    }
                                    _ => { "Not run yet: the state file has no record." }
                                }
                            }
                            p.totals {
                                b { (plural(rows.len(), "job")) } " · "
                                b { (human_secs(seconds)) } " of video · "
                                b { (human_bytes(bytes)) } " on disk"
                            }
                            p.cost title="by the manifest's [pricing]; a succeeded job is counted at its price" {
                                "Cost " b #spent { (spent) } " spent on " (plural(n_succeeded, "video"))
                                " · " b #whole { (whole) } " for every job"
                            }
                            ul.counts {
                                @for (status, n) in &counts {
                                    li class={ (status_class(*status)) @if *n == 0 { " zero" } } data-status=(status) {
                                        a href={ "#status=" (status) } {
                                            b { (n) } span { (status) }
                                        }
                                    }
                                }
                            }
                        }
                        section #timeline.chart {
                            h2 { "Timeline" }
                            (timeline::svg(&timeline.events))
                        }
                    }
                    noscript {
                        p.none {
                            "The list of jobs needs JavaScript. Every job is also in the CSV report beside this page."
                        }
                    }
                    section #jobs hidden {
                        h2 { "Jobs " span.n #matching {} }
                        div.controls {
                            fieldset.statuses {
                                legend { "Status" }
                                @for (status, n) in counts.iter().filter(|(_, n)| *n > 0) {
                                    label.chip {
                                        input type="checkbox" name="status" value=(status);
                                        span class={ "badge " (status_class(*status)) } { (status) }
                                        " " span.n { (n) }
                                    }
                                }
                            }
                            label { "Model "
                                select #model { option value="" { "all models" } }
                            }
                            label.grow { "Search "
                                input #q type="search" placeholder="id or prompt" autocomplete="off";
                            }
                            label { "Sort "
                                select #sort {
                                    option value="" { "manifest order" }
                                    @for (key, label) in SORTS {
                                        option value=(key) { (label) }
                                    }
                                }
                            }
                            button #dir type="button" title="reverse the order" { "↑" }
                            span.views role="group" aria-label="view" {
                                button type="button" data-view="grid" { "Videos" }
                                button type="button" data-view="table" { "Table" }
                            }
                        }
                        nav.pager {
                            button #prev type="button" { "‹ previous" }
                            span #pageinfo {}
                            button #next type="button" { "next ›" }
                            label { "per page "
                                select #per {
                                    @for n in [24, 48, 96, 200] {
                                        option value=(n) selected[n == 48] { (n) }
                                    }
                                }
                            }
                        }
                        div #list {}
                    }
                    dialog #detail {}
                    footer {
                        "Written by runner " (env!("CARGO_PKG_VERSION"))
                        " from the state file. Videos play from their paths relative to this page."
                    }
                }
                script #data type="application/json" { (PreEscaped(&json)) }
                script { (PreEscaped(JS)) }
            }
        }
    };
    markup.into_string()
}

/// The sort keys `page.js` knows, and their labels.
const SORTS: &[(&str, &str)] = &[
    ("id", "job id"),
    ("status", "status"),
    ("model", "model"),
    ("duration", "duration"),
    ("attempts", "attempts"),
    ("bytes", "size"),
    ("cost", "price"),
    ("submitted", "submitted"),
    ("finished", "finished"),
    ("downloaded", "downloaded"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Model;

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

    fn priced(per_second: f64) -> Pricing {
        Pricing {
            currency: "USD".into(),
            per_model: [(
                Model::from_static("veo3.1-fast"),
                Price::PerSecond(per_second),
            )]
            .into_iter()
            .collect(),
        }
    }

    fn render_rows(rows: &[Row], pricing: &Pricing) -> String {
        render(&Page {
            campaign: "spring <launch>",
            dir: Path::new("/srv/out"),
            rows,
            pricing,
            timeline: Timeline::default(),
        })
    }

    #[test]
    fn the_header_counts_costs_and_sizes() {
        let rows = vec![
            row("a", Status::Succeeded, "/srv/out/a.mp4"),
            row("b", Status::Failed, ""),
            row("c", Status::Succeeded, "/srv/out/c.mp4"),
            row("d", Status::Expired, ""),
            row("e", Status::Pending, ""),
            row("f", Status::Succeeded, "/srv/out/f.mp4"),
        ];
        let html = render_rows(&rows, &priced(0.05));
        assert!(html.contains("<title>spring &lt;launch&gt; — runner report</title>"));
        assert!(html.contains(r##"data-status="succeeded"><a href="#status=succeeded"><b>3</b>"##));
        assert!(html.contains(r##"data-status="timed_out"><a href="#status=timed_out"><b>0</b>"##));
        assert!(html.contains("4.5 MB"), "total bytes");
        assert!(html.contains("24 s"), "total seconds of video");
        // 3 succeeded × 8 s × $0.05; 6 jobs in all.
        assert!(
            html.contains(r#"<b id="spent">$1.20</b> spent on 3 videos"#),
            "{html}"
        );
        assert!(html.contains(r#"<b id="whole">$2.40</b> for every job"#));
        assert!(html.contains("Not run yet"));
        // No player is in the page itself: the script makes a page of them.
        assert_eq!(html.matches("<video").count(), 0);
        assert_eq!(
            html.matches("<script").count(),
            2,
            "the data and the script"
        );
        for external in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!html.contains(external), "nothing external: {external}");
        }
    }

    #[test]
    fn unpriced_models_are_never_free() {
        let rows = vec![row("a", Status::Succeeded, "/srv/out/a.mp4")];
        let html = render_rows(&rows, &Pricing::default());
        assert!(html.contains(r#"<b id="spent">unknown</b>"#), "{html}");
        let mut other = row("b", Status::Succeeded, "/srv/out/b.mp4");
        other.model = "sora-2".into();
        let rows = vec![rows[0].clone(), other];
        let html = render_rows(&rows, &priced(0.05));
        assert!(html.contains(r#"<b id="spent">≥ $0.40</b>"#), "{html}");
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
            campaign: "c</title><script>alert(2)</script>",
            dir: Path::new("/srv/out"),
            rows: &rows,
            pricing: &Pricing::default(),
            timeline: Timeline::default(),
        });
        assert_eq!(html.matches("<script").count(), 2);
        assert_eq!(html.matches("</script>").count(), 2);
        assert!(html.contains("c&lt;/title&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(html.contains(r#"\u003cscript>alert(1)\u003c/script>"#));
        assert!(html.contains(r#"400: \"bad\" \u003cb>"#));
        assert!(html.contains(r#""%22q%27%3C.mp4""#));
    }

    #[test]
    fn the_run_date_and_span_come_from_the_journal() {
        let at = |t: &str| humantime::parse_rfc3339(t).ok();
        let html = render(&Page {
            campaign: "c",
            dir: Path::new("/srv/out"),
            rows: &[],
            pricing: &Pricing::default(),
            timeline: Timeline {
                events: Vec::new(),
                first_record: at("2026-03-01T09:00:00Z"),
                last_record: at("2026-03-01T09:42:10Z"),
            },
        });
        assert!(
            html.contains("Started <b>2026-03-01 09:00:00 UTC</b>"),
            "{html}"
        );
        assert!(html.contains("last record <b>2026-03-01 09:42:10 UTC</b>"));
        assert!(html.contains(r#"<b class="span">42 min 10 s</b>"#));
        assert!(html.contains("0 jobs"));
        assert!(html.contains(r#"<b id="spent">$0.00</b>"#));
    }

    #[test]
    fn human_units() {
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
