//! The HTML report in a real browser: headless Chromium opens the page from disk and dumps its DOM.
//!
//! Chromium is Debian's `chromium` (`/usr/bin/chromium`, installed by `.ci/run`;
//! `RUNNER_CHROMIUM` names another binary). Without it these tests fail when `CI`
//! is set and are skipped with a note otherwise.
//!
//! The page is checked opened from disk and served over HTTP from the output folder.
//! `cargo test --test html -- --ignored` also rewrites `docs/report.png`, the README's screenshot.

#![expect(clippy::expect_used, reason = "a test stops at the first broken step")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runner::html::{self, Page};
use runner::journal::{Entry, Record};
use runner::report::Row;
use runner::state::Status;

/// The browser, or `None` (with a note) when it is missing outside CI.
fn chromium() -> Option<PathBuf> {
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
    eprintln!(
        "note: skipping the HTML report browser test: {} is missing \
         (apt-get install -y chromium, or set RUNNER_CHROMIUM)",
        path.display()
    );
    None
}

/// Runs headless Chromium on `url` with a fresh profile and returns its stdout.
/// The flags keep it off the network: this machine has none, and it would retry forever.
fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--mute-audio",
            "--hide-scrollbars",
            "--no-proxy-server",
        ])
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
        sha256: "".into(),
        error: error.to_string().into(),
        attempts: u32::from(status != Status::Pending),
        aspect_ratio: "16:9".into(),
        duration: 8,
        image_urls: "".into(),
        submitted_at: "".into(),
        completed_at: "".into(),
        downloaded_at: "".into(),
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

/// A page of four videos (see below) and four failures, in a temp folder: `(folder, page)`.
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
    let rows = vec![
        row(
            "clip-a",
            Status::Succeeded,
            "Dolphins <img src=x onerror=alert(1)> jumping",
            &fake,
            "",
        ),
        row(
            "f-400",
            Status::Failed,
            "a prompt",
            &fake,
            r#"400: prompt refused: "<script>alert('x')</script>""#,
        ),
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
        timeline: html::timeline_from_journal(&journal(6, &[2])),
    };
    let page_path = out.join("report.html");
    html::write(&page_path, &html::render(&page)).expect("write the page");
    (tmp, page_path)
}

/// What the dumped DOM must hold; `states` is each card's `data-state`, set by the page's script.
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
    assert_eq!(
        attrs(dom, "figure", "data-job"),
        ["clip-a", "real", "outside", "missing"]
    );
    // The page's script ran and the browser resolved every src against the page's URL.
    assert_eq!(attrs(dom, "figure", "data-state"), states, "{dom}");
    assert_eq!(
        attrs(dom, "tr", "data-job"),
        ["f-400", "f-exp", "f-unknown", "f-pending"],
        "{dom}"
    );
    assert_eq!(
        attrs(dom, "tr", "data-status"),
        ["failed", "expired", "unknown", "pending"]
    );
    assert!(dom.contains("400: prompt refused: \"&lt;script&gt;alert('x')&lt;/script&gt;\""));
    assert!(dom.contains("Dolphins &lt;img src=x onerror=alert(1)&gt; jumping"));
    assert!(!dom.contains("<img"), "a prompt became markup: {dom}");
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(dom.contains("<title>spring &amp; &lt;launch&gt; — runner report</title>"));
    assert!(dom.contains(r#"<svg class="timeline""#), "{dom}");
    assert_eq!(
        attrs(dom, "polyline", "data-kind"),
        ["submitted", "finished", "downloaded"]
    );
    assert!(dom.contains("submitted (6)") && dom.contains("downloaded (5)"));
}

#[test]
fn the_page_shows_every_video_and_every_failure_in_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (_tmp, page_path) = fixture();
    let profile = tempfile::tempdir().expect("profile dir");
    let dom = headless(
        &chromium,
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=2000"],
        &format!("file://{}", page_path.display()),
    );
    // The real media loaded (also the one outside the page's folder); the fake bytes and
    // the missing file did not.
    check_dom(&dom, ["error", "loaded", "loaded", "error"]);
}

#[test]
fn the_page_works_served_over_http_from_the_output_folder() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (_tmp, page_path) = fixture();
    let root = page_path.parent().expect("output folder").to_path_buf();
    let base = serve(root);
    let profile = tempfile::tempdir().expect("profile dir");
    let dom = headless(
        &chromium,
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=2000"],
        &format!("{base}/report.html"),
    );
    // Served from the output folder, a video outside it cannot be reached: as documented.
    check_dom(&dom, ["error", "loaded", "error", "error"]);
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
    let Some(chromium) = chromium() else {
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
    let Some(chromium) = chromium() else { return };
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
        &["--virtual-time-budget=5000", "--dump-dom"],
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
