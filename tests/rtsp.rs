//! RTSP ingest end to end: an RTSP server on 127.0.0.1 (gst-rtsp-server, in-process) serves a
//! real clip re-encoded live to H.264; the swarmpose chain reads it through `rtspsrc`, writes
//! JSON lines, and must end with an ERROR on the bus — not hang — when the server goes away
//! mid-stream, then reach NULL cleanly. Every wait is bounded.

mod util;

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;
use gstswarmpose::json::frame_from_json;
use gstswarmpose::meta::PoseMeta;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The detector element of the chain under test.
const DETECT: &str = "swarmdetect";

/// The clip served: 795 frames at 10 fps with 3–6 walking people, long enough that the
/// server is always stopped mid-stream.
const CLIP: &str = "clips/pedestrians_768x576.avi";

/// Frames the client must have processed before the server is stopped.
const FRAMES_BEFORE_STOP: u64 = 20;

/// An RTSP server running its own GLib main loop on a thread.
struct Server {
    port: i32,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    server: gst_rtsp_server::RTSPServer,
    source: Option<glib::SourceId>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `launch` (a gst-rtsp-server media launch line) at `/clip` on a free port of
    /// 127.0.0.1: the OS picks it (service "0"), so parallel runs never collide.
    fn start(launch: &str) -> Server {
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(launch);
        factory.set_shared(true);
        server
            .mount_points()
            .expect("a new server has mount points")
            .add_factory("/clip", factory);
        let source = server
            .attach(Some(&context))
            .expect("the RTSP server binds 127.0.0.1");
        let port = server.bound_port();
        assert!(port > 0, "bound port {port}");
        let thread = {
            let (context, main_loop) = (context.clone(), main_loop.clone());
            std::thread::spawn(move || {
                context
                    .with_thread_default(|| main_loop.run())
                    .expect("the server context is free");
            })
        };
        Server {
            port,
            context,
            main_loop,
            server,
            source: Some(source),
            thread: Some(thread),
        }
    }

    /// Stops serving as a crashed or unplugged server would look to a client: no more
    /// connections accepted, every client connection closed (which tears down its media).
    fn stop(&mut self) {
        let source = self.source.take();
        let (server, main_loop) = (self.server.clone(), self.main_loop.clone());
        let context = self.context.clone();
        let (done_tx, done_rx) = mpsc::channel();
        self.context.invoke(move || {
            // The listening source lives on the server's own context (SourceId::remove
            // would look in the global default one).
            if let Some(source) = source.and_then(|id| context.find_source_by_id(&id)) {
                source.destroy();
            }
            // A filter of None lists every client; Remove then closes each connection.
            let clients = server.client_filter(None).len();
            server.client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
            main_loop.quit();
            let _ = done_tx.send(clients);
        });
        let clients = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server thread stops in time");
        println!("server stopped, {clients} client(s) disconnected");
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// The elements a test needs but a minimal GStreamer install may lack.
fn missing_elements(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| gst::ElementFactory::find(n).is_none())
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn rtsp_ingest_produces_poses_and_ends_with_an_error_when_the_server_stops() {
    const TEST: &str = "rtsp_ingest";
    util::init();
    let Some(data) = util::data_dir(TEST) else {
        return;
    };
    let clip = data.join(CLIP);
    if !clip.is_file() {
        util::skipped(TEST, &format!("clip {} not found", clip.display()));
        return;
    }
    let missing = missing_elements(&["rtspsrc", "x264enc", "rtph264pay", "avdec_h264"]);
    if !missing.is_empty() {
        util::skipped(
            TEST,
            &format!(
                "GStreamer elements missing: {} (bash .ci/setup)",
                missing.join(", ")
            ),
        );
        return;
    }
    assert!(
        gst::ElementFactory::find(DETECT).is_some(),
        "{DETECT} is not in the plugin"
    );

    // Live re-encode: x264 tuned for zero latency, a key frame every second so the client
    // can start decoding at once.
    let mut server = Server::start(&format!(
        "( filesrc location=\"{}\" ! decodebin ! videoconvert \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 \
         ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        clip.display()
    ));
    let json = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rtsp.jsonl");
    let _ = std::fs::remove_file(&json);
    let pipeline = gst::parse::launch(&format!(
        "rtspsrc location=rtsp://127.0.0.1:{}/clip latency=0 ! decodebin ! videoconvert \
         ! videoscale ! video/x-raw,width=640,height=480 ! {DETECT} ! swarmconsensus \
         ! swarmtrack ! swarmjson location=\"{}\" ! fakesink name=sink",
        server.port,
        json.display()
    ))
    .expect("the ingest pipeline parses");
    let pipeline = pipeline
        .downcast::<gst::Pipeline>()
        .expect("gst-launch lines give a pipeline");

    // Count frames and persons reaching the sink.
    let frames = Arc::new(AtomicU64::new(0));
    let persons = Arc::new(AtomicU64::new(0));
    {
        let (frames, persons) = (frames.clone(), persons.clone());
        let sink = pipeline.by_name("sink").expect("sink is named");
        sink.static_pad("sink")
            .expect("fakesink has a sink pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer() {
                    frames.fetch_add(1, Ordering::SeqCst);
                    if let Some(meta) = buffer.meta::<PoseMeta>() {
                        persons.fetch_add(meta.frame().persons.len() as u64, Ordering::SeqCst);
                    }
                }
                gst::PadProbeReturn::Ok
            });
    }

    let bus = pipeline.bus().expect("a pipeline has a bus");
    pipeline
        .set_state(gst::State::Playing)
        .expect("the ingest pipeline starts");

    // 1. Poses arrive.
    let started = Instant::now();
    while frames.load(Ordering::SeqCst) < FRAMES_BEFORE_STOP {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} frames within 60 s",
            frames.load(Ordering::SeqCst)
        );
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        ) {
            let _ = pipeline.set_state(gst::State::Null);
            panic!("the stream ended before the server stopped: {msg:?}");
        }
    }
    let first_frames = started.elapsed();
    println!(
        "{} frames in {:.2} s before the server stops",
        frames.load(Ordering::SeqCst),
        first_frames.as_secs_f64()
    );

    // 2. The server goes away mid-stream: the pipeline must say so on the bus.
    let frames_at_stop = frames.load(Ordering::SeqCst);
    let stopped = Instant::now();
    server.stop();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Error, gst::MessageType::Eos],
    );
    let waited = stopped.elapsed();
    let msg = msg.unwrap_or_else(|| {
        let _ = pipeline.set_state(gst::State::Null);
        panic!("neither ERROR nor EOS within 60 s of the server stopping")
    });
    let ending = match msg.view() {
        gst::MessageView::Error(err) => format!(
            "ERROR from {}: {} ({:?})",
            msg.src().map(|s| s.path_string()).unwrap_or_default(),
            err.error(),
            err.debug()
        ),
        other => format!("{other:?}"),
    };
    println!(
        "after {:.2} s: {ending}; {} frames after the stop",
        waited.as_secs_f64(),
        frames.load(Ordering::SeqCst) - frames_at_stop
    );
    // What really happens (GStreamer 1.22, UDP transport): rtspsrc reports the closed
    // control connection as an ERROR (it does not fake an EOS).
    assert!(
        matches!(msg.view(), gst::MessageView::Error(_)),
        "expected an ERROR, got {ending}"
    );

    // 3. NULL cleanly and in bounded time (rtspsrc's teardown must not wait on the dead
    // server forever).
    let (tx, rx) = mpsc::channel();
    {
        let pipeline = pipeline.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let result = pipeline.set_state(gst::State::Null);
            let _ = tx.send((result, t.elapsed()));
        });
    }
    let (result, took) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the pipeline reaches NULL within 30 s");
    assert_eq!(result, Ok(gst::StateChangeSuccess::Success));
    assert_eq!(pipeline.current_state(), gst::State::Null);
    println!("NULL in {:.2} s", took.as_secs_f64());

    // 4. The JSON: one parseable line per frame the sink saw (swarmjson flushes on stop).
    let text = std::fs::read_to_string(&json).expect("swarmjson wrote its file");
    let mut lines = 0u64;
    let mut json_persons = 0u64;
    for line in text.lines() {
        let (_, frame) = frame_from_json(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"));
        assert_eq!((frame.width, frame.height), (640, 480));
        json_persons += frame.persons.len() as u64;
        lines += 1;
    }
    println!(
        "JSON: {lines} lines, {json_persons} persons in all (sink saw {} frames, {} persons)",
        frames.load(Ordering::SeqCst),
        persons.load(Ordering::SeqCst)
    );
    assert!(lines >= FRAMES_BEFORE_STOP, "{lines} JSON lines");
    assert_eq!(lines, frames.load(Ordering::SeqCst), "one line per frame");
    assert!(json_persons >= 1, "no person detected on a crowded clip");
    assert_eq!(
        json_persons,
        persons.load(Ordering::SeqCst),
        "JSON and meta agree"
    );
}
