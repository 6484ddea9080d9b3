//! The tracking "must show": 25 people crossing for 1000 frames, run through a real
//! `swarmtrack ! swarmjson` pipeline, scored by py-motmetrics (tools/mot_eval.py) from the
//! JSON lines, exactly as a user would score `swarmpose run` output.

mod common;
mod util;

use common::crowd::{CrowdConfig, generate};
use gst::prelude::*;
use gstswarmpose::json::frame_to_json;
use gstswarmpose::meta::set_pose_frame;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The evaluation venv's interpreter (tools/pyenv.sh), or None with the reason logged.
fn eval_python(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("tools/pyenv.sh"))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        }
        Ok(o) => {
            util::skipped(
                test,
                &format!(
                    "tools/pyenv.sh failed (no PyPI?): {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
            );
            None
        }
        Err(e) => {
            util::skipped(test, &format!("cannot run bash: {e}"));
            None
        }
    }
}

/// Pushes every detection frame (as meta on an empty video buffer) through swarmtrack and
/// swarmjson; returns when the JSON file is complete.
fn run_tracker(detections: &[gstswarmpose::pose::PoseFrame], json: &Path) {
    common::init_gst();
    let (w, h) = (detections[0].width, detections[0].height);
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=GRAY8,width={w},height={h},framerate=25/1 \
         ! swarmtrack ! swarmjson location={} ! fakesink",
        json.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, d) in detections.iter().enumerate() {
        let mut buffer = gst::Buffer::with_size((w * h) as usize).unwrap();
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
            set_pose_frame(b, d.clone());
        }
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline finishes");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
}

#[test]
fn crowd_of_25_scored_by_py_motmetrics_from_the_json() {
    let test = "track_motmetrics::crowd_of_25_scored_by_py_motmetrics_from_the_json";
    let Some(python) = eval_python(test) else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("motmetrics");
    std::fs::create_dir_all(&dir).unwrap();
    for seed in [1u64, 2] {
        let crowd = generate(&CrowdConfig {
            seed,
            ..Default::default()
        });
        let gt = dir.join(format!("gt_{seed}.jsonl"));
        let pred = dir.join(format!("run_{seed}.jsonl"));
        let lines: String = crowd
            .truth
            .iter()
            .map(|f| frame_to_json(f, None) + "\n")
            .collect();
        std::fs::write(&gt, lines).unwrap();
        run_tracker(&crowd.detections, &pred);
        let out = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/mot_eval.py"))
            .args([
                "--gt",
                gt.to_str().unwrap(),
                "--pred",
                pred.to_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("seed {seed}: {}", stdout.lines().next().unwrap_or(""));
        let r: serde_json::Value = serde_json::from_str(stdout.lines().nth(1).unwrap()).unwrap();
        let (idf1, per_1000, frames) = (
            r["idf1"].as_f64().unwrap(),
            r["switches_per_1000"].as_f64().unwrap(),
            r["num_frames"].as_f64().unwrap(),
        );
        assert_eq!(frames, 1000.0);
        assert!(
            r["num_objects"].as_f64().unwrap() > 20_000.0,
            "a crowd: {r}"
        );
        assert!(idf1 >= 0.95, "seed {seed}: IDF1 {idf1}");
        assert!(per_1000 <= 1.0, "seed {seed}: {per_1000} switches per 1000");
    }
}
