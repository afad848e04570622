//! Every manifest shipped in `examples/` and `jobs/` loads with no diagnostics.
//!
//! Only the top level of each folder is read: CSV files that are `[[source]]`
//! inputs of another manifest live in subfolders (`examples/data/`).

use std::path::{Path, PathBuf};

fn manifests(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("cannot read {}", dir.display());
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "csv")))
        .collect();
    out.sort();
    out
}

#[test]
fn shipped_manifests_load_cleanly() {
    let mut loaded = 0;
    for folder in ["examples", "jobs"] {
        for path in manifests(folder) {
            match runner::manifest::load(&path) {
                Ok(campaign) => {
                    assert!(!campaign.jobs.is_empty(), "{} has no jobs", path.display());
                    loaded += 1;
                }
                Err(e) => panic!("{} does not load:\n{e}", path.display()),
            }
        }
    }
    assert!(loaded >= 5, "only {loaded} manifests found");
}

#[test]
fn examples_expand_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(matrix) = runner::manifest::load(&root.join("examples/matrix.toml")) else {
        panic!("examples/matrix.toml does not load");
    };
    let ids: Vec<&str> = matrix.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), 4 + 2 + 4 + 4, "{ids:?}");
    assert!(ids.contains(&"skyline-veo3.1-fast-9x16"), "{ids:?}");
    assert!(ids.contains(&"waterfall-tall-gemini-omni-flash"), "{ids:?}");
    assert!(
        ids.contains(&"desert-dunes-gemini-omni-flash-16x9"),
        "{ids:?}"
    );

    let Ok(frames) = runner::manifest::load(&root.join("examples/image-to-video.toml")) else {
        panic!("examples/image-to-video.toml does not load");
    };
    let first = &frames.jobs[0];
    assert_eq!(first.images.len(), 2);
    assert!(
        matches!(&first.images[0], runner::manifest::ImageRef::Local(p) if p.ends_with("frames/start.png"))
    );
    assert_eq!(
        first
            .metadata
            .get("generation_type")
            .and_then(|v| v.as_str()),
        Some("frame")
    );

    let Ok(prompts) = runner::manifest::load(&root.join("examples/prompts.csv")) else {
        panic!("examples/prompts.csv does not load");
    };
    assert_eq!(prompts.name, "prompts");
    assert_eq!(prompts.jobs.len(), 8);
}
