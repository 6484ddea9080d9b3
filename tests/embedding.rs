//! The embedding examples as an app author runs them: `examples/embed.py` (Python, through
//! the standard ROI meta and bus messages, plugin from GST_PLUGIN_PATH=target/<profile>) and
//! `examples/appsink.rs` (Rust, through the crate's `PoseMeta`, plugin registered
//! statically), each on a real clip.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The detector element of the chain under test.
const DETECT: &str = "swarmdetect";

/// Frames each example processes.
const FRAMES: usize = 20;

/// Stats message interval given to the examples, in frames.
const STATS_INTERVAL: usize = 5;

/// target/<profile>, where the plugin and examples/ are built.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The detector, checked to be in the plugin.
fn detector() -> &'static str {
    util::init();
    assert!(
        gst::ElementFactory::find(DETECT).is_some(),
        "{DETECT} is not in the plugin"
    );
    DETECT
}

fn clip(test: &str) -> Option<PathBuf> {
    let clip = util::data_dir(test)?.join("clips/pedestrians_768x576.avi");
    if clip.is_file() {
        Some(clip)
    } else {
        util::skipped(test, &format!("clip {} not found", clip.display()));
        None
    }
}

/// A Python with PyGObject and GStreamer's typelibs: $SWARMPOSE_PYTHON, else Debian's
/// /usr/bin/python3 (a pyenv or venv python on the PATH usually lacks `gi`), else python3.
fn python(test: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("SWARMPOSE_PYTHON") {
        Some(p) => vec![p.into()],
        None => vec!["/usr/bin/python3".into(), "python3".into()],
    };
    let probe = "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstVideo', '1.0'); \
                 gi.require_version('GstApp', '1.0'); from gi.repository import Gst, GstVideo, GstApp";
    for candidate in &candidates {
        let ok = Command::new(candidate)
            .args(["-c", probe])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(candidate.clone());
        }
    }
    util::skipped(
        test,
        "no python3 with PyGObject and GStreamer typelibs (apt-get install python3-gi \
         gir1.2-gst-plugins-base-1.0, or set SWARMPOSE_PYTHON)",
    );
    None
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks an example's output: FRAMES frame lines, stats messages from every element given
/// stats-interval, a summary that adds up, and persons on the crowded clip.
fn check_output(stdout: &str, elements: &[&str]) {
    let frames: Vec<&str> = stdout.lines().filter(|l| l.starts_with("frame ")).collect();
    assert_eq!(frames.len(), FRAMES, "{stdout}");
    let persons: usize = frames
        .iter()
        .map(|l| {
            let field = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("persons="))
                .unwrap_or_else(|| panic!("no persons= in {l}"));
            field.parse::<usize>().expect("persons is a count")
        })
        .sum();
    for element in elements {
        let stats = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("stats {element}0 ")))
            .count();
        assert_eq!(
            stats,
            FRAMES / STATS_INTERVAL,
            "{element} stats lines: {stdout}"
        );
    }
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary "))
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    assert!(
        summary.contains(&format!("frames={FRAMES} persons={persons} ")),
        "{summary}"
    );
    println!("{summary}");
    assert!(persons >= 1, "no person found on a crowded clip: {stdout}");
}

#[test]
fn python_reads_persons_and_stats_from_the_standard_metas() {
    const TEST: &str = "embedding_python";
    let (Some(clip), Some(python)) = (clip(TEST), python(TEST)) else {
        return;
    };
    let detect = detector();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .arg(root.join("examples/embed.py"))
        .arg(&clip)
        .args(["--detect", detect])
        .args(["--max-frames", &FRAMES.to_string()])
        .args(["--stats-interval", &STATS_INTERVAL.to_string()])
        .env("GST_PLUGIN_PATH", build_dir())
        .env(
            "GST_REGISTRY",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("registry-embed-py.bin"),
        )
        .output()
        .expect("python runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    check_output(&stdout, &["swarmconsensus", "swarmtrack"]);
}

#[test]
fn python_roi_walk_finds_every_person_roi() {
    const TEST: &str = "embedding_python_roi_walk";
    let Some(python) = python(TEST) else {
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/embed_roi_check.py");
    let out = Command::new(&python)
        .arg(script)
        .output()
        .expect("python runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "ok 4");
}

#[test]
fn rust_appsink_example_reads_persons_through_pose_meta() {
    const TEST: &str = "embedding_rust_appsink";
    let Some(clip) = clip(TEST) else {
        return;
    };
    let exe = build_dir().join("examples/appsink");
    if !exe.is_file() {
        // `cargo test --all-targets` (tests/run.sh) builds it; `--test embedding` alone not.
        util::skipped(
            TEST,
            "examples not built (cargo build --examples with this test's profile, or cargo test --all-targets)",
        );
        return;
    }
    let detect = detector();
    let out = Command::new(&exe)
        .arg(&clip)
        .args(["--detect", detect])
        .args(["--max-frames", &FRAMES.to_string()])
        .args(["--stats-interval", &STATS_INTERVAL.to_string()])
        // Static registration in the example: the plugin must not come from the path too.
        .env_remove("GST_PLUGIN_PATH")
        .env(
            "GST_REGISTRY",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("registry-embed-rs.bin"),
        )
        .output()
        .expect("the example runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    check_output(&stdout, &["swarmconsensus"]);
}
