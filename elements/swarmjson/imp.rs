use crate::json::write_frame_json;
use crate::meta::PoseMeta;
use crate::pose::PoseFrame;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "swarmjson",
        gst::DebugColorFlags::empty(),
        Some("swarmpose JSON-lines writer"),
    )
});

struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    /// Frame counter for buffers that carry no pose meta.
    frames: u64,
    /// Negotiated frame size, for buffers without meta.
    size: (u32, u32),
    /// Reused for frames without meta, so writing allocates nothing.
    empty: PoseFrame,
}

#[derive(Default)]
pub struct SwarmJson {
    location: Mutex<Option<String>>,
    output: Mutex<Option<Output>>,
}

#[glib::object_subclass]
impl ObjectSubclass for SwarmJson {
    const NAME: &'static str = "GstSwarmJson";
    type Type = super::SwarmJson;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for SwarmJson {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("File to write one JSON object per frame to; \"-\" writes to standard output")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "location" => {
                let location: Option<String> = value.get().expect("type checked upstream");
                gst::debug!(CAT, imp = self, "location set to {:?}", location);
                *self.location.lock().unwrap() = location;
            }
            name => unimplemented!("property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "location" => self.location.lock().unwrap().to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for SwarmJson {}

impl ElementImpl for SwarmJson {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Swarm pose JSON writer",
                "Filter/Analyzer/Video",
                "Passes video through and writes the poses of every frame as one JSON object per \
                 line (frames without poses get an empty person list); flushed at EOS",
                "swarmpose developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/x-raw").build();
            crate::pads::filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl SwarmJson {
    fn flush(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(output) = self.output.lock().unwrap().as_mut() {
            output.writer.flush().map_err(|err| {
                gst::error_msg!(
                    gst::ResourceError::Write,
                    ["Cannot flush JSON output: {}", err]
                )
            })?;
        }
        Ok(())
    }
}

impl BaseTransformImpl for SwarmJson {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let location = self.location.lock().unwrap().clone();
        let writer: Box<dyn Write + Send> = match location.as_deref() {
            None | Some("") => {
                return Err(gst::error_msg!(
                    gst::ResourceError::NotFound,
                    ["No location set: set location=FILE, or location=- for standard output"]
                ));
            }
            Some("-") => Box::new(std::io::stdout()),
            Some(path) => Box::new(File::create(path).map_err(|err| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ["Cannot open {} for writing: {}", path, err]
                )
            })?),
        };
        *self.output.lock().unwrap() = Some(Output {
            writer: BufWriter::new(writer),
            frames: 0,
            size: (0, 0),
            empty: PoseFrame::default(),
        });
        gst::info!(CAT, imp = self, "writing JSON lines to {:?}", location);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let result = self.flush();
        *self.output.lock().unwrap() = None;
        result
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot parse caps {}", incaps))?;
        if let Some(output) = self.output.lock().unwrap().as_mut() {
            output.size = (info.width(), info.height());
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view()
            && let Err(err) = self.flush()
        {
            self.post_error_message(err);
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(
        &self,
        buffer: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.output.lock().unwrap();
        let Some(output) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let pts = buffer.pts().map(|t| t.nseconds());
        let result = match buffer.meta::<PoseMeta>() {
            Some(meta) => write_frame_json(&mut output.writer, meta.frame(), pts),
            None => {
                output.empty.frame = output.frames;
                (output.empty.width, output.empty.height) = output.size;
                write_frame_json(&mut output.writer, &output.empty, pts)
            }
        };
        output.frames += 1;
        result.map_err(|err| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ["Cannot write JSON: {}", err]
            );
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }
}
