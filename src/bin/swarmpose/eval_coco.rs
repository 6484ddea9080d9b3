//! `swarmpose eval-coco`: every image of a COCO keypoint annotation file through the real
//! elements (`appsrc ! videoconvert ! swarmdetect ! swarmconsensus ! appsink`), written as
//! COCO keypoint results JSON for pycocotools.
//!
//! With `--gt-boxes` (the standard top-down protocol) the annotation boxes of the non-crowd
//! people with keypoints are attached as persons and swarmdetect is told to use them
//! (`use-upstream-boxes=true`), which separates keypoint quality from person detection.

use crate::input::quote;
use gst::prelude::*;
use gstswarmpose::meta::{PoseMeta, set_pose_frame};
use gstswarmpose::pose::{BBox, Person, PoseFrame};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalCocoArgs {
    /// COCO keypoint annotation file (person_keypoints_*.json).
    #[arg(long)]
    annotations: PathBuf,
    /// Folder holding the images named by the annotation file.
    #[arg(long)]
    images: PathBuf,
    /// Where to write the COCO results JSON.
    #[arg(long)]
    output: PathBuf,
    /// Use the annotation boxes instead of person detection.
    #[arg(long)]
    gt_boxes: bool,
    /// Extra swarmdetect properties, e.g. --detect backend=cpu (repeatable).
    #[arg(long = "detect", value_name = "PROPERTY=VALUE")]
    detect: Vec<String>,
    /// Extra swarmconsensus properties, e.g. --consensus quorum=0.5 (repeatable).
    #[arg(long = "consensus", value_name = "PROPERTY=VALUE")]
    consensus: Vec<String>,
    /// Push the image sequence this many times through the same pipeline and score the last
    /// pass (earlier passes warm up the agents' reputations; they use no annotations).
    #[arg(long, default_value_t = 1)]
    passes: u32,
    /// Print swarmconsensus' statistics (quarantined agents...) to stderr at the end.
    #[arg(long)]
    stats: bool,
}

pub fn eval_coco(args: &EvalCocoArgs) -> Result<(), String> {
    let text = std::fs::read(&args.annotations)
        .map_err(|e| format!("cannot read {}: {e}", args.annotations.display()))?;
    let coco: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not JSON: {e}", args.annotations.display()))?;
    let images = coco["images"]
        .as_array()
        .ok_or("the annotation file has no images list")?;
    let annotations = coco["annotations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();

    // Every annotated person is scored: no cap below the element's maximum (user --detect
    // options come last and win).
    let mut props = String::from("max-persons=64");
    if args.gt_boxes {
        props.push_str(" use-upstream-boxes=true");
    }
    for p in &args.detect {
        props.push(' ');
        props.push_str(p);
    }
    let detect = gst::parse::launch(&format!(
        "appsrc name=src format=time ! videoconvert ! swarmdetect {props} ! swarmconsensus name=consensus {} ! appsink name=sink sync=false",
        args.consensus.join(" ")
    ))
    .map_err(|e| format!("cannot build the pipeline: {e}"))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let src = detect
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    let sink = detect
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    detect
        .set_state(gst::State::Playing)
        .map_err(|_| pipeline_error(&detect))?;

    let show = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    let passes = args.passes.max(1) as usize;
    for (n, image) in images
        .iter()
        .cycle()
        .take(images.len() * passes)
        .enumerate()
    {
        let last_pass = n >= images.len() * (passes - 1);
        let id = image["id"].as_u64().ok_or("an image has no id")?;
        let file = image["file_name"]
            .as_str()
            .ok_or("an image has no file_name")?;
        let path = args.images.join(file);
        let sample = decode(&path)?;
        let mut buffer = sample
            .buffer()
            .ok_or("decoded sample without buffer")?
            .copy();
        let buffer_ref = buffer.make_mut();
        buffer_ref.set_pts(gst::ClockTime::from_mseconds(n as u64 * 40));
        // Unrelated photos, not a video: nothing carries over from one to the next
        // (swarmdetect's `body-interval` starts again with a body pass).
        buffer_ref.set_flags(gst::BufferFlags::DISCONT);
        if args.gt_boxes {
            let info = gst_video::VideoInfo::from_caps(
                sample.caps().ok_or("decoded sample without caps")?,
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut frame = PoseFrame::new(n as u64, info.width(), info.height());
            frame.persons = gt_persons(annotations, id);
            set_pose_frame(buffer_ref, frame);
        }
        let caps = sample
            .caps()
            .ok_or("decoded sample without caps")?
            .to_owned();
        let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
        src.push_sample(&sample)
            .map_err(|_| pipeline_error(&detect))?;
        let out = sink
            .try_pull_sample(gst::ClockTime::from_seconds(60))
            .ok_or_else(|| pipeline_error(&detect))?;
        if let Some(meta) = out.buffer().and_then(|b| b.meta::<PoseMeta>())
            && last_pass
        {
            results.extend(meta.frame().persons.iter().map(|p| coco_result(id, p)));
        }
        if show {
            eprint!(
                "\rimages {}/{}  persons {}   ",
                n + 1,
                images.len() * passes,
                results.len()
            );
        }
    }
    if show {
        eprintln!();
    }
    let _ = src.end_of_stream();
    if args.stats
        && let Some(consensus) = detect.by_name("consensus")
    {
        eprintln!(
            "{}",
            consensus.property::<gst::Structure>("consensus-stats")
        );
    }
    let _ = detect.set_state(gst::State::Null);
    let text = serde_json::to_vec(&results).expect("plain JSON");
    std::fs::write(&args.output, text)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))
}

/// Decodes one image to raw video with GStreamer.
fn decode(path: &std::path::Path) -> Result<gst::Sample, String> {
    if !path.is_file() {
        return Err(format!("image not found: {}", path.display()));
    }
    let location = path.to_str().ok_or("image path is not valid UTF-8")?;
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink",
        quote(location)
    ))
    .map_err(|e| format!("cannot build the decoder: {e}"))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let _ = pipeline.set_state(gst::State::Playing);
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(30));
    let error = sample.is_none().then(|| pipeline_error(&pipeline));
    let _ = pipeline.set_state(gst::State::Null);
    sample.ok_or_else(|| {
        format!(
            "cannot decode {}: {}",
            path.display(),
            error.unwrap_or_default()
        )
    })
}

/// The first error message on the pipeline's bus, or a generic sentence.
fn pipeline_error(pipeline: &gst::Pipeline) -> String {
    pipeline
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(err) => Some(err.error().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "the pipeline stopped".to_string())
}

/// The non-crowd people with keypoints of one image, as persons with only a box.
fn gt_persons(annotations: &[Value], image_id: u64) -> Vec<Person> {
    annotations
        .iter()
        .filter(|a| {
            a["image_id"] == image_id
                && a["iscrowd"] == 0
                && a["num_keypoints"].as_u64().unwrap_or(0) > 0
        })
        .filter_map(|a| {
            let b: Vec<f32> = a["bbox"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_f64())
                .map(|v| v as f32)
                .collect();
            (b.len() == 4).then(|| Person {
                bbox: BBox::new(b[0], b[1], b[2], b[3]),
                score: 1.0,
                ..Default::default()
            })
        })
        .collect()
}

/// One COCO keypoint result: keypoints as x, y, score; the person's score times its mean
/// keypoint score, so confident poses rank first.
fn coco_result(image_id: u64, p: &Person) -> Value {
    let keypoints: Vec<f32> = p
        .keypoints
        .iter()
        .flat_map(|k| [k.x, k.y, k.score])
        .collect();
    let mean = p.keypoints.iter().map(|k| k.score).sum::<f32>() / p.keypoints.len() as f32;
    json!({"image_id": image_id, "category_id": 1, "keypoints": keypoints, "score": p.score * mean})
}
