//! The `swarmpose` command line: bad input is one clear error line and a non-zero exit.

use std::process::Command;

fn swarmpose(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_swarmpose"))
        .args(args)
        .output()
        .expect("swarmpose runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_input_file_is_one_clear_error() {
    let (ok, err) = swarmpose(&[
        "run",
        "--input",
        "/nonexistent/clip.mp4",
        "--json",
        "/tmp/never.jsonl",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "swarmpose: error: input file not found: /nonexistent/clip.mp4"
    );
}

#[test]
fn pattern_matching_nothing_is_one_clear_error() {
    let (ok, err) = swarmpose(&[
        "run",
        "--input",
        "/nonexistent/%05d.jpg",
        "--json",
        "/tmp/never.jsonl",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "swarmpose: error: the pattern /nonexistent/%05d.jpg matches no file"
    );
}

#[test]
fn unreadable_annotations_are_one_clear_error() {
    let (ok, err) = swarmpose(&[
        "eval-coco",
        "--annotations",
        "/nonexistent.json",
        "--images",
        "/tmp",
        "--output",
        "/tmp/r.json",
    ]);
    assert!(!ok);
    assert!(
        err.starts_with("swarmpose: error: cannot read /nonexistent.json"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1);
}
