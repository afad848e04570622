//! End-to-end: the model catalogue (issue 14). What `runner validate` and
//! `runner run` accept and refuse per model, `[models."NAME"]` in a manifest,
//! `runner models`, and the README's model table.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use runner::sim::SimHandle;

/// One `[[job]]` with `fields`, after the fast limits.
fn one_job(fields: &str) -> String {
    format!(
        "name = \"cat\"\n{FAST_LIMITS}\n[[job]]\nid = \"a\"\nprompt = \"a red kite\"\n{fields}\n"
    )
}

async fn validate(manifest: &str) -> std::process::Output {
    let dir = Dir::new();
    dir.write("c.toml", manifest);
    let mut cmd = runner_cmd(&dir);
    cmd.args(["validate", "c.toml"]);
    run(cmd).await
}

async fn accepted(fields: &str) -> String {
    let out = validate(&one_job(fields)).await;
    assert_eq!(out.status.code(), Some(0), "{fields}\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `runner run` against a simulator: exit 2, the message names `expect`, nothing sent.
async fn refused(fields: &str, expect: &str) {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write("c.toml", &one_job(fields));
    let out = run(run_against(&dir, &sim, "c.toml", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{fields}\n{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(expect),
        "{fields}: expected {expect:?}\n{}",
        text(&out)
    );
    assert!(
        stderr.contains("c.toml:"),
        "names the file and line: {stderr}"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.tasks_created + stats.polls + stats.uploads,
        0,
        "nothing sent: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_spec_section_1_allows_passes() {
    let three =
        r#"image_urls = ["https://e.com/1.png", "https://e.com/2.png", "https://e.com/3.png"]"#;
    let out = accepted(&format!(
        "model = \"gemini-omni-flash\"\nduration = 4\nresolution = \"1080p\"\naspect_ratio = \"16:9\"\n{three}"
    ))
    .await;
    assert!(out.contains(r#""model":"gemini-omni-flash""#), "{out}");
    assert!(out.contains(r#""duration":4"#), "{out}");
    // The old name is an alias; the request carries today's name.
    let out = accepted("model = \"gemini_omni_flash\"\nresolution = \"720P\"").await;
    assert!(out.contains(r#""model":"gemini-omni-flash""#), "{out}");
    accepted("model = \"veo3.1-lite\"\nmetadata = { resolution = \"4k\" }").await;
    accepted(&format!(
        "model = \"veo3.1-fast\"\nmetadata = {{ generation_type = \"reference\" }}\n{three}"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_spec_section_1_forbids_sends_nothing() {
    refused(
        "model = \"gemini-omni-flash\"\nresolution = \"1080p\"\naspect_ratio = \"9:16\"",
        "1080p is landscape only",
    )
    .await;
    refused(
        "model = \"gemini-omni-flash\"\nduration = 8",
        "gemini-omni-flash accepts duration 4, 6 or 10, got 8",
    )
    .await;
    refused(
        "model = \"veo3.1-quality\"\nmetadata = { generation_type = \"reference\" }",
        "veo3.1-quality has no reference mode",
    )
    .await;
    refused(
        "model = \"veo3.1-fast\"\nmetadata = { enable_gif = true, resolution = \"1080p\" }",
        "GIF output is not available at 1080p or 4k",
    )
    .await;
    refused(
        "model = \"veo3.1-fast\"\nimage_urls = [\"https://e.com/1.png\", \"https://e.com/2.png\", \"https://e.com/3.png\", \"https://e.com/4.png\"]",
        "veo3.1-fast accepts at most 3 image_urls, got 4",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_models_take_their_own_fields() {
    let manifest = format!(
        r#"name = "mixed"
{FAST_LIMITS}
[[job]]
id = "sora"
prompt = "a kite over the sea"
model = "sora-2-vvip"
duration = 12
aspect_ratio = "9:16"
metadata = {{ style = "anime", n = 2 }}

[[job]]
id = "kling"
prompt = "a kite over the sea"
model = "kling-v2-6"
mode = "pro"
audio = true
negative_prompt = "blur"
image_urls = ["https://e.com/ref.png"]

[[job]]
id = "seed"
prompt = "a kite over the sea"
model = "seedance-2"
resolution = "1080p"
generate_audio = false
image_with_roles = [{{ url = "https://e.com/first.png", role = "first_frame" }}]
"#
    );
    let out = validate(&manifest).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#""mode":"pro""#), "{stdout}");
    assert!(
        stdout.contains(r#""reference_images":["https://e.com/ref.png"]"#),
        "kling's images go where kling takes them: {stdout}"
    );
    assert!(
        stdout.contains(
            r#""image_with_roles":[{"role":"first_frame","url":"https://e.com/first.png"}]"#
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""metadata":{"n":2,"style":"anime"}"#),
        "{stdout}"
    );

    // One wrong value each, refused naming what is allowed.
    for (from, to, expect) in [
        (
            "duration = 12",
            "duration = 10",
            "sora-2-vvip accepts duration 4, 8 or 12, got 10",
        ),
        (
            "mode = \"pro\"",
            "mode = \"max\"",
            "kling-v2-6 accepts mode \"std\" or \"pro\", got \"max\"",
        ),
        (
            "resolution = \"1080p\"",
            "resolution = \"2k\"",
            "seedance-2 accepts resolution \"480p\", \"720p\", \"1080p\" or \"4k\", got \"2k\"",
        ),
    ] {
        let out = validate(&manifest.replace(from, to)).await;
        assert_eq!(out.status.code(), Some(2), "{to}\n{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{expect}\n{stderr}");
    }
    // A field another model takes is still refused for this one, with a suggestion.
    let out =
        validate(&manifest.replace("negative_prompt = \"blur\"", "negative_promt = \"blur\""))
            .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `negative_prompt`?"),
        "{}",
        text(&out)
    );
    let out =
        validate(&manifest.replace("mode = \"pro\"", "mode = \"pro\"\nquality = \"720p\"")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kling-v2-6 takes no `quality`"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_columns_carry_model_fields() {
    let dir = Dir::new();
    dir.write(
        "jobs.csv",
        "id,prompt,model,mode,audio,duration\nk,a kite,kling-v2-6,pro,true,10\n",
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["validate", "jobs.csv"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""audio":true"#) && stdout.contains(r#""mode":"pro""#),
        "{stdout}"
    );

    // [defaults] carries model fields to every job, CSV rows included; a row overrides.
    dir.write(
        "c.toml",
        "[defaults]\nmodel = \"kling-v3\"\nmode = \"pro\"\n\n[[source]]\ncsv = \"rows.csv\"\n",
    );
    dir.write(
        "rows.csv",
        "id,prompt,mode,reference_images\na,a kite,,https://e.com/1.png|https://e.com/2.png\nb,a boat,std,\n",
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["validate", "c.toml"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id}\t")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("a").contains(r#""mode":"pro""#), "{stdout}");
    assert!(
        line("a").contains(r#""reference_images":["https://e.com/1.png","https://e.com/2.png"]"#),
        "{stdout}"
    );
    assert!(line("b").contains(r#""mode":"std""#), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_adds_and_amends_models() {
    let manifest = format!(
        r#"name = "own"
{FAST_LIMITS}
[models."house-model"]
page = "our wiki"
fields.duration = {{ type = "integer", values = [3, 9], default = 3 }}
fields.style = {{ type = "string", values = ["flat", "deep"] }}

[models."veo3.1-fast"]
fields.duration = {{ type = "integer", values = [8, 10], default = 8 }}

[[models."veo3.1-fast".rules]]
when = {{ duration = 10 }}
require = {{ aspect_ratio = ["16:9"] }}
message = "10 s is landscape only here"

[[job]]
id = "h"
prompt = "a kite"
model = "house-model"
style = "deep"

[[job]]
id = "v"
prompt = "a kite"
model = "veo3.1-fast"
duration = 10
"#
    );
    let out = validate(&manifest).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Notes about the catalogue go with the plan, on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model house-model from the manifest (c.toml:"),
        "{stderr}"
    );
    assert!(stderr.contains("not in the catalogue, added"), "{stderr}");
    assert!(
        stderr.contains("model veo3.1-fast from the manifest")
            && stderr.contains("fields duration; 1 rule"),
        "{stderr}"
    );

    let out =
        validate(&manifest.replace("id = \"v\"", "id = \"v\"\naspect_ratio = \"9:16\"")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("10 s is landscape only here")
            && stderr.contains("[rule from the manifest]"),
        "{stderr}"
    );

    // The simulator of `--simulate` knows the campaign's own models. (Its clock
    // runs 100× fast and scales the limits with it: the default timeouts.)
    let dir = Dir::new();
    dir.write(
        "c.toml",
        &manifest.replace(FAST_LIMITS, "[limits]\nrequests_per_second = 100\n"),
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "c.toml", "--simulate"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let mut cmd = runner_cmd(&dir);
    cmd.args(["models", "house-model", "--manifest", "c.toml"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("style: string; \"flat\", \"deep\"  [from the manifest]"),
        "{stdout}"
    );

    let out =
        validate(&manifest.replace("type = \"string\", values", "type = \"text\", values")).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[models.\"house-model\"]"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_models_lists_and_explains() {
    let dir = Dir::new();
    let mut cmd = runner_cmd(&dir);
    cmd.arg("models");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in [
        "veo3.1-fast",
        "veo3.1-lite",
        "gemini-omni-flash",
        "sora-2-vvip",
        "kling-v3",
        "seedance-2",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "{name}: {stdout}"
        );
    }

    let mut cmd = runner_cmd(&dir);
    cmd.args(["models", "gemini_omni_flash"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("duration: integer; 4, 6, 10; default 6"),
        "{stdout}"
    );
    assert!(stdout.contains("1080p is landscape only"), "{stdout}");

    let mut cmd = runner_cmd(&dir);
    cmd.args(["models", "kling-v4"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `kling-v3`?"),
        "{}",
        text(&out)
    );
}

/// The model table in README.md is `runner models --markdown`, between its markers.
#[test]
fn readme_model_table_is_generated() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start =
        "<!-- models:start (generated by `runner models --markdown`; a test checks it) -->\n";
    let end = "<!-- models:end -->";
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .expect("README.md has the model table markers");
    let generated = runner::models::Catalogue::builtin().markdown();
    assert_eq!(
        table, generated,
        "README.md's model table is stale: replace it with `cargo run -- models --markdown`"
    );
}
