//! `swarmpose`: command-line front end running the real elements.
//!
//! - `swarmpose run --input INPUT --json OUT.jsonl [--video OUT.mp4]`
//! - `swarmpose eval-coco --annotations A.json --images DIR --output R.json [--gt-boxes]`

mod eval_coco;
mod input;
mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "swarmpose",
    version,
    about = "Multi-person pose estimation with a swarm of tiny agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect, fuse and track poses in a video file, rtsp:// URL or image sequence
    /// (`frames/%05d.jpg`); write one JSON object per frame, optionally an annotated MP4.
    Run(run::RunArgs),
    /// Run every image of a COCO keypoint annotation file through swarmdetect and
    /// swarmconsensus and write COCO keypoint results JSON (for pycocotools).
    EvalCoco(eval_coco::EvalCocoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = init() {
        eprintln!("swarmpose: error: {err}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::EvalCoco(args) => eval_coco::eval_coco(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("swarmpose: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init() -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer does not initialise: {e}"))?;
    gstswarmpose::plugin_register_static()
        .map_err(|e| format!("cannot register the swarmpose elements: {e}"))
}

/// Runs `pipeline` to EOS; the first error message on the bus becomes the error.
/// `on_tick` is called about twice a second while it runs.
pub fn run_to_eos(pipeline: &gst::Pipeline, mut on_tick: impl FnMut()) -> Result<(), String> {
    use gst::prelude::*;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let started = pipeline.set_state(gst::State::Playing);
    let result = loop {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(500),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            if started.is_err() {
                break Err("the pipeline does not start".to_string());
            }
            on_tick();
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(err) => {
                let source = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                break Err(format!("{source}: {}", err.error()));
            }
            _ => unreachable!("filtered"),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
