//! `GstSwarmPoseMeta`: the [`PoseFrame`] of a buffer as a GstMeta, and its mirror as
//! standard `GstVideoRegionOfInterestMeta`s.
//!
//! A `#[repr(C)]` meta holding the Rust `PoseFrame` directly (the pattern of
//! gst-plugins-rs' `OriginalBufferMeta`) rather than a GstStructure-backed `CustomMeta`:
//! a frame carries hundreds of agent candidates and reading them must not go through
//! GValues. The API is tagged "video" and "size", like GStreamer's own geometric video
//! metas, so:
//! - `queue`, `tee` and buffer copies keep it (transform "gst-copy": a clone);
//! - `videoscale` (and `videoconvert`, with scale 1) calls the transform with
//!   "gst-video-scale" and the coordinates are rescaled to the output size;
//! - elements that change geometry in ways the meta cannot follow (`videocrop`, rotation)
//!   drop it, as they drop other size-tagged metas, instead of passing wrong coordinates.

use crate::pose::{NUM_KEYPOINTS, Person, PoseFrame};
use gst::glib;
use gst::prelude::*;
use std::fmt;

/// The name of the ROI param structure holding a person's keypoints.
pub const ROI_PARAM_NAME: &str = "pose-17-kp";
/// The ROI type of persons.
pub const ROI_TYPE: &str = "person";

#[repr(transparent)]
pub struct PoseMeta(imp::PoseMeta);

unsafe impl Send for PoseMeta {}
unsafe impl Sync for PoseMeta {}

impl PoseMeta {
    /// Attaches `frame` to `buffer` as a new meta.
    pub fn add(
        buffer: &mut gst::BufferRef,
        frame: PoseFrame,
    ) -> gst::MetaRefMut<'_, Self, gst::meta::Standalone> {
        unsafe {
            // gst_buffer_add_meta() moves the frame out of `params` in init.
            let mut params = std::mem::ManuallyDrop::new(frame);
            let meta = gst::ffi::gst_buffer_add_meta(
                buffer.as_mut_ptr(),
                imp::pose_meta_get_info(),
                &mut *params as *mut PoseFrame as glib::ffi::gpointer,
            ) as *mut imp::PoseMeta;
            Self::from_mut_ptr(buffer, meta)
        }
    }

    pub fn frame(&self) -> &PoseFrame {
        &self.0.frame
    }

    pub fn frame_mut(&mut self) -> &mut PoseFrame {
        &mut self.0.frame
    }
}

unsafe impl MetaAPI for PoseMeta {
    type GstType = imp::PoseMeta;

    fn meta_api() -> glib::Type {
        imp::pose_meta_api_get_type()
    }
}

impl fmt::Debug for PoseMeta {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("PoseMeta")
            .field("frame", self.frame())
            .finish()
    }
}

/// Sets the buffer's poses: replaces the frame of its `PoseMeta` (or adds one) and
/// re-mirrors the persons as ROI metas.
pub fn set_pose_frame(buffer: &mut gst::BufferRef, frame: PoseFrame) {
    set_pose_frame_no_roi(buffer, frame);
    mirror_as_roi(buffer);
}

/// Replaces the buffer's "person" ROI metas by one per person of its `PoseMeta`.
/// "person" ROIs with params of another producer are kept.
///
/// Each ROI gets the person's box (clamped to the frame), the track id as ROI id (-1
/// when untracked) and a `pose-17-kp` param structure:
/// `x`, `y`, `confidence` (arrays of 17 floats, pixels and 0..1), `visibility` (17 ints,
/// COCO v), `score` (float), `predicted` (bool) and `track-id` (uint64, only when tracked).
pub fn mirror_as_roi(buffer: &mut gst::BufferRef) {
    buffer.foreach_meta_mut(|mut meta| {
        let ours = meta
            .downcast_ref::<gst_video::VideoRegionOfInterestMeta>()
            // Ours carry our param, or no param at all once an element dropped them
            // (GStreamer 1.22's videoconvert copies ROI metas without params).
            .is_some_and(|roi| {
                roi.roi_type() == ROI_TYPE
                    && (roi.param(ROI_PARAM_NAME).is_some() || roi.params().next().is_none())
            });
        if ours {
            std::ops::ControlFlow::Continue(gst::buffer::BufferMetaForeachAction::Remove)
        } else {
            std::ops::ControlFlow::Continue(gst::buffer::BufferMetaForeachAction::Keep)
        }
    });
    let Some(meta) = buffer.meta::<PoseMeta>() else {
        return;
    };
    let frame = meta.frame();
    let rois: Vec<PersonRoi> = frame
        .persons
        .iter()
        .map(|p| person_roi(p, frame.width, frame.height))
        .collect();
    for PersonRoi { rect, id, params } in rois {
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, ROI_TYPE, rect);
        roi.set_id(id);
        roi.add_param(params);
    }
}

/// What one person's ROI meta holds.
struct PersonRoi {
    rect: (u32, u32, u32, u32),
    id: i32,
    params: gst::Structure,
}

fn person_roi(p: &Person, width: u32, height: u32) -> PersonRoi {
    let (fw, fh) = (width as f32, height as f32);
    let clamp = |v: f32, max: f32| {
        if v.is_finite() {
            v.round().clamp(0.0, max)
        } else {
            0.0
        }
    };
    let x0 = clamp(p.bbox.x, fw);
    let y0 = clamp(p.bbox.y, fh);
    let x1 = clamp(p.bbox.x + p.bbox.w, fw);
    let y1 = clamp(p.bbox.y + p.bbox.h, fh);
    let rect = (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
    let kp = &p.keypoints;
    let floats = |f: &dyn Fn(usize) -> f32| gst::Array::new((0..NUM_KEYPOINTS).map(f));
    let mut params = gst::Structure::builder(ROI_PARAM_NAME)
        .field("x", floats(&|i| kp[i].x))
        .field("y", floats(&|i| kp[i].y))
        .field("confidence", floats(&|i| kp[i].score))
        .field(
            "visibility",
            gst::Array::new(kp.iter().map(|k| k.visibility.coco() as i32)),
        )
        .field("score", p.score)
        .field("predicted", p.predicted)
        .build();
    if let Some(id) = p.track_id {
        params.set("track-id", id);
    }
    let id = p
        .track_id
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or(-1);
    PersonRoi { rect, id, params }
}

mod imp {
    use crate::pose::PoseFrame;
    use glib::translate::*;
    use gst::glib;
    use std::ptr;
    use std::sync::LazyLock;

    #[repr(C)]
    pub struct PoseMeta {
        parent: gst::ffi::GstMeta,
        pub(super) frame: PoseFrame,
    }

    pub(super) fn pose_meta_api_get_type() -> glib::Type {
        static TYPE: LazyLock<glib::Type> = LazyLock::new(|| unsafe {
            // Tagged like GStreamer's geometric video metas: see the module docs.
            let tags = [c"video".as_ptr(), c"size".as_ptr(), ptr::null()];
            let t = from_glib(gst::ffi::gst_meta_api_type_register(
                c"GstSwarmPoseMetaAPI".as_ptr() as *const _,
                tags.as_ptr() as *mut *const _,
            ));
            assert_ne!(t, glib::Type::INVALID);
            t
        });
        *TYPE
    }

    unsafe extern "C" fn pose_meta_init(
        meta: *mut gst::ffi::GstMeta,
        params: glib::ffi::gpointer,
        _buffer: *mut gst::ffi::GstBuffer,
    ) -> glib::ffi::gboolean {
        unsafe {
            let meta = &mut *(meta as *mut PoseMeta);
            let frame = if params.is_null() {
                PoseFrame::default()
            } else {
                ptr::read(params as *const PoseFrame)
            };
            ptr::write(&mut meta.frame, frame);
            true.into_glib()
        }
    }

    unsafe extern "C" fn pose_meta_free(
        meta: *mut gst::ffi::GstMeta,
        _buffer: *mut gst::ffi::GstBuffer,
    ) {
        unsafe {
            let meta = &mut *(meta as *mut PoseMeta);
            ptr::drop_in_place(&mut meta.frame);
        }
    }

    unsafe extern "C" fn pose_meta_transform(
        dest: *mut gst::ffi::GstBuffer,
        meta: *mut gst::ffi::GstMeta,
        _buffer: *mut gst::ffi::GstBuffer,
        type_: glib::ffi::GQuark,
        data: glib::ffi::gpointer,
    ) -> glib::ffi::gboolean {
        unsafe {
            static COPY: LazyLock<glib::Quark> =
                LazyLock::new(|| glib::Quark::from_str("gst-copy"));
            let meta = &*(meta as *const PoseMeta);
            let quark: glib::Quark = from_glib(type_);
            let mut frame = meta.frame.clone();
            if quark == *COPY {
                // Whole or partial buffer copy: the frame's geometry is unchanged.
            } else if type_ == gst_video::ffi::gst_video_meta_transform_scale_get_quark() {
                let t = &*(data as *const gst_video::ffi::GstVideoMetaTransform);
                let (out_w, out_h) = ((*t.out_info).width, (*t.out_info).height);
                if out_w <= 0 || out_h <= 0 {
                    return false.into_glib();
                }
                frame.rescale_to(out_w as u32, out_h as u32);
            } else {
                // A transform we cannot follow: dropping beats wrong coordinates.
                return false.into_glib();
            }
            let dest = gst::BufferRef::from_mut_ptr(dest);
            super::set_pose_frame_no_roi(dest, frame);
            true.into_glib()
        }
    }

    pub(super) fn pose_meta_get_info() -> *const gst::ffi::GstMetaInfo {
        struct MetaInfo(ptr::NonNull<gst::ffi::GstMetaInfo>);
        unsafe impl Send for MetaInfo {}
        unsafe impl Sync for MetaInfo {}

        static META_INFO: LazyLock<MetaInfo> = LazyLock::new(|| unsafe {
            MetaInfo(
                ptr::NonNull::new(gst::ffi::gst_meta_register(
                    pose_meta_api_get_type().into_glib(),
                    c"GstSwarmPoseMeta".as_ptr() as *const _,
                    std::mem::size_of::<PoseMeta>(),
                    Some(pose_meta_init),
                    Some(pose_meta_free),
                    Some(pose_meta_transform),
                ) as *mut gst::ffi::GstMetaInfo)
                .expect("registering GstSwarmPoseMeta"),
            )
        });
        META_INFO.0.as_ptr()
    }
}

/// Sets the frame without touching ROI metas: transforms copy those themselves.
fn set_pose_frame_no_roi(buffer: &mut gst::BufferRef, frame: PoseFrame) {
    if let Some(mut meta) = buffer.meta_mut::<PoseMeta>() {
        *meta.frame_mut() = frame;
    } else {
        PoseMeta::add(buffer, frame);
    }
}
