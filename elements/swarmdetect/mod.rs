//! `swarmdetect`: runs the detection tiers (stem → body agents → per-keypoint agents) on each
//! video frame and attaches every keypoint agent's candidates, with the person boxes and a
//! provisional pose, as swarmpose meta for `swarmconsensus`.

use gst::glib;
use gst::prelude::*;

mod imp;

/// Where the agents run (`backend` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSwarmDetectBackend")]
pub enum BackendType {
    #[default]
    #[enum_value(
        name = "Auto: a hardware GPU through wgpu when present, else CPU SIMD",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "CPU: int8 SIMD kernels, persons in parallel (rayon)",
        nick = "cpu"
    )]
    Cpu = 1,
    #[enum_value(
        name = "GPU: wgpu compute (Vulkan/Metal/DX12); an error without an adapter",
        nick = "gpu"
    )]
    Gpu = 2,
}

glib::wrapper! {
    pub struct SwarmDetect(ObjectSubclass<imp::SwarmDetect>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // Documents the enum in gst-inspect / the plugin docs.
    BackendType::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "swarmdetect",
        gst::Rank::NONE,
        SwarmDetect::static_type(),
    )
}
