//! The shipped bundle on real data: keypoint AP on the held-out COCO photos through the real
//! elements (`swarmpose eval-coco`, pycocotools via tools/coco_ap.py), and persons with
//! skeletons on a real street clip.
//!
//! The accuracy goals (AP >= 0.25 with ground-truth boxes, >= 0.15 end to end) are NOT
//! both met yet (0.25 with ground-truth boxes is not); the floors asserted here sit under the
//! measured figures (0.206 / 0.162, and 0.215 / 0.169 with the test-time flip; README
//! "Accuracy") so a regression fails the build. End to end they leave room for the ±0.015 that
//! the int8 calibration sample alone moves it on these 86 people.

mod util;

use gst::prelude::*;
use gstswarmpose::meta::PoseMeta;
use gstswarmpose::pose::{Person, PoseFrame};
use std::path::{Path, PathBuf};
use std::process::Command;

const AP_FLOOR_GT_BOXES: f64 = 0.195;
const AP_FLOOR_END_TO_END: f64 = 0.14;
/// With `flip=true` (each crop also runs mirrored, maps averaged with the mirror agents').
const AP_FLOOR_GT_BOXES_FLIP: f64 = 0.20;
const AP_FLOOR_END_TO_END_FLIP: f64 = 0.15;

fn eval_python(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match Command::new("bash")
        .arg(root.join("tools/pyenv.sh"))
        .output()
    {
        Ok(o) if o.status.success() => {
            Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        }
        _ => {
            util::skipped(test, "tools/pyenv.sh could not set up pycocotools");
            None
        }
    }
}

/// eval-coco on coco_mini, then pycocotools; returns the AP.
fn coco_ap(python: &Path, data: &Path, gt_boxes: bool, flip: bool) -> f64 {
    let ann = data.join("coco_mini/annotations/person_keypoints_train2017.json");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("coco_mini_gt{gt_boxes}_flip{flip}.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmpose"));
    cmd.args(["eval-coco", "--annotations"])
        .arg(&ann)
        .arg("--images")
        .arg(data.join("coco_mini/train2017"))
        .arg("--output")
        .arg(&out)
        .args([
            "--detect",
            "backend=cpu",
            "--detect",
            &format!("flip={flip}"),
        ]);
    if gt_boxes {
        cmd.arg("--gt-boxes");
    }
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let n = results.as_array().unwrap().len();
    if gt_boxes {
        assert_eq!(n, 86, "one result per annotated person of coco_mini");
    }
    let ap = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/coco_ap.py"))
        .arg(&ann)
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        ap.status.success(),
        "{}",
        String::from_utf8_lossy(&ap.stderr)
    );
    let stdout = String::from_utf8_lossy(&ap.stdout);
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("coco_mini gt_boxes={gt_boxes} flip={flip}: {n} results, {line}");
    v["AP"].as_f64().unwrap()
}

#[test]
fn keypoint_ap_on_held_out_coco_photos() {
    let test = "detect_real::keypoint_ap_on_held_out_coco_photos";
    let Some(data) = util::data_dir(test) else {
        return;
    };
    let Some(python) = eval_python(test) else {
        return;
    };
    let gt = coco_ap(&python, &data, true, false);
    assert!(gt >= AP_FLOOR_GT_BOXES, "AP with ground-truth boxes {gt}");
    let e2e = coco_ap(&python, &data, false, false);
    assert!(e2e >= AP_FLOOR_END_TO_END, "end-to-end AP {e2e}");
    // The test-time flip must pay for its second pass.
    let gt_flip = coco_ap(&python, &data, true, true);
    assert!(
        gt_flip >= AP_FLOOR_GT_BOXES_FLIP && gt_flip > gt,
        "AP with ground-truth boxes: flip {gt_flip}, plain {gt}"
    );
    let e2e_flip = coco_ap(&python, &data, false, true);
    assert!(
        e2e_flip >= AP_FLOOR_END_TO_END_FLIP && e2e_flip > e2e,
        "end-to-end AP: flip {e2e_flip}, plain {e2e}"
    );
}

#[test]
fn street_clip_gets_persons_with_skeletons() {
    let test = "detect_real::street_clip_gets_persons_with_skeletons";
    let Some(data) = util::data_dir(test) else {
        return;
    };
    util::init();
    let all = street_frames(
        &data,
        "swarmdetect backend=cpu ! swarmconsensus ! swarmoverlay",
        usize::MAX,
    );
    let frames = all.len();
    let (mut with_persons, mut keypoints_in_box, mut keypoints) = (0, 0, 0);
    for f in &all {
        assert_eq!((f.width, f.height), (1280, 720));
        if !f.persons.is_empty() {
            with_persons += 1;
        }
        for p in &f.persons {
            let b = p.bbox;
            // People are 100+ px tall here; a real detection is not a sliver.
            assert!(b.h >= 40.0 && b.w >= 10.0, "{b:?}");
            for k in p.keypoints.iter().filter(|k| k.score > 0.3) {
                keypoints += 1;
                let m = 0.25 * b.w.max(b.h);
                if k.x >= b.x - m && k.x <= b.x + b.w + m && k.y >= b.y - m && k.y <= b.y + b.h + m
                {
                    keypoints_in_box += 1;
                }
            }
        }
    }
    eprintln!(
        "street clip: {frames} frames, {with_persons} with persons, {keypoints_in_box}/{keypoints} confident keypoints in their box"
    );
    assert!(frames >= 200, "{frames} frames");
    assert!(
        with_persons * 10 >= frames * 9,
        "persons on {with_persons} of {frames} frames"
    );
    assert!(keypoints > 1000 && keypoints_in_box * 100 >= keypoints * 95);
}

/// The first `n` frames of the street clip through `chain`: each frame's poses, as the
/// swarmpose meta carries them at the end of the chain.
fn street_frames(data: &Path, chain: &str, n: usize) -> Vec<PoseFrame> {
    let clip = data.join("clips/street_walk_1280x720.avi");
    let (pipeline, sink) = util::pipeline_with_appsink(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! {chain} ! appsink name=sink sync=false",
        clip.display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while frames.len() < n {
        let Ok(sample) = sink.pull_sample() else {
            break;
        };
        let meta = sample
            .buffer()
            .unwrap()
            .meta::<PoseMeta>()
            .expect("every frame detected");
        frames.push(meta.frame().clone());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

/// The persons of the first `n` street-clip frames through `swarmdetect <props>`.
fn street_persons(data: &Path, props: &str, n: usize) -> Vec<Vec<Person>> {
    street_frames(data, &format!("swarmdetect backend=cpu {props}"), n)
        .into_iter()
        .map(|f| f.persons)
        .collect()
}

#[test]
fn body_interval_follows_persons_between_body_passes() {
    let test = "detect_real::body_interval_follows_persons_between_body_passes";
    let Some(data) = util::data_dir(test) else {
        return;
    };
    util::init();
    const N: usize = 40;
    let every = street_persons(&data, "", N);
    let followed = street_persons(&data, "body-interval=5", N);
    assert_eq!((every.len(), followed.len()), (N, N));
    // A body pass finds exactly what the plain run finds on that frame (same frame, same
    // agents, deterministic); a followed frame crops elsewhere, so its persons differ.
    let passes: Vec<usize> = (0..N)
        .filter(|&i| !every[i].is_empty() && every[i] == followed[i])
        .collect();
    // Matched against the plain run: each followed person's best box IoU, and the median
    // distance of its confident keypoints to that person's, over the person's height. And
    // whether its box moved away from every box of the last body pass.
    let (mut ious, mut errors, mut moved) = (Vec::new(), Vec::new(), 0);
    let mut last_pass: &[Person] = &[];
    for i in 0..N {
        if passes.contains(&i) {
            last_pass = &followed[i];
            continue;
        }
        for p in &followed[i] {
            if last_pass.iter().all(|q| q.bbox != p.bbox) {
                moved += 1;
            }
            let iou = |q: &Person| q.bbox.iou(&p.bbox);
            let Some(q) = every[i].iter().max_by(|x, y| iou(x).total_cmp(&iou(y))) else {
                continue;
            };
            ious.push(iou(q));
            let mut d: Vec<f32> = p
                .keypoints
                .iter()
                .zip(&q.keypoints)
                .filter(|(k, l)| k.score > 0.3 && l.score > 0.3)
                .map(|(k, l)| (k.x - l.x).hypot(k.y - l.y) / q.bbox.h)
                .collect();
            if !d.is_empty() {
                d.sort_by(f32::total_cmp);
                errors.push(d[d.len() / 2]);
            }
        }
    }
    assert!(
        ious.len() >= N && !errors.is_empty(),
        "{} followed persons",
        ious.len()
    );
    let median = |v: &mut Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let with_persons = followed.iter().filter(|p| !p.is_empty()).count();
    let (iou, error) = (median(&mut ious), median(&mut errors));
    eprintln!(
        "body-interval=5 over {N} frames: body passes on frames {passes:?}, {with_persons} frames with persons, \
         {} followed persons ({moved} boxes moved off the last pass' boxes), median IoU with the plain run's box \
         {iou:.3}, median keypoint distance {error:.3} of the height",
        ious.len()
    );
    // A body pass on every 5th frame at least (sooner only when everyone is lost), and most
    // frames follow.
    assert_eq!(passes.first(), Some(&0));
    assert!(
        passes.windows(2).all(|w| w[1] - w[0] <= 5) && N - passes.last().unwrap() <= 5,
        "body passes on {passes:?}"
    );
    assert!(passes.len() <= N / 2, "body passes on {passes:?}");
    assert!(
        with_persons * 10 >= N * 9,
        "persons on {with_persons} of {N} frames"
    );
    // The boxes follow the keypoints (frozen boxes would all equal the last pass' boxes; a
    // person standing still keeps its box, as two women talking do here: 40 of 55 moved) and
    // stay on the persons the plain run finds.
    assert!(
        moved * 2 >= ious.len(),
        "{moved} of {} boxes moved",
        ious.len()
    );
    assert!(
        iou >= 0.5 && error <= 0.1,
        "IoU {iou}, keypoint distance {error}"
    );
}
