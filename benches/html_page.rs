//! `cargo bench --bench html_page`: the HTML report of a 100k-job campaign (issue 16).
//!
//! Prints figures, asserts nothing: the time to build the page (timeline + render),
//! its size, and how long headless Chromium takes to show its first screen, measured
//! three ways, each the median of a few runs:
//! - `first render`: `performance.now()` when the page's script has built the first
//!   page of jobs (it writes it to `<html data-first-render-ms>`), read from `--dump-dom`:
//!   from navigation start, so it counts reading the file, parsing the HTML and the JSON;
//!   `first paint`: the same after the next frame (`data-first-paint-ms`), when recorded;
//! - `--dump-dom` wall time of the whole browser process, and the same for an empty page
//!   (the browser's own start and stop), and their difference (this includes serialising
//!   the whole DOM, the 30 MB of data included, to stdout: an upper bound);
//! - `--screenshot` wall time (the first screen painted to a PNG), and its difference
//!   from an empty page's.
//!
//! `HTML_BENCH_JOBS=10000` changes the size; `RUNNER_CHROMIUM` names the browser
//! (default `/usr/bin/chromium`; without one only the build figures are printed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/chromium.rs"]
mod chromium_flags;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use runner::html::{self, Page};
use runner::journal::{Entry, Record};
use runner::manifest::{Price, Pricing};
use runner::models::Model;
use runner::report::Row;
use runner::state::Status;

const BASE: u64 = 1_780_000_000;

fn stamp(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(BASE + secs)).to_string()
}

const SUBJECTS: &[&str] = &[
    "a fishing harbour at dawn",
    "a neon-lit city street in the rain",
    "an autumn forest seen from a drone",
    "coffee poured into a white cup",
    "a surfer on a large wave",
    "a lighthouse in a storm",
    "clouds rolling over a mountain ridge",
];

/// A campaign's rows as `report::rows` gives them: 96% succeeded, the rest failed,
/// expired or still pending; two models; prompts of ~100 characters; real-looking
/// task ids, hashes and times.
fn rows(n: usize, out: &Path) -> Vec<Row<'static>> {
    (0..n)
        .map(|i| {
            let status = match i % 100 {
                0..96 => Status::Succeeded,
                96 | 97 => Status::Failed,
                98 => Status::Expired,
                _ => Status::Pending,
            };
            let ok = status == Status::Succeeded;
            let sent = status != Status::Pending;
            let submitted = (i / 20) as u64;
            let id = format!("shot-{i:06}");
            Row {
                job_id: id.clone().into(),
                status,
                task_id: if sent {
                    format!("video_01K8{:016X}", i * 7919).into()
                } else {
                    "".into()
                },
                model: if i % 4 == 0 { "sora-2" } else { "veo3.1-fast" }.into(),
                prompt: format!(
                    "Take {i}: {}, slow camera push-in, golden light, 35 mm film look, shallow depth of field",
                    SUBJECTS[i % SUBJECTS.len()]
                )
                .into(),
                output_path: if ok {
                    out.join("clips")
                        .join(format!("{id}.mp4"))
                        .display()
                        .to_string()
                        .into()
                } else {
                    "".into()
                },
                bytes: ok.then_some(4_000_000 + (i as u64 * 7919) % 3_000_000),
                sha256: if ok {
                    format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                        .repeat(4)
                        .into()
                } else {
                    "".into()
                },
                error: match status {
                    Status::Failed => "task failed: content policy: the request was rejected by the safety filter".into(),
                    Status::Expired => "the video URL expired before it was downloaded".into(),
                    _ => "".into(),
                },
                attempts: u32::from(sent),
                aspect_ratio: if i % 2 == 0 { "16:9" } else { "9:16" }.into(),
                duration: 8,
                image_urls: "".into(),
                submitted_at: if sent { stamp(submitted).into() } else { "".into() },
                completed_at: if ok { stamp(submitted + 60).into() } else { "".into() },
                downloaded_at: if ok { stamp(submitted + 63).into() } else { "".into() },
                task_ids: "".into(),
            }
        })
        .collect()
}

/// A journal of the same run: submitted, completed, downloaded per job.
fn journal(rows: &[Row]) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(rows.len() * 3);
    for (i, row) in rows.iter().enumerate() {
        if row.status == Status::Pending {
            continue;
        }
        let at = (i / 20) as u64;
        let job = row.job_id.to_string();
        let task_id = row.task_id.to_string();
        entries.push(Entry {
            t: stamp(at),
            record: Record::Submitted {
                job: job.clone(),
                attempt: 1,
                task_id: task_id.clone(),
            },
        });
        entries.push(Entry {
            t: stamp(at + 60),
            record: Record::Completed {
                job: job.clone(),
                task_id: task_id.clone(),
                url: "u".into(),
                expires_at: None,
            },
        });
        entries.push(Entry {
            t: stamp(at + 63),
            record: Record::Downloaded {
                job,
                task_id,
                path: "p".into(),
                bytes: 1,
                sha256: "s".into(),
            },
        });
    }
    entries
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs headless Chromium (tests/common/chromium.rs's flags) on `url`; returns (wall seconds, stdout).
fn chromium(browser: &Path, args: &[&str], url: &str) -> (f64, String) {
    let profile = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(browser)
        .args(chromium_flags::HEADLESS_FLAGS)
        .arg("--window-size=1280,900")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("chromium starts");
    let wall = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "chromium failed: {}", out.status);
    (wall, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn marker_ms(dom: &str, name: &str) -> Option<f64> {
    let key = format!("data-{name}-ms=\"");
    let start = dom.find(&key)? + key.len();
    dom[start..].split('"').next()?.parse().ok()
}

fn main() {
    let n: usize = std::env::var("HTML_BENCH_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let rows = rows(n, &out);
    let entries = journal(&rows);
    let pricing = Pricing {
        currency: "USD".into(),
        per_model: [
            (Model::from_static("veo3.1-fast"), Price::PerSecond(0.05)),
            (Model::from_static("sora-2"), Price::PerVideo(0.8)),
        ]
        .into_iter()
        .collect(),
    };

    let mut timeline_s = Vec::new();
    let mut render_s = Vec::new();
    let mut page = String::new();
    for _ in 0..5 {
        let started = Instant::now();
        let timeline = html::timeline_from_journal(&entries);
        timeline_s.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        page = html::render(&Page {
            campaign: "bench",
            dir: &out,
            rows: &rows,
            pricing: &pricing,
            timeline,
        });
        render_s.push(started.elapsed().as_secs_f64());
    }
    let path = out.join("report.html");
    let started = Instant::now();
    html::write(&path, &page).unwrap();
    let write_s = started.elapsed().as_secs_f64();
    let data = page
        .split("<script id=\"data\" type=\"application/json\">")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .map_or(0, str::len);
    println!("html_page: {n} jobs, {} journal records", entries.len());
    println!(
        "  build: timeline {:.0} ms, render {:.0} ms, write {:.0} ms (median of 5; release)",
        median(timeline_s) * 1e3,
        median(render_s) * 1e3,
        write_s * 1e3
    );
    println!(
        "  page: {:.1} MB ({:.1} MB of it the jobs' JSON, {:.0} bytes per job); {} <video> in the file",
        page.len() as f64 / 1e6,
        data as f64 / 1e6,
        data as f64 / n.max(1) as f64,
        page.matches("<video").count()
    );

    let browser = std::env::var_os("RUNNER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !browser.exists() {
        println!(
            "  browser: {} not found; set RUNNER_CHROMIUM for the browser figures",
            browser.display()
        );
        return;
    }
    let empty = out.join("empty.html");
    std::fs::write(&empty, "<!doctype html><title>empty</title><p>empty</p>").unwrap();
    let url = format!("file://{}", path.display());
    let empty_url = format!("file://{}", empty.display());
    let png = out.join("shot.png");
    let shot = format!("--screenshot={}", png.display());
    let (mut first, mut painted, mut dump, mut dump0, mut paint, mut paint0) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut players = 0;
    let mut filtered = Vec::new();
    let filtered_url = format!("{url}#q=storm%20film&sort=-bytes&view=table");
    for _ in 0..3 {
        let (_, dom) = chromium(&browser, &["--dump-dom"], &filtered_url);
        filtered.push(marker_ms(&dom, "first-render").expect("the page's script ran"));
        let (wall, dom) = chromium(&browser, &["--dump-dom"], &url);
        dump.push(wall);
        first.push(marker_ms(&dom, "first-render").expect("the page's script ran"));
        painted.extend(marker_ms(&dom, "first-paint"));
        players = dom.matches("<video ").count();
        dump0.push(chromium(&browser, &["--dump-dom"], &empty_url).0);
        paint.push(chromium(&browser, &[&shot], &url).0);
        paint0.push(chromium(&browser, &[&shot], &empty_url).0);
    }
    let (dump, dump0, paint, paint0) = (median(dump), median(dump0), median(paint), median(paint0));
    let painted = if painted.is_empty() {
        "not recorded before the dump".to_string()
    } else {
        format!("{:.0} ms", median(painted))
    };
    println!(
        "  chromium: first render at {:.0} ms, first paint at {painted} (performance.now() from \
         navigation start, median of 3); {players} <video> in the DOM",
        median(first)
    );
    println!(
        "  chromium, opened on #q=storm%20film&sort=-bytes&view=table (search all, sort the matches \
         by size): first render at {:.0} ms",
        median(filtered)
    );
    println!(
        "  chromium --dump-dom: {dump:.2} s wall, empty page {dump0:.2} s: the page adds {:.2} s",
        dump - dump0
    );
    println!(
        "  chromium --screenshot (first screen painted): {paint:.2} s wall, empty page {paint0:.2} s: the page adds {:.2} s",
        paint - paint0
    );
}
