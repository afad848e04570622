//! The HTML report in a real browser: headless Chromium opens the page and dumps its DOM.
//!
//! Chromium is Debian's `chromium` (`/usr/bin/chromium`, installed by `.ci/run`;
//! `RUNNER_CHROMIUM` names another binary). Without it these tests fail when `CI`
//! is set; otherwise each prints a `SKIPPED:` line on stderr, past the test
//! harness's capture, so `cargo test` shows it.
//!
//! The page's view is driven by its URL fragment (`report.html#status=failed&q=cat`),
//! as a user's shared link would: filters, search, sort, paging and the detail
//! panel are all checked from the DOM Chromium dumps. The page is checked opened
//! from disk and served over HTTP from the output folder, and at 10,000 jobs.
//! `cargo test --test html -- --ignored` also rewrites `docs/report.png`, the README's screenshot.

#![expect(clippy::expect_used, reason = "a test stops at the first broken step")]

#[path = "common/chromium.rs"]
mod chromium_flags;

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runner::html::{self, Page};
use runner::journal::{Entry, Record};
use runner::manifest::{Price, Pricing};
use runner::models::Model;
use runner::report::Row;
use runner::state::Status;

/// The browser, or `None` when it is missing outside CI, after a loud `SKIPPED:` line.
fn chromium(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("RUNNER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing, and CI is set: the HTML report test needs headless Chromium \
             (apt-get install -y chromium; .ci/run installs it)",
            path.display()
        );
    }
    // Written to the process's stderr in one write, not with eprintln!: the harness
    // captures that for a passing test, and a skip must not read as a pass.
    let line = format!(
        "\nSKIPPED: tests/html.rs {test}: chromium not found at {}, install it \
         (apt-get install -y chromium) or set RUNNER_CHROMIUM\n",
        path.display()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// A browser window: its size decides which lazy videos are "in view".
const WINDOW: &str = "--window-size=1280,900";
/// Tall enough for every card of the small fixture to be in view.
const TALL: &str = "--window-size=1280,4000";

/// The DOM of `url` after the page's script ran and the media it asked for loaded.
fn dom_of(chromium: &Path, url: &str, window: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    headless(
        chromium,
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=3000", window],
        url,
    )
}

fn file_url(page: &Path, fragment: &str) -> String {
    format!("file://{}{fragment}", page.display())
}

/// The text of the detail panel's field `name` (`<dd data-field="name">`), tags stripped.
fn field(dom: &str, name: &str) -> String {
    let key = format!("<dd data-field=\"{name}\">");
    let Some(start) = dom.find(&key).map(|i| i + key.len()) else {
        return format!("(no field {name})");
    };
    let end = dom[start..].find("</dd>").map_or(dom.len(), |e| start + e);
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// The value of `data-NAME` on the jobs section (set by the page's script).
fn section_data(dom: &str, name: &str) -> String {
    attrs(dom, "section", &format!("data-{name}"))
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

fn pricing() -> Pricing {
    Pricing {
        currency: "USD".into(),
        per_model: [
            (Model::from_static("veo3.1-fast"), Price::PerSecond(0.05)),
            (Model::from_static("sora-2"), Price::PerVideo(0.5)),
        ]
        .into_iter()
        .collect(),
    }
}

/// Runs headless Chromium on `url` with a fresh profile and returns its stdout.
/// The flags keep it off the network: this machine has none, and it would retry forever.
fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium)
        .args(chromium_flags::HEADLESS_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 120 s; stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    assert!(status.success(), "chromium failed: {status}\n{stderr}");
    stdout
}

/// `seconds` of silence as a WAV file: real media the browser can open, written without ffmpeg.
fn wav(seconds: u32) -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = RATE * seconds;
    let mut out = Vec::with_capacity(44 + samples as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes()); // bytes per second
    out.extend_from_slice(&1u16.to_le_bytes()); // block align
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&samples.to_le_bytes());
    out.resize(44 + samples as usize, 128); // 8-bit PCM silence
    out
}

fn row(id: &str, status: Status, prompt: &str, path: &Path, error: &str) -> Row<'static> {
    let succeeded = status == Status::Succeeded;
    Row {
        job_id: id.to_string().into(),
        status,
        task_id: if status == Status::Pending {
            "".into()
        } else {
            format!("video_01K8{}", id.to_uppercase()).into()
        },
        model: "veo3.1-fast".into(),
        prompt: prompt.to_string().into(),
        output_path: if succeeded {
            path.display().to_string().into()
        } else {
            "".into()
        },
        bytes: succeeded.then(|| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)),
        sha256: if succeeded {
            format!("{:0>64}", format!("{:x}", id.len() * 0xbeef)).into()
        } else {
            "".into()
        },
        error: error.to_string().into(),
        attempts: u32::from(status != Status::Pending),
        aspect_ratio: "16:9".into(),
        duration: 8,
        image_urls: "".into(),
        submitted_at: if status == Status::Pending {
            "".into()
        } else {
            "2026-05-28T20:26:42Z".into()
        },
        completed_at: if succeeded {
            "2026-05-28T20:27:24Z".into()
        } else {
            "".into()
        },
        downloaded_at: if succeeded {
            "2026-05-28T20:27:27Z".into()
        } else {
            "".into()
        },
        task_ids: "".into(),
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A journal where `n` tasks are submitted every 2 s, finish ~40 s later and download 3 s after that.
fn journal(n: u64, failed: &[u64]) -> Vec<Entry> {
    let t = |secs: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + secs),
        )
        .to_string()
    };
    let mut entries = Vec::new();
    for i in 0..n {
        let job = format!("j{i}");
        let task_id = format!("t{i}");
        entries.push(Entry {
            t: t(i * 2),
            record: Record::Submitted {
                job: job.clone(),
                attempt: 1,
                task_id: task_id.clone(),
            },
        });
        let done = i * 2 + 35 + (i * 7) % 11;
        if failed.contains(&i) {
            entries.push(Entry {
                t: t(done),
                record: Record::TaskFailed {
                    job,
                    task_id,
                    error: "failed".into(),
                },
            });
            continue;
        }
        entries.push(Entry {
            t: t(done),
            record: Record::Completed {
                job: job.clone(),
                task_id: task_id.clone(),
                url: "u".into(),
                expires_at: None,
            },
        });
        entries.push(Entry {
            t: t(done + 3),
            record: Record::Downloaded {
                job,
                task_id,
                path: "p".into(),
                bytes: 1,
                sha256: "s".into(),
            },
        });
    }
    entries.sort_by(|a, b| a.t.cmp(&b.t));
    entries
}

/// The value of attribute `name` in each opening tag `<tag ...>` of `dom`, in order.
fn attrs(dom: &str, tag: &str, name: &str) -> Vec<String> {
    let open = format!("<{tag} ");
    let key = format!(" {name}=\"");
    dom.match_indices(&open)
        .map(|(i, _)| {
            let end = dom[i..].find('>').map(|e| i + e).unwrap_or(dom.len());
            let tag_text = &dom[i..end];
            tag_text
                .find(&key)
                .map(|k| {
                    let rest = &tag_text[k + key.len()..];
                    rest[..rest.find('"').unwrap_or(rest.len())].to_string()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// A page of four videos (see below), four jobs that did not succeed, one of them of
/// another model, in a temp folder: `(folder, page)`.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out");
    // Simulator-like bytes (not media), real media in a subfolder whose name needs
    // encoding, real media outside the page's folder, and a file that is gone.
    let fake = out.join("clip-a.mp4");
    let real = out.join("videos 16x9").join("real.wav");
    let outside = tmp.path().join("elsewhere").join("o.wav");
    let missing = out.join("missing.mp4");
    write(&fake, &[0x5a; 4096]);
    write(&real, &wav(2));
    write(&outside, &wav(1));
    let mut refused = row(
        "f-400",
        Status::Failed,
        "a prompt",
        &fake,
        r#"400: prompt refused: "<script>alert('x')</script>""#,
    );
    refused.model = "sora-2".into();
    refused.attempts = 2;
    refused.task_ids = "video_old|video_01K8F-400".into();
    let rows = vec![
        row(
            "clip-a",
            Status::Succeeded,
            "Dolphins <img src=x onerror=alert(1)> jumping",
            &fake,
            "",
        ),
        refused,
        row("real", Status::Succeeded, "Clouds rolling", &real, ""),
        row(
            "f-exp",
            Status::Expired,
            "p",
            &fake,
            "the video URL expired",
        ),
        row("outside", Status::Succeeded, "Rain on glass", &outside, ""),
        row("f-unknown", Status::Unknown, "p", &fake, "reset"),
        row("missing", Status::Succeeded, "Lost", &missing, ""),
        row("f-pending", Status::Pending, "p", &fake, ""),
    ];
    let page = Page {
        campaign: "spring & <launch>",
        dir: &out,
        rows: &rows,
        pricing: &pricing(),
        timeline: html::timeline_from_journal(&journal(6, &[2])),
    };
    let page_path = out.join("report.html");
    html::write(&page_path, &html::render(&page)).expect("write the page");
    (tmp, page_path)
}

/// What the dumped DOM of the unfiltered fixture must hold; `states` is each video
/// card's `data-state`, set by the page's script when its media loaded or failed.
fn check_dom(dom: &str, states: [&str; 4]) {
    assert_eq!(dom.matches("<video ").count(), 4, "{dom}");
    assert_eq!(
        attrs(dom, "video", "src"),
        [
            "clip-a.mp4",
            "videos%2016x9/real.wav",
            "../elsewhere/o.wav",
            "missing.mp4"
        ],
        "{dom}"
    );
    assert!(
        attrs(dom, "video", "preload")
            .iter()
            .all(|p| p == "metadata")
    );
    assert_eq!(
        attrs(dom, "figure", "data-job"),
        [
            "clip-a",
            "f-400",
            "real",
            "f-exp",
            "outside",
            "f-unknown",
            "missing",
            "f-pending"
        ]
    );
    // The page's script ran and the browser resolved every src against the page's URL.
    let video_states: Vec<String> = dom
        .split("<figure ")
        .skip(1)
        .filter(|card| card.contains("<video "))
        .map(|card| attrs(&format!("<figure {card}"), "figure", "data-state")[0].clone())
        .collect();
    assert_eq!(video_states, states, "{dom}");
    assert!(dom.contains("400: prompt refused: \"&lt;script&gt;alert('x')&lt;/script&gt;\""));
    assert!(dom.contains("Dolphins &lt;img src=x onerror=alert(1)&gt; jumping"));
    assert!(!dom.contains("<img"), "a prompt became markup: {dom}");
    assert_eq!(
        dom.matches("<script").count(),
        2,
        "only the page's own data and script"
    );
    assert!(dom.contains("<title>spring &amp; &lt;launch&gt; — runner report</title>"));
    assert!(dom.contains(r#"<svg class="timeline""#), "{dom}");
    assert_eq!(
        attrs(dom, "polyline", "data-kind"),
        ["submitted", "finished", "downloaded"]
    );
    assert!(dom.contains("submitted (6)") && dom.contains("downloaded (5)"));
    // 4 succeeded × 8 s × $0.05; every job: 7 × $0.40 and the sora-2 one $0.50.
    assert!(
        dom.contains(r#"<b id="spent">$1.60</b> spent on 4 videos"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<b id="whole">$3.30</b> for every job"#),
        "{dom}"
    );
    assert!(dom.contains(r#"<span id="pageinfo">1–8 of 8 · page 1 of 1</span>"#));
}

#[test]
fn the_page_shows_every_video_and_every_failure_in_chromium() {
    let Some(chromium) = chromium("the_page_shows_every_video_and_every_failure_in_chromium")
    else {
        return;
    };
    let (_tmp, page_path) = fixture();
    let dom = dom_of(&chromium, &file_url(&page_path, ""), TALL);
    // The real media loaded (also the one outside the page's folder); the fake bytes and
    // the missing file did not.
    check_dom(&dom, ["error", "loaded", "loaded", "error"]);
}

#[test]
fn the_page_works_served_over_http_from_the_output_folder() {
    let Some(chromium) = chromium("the_page_works_served_over_http_from_the_output_folder") else {
        return;
    };
    let (_tmp, page_path) = fixture();
    let root = page_path.parent().expect("output folder").to_path_buf();
    let base = serve(root);
    let dom = dom_of(&chromium, &format!("{base}/report.html"), TALL);
    // Served from the output folder, a video outside it cannot be reached: as documented.
    check_dom(&dom, ["error", "loaded", "error", "error"]);
}

#[test]
fn filters_search_and_sort_come_from_the_link() {
    let Some(chromium) = chromium("filters_search_and_sort_come_from_the_link") else {
        return;
    };
    let (_tmp, page) = fixture();
    let jobs = |fragment: &str, tag: &str| {
        let dom = dom_of(&chromium, &file_url(&page, fragment), WINDOW);
        (attrs(&dom, tag, "data-job"), dom)
    };
    let (ids, dom) = jobs("#status=failed,expired", "figure");
    assert_eq!(ids, ["f-400", "f-exp"], "{dom}");
    assert_eq!(section_data(&dom, "matching"), "2");
    assert!(dom.contains("(2 of 8 match)"), "{dom}");
    // The controls show the filter.
    assert!(dom.contains(r#"value="failed" checked="""#), "{dom}");
    assert!(dom.contains(r#"value="expired" checked="""#));
    assert!(!dom.contains(r#"value="succeeded" checked="""#));

    let (ids, _) = jobs("#model=sora-2", "figure");
    assert_eq!(ids, ["f-400"]);
    // Over id and prompt, case-insensitive; several words must all match.
    let (ids, _) = jobs("#q=DOLPHINS", "figure");
    assert_eq!(ids, ["clip-a"]);
    let (ids, _) = jobs("#q=f-", "figure");
    assert_eq!(ids, ["f-400", "f-exp", "f-unknown", "f-pending"]);
    let (ids, _) = jobs("#q=rain%20glass", "figure");
    assert_eq!(ids, ["outside"]);
    let (ids, dom) = jobs("#q=nothing-like-it", "figure");
    assert!(ids.is_empty());
    assert!(dom.contains("No job matches these filters."));

    // The table, sorted by a column, both ways; jobs with no value last either way.
    let (ids, dom) = jobs("#view=table&sort=-bytes", "tr");
    assert_eq!(
        ids[..4],
        ["real", "outside", "clip-a", "missing"],
        "largest first: {dom}"
    );
    assert!(dom.contains(r#"<th class="num" data-sort="bytes" aria-sort="descending">"#));
    let (ids, _) = jobs("#view=table&sort=id&status=succeeded", "tr");
    assert_eq!(ids, ["clip-a", "missing", "outside", "real"]);
    let (ids, _) = jobs("#view=table&sort=status", "tr");
    assert_eq!(ids[..4], ["clip-a", "real", "outside", "missing"]);
    assert_eq!(ids[7], "f-pending");
    // Paging.
    let (ids, dom) = jobs("#per=24&page=9", "figure");
    assert_eq!(ids.len(), 8, "a page past the end shows the last one");
    assert_eq!(section_data(&dom, "page"), "1");
}

#[test]
fn every_job_has_its_detail_succeeded_included() {
    let Some(chromium) = chromium("every_job_has_its_detail_succeeded_included") else {
        return;
    };
    let (_tmp, page) = fixture();
    let dom = dom_of(&chromium, &file_url(&page, "#job=real"), TALL);
    assert!(dom.contains(r#"<dialog id="detail" open="""#), "{dom}");
    assert!(dom.contains(r#"<div class="detail" data-job="real" data-status="succeeded">"#));
    assert_eq!(field(&dom, "task_id"), "video_01K8REAL");
    assert_eq!(field(&dom, "sha256"), format!("{:0>64}", "2fbbc"));
    assert_eq!(field(&dom, "bytes"), "16.0 KB (16,044 bytes)");
    assert_eq!(field(&dom, "attempts"), "1");
    assert_eq!(field(&dom, "submitted"), "2026-05-28 20:26:42 UTC");
    assert_eq!(
        field(&dom, "finished"),
        "2026-05-28 20:27:24 UTC (42 s after submit)"
    );
    assert_eq!(
        field(&dom, "downloaded"),
        "2026-05-28 20:27:27 UTC (3 s after finish)"
    );
    assert_eq!(field(&dom, "price"), "$0.40");
    assert_eq!(field(&dom, "file"), "videos 16x9/real.wav");
    assert_eq!(field(&dom, "error"), "–");
    // The detail plays the video, loaded because it is shown.
    assert!(
        dom.contains(r#"<dialog id="detail" open="" data-state="loaded">"#),
        "{dom}"
    );

    let dom = dom_of(&chromium, &file_url(&page, "#job=f-400&view=table"), WINDOW);
    assert_eq!(
        field(&dom, "error"),
        "400: prompt refused: \"&lt;script&gt;alert('x')&lt;/script&gt;\""
    );
    assert_eq!(field(&dom, "task_ids"), "video_old");
    assert_eq!(field(&dom, "attempts"), "2");
    assert_eq!(field(&dom, "price"), "$0.50");
    assert_eq!(field(&dom, "bytes"), "–");
    let dom = dom_of(&chromium, &file_url(&page, "#job=f-pending"), WINDOW);
    assert_eq!(field(&dom, "error"), "not sent yet");
    assert_eq!(field(&dom, "task_id"), "–");
    // An id the page does not have opens nothing.
    let dom = dom_of(&chromium, &file_url(&page, "#job=nope"), WINDOW);
    assert!(dom.contains(r#"<dialog id="detail"></dialog>"#), "{dom}");
}

/// 10,000 jobs: 70% succeeded, then failed, expired and pending; a third of them
/// `sora-2`; one prompt in seven has a cat. `(folder, page, rows)`.
fn ten_thousand() -> (tempfile::TempDir, PathBuf, Vec<Row<'static>>) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out");
    let rows: Vec<Row> = (0..10_000u64)
        .map(|i| {
            let status = match i % 10 {
                0..7 => Status::Succeeded,
                7 => Status::Failed,
                8 => Status::Expired,
                _ => Status::Pending,
            };
            let animal = if i % 7 == 0 { "cat" } else { "heron" };
            let prompt = format!("Shot {i}: a {animal} by the river at dusk, slow pan");
            let path = out.join("clips").join(format!("j{i}.mp4"));
            let mut row = row(&format!("j{i}"), status, &prompt, &path, "");
            if status == Status::Succeeded {
                row.bytes = Some((i * 7919) % 1_000_000 + 1000);
            }
            if status == Status::Failed {
                row.error = "task failed: content policy".into();
            }
            if i % 3 == 0 {
                row.model = "sora-2".into();
            }
            row
        })
        .collect();
    let page = Page {
        campaign: "ten thousand",
        dir: &out,
        rows: &rows,
        pricing: &pricing(),
        timeline: html::timeline_from_journal(&journal(10_000, &[7, 17, 27])),
    };
    let page_path = out.join("report.html");
    html::write(&page_path, &html::render(&page)).expect("write the page");
    (tmp, page_path, rows)
}

#[test]
fn a_10k_job_page_shows_one_page_of_jobs_and_loads_only_the_videos_in_view() {
    let Some(chromium) =
        chromium("a_10k_job_page_shows_one_page_of_jobs_and_loads_only_the_videos_in_view")
    else {
        return;
    };
    let (_tmp, page, rows) = ten_thousand();
    let bytes = std::fs::metadata(&page).expect("page").len();
    assert!(bytes < 4_000_000, "the 10k-job page is {bytes} bytes");

    let dom = dom_of(&chromium, &file_url(&page, ""), WINDOW);
    assert_eq!(section_data(&dom, "matching"), "10000");
    assert!(dom.contains("1–48 of 10,000 · page 1 of 209"), "pager");
    let cards = attrs(&dom, "figure", "data-job");
    let expected: Vec<String> = (0..48).map(|i| format!("j{i}")).collect();
    assert_eq!(cards, expected);
    // One player per succeeded job of the page, none preloading; only those near the
    // window have a src.
    let players = dom.matches("<video ").count();
    assert_eq!(players, (0..48).filter(|i| i % 10 < 7).count());
    let with_src = attrs(&dom, "video", "src")
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    assert!(
        with_src > 0 && with_src < players,
        "{with_src} of {players} players have a src"
    );
    assert_eq!(
        attrs(&dom, "video", "preload")
            .iter()
            .filter(|p| *p == "none")
            .count(),
        players - with_src
    );
    assert!(
        attrs(&dom, "html", "data-first-render-ms")[0]
            .parse::<u64>()
            .is_ok()
    );

    // Status, search and the second page, as a shared link gives them.
    let dom = dom_of(
        &chromium,
        &file_url(&page, "#status=failed&q=cat&view=table&page=2"),
        WINDOW,
    );
    let matching: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == Status::Failed && r.prompt.contains("cat"))
        .collect();
    assert_eq!(section_data(&dom, "matching"), matching.len().to_string());
    let expected: Vec<String> = matching
        .iter()
        .skip(48)
        .take(48)
        .map(|r| r.job_id.to_string())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(attrs(&dom, "tr", "data-job"), expected);
    assert!(
        attrs(&dom, "tr", "data-status")
            .iter()
            .all(|s| s == "failed")
    );
    assert_eq!(
        dom.matches("<video ").count(),
        0,
        "the table has no players"
    );

    // A model, sorted by size, 24 a page.
    let dom = dom_of(
        &chromium,
        &file_url(
            &page,
            "#model=sora-2&status=succeeded&sort=-bytes&view=table&per=24",
        ),
        WINDOW,
    );
    let mut sora: Vec<(usize, &Row)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.model == "sora-2" && r.status == Status::Succeeded)
        .collect();
    sora.sort_by_key(|(i, r)| (std::cmp::Reverse(r.bytes), *i));
    let expected: Vec<String> = sora
        .iter()
        .take(24)
        .map(|(_, r)| r.job_id.to_string())
        .collect();
    assert_eq!(section_data(&dom, "matching"), sora.len().to_string());
    assert_eq!(attrs(&dom, "tr", "data-job"), expected);

    // The detail of any job, wherever it is in the list.
    let dom = dom_of(&chromium, &file_url(&page, "#job=j9871"), WINDOW);
    assert!(dom.contains(r#"<div class="detail" data-job="j9871" data-status="succeeded">"#));
    let b = (9871u64 * 7919) % 1_000_000 + 1000;
    let digits = b.to_string();
    let (high, low) = digits.split_at(digits.len() - 3);
    assert_eq!(
        field(&dom, "bytes"),
        format!("{:.1} KB ({high},{low} bytes)", b as f64 / 1000.0)
    );
}

/// Serves the files under `root` on 127.0.0.1 (GET only, whole files, no `..`) until the
/// test ends; returns the base URL.
fn serve(root: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || answer(&root, stream));
        }
    });
    base
}

fn answer(root: &Path, mut stream: std::net::TcpStream) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let target = target.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_decode(target.trim_start_matches('/'));
    let body = if decoded.split('/').any(|part| part == "..") {
        None
    } else {
        std::fs::read(root.join(&decoded)).ok()
    };
    let response = match body {
        Some(body) => {
            let kind = match Path::new(&decoded).extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("wav") => "audio/wav",
                _ => "video/mp4",
            };
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            out
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = s
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Rewrites `docs/report.png`: six videos, one failure. Run with `--ignored`.
#[test]
#[ignore = "rewrites docs/report.png; run with --ignored"]
fn screenshot_for_the_readme() {
    let Some(chromium) = chromium("screenshot_for_the_readme") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out");
    let prompts = [
        (
            "dolphins-16x9",
            "Dolphins jumping in the blue ocean at golden hour, slow motion",
        ),
        (
            "clouds-16x9",
            "Time-lapse of clouds rolling over a mountain ridge",
        ),
        (
            "city-night",
            "A neon-lit city street at night, rain reflecting the signs, camera gliding forward",
        ),
        (
            "coffee-pour",
            "Macro shot of coffee being poured into a white cup, steam rising",
        ),
        (
            "forest-drone",
            "Drone flight over an autumn forest, morning mist between the trees",
        ),
        (
            "surfer",
            "A surfer riding a large wave, seen from the water",
        ),
    ];
    let mut rows: Vec<Row> = prompts
        .iter()
        .map(|(id, prompt)| {
            let path = out.join(format!("{id}.mp4"));
            // Playable media (silence) so the players show a length; the picture stays black.
            write(&path, &wav(8));
            row(id, Status::Succeeded, prompt, &path, "")
        })
        .collect();
    rows.insert(
        3,
        row(
            "lighthouse-9x16",
            Status::Failed,
            "A lighthouse in a storm, waves crashing against the rocks",
            &out,
            "task failed: content policy: the request was rejected by the safety filter (attempt 2 of 2)",
        ),
    );
    let page = Page {
        campaign: "spring-launch",
        dir: &out,
        rows: &rows,
        pricing: &pricing(),
        timeline: html::timeline_from_journal(&journal(7, &[3])),
    };
    let page_path = out.join("report.html");
    html::write(&page_path, &html::render(&page)).expect("write the page");
    let png = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join("report.png");
    std::fs::create_dir_all(png.parent().expect("docs")).expect("mkdir docs");
    let profile = tempfile::tempdir().expect("profile dir");
    headless(
        &chromium,
        profile.path(),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,900",
            "--virtual-time-budget=2000",
        ],
        &format!("file://{}", page_path.display()),
    );
    assert!(png.exists(), "{} was not written", png.display());
}

/// The README's walk-through, as a new user would do it: plan and cost, a
/// simulated run, the HTML report, and a browser that plays all six videos.
#[test]
fn the_walkthrough_campaign_plays_all_six_videos() {
    let Some(chromium) = chromium("the_walkthrough_campaign_plays_all_six_videos") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(
        examples.join("walkthrough.toml"),
        dir.path().join("walkthrough.toml"),
    )
    .expect("copy");
    std::fs::create_dir_all(dir.path().join("frames")).expect("mkdir");
    for frame in ["start.png", "end.png"] {
        std::fs::copy(
            examples.join("frames").join(frame),
            dir.path().join("frames").join(frame),
        )
        .expect("copy");
    }
    let runner = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("TOAPIS_API_KEY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("runner starts");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "runner {args:?}:\n{text}");
        text
    };
    let plan = runner(&["validate", "walkthrough.toml"]);
    assert!(plan.contains("6 jobs") && plan.contains("$2.40"), "{plan}");
    runner(&["run", "walkthrough.toml", "--simulate"]);
    runner(&["report", "walkthrough.toml", "--simulate", "--html"]);

    let page = dir.path().join("out/walkthrough/simulated/report.html");
    let profile = tempfile::tempdir().expect("profile");
    let dom = headless(
        &chromium,
        profile.path(),
        &["--virtual-time-budget=5000", "--dump-dom", TALL],
        &format!("file://{}", page.display()),
    );
    assert_eq!(
        attrs(&dom, "video", "src").len(),
        6,
        "six videos on the page"
    );
    assert_eq!(
        dom.matches("data-state=\"loaded\"").count(),
        6,
        "all six play:\n{dom}"
    );
}
