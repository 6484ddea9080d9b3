use crate::draw::{Canvas, PixelFormat, Plane};
use crate::meta::PoseMeta;
use crate::overlay::{OverlayStyle, draw_persons};
use crate::pose::{Person, Stage, StageTimings};
use crate::stats::FrameSample;
use crate::stats_glue::{self, StatsMonitor};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "swarmoverlay",
        gst::DebugColorFlags::empty(),
        Some("swarmpose skeleton overlay"),
    )
});

const FORMATS: [gst_video::VideoFormat; 8] = [
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
];

fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    Some(match format {
        gst_video::VideoFormat::Rgba => PixelFormat::Rgba,
        gst_video::VideoFormat::Bgra => PixelFormat::Bgra,
        gst_video::VideoFormat::Rgbx => PixelFormat::Rgbx,
        gst_video::VideoFormat::Bgrx => PixelFormat::Bgrx,
        gst_video::VideoFormat::Rgb => PixelFormat::Rgb,
        gst_video::VideoFormat::Bgr => PixelFormat::Bgr,
        gst_video::VideoFormat::I420 => PixelFormat::I420,
        gst_video::VideoFormat::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

#[derive(Default)]
pub struct SwarmOverlay {
    style: Mutex<OverlayStyle>,
    /// Persons of the current frame, copied out of the meta so the frame's planes can be
    /// borrowed mutably; reused, so drawing allocates nothing after the first frames.
    persons: Mutex<Vec<Person>>,
    stats: Mutex<StatsMonitor>,
}

#[glib::object_subclass]
impl ObjectSubclass for SwarmOverlay {
    const NAME: &'static str = "GstSwarmOverlay";
    type Type = super::SwarmOverlay;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for SwarmOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = OverlayStyle::default();
            let flags = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_PLAYING;
            vec![
                glib::ParamSpecBoolean::builder("draw-skeleton")
                    .nick("Draw skeleton")
                    .blurb("Draw the COCO skeleton limbs between shown keypoints")
                    .default_value(d.skeleton)
                    .flags(flags)
                    .build(),
                glib::ParamSpecBoolean::builder("draw-keypoints")
                    .nick("Draw keypoints")
                    .blurb("Draw a dot on every shown keypoint (hidden ones dimmed)")
                    .default_value(d.keypoints)
                    .flags(flags)
                    .build(),
                glib::ParamSpecBoolean::builder("draw-boxes")
                    .nick("Draw boxes")
                    .blurb("Draw each person's bounding box")
                    .default_value(d.boxes)
                    .flags(flags)
                    .build(),
                glib::ParamSpecBoolean::builder("draw-ids")
                    .nick("Draw ids")
                    .blurb("Draw the track id above each tracked person's box")
                    .default_value(d.ids)
                    .flags(flags)
                    .build(),
                glib::ParamSpecUInt::builder("line-width")
                    .nick("Line width")
                    .blurb("Width in pixels of limbs and box outlines")
                    .minimum(1)
                    .maximum(32)
                    .default_value(d.line_width)
                    .flags(flags)
                    .build(),
                glib::ParamSpecUInt::builder("point-radius")
                    .nick("Point radius")
                    .blurb("Radius in pixels of keypoint dots")
                    .minimum(1)
                    .maximum(32)
                    .default_value(d.point_radius)
                    .flags(flags)
                    .build(),
                glib::ParamSpecDouble::builder("min-score")
                    .nick("Minimum score")
                    .blurb("Keypoints scoring below this are skipped, with the limbs touching them")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.min_score)
                    .flags(flags)
                    .build(),
                glib::ParamSpecUInt::builder("text-scale")
                    .nick("Text scale")
                    .blurb("Size of the id labels, in multiples of the 8x8 font")
                    .minimum(1)
                    .maximum(8)
                    .default_value(d.text_scale)
                    .flags(flags)
                    .build(),
            ]
            .into_iter()
            .chain(stats_glue::properties())
            .collect()
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if stats_glue::set_property(&self.stats, pspec.name(), value) {
            gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
            return;
        }
        let mut style = self.style.lock().unwrap();
        match pspec.name() {
            "draw-skeleton" => style.skeleton = value.get().expect("type checked upstream"),
            "draw-keypoints" => style.keypoints = value.get().expect("type checked upstream"),
            "draw-boxes" => style.boxes = value.get().expect("type checked upstream"),
            "draw-ids" => style.ids = value.get().expect("type checked upstream"),
            "line-width" => style.line_width = value.get().expect("type checked upstream"),
            "point-radius" => style.point_radius = value.get().expect("type checked upstream"),
            "min-score" => style.min_score = value.get().expect("type checked upstream"),
            "text-scale" => style.text_scale = value.get().expect("type checked upstream"),
            name => unimplemented!("property {name}"),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(v) = stats_glue::property(&*self.obj(), &self.stats, pspec.name()) {
            return v;
        }
        let style = self.style.lock().unwrap();
        match pspec.name() {
            "draw-skeleton" => style.skeleton.to_value(),
            "draw-keypoints" => style.keypoints.to_value(),
            "draw-boxes" => style.boxes.to_value(),
            "draw-ids" => style.ids.to_value(),
            "line-width" => style.line_width.to_value(),
            "point-radius" => style.point_radius.to_value(),
            "min-score" => style.min_score.to_value(),
            "text-scale" => style.text_scale.to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for SwarmOverlay {}

impl ElementImpl for SwarmOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Swarm pose overlay",
                "Filter/Effect/Video/Overlay",
                "Draws the poses of the swarmpose meta (skeletons, keypoints, boxes, track ids) \
                 into the video; frames without poses pass untouched",
                "swarmpose developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            crate::pads::filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

// LATENCY: not overridden. Drawing is synchronous and in place and no buffer is held, so
// the element adds 0 to upstream's latency; BaseTransform's default handler forwards the
// query to the peer and returns its answer unchanged, which is exactly that (the
// gst-plugins-rs practice for non-buffering video filters).
impl BaseTransformImpl for SwarmOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.stats.lock().unwrap().reset();
        Ok(())
    }
}

impl SwarmOverlay {
    /// Draws the frame's poses; returns (persons drawn, the frame had no pose meta, the
    /// meta's stage times).
    fn draw(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<(usize, bool, Option<StageTimings>), gst::FlowError> {
        let mut persons = self.persons.lock().unwrap();
        let stages;
        persons.clear();
        let (meta_w, meta_h) = match frame.buffer().meta::<PoseMeta>() {
            Some(meta) => {
                let f = meta.frame();
                persons.extend_from_slice(&f.persons);
                stages = Some(f.timings);
                (f.width, f.height)
            }
            None => return Ok((0, true, None)),
        };
        if persons.is_empty() {
            return Ok((0, false, stages));
        }
        let (width, height) = (frame.width(), frame.height());
        // A meta describing another frame size (an element in between ignored it) is
        // scaled onto this one.
        let scale = if meta_w > 0 && meta_h > 0 {
            (width as f32 / meta_w as f32, height as f32 / meta_h as f32)
        } else {
            (1.0, 1.0)
        };
        let Some(format) = pixel_format(frame.format()) else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ["Unsupported format {:?}", frame.format()]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let style = *self.style.lock().unwrap();
        let planes = frame_planes_mut(frame).map_err(|err| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["Cannot map frame: {}", err]);
            gst::FlowError::Error
        })?;
        let mut canvas =
            Canvas::new(format, width, height, planes.into_iter().flatten()).map_err(|err| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ["Frame layout not drawable: {}", err]
                );
                gst::FlowError::Error
            })?;
        draw_persons(&mut canvas, &persons, scale, &style);
        gst::trace!(CAT, imp = self, "drew {} persons", persons.len());
        Ok((persons.len(), false, stages))
    }
}

impl VideoFilterImpl for SwarmOverlay {
    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let (persons, degraded, stages) = self.draw(frame)?;
        let mut sample = FrameSample {
            persons: persons as u32,
            // No pose meta: nothing could be drawn.
            degraded,
            stages,
            ..stats_glue::sample_since(started)
        };
        if let Some(t) = sample.stages.as_mut() {
            t.set(Stage::Overlay, sample.processing_ns);
        }
        stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
        Ok(gst::FlowSuccess::Ok)
    }
}

/// The frame's planes (at most 3 for the formats drawn) as disjoint mutable slices.
fn frame_planes_mut<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> Result<[Option<Plane<'a>>; 3], glib::BoolError> {
    let n = (frame.n_planes() as usize).min(3);
    let mut strides = [0usize; 3];
    for (dst, &src) in strides.iter_mut().zip(frame.plane_stride()) {
        *dst = src.max(0) as usize;
    }
    let mut planes: [Option<Plane<'a>>; 3] = [None, None, None];
    for (i, slot) in planes.iter_mut().enumerate().take(n) {
        let data = frame.plane_data_mut(i as u32)?;
        // SAFETY: the planes of a mapped video frame do not overlap, and they all live as
        // long as the mapping, which `frame` holds for 'a.
        let data = unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr(), data.len()) };
        *slot = Some(Plane {
            data,
            stride: strides[i],
        });
    }
    Ok(planes)
}
