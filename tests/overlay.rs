//! swarmoverlay in real pipelines: exact pixels on known frames, every format, properties,
//! pass-through without meta, bad caps, and ground-truth poses on a real COCO photo.

mod util;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gstswarmpose::draw::Paint;
use gstswarmpose::meta::set_pose_frame;
use gstswarmpose::overlay::track_paint;
use gstswarmpose::pose::{BBox, Keypoint, Person, PoseFrame, Visibility};
use std::str::FromStr;
use util::{data_dir, empty_person, init, standing_person};

const W: u32 = 96;
const H: u32 = 64;
const GREY: u8 = 77;

/// A harness running `swarmoverlay` with `props` on `format` frames of W x H.
fn overlay_harness(format: &str, props: &str) -> Harness {
    let mut h = Harness::new_parse(&format!("swarmoverlay {props}"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format={format},width={W},height={H},framerate=30/1"
    ));
    h
}

/// A grey RGBA frame carrying `persons`.
fn rgba_frame_with(persons: Vec<Person>) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_mut_slice(vec![GREY; (W * H * 4) as usize]);
    let mut frame = PoseFrame::new(0, W, H);
    frame.persons = persons;
    set_pose_frame(buffer.get_mut().unwrap(), frame);
    buffer
}

fn rgb_at(data: &[u8], x: u32, y: u32) -> [u8; 3] {
    let i = ((y * W + x) * 4) as usize;
    [data[i], data[i + 1], data[i + 2]]
}

/// Pixels of the output that differ from the grey input, as a W x H mask.
fn changed_mask(out: &gst::BufferRef) -> Vec<bool> {
    let map = out.map_readable().unwrap();
    map.chunks_exact(4).map(|px| px[..3] != [GREY; 3]).collect()
}

fn person_with(keypoints: &[(usize, f32, f32)]) -> Person {
    let mut p = empty_person(BBox::new(0.0, 0.0, 0.0, 0.0));
    for &(i, x, y) in keypoints {
        p.keypoints[i] = Keypoint {
            x,
            y,
            score: 1.0,
            visibility: Visibility::Visible,
        };
    }
    p
}

fn only(what: &str) -> String {
    let all = ["draw-skeleton", "draw-keypoints", "draw-boxes", "draw-ids"];
    all.iter().map(|p| format!("{p}={} ", *p == what)).collect()
}

#[test]
fn limb_changes_exactly_the_pixels_within_half_the_line_width() {
    init();
    let (a, b) = ((10.3f32, 20.7f32), (70.2f32, 41.1f32));
    // Left shoulder (5) to left elbow (7) is a skeleton link.
    let person = person_with(&[(5, a.0, a.1), (7, b.0, b.1)]);
    let mut h = overlay_harness("RGBA", &format!("{} line-width=5", only("draw-skeleton")));
    let out = h.push_and_pull(rgba_frame_with(vec![person])).unwrap();
    let mask = changed_mask(&out);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let mut expected_count = 0;
    for y in 0..H {
        for x in 0..W {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let t = (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0);
            let (qx, qy) = (a.0 + t * dx - px, a.1 + t * dy - py);
            let d = (qx * qx + qy * qy).sqrt();
            let inside = d <= 2.5;
            expected_count += inside as usize;
            // A centre within float rounding of the edge may go either way.
            if (d - 2.5).abs() > 1e-4 {
                assert_eq!(mask[(y * W + x) as usize], inside, "pixel ({x}, {y})");
            }
        }
    }
    assert!(
        expected_count > 250,
        "the limb covers {expected_count} pixels"
    );
    let map = out.map_readable().unwrap();
    assert_eq!(rgb_at(&map, 40, 31), track_paint(None).rgb);
}

#[test]
fn keypoint_dot_changes_exactly_the_disc() {
    init();
    let (cx, cy) = (30.6f32, 22.2f32);
    let person = person_with(&[(0, cx, cy)]);
    let mut h = overlay_harness(
        "RGBA",
        &format!("{} point-radius=6", only("draw-keypoints")),
    );
    let mask = changed_mask(&h.push_and_pull(rgba_frame_with(vec![person])).unwrap());
    for y in 0..H {
        for x in 0..W {
            let (ex, ey) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = ex * ex + ey * ey <= 36.0;
            assert_eq!(mask[(y * W + x) as usize], inside, "pixel ({x}, {y})");
        }
    }
}

#[test]
fn box_outline_changes_exactly_its_border() {
    init();
    let mut person = empty_person(BBox::new(10.0, 8.0, 50.0, 40.0));
    person.track_id = Some(3);
    let mut h = overlay_harness("RGBA", &format!("{} line-width=2", only("draw-boxes")));
    let out = h.push_and_pull(rgba_frame_with(vec![person])).unwrap();
    let mask = changed_mask(&out);
    for y in 0..H {
        for x in 0..W {
            let in_box = (10..60).contains(&x) && (8..48).contains(&y);
            let in_hole = (12..58).contains(&x) && (10..46).contains(&y);
            assert_eq!(
                mask[(y * W + x) as usize],
                in_box && !in_hole,
                "pixel ({x}, {y})"
            );
        }
    }
    let map = out.map_readable().unwrap();
    assert_eq!(rgb_at(&map, 10, 8), track_paint(Some(3)).rgb);
}

#[test]
fn min_score_skips_low_keypoints_and_their_limbs() {
    init();
    let mut person = person_with(&[(5, 20.0, 20.0), (7, 60.0, 40.0)]);
    person.keypoints[7].score = 0.25;
    for (min_score, expect_elbow) in [(0.3, false), (0.2, true)] {
        let mut h = overlay_harness("RGBA", &format!("min-score={min_score} draw-boxes=false"));
        let mask = changed_mask(&h.push_and_pull(rgba_frame_with(vec![person])).unwrap());
        assert!(
            mask[(20 * W + 20) as usize],
            "the confident shoulder is drawn"
        );
        assert_eq!(
            mask[(40 * W + 60) as usize],
            expect_elbow,
            "elbow at min-score {min_score}"
        );
        assert_eq!(
            mask[(30 * W + 40) as usize],
            expect_elbow,
            "limb at min-score {min_score}"
        );
    }
}

#[test]
fn hidden_keypoints_are_dimmed_and_absent_ones_skipped() {
    init();
    let mut person = person_with(&[(0, 20.0, 20.0), (1, 60.0, 40.0), (2, 80.0, 20.0)]);
    person.keypoints[1].visibility = Visibility::Hidden;
    person.keypoints[2].visibility = Visibility::Absent;
    let mut h = overlay_harness("RGBA", &only("draw-keypoints"));
    let out = h.push_and_pull(rgba_frame_with(vec![person])).unwrap();
    let map = out.map_readable().unwrap();
    let paint = track_paint(None);
    assert_eq!(rgb_at(&map, 20, 20), paint.rgb);
    assert_eq!(rgb_at(&map, 60, 40), paint.dimmed().rgb);
    assert_eq!(rgb_at(&map, 80, 20), [GREY; 3]);
}

#[test]
fn track_ids_get_stable_colours_and_a_label() {
    init();
    assert_eq!(track_paint(Some(5)), track_paint(Some(5)));
    assert_ne!(track_paint(Some(5)), track_paint(Some(6)));
    let mut person = empty_person(BBox::new(20.0, 40.0, 40.0, 20.0));
    person.track_id = Some(42);
    let mut h = overlay_harness("RGBA", &format!("{} text-scale=1", only("draw-ids")));
    let out = h.push_and_pull(rgba_frame_with(vec![person])).unwrap();
    let mask = changed_mask(&out);
    // "42" at scale 1: a 16x8 text cell plus a 1-pixel background margin above the box.
    let label: usize = (20..40)
        .flat_map(|y| (18..42).map(move |x| (x, y)))
        .filter(|&(x, y)| mask[y * W as usize + x])
        .count();
    assert!(label >= 16 * 8, "label pixels changed: {label}");
    assert!(
        !mask[(50 * W + 40) as usize],
        "nothing drawn inside the box"
    );
    // The label holds both background (track colour) and ink (black) pixels.
    let map = out.map_readable().unwrap();
    let colours: std::collections::HashSet<[u8; 3]> = (29..40)
        .flat_map(|y| (20..38).map(move |x| (x, y)))
        .map(|(x, y)| rgb_at(&map, x, y))
        .collect();
    assert!(colours.contains(&track_paint(Some(42)).rgb) && colours.contains(&[0, 0, 0]));
}

#[test]
fn meta_of_another_size_is_scaled_onto_the_frame() {
    init();
    let mut buffer = gst::Buffer::from_mut_slice(vec![GREY; (W * H * 4) as usize]);
    let mut frame = PoseFrame::new(0, W / 2, H / 2);
    frame.persons = vec![person_with(&[(0, 10.0, 10.0)])];
    set_pose_frame(buffer.get_mut().unwrap(), frame);
    let mut h = overlay_harness(
        "RGBA",
        &format!("{} point-radius=2", only("draw-keypoints")),
    );
    let mask = changed_mask(&h.push_and_pull(buffer).unwrap());
    assert!(mask[(20 * W + 20) as usize]);
    assert!(!mask[(10 * W + 10) as usize]);
}

#[test]
fn frames_without_meta_pass_untouched() {
    init();
    let input: Vec<u8> = (0..W * H * 4).map(|i| (i * 7 % 251) as u8).collect();
    let mut h = overlay_harness("RGBA", "");
    let out = h
        .push_and_pull(gst::Buffer::from_mut_slice(input.clone()))
        .unwrap();
    assert_eq!(out.map_readable().unwrap().as_slice(), &input[..]);
}

/// (format, bytes per frame, byte offset of the luma/R sample of pixel (x, y)).
fn layout(format: &str, x: u32, y: u32) -> (usize, usize) {
    let (w, h) = (W as usize, H as usize);
    let (x, y) = (x as usize, y as usize);
    match format {
        "RGBA" | "BGRA" | "RGBx" | "BGRx" => (w * h * 4, (y * w + x) * 4),
        "RGB" | "BGR" => (w * h * 3, (y * w + x) * 3),
        "I420" | "NV12" => (w * h * 3 / 2, y * w + x),
        _ => unreachable!(),
    }
}

#[test]
fn draws_in_every_supported_format() {
    init();
    let green = track_paint(None);
    for format in ["RGBA", "BGRA", "RGBx", "BGRx", "RGB", "BGR", "I420", "NV12"] {
        // 96 is a multiple of 4, so packed RGB rows have no padding.
        let (size, at_dot) = layout(format, 40, 30);
        let mut buffer = gst::Buffer::from_mut_slice(vec![GREY; size]);
        let mut frame = PoseFrame::new(0, W, H);
        frame.persons = vec![person_with(&[(0, 40.5, 30.5)])];
        set_pose_frame(buffer.get_mut().unwrap(), frame);
        let mut h = overlay_harness(
            format,
            &format!("{} point-radius=4", only("draw-keypoints")),
        );
        let out = h.push_and_pull(buffer).unwrap();
        let map = out.map_readable().unwrap();
        let expected = match format {
            "RGBA" | "RGBx" | "RGB" => green.rgb[0],
            "BGRA" | "BGRx" | "BGR" => green.rgb[2],
            _ => green.yuv[0],
        };
        assert_eq!(map[at_dot], expected, "{format}: dot drawn");
        assert_eq!(
            map[at_dot + 1],
            if format.contains("RGB") || format.contains("BGR") {
                green.rgb[1]
            } else {
                green.yuv[0]
            },
            "{format}"
        );
        let (_, far) = layout(format, 80, 5);
        assert_eq!(map[far], GREY, "{format}: far pixel untouched");
        if format == "I420" || format == "NV12" {
            // Chroma of the dot's 2x2 block.
            let (w, h) = (W as usize, H as usize);
            let u = if format == "I420" {
                w * h + 15 * (w / 2) + 20
            } else {
                w * h + 15 * w + 40
            };
            assert_eq!(map[u], green.yuv[1], "{format}: U");
        }
    }
}

#[test]
fn every_property_is_documented_with_range_and_default() {
    init();
    let overlay = gst::ElementFactory::make("swarmoverlay").build().unwrap();
    let ours: Vec<_> = overlay
        .list_properties()
        .into_iter()
        .filter(|p| p.owner_type() == overlay.type_())
        .collect();
    let names: Vec<_> = ours.iter().map(|p| p.name().to_string()).collect();
    for expected in [
        "draw-skeleton",
        "draw-keypoints",
        "draw-boxes",
        "draw-ids",
        "line-width",
        "point-radius",
        "min-score",
        "text-scale",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    for p in &ours {
        assert!(
            p.blurb().is_some_and(|b| b.len() > 10),
            "{} has a blurb",
            p.name()
        );
    }
    overlay.set_property("line-width", 7u32);
    assert_eq!(overlay.property::<u32>("line-width"), 7);
    let min_score = ours.iter().find(|p| p.name() == "min-score").unwrap();
    let spec = min_score.downcast_ref::<glib::ParamSpecDouble>().unwrap();
    assert_eq!(
        (spec.minimum(), spec.maximum(), spec.default_value()),
        (0.0, 1.0, 0.3)
    );
}

#[test]
fn unsupported_format_is_refused_clearly() {
    init();
    // gst-launch users get a link error naming the caps.
    let err = gst::parse::launch(
        "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmoverlay ! fakesink",
    )
    .expect_err("GRAY8 cannot link");
    assert!(err.to_string().contains("GRAY8"), "{err}");
    // Caps that only show up at run time end in a not-negotiated error on the bus.
    let pipeline = gst::parse::launch("appsrc name=src format=time ! swarmoverlay ! fakesink")
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(
        &gst::Caps::from_str("video/x-raw,format=GRAY8,width=8,height=8,framerate=1/1").unwrap(),
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let _ = src.push_buffer(gst::Buffer::from_mut_slice(vec![0u8; 64]));
    let _ = src.end_of_stream();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("the pipeline ends");
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Error(err) => {
            assert!(
                err.debug().is_some_and(|d| d.contains("not-negotiated")),
                "{err:?}"
            )
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn bench_sized_frame_draws_without_errors() {
    // The benchmark's workload (25 persons, 1280x720 NV12) through the real element.
    init();
    let (w, h) = (1280u32, 720u32);
    let mut buffer = gst::Buffer::from_mut_slice(vec![16u8; (w * h * 3 / 2) as usize]);
    let mut frame = PoseFrame::new(0, w, h);
    frame.persons = (0..25)
        .map(|i| {
            standing_person(
                BBox::new(
                    20.0 + (i % 10) as f32 * 125.0,
                    20.0 + (i / 10) as f32 * 230.0,
                    100.0,
                    220.0,
                ),
                Some(i),
            )
        })
        .collect();
    set_pose_frame(buffer.get_mut().unwrap(), frame);
    let mut harness = Harness::new("swarmoverlay");
    harness.set_src_caps_str("video/x-raw,format=NV12,width=1280,height=720,framerate=30/1");
    let out = harness.push_and_pull(buffer).unwrap();
    let map = out.map_readable().unwrap();
    let changed = map[..(w * h) as usize].iter().filter(|&&y| y != 16).count();
    assert!(changed > 25 * 1000, "{changed} luma samples changed");
}

#[test]
fn ground_truth_of_a_real_photo_is_drawn_on_the_people_only() {
    init();
    let Some(data) = data_dir("ground_truth_of_a_real_photo_is_drawn_on_the_people_only") else {
        return;
    };
    let coco = data.join("coco_mini");
    let ann: serde_json::Value = serde_json::from_slice(
        &std::fs::read(coco.join("annotations/person_keypoints_train2017.json")).unwrap(),
    )
    .unwrap();
    // The photo with the most labelled keypoints on non-crowd people.
    let anns = ann["annotations"].as_array().unwrap();
    let keypoint_people = |id: u64| {
        anns.iter().filter(move |a| {
            a["image_id"] == id && a["iscrowd"] == 0 && a["num_keypoints"].as_u64().unwrap() > 0
        })
    };
    let image = ann["images"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|im| {
            keypoint_people(im["id"].as_u64().unwrap())
                .map(|a| a["num_keypoints"].as_u64().unwrap())
                .sum::<u64>()
        })
        .unwrap();
    let (id, width, height) = (
        image["id"].as_u64().unwrap(),
        image["width"].as_u64().unwrap() as u32,
        image["height"].as_u64().unwrap() as u32,
    );
    let path = coco
        .join("train2017")
        .join(image["file_name"].as_str().unwrap());

    // Decode the real JPEG with GStreamer.
    let (decode, sink) = util::pipeline_with_appsink(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGBA ! appsink name=sink",
        path.display()
    ));
    decode.set_state(gst::State::Playing).unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .expect("decoded photo");
    decode.set_state(gst::State::Null).unwrap();
    let caps = sample.caps().unwrap().to_owned();
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height()), (width, height));
    let stride = info.stride()[0] as usize;
    let original = sample.buffer().unwrap().map_readable().unwrap().to_vec();

    // Attach the annotation as the pose meta.
    let mut frame = PoseFrame::new(0, width, height);
    for a in keypoint_people(id) {
        let b: Vec<f32> = a["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let mut p = empty_person(BBox::new(b[0], b[1], b[2], b[3]));
        let k: Vec<f32> = a["keypoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        for (i, kp) in p.keypoints.iter_mut().enumerate() {
            *kp = Keypoint {
                x: k[3 * i],
                y: k[3 * i + 1],
                score: 1.0,
                visibility: Visibility::from_coco(k[3 * i + 2] as u8),
            };
        }
        frame.persons.push(p);
    }
    let persons = frame.persons.clone();
    let mut buffer = gst::Buffer::from_mut_slice(original.clone());
    set_pose_frame(buffer.get_mut().unwrap(), frame);

    let mut h = Harness::new("swarmoverlay");
    h.set_src_caps(caps);
    let out = h.push_and_pull(buffer).unwrap();
    let drawn = out.map_readable().unwrap();
    let px = |data: &[u8], x: u32, y: u32| {
        let i = y as usize * stride + x as usize * 4;
        [data[i], data[i + 1], data[i + 2]]
    };
    let green = track_paint(None);
    let mut checked = 0;
    for p in &persons {
        for k in p
            .keypoints
            .iter()
            .filter(|k| k.visibility == Visibility::Visible)
        {
            let (x, y) = (k.x as u32, k.y as u32);
            let got = px(&drawn, x, y);
            assert!(
                got == green.rgb || got == Paint::rgb(0, 255, 0).dimmed().rgb,
                "keypoint ({x}, {y}) drawn: {got:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} keypoints checked");
    // Pixels 20 px or more outside every person's box are untouched.
    let near = |x: u32, y: u32| {
        persons.iter().any(|p| {
            let b = p.bbox;
            (x as f32) > b.x - 20.0
                && (x as f32) < b.x + b.w + 20.0
                && (y as f32) > b.y - 20.0
                && (y as f32) < b.y + b.h + 20.0
        })
    };
    let mut far = 0;
    for y in 0..height {
        for x in 0..width {
            if !near(x, y) {
                assert_eq!(
                    px(&drawn, x, y),
                    px(&original, x, y),
                    "far pixel ({x}, {y})"
                );
                far += 1;
            }
        }
    }
    assert!(far > 1000, "{far} far pixels compared");
}
