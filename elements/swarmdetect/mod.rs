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

/// Fault injection kind (`fault-kind` property), for tests and demos: see `detect::faults`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSwarmDetectFaultKind")]
pub enum FaultKindType {
    #[default]
    #[enum_value(name = "None: every agent healthy", nick = "none")]
    None = 0,
    #[enum_value(name = "Crash: faulty agents emit NaN", nick = "crash")]
    Crash = 1,
    #[enum_value(name = "Silent: faulty agents emit no candidate", nick = "silent")]
    Silent = 2,
    #[enum_value(
        name = "Noise: a random position in the person box, random confidence",
        nick = "noise"
    )]
    Noise = 3,
    #[enum_value(
        name = "Collude: the faulty agents of a keypoint agree on one wrong point of the box, confidence 0.95",
        nick = "collude"
    )]
    Collude = 4,
    #[enum_value(
        name = "Panic: faulty agents panic inside the CPU engine; isolated, counted as failed, run afresh on the next crop",
        nick = "panic"
    )]
    Panic = 5,
}

/// How faulty agents spread over the keypoints (`fault-spread` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSwarmDetectFaultSpread")]
pub enum FaultSpreadType {
    #[default]
    #[enum_value(name = "Random: uniformly among all keypoint agents", nick = "random")]
    Random = 0,
    #[enum_value(
        name = "Balanced: one per keypoint before any keypoint gets a second",
        nick = "balanced"
    )]
    Balanced = 1,
}

glib::wrapper! {
    pub struct SwarmDetect(ObjectSubclass<imp::SwarmDetect>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // Documents the enum in gst-inspect / the plugin docs.
    BackendType::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    FaultKindType::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    FaultSpreadType::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "swarmdetect",
        gst::Rank::NONE,
        SwarmDetect::static_type(),
    )
}
