//! `swarmpose run`: input → swarmdetect → swarmconsensus → swarmtrack → JSON lines
//! (→ swarmoverlay → MP4).

use crate::input::{quote, source_description};
use crate::run_to_eos;
use gst::prelude::*;
use gstswarmpose::meta::PoseMeta;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(clap::Args)]
pub struct RunArgs {
    /// A video file, an rtsp:// URL, or an image-sequence pattern such as frames/%05d.jpg.
    #[arg(long)]
    input: String,
    /// Where to write one JSON object per frame.
    #[arg(long)]
    json: PathBuf,
    /// Also write the video with skeletons drawn, as H.264 in MP4.
    #[arg(long)]
    video: Option<PathBuf>,
    /// Extra swarmdetect properties, e.g. --detect backend=cpu (repeatable).
    #[arg(long = "detect", value_name = "PROPERTY=VALUE")]
    detect: Vec<String>,
}

pub fn run(args: &RunArgs) -> Result<(), String> {
    let source = source_description(&args.input)?;
    let json = args
        .json
        .to_str()
        .ok_or("the JSON path is not valid UTF-8")?;
    let tail = match &args.video {
        Some(video) => {
            let video = video.to_str().ok_or("the video path is not valid UTF-8")?;
            format!(
                "swarmoverlay ! videoconvert ! x264enc tune=zerolatency ! mp4mux ! filesink location={}",
                quote(video)
            )
        }
        None => "fakesink sync=false".to_string(),
    };
    let description = format!(
        "{source} ! videoconvert ! swarmdetect {} ! swarmconsensus ! swarmtrack ! swarmjson name=json location={} ! {tail}",
        args.detect.join(" "),
        quote(json)
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("cannot build the pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;

    let frames = Arc::new(AtomicU64::new(0));
    let persons = Arc::new(AtomicU64::new(0));
    let pad = pipeline
        .by_name("json")
        .and_then(|e| e.static_pad("src"))
        .ok_or("swarmjson has no src pad")?;
    let (f, p) = (frames.clone(), persons.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            f.fetch_add(1, Ordering::Relaxed);
            let n = buffer
                .meta::<PoseMeta>()
                .map_or(0, |m| m.frame().persons.len());
            p.store(n as u64, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });

    let started = Instant::now();
    let show = std::io::stderr().is_terminal();
    let progress = || {
        let n = frames.load(Ordering::Relaxed);
        let fps = n as f64 / started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\rframes {n}  fps {fps:.1}  persons {}   ",
            persons.load(Ordering::Relaxed)
        );
    };
    run_to_eos(&pipeline, || {
        if show {
            progress()
        }
    })?;
    if show {
        progress();
        eprintln!();
    }
    Ok(())
}
