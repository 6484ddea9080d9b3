//! The tracker on a synthetic crowd, scored with MOT identity metrics.

mod common;

use common::crowd::{CrowdConfig, NoiseModel, generate};
use common::metrics::{MotMetrics, evaluate, max_weight_matching};
use gstswarmpose::pose::{BBox, Person, PoseFrame};
use gstswarmpose::track::{Config, Tracker};

/// Runs the tracker over every detection frame; `detect_every` > 1 skips detection on the
/// frames in between (prediction only).
fn track(detections: &[PoseFrame], config: Config, detect_every: usize) -> Vec<PoseFrame> {
    let mut tracker = Tracker::new(config);
    detections
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut out = PoseFrame::new(d.frame, d.width, d.height);
            let persons = if i % detect_every == 0 {
                tracker.update(&d.persons)
            } else {
                tracker.predict_only()
            };
            out.persons.extend_from_slice(persons);
            out
        })
        .collect()
}

fn report(name: &str, m: &MotMetrics) {
    eprintln!(
        "{name}: gt {} hyp {} recall {:.4} switches {} ({:.3}/1000) IDF1 {:.4} \
         (IDTP {} IDFP {} IDFN {})",
        m.gt,
        m.hyp,
        m.recall(),
        m.switches,
        m.switches_per_1000(),
        m.idf1,
        m.idtp,
        m.idfp,
        m.idfn
    );
}

#[test]
fn crowd_of_25_keeps_identities_over_1000_frames() {
    for seed in [1, 2, 3] {
        let crowd = generate(&CrowdConfig {
            seed,
            ..Default::default()
        });
        let out = track(&crowd.detections, Config::default(), 1);
        let m = evaluate(&crowd.truth, &out, 0.5);
        report(&format!("seed {seed}"), &m);
        assert!(m.gt > 20_000, "the crowd is a crowd: {} track-frames", m.gt);
        assert!(
            m.switches_per_1000() <= 1.0,
            "seed {seed}: {} switches in {} track-frames",
            m.switches,
            m.gt
        );
        assert!(m.idf1 >= 0.95, "seed {seed}: IDF1 {:.4}", m.idf1);
    }
}

#[test]
fn crowd_tracked_with_detection_on_every_other_frame() {
    let crowd = generate(&CrowdConfig {
        seed: 7,
        ..Default::default()
    });
    let out = track(&crowd.detections, Config::default(), 2);
    let m = evaluate(&crowd.truth, &out, 0.5);
    report("detect every 2nd frame", &m);
    assert!(m.switches_per_1000() <= 1.0, "{} switches", m.switches);
    assert!(m.idf1 >= 0.9, "IDF1 {:.4}", m.idf1);
    let predicted = out
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .flat_map(|(_, f)| &f.persons)
        .filter(|p| p.predicted)
        .count();
    assert!(predicted > 10_000, "skipped frames carry predicted persons");
}

#[test]
fn tracking_without_detector_noise_meets_the_target() {
    let crowd = generate(&CrowdConfig {
        seed: 11,
        noise: NoiseModel {
            keypoint_jitter: 0.0,
            box_jitter: 0.0,
            miss_rate: 0.0,
            false_positives: 0.0,
            low_score_rate: 0.0,
        },
        ..Default::default()
    });
    let out = track(&crowd.detections, Config::default(), 1);
    let m = evaluate(&crowd.truth, &out, 0.5);
    report("noise-free", &m);
    // Occlusions longer than max-age remain: identities can still be lost there.
    assert!(m.recall() >= 0.99, "recall {:.4}", m.recall());
    assert!(m.switches_per_1000() <= 0.5, "{} switches", m.switches);
    assert!(m.idf1 >= 0.95, "IDF1 {:.4}", m.idf1);
}

/// Mean keypoint error against the ground truth person with the best-matching box.
fn keypoint_error(truth: &[PoseFrame], frames: &[PoseFrame], tracked_only: bool) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (t, f) in truth.iter().zip(frames) {
        for p in f
            .persons
            .iter()
            .filter(|p| !tracked_only || p.track_id.is_some())
        {
            let Some(g) = t
                .persons
                .iter()
                .max_by(|a, b| a.bbox.iou(&p.bbox).total_cmp(&b.bbox.iou(&p.bbox)))
                .filter(|g| g.bbox.iou(&p.bbox) > 0.7)
            else {
                continue;
            };
            for (k, gk) in p.keypoints.iter().zip(&g.keypoints) {
                sum += ((k.x - gk.x).hypot(k.y - gk.y)) as f64;
                n += 1;
            }
        }
    }
    sum / n.max(1) as f64
}

#[test]
fn smoothed_keypoints_are_closer_to_truth_than_detections() {
    let crowd = generate(&CrowdConfig {
        seed: 5,
        frames: 300,
        noise: NoiseModel {
            keypoint_jitter: 0.03,
            ..Default::default()
        },
        ..Default::default()
    });
    let out = track(&crowd.detections, Config::default(), 1);
    let raw = keypoint_error(&crowd.truth, &crowd.detections, false);
    let smoothed = keypoint_error(&crowd.truth, &out, true);
    eprintln!("keypoint error: raw {raw:.2} px, smoothed {smoothed:.2} px");
    assert!(
        smoothed < 0.7 * raw,
        "raw {raw:.2} px, smoothed {smoothed:.2} px"
    );
}

#[test]
fn crowd_generator_is_deterministic_and_occludes() {
    let cfg = CrowdConfig {
        frames: 200,
        ..Default::default()
    };
    let (a, b) = (generate(&cfg), generate(&cfg));
    assert_eq!(a.truth, b.truth);
    assert_eq!(a.detections, b.detections);
    let other = generate(&CrowdConfig { seed: 99, ..cfg });
    assert_ne!(a.truth, other.truth);
    // Somebody is hidden at some point: fewer visible than walking.
    assert!(a.truth.iter().any(|f| f.persons.len() < cfg.people));
    assert!(a.truth.iter().all(|f| f.persons.len() <= cfg.people));
}

fn person(id: u64, x: f32) -> Person {
    Person {
        track_id: Some(id),
        bbox: BBox::new(x, 0.0, 10.0, 20.0),
        ..Default::default()
    }
}

fn frame_of(persons: Vec<Person>) -> PoseFrame {
    PoseFrame {
        persons,
        ..Default::default()
    }
}

#[test]
fn metrics_of_perfect_and_swapped_tracks() {
    let truth: Vec<PoseFrame> = (0..10)
        .map(|_| frame_of(vec![person(1, 0.0), person(2, 50.0)]))
        .collect();
    let perfect: Vec<PoseFrame> = (0..10)
        .map(|_| frame_of(vec![person(7, 0.0), person(8, 50.0)]))
        .collect();
    let m = evaluate(&truth, &perfect, 0.5);
    assert_eq!((m.switches, m.idtp, m.idfp, m.idfn), (0, 20, 0, 0));
    assert_eq!(m.idf1, 1.0);

    // Ids swap after frame 4: two switches; the best global mapping keeps 6 of 10 frames
    // for each person.
    let swapped: Vec<PoseFrame> = (0..10)
        .map(|i| {
            let (a, b) = if i < 4 { (7, 8) } else { (8, 7) };
            frame_of(vec![person(a, 0.0), person(b, 50.0)])
        })
        .collect();
    let m = evaluate(&truth, &swapped, 0.5);
    assert_eq!(m.switches, 2);
    assert_eq!(m.idtp, 12);
    assert!((m.idf1 - 0.6).abs() < 1e-9);

    // A missing hypothesis is an IDFN, an extra one an IDFP.
    let mut partial = perfect.clone();
    partial[0].persons.pop();
    partial[1].persons.push(person(9, 200.0));
    let m = evaluate(&truth, &partial, 0.5);
    assert_eq!((m.idtp, m.idfp, m.idfn), (19, 1, 1));
}

#[test]
fn max_weight_matching_handles_any_shape() {
    assert_eq!(
        max_weight_matching(&[vec![1, 9], vec![8, 1]]),
        vec![(0, 1), (1, 0)]
    );
    let mut tall = max_weight_matching(&[vec![5], vec![9], vec![0]]);
    tall.sort();
    assert_eq!(tall, vec![(1, 0)]);
    assert!(max_weight_matching(&[]).is_empty());
}
