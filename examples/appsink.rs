//! Embedding swarmpose in a Rust app: run `... ! swarmconsensus ! appsink` on a clip and read
//! each frame's poses through the crate's `PoseMeta`, plus the `swarmpose-stats` messages.
//!
//! ```sh
//! cargo run --release --example appsink -- [CLIP] [--detect 'swarmdetect'] [--max-frames N]
//! ```
//!
//! The app links the crate and registers the plugin statically, so no GST_PLUGIN_PATH is
//! needed (leave it unset: loading the same plugin from target/release as well would
//! register its types twice). Prints `frame N t=S persons=P | #id box=x,y,wxh score kp=k/17`
//! per frame, `stats ...` per stats message and a last `summary frames=F persons=P
//! stats-messages=S` line; exits 1 with one `appsink: error: ...` line on failure.

use gst::prelude::*;
use gstswarmpose::meta::PoseMeta;
use gstswarmpose::pose::NUM_KEYPOINTS;
use std::path::PathBuf;
use std::process::ExitCode;

/// Keypoints scoring at least this count as shown in the summary.
const SHOWN_SCORE: f32 = 0.3;

struct Args {
    clip: PathBuf,
    detect: String,
    max_frames: u64,
    stats_interval: u32,
}

fn parse_args() -> Result<Args, String> {
    let data = std::env::var_os("SWARMPOSE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let mut args = Args {
        clip: data.join("clips/pedestrians_768x576.avi"),
        detect: "swarmdetect".into(),
        max_frames: 0,
        stats_interval: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--detect" => args.detect = value("--detect")?,
            "--max-frames" => {
                let v = value("--max-frames")?;
                args.max_frames = v
                    .parse()
                    .map_err(|_| format!("--max-frames: not a count: {v}"))?;
            }
            "--stats-interval" => {
                let v = value("--stats-interval")?;
                args.stats_interval = v
                    .parse()
                    .map_err(|_| format!("--stats-interval: not a count: {v}"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: appsink [CLIP] [--detect CHAIN] [--max-frames N] [--stats-interval N]"
                        .into(),
                );
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            clip => args.clip = PathBuf::from(clip),
        }
    }
    if !args.clip.is_file() {
        return Err(format!("clip not found: {}", args.clip.display()));
    }
    Ok(args)
}

/// Prints a `swarmpose-stats` message; false for any other message.
fn print_stats(s: &gst::StructureRef) -> bool {
    if s.name() != gstswarmpose::stats_glue::STRUCTURE_NAME {
        return false;
    }
    let f = |name: &str| s.get::<f64>(name).unwrap_or(f64::NAN);
    let u = |name: &str| s.get::<u64>(name).unwrap_or(0);
    println!(
        "stats {} frames={} fps={:.1} p50={:.3}ms p95={:.3}ms persons={} dropped={} degraded={}",
        s.get::<&str>("element").unwrap_or("?"),
        u("frames"),
        f("fps"),
        f("p50-ms"),
        f("p95-ms"),
        s.get::<u32>("persons").unwrap_or(0),
        u("dropped"),
        u("degraded"),
    );
    true
}

fn run(args: &Args) -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    gstswarmpose::plugin_register_static().map_err(|e| format!("registering swarmpose: {e}"))?;
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale \
         ! video/x-raw,width=640,height=480 ! {} ! swarmconsensus stats-interval={} \
         ! appsink name=sink sync=false max-buffers=4",
        args.clip.display(),
        args.detect,
        args.stats_interval
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("cannot build the pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the description is not a pipeline".to_string())?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink in the pipeline")?;
    let bus = pipeline.bus().ok_or("a pipeline has a bus")?;

    let (mut frames, mut persons, mut stats) = (0u64, 0u64, 0u64);
    // Prints pending stats messages; Err on an error message.
    let drain = |stats: &mut u64| -> Result<(), String> {
        while let Some(msg) =
            bus.pop_filtered(&[gst::MessageType::Element, gst::MessageType::Error])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    return Err(format!(
                        "{}: {} ({:?})",
                        msg.src().map(|s| s.path_string()).unwrap_or_default(),
                        err.error(),
                        err.debug()
                    ));
                }
                gst::MessageView::Element(e) if e.structure().is_some_and(print_stats) => {
                    *stats += 1;
                }
                _ => {}
            }
        }
        Ok(())
    };

    let result = (|| {
        if pipeline.set_state(gst::State::Playing).is_err() {
            drain(&mut stats)?;
            return Err("the pipeline does not start".to_string());
        }
        loop {
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) else {
                drain(&mut stats)?;
                if sink.is_eos() {
                    return Ok(());
                }
                return Err("no frame for 10 s".into());
            };
            let Some(buffer) = sample.buffer() else {
                continue;
            };
            let t = buffer.pts().map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
            let mut line = String::new();
            let count = match buffer.meta::<PoseMeta>() {
                Some(meta) => {
                    for p in &meta.frame().persons {
                        let shown = p
                            .keypoints
                            .iter()
                            .filter(|k| k.score >= SHOWN_SCORE)
                            .count();
                        let id = p.track_id.map_or("-".to_string(), |id| id.to_string());
                        line += &format!(
                            " | #{id} box={:.0},{:.0},{:.0}x{:.0} score={:.2} kp={shown}/{NUM_KEYPOINTS}",
                            p.bbox.x, p.bbox.y, p.bbox.w, p.bbox.h, p.score
                        );
                    }
                    meta.frame().persons.len()
                }
                None => 0,
            };
            println!("frame {frames} t={t:.3} persons={count}{line}");
            frames += 1;
            persons += count as u64;
            drain(&mut stats)?;
            if args.max_frames > 0 && frames >= args.max_frames {
                return Ok(());
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    let _ = drain(&mut stats);
    println!("summary frames={frames} persons={persons} stats-messages={stats}");
    result
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appsink: error: {e}");
            ExitCode::FAILURE
        }
    }
}
