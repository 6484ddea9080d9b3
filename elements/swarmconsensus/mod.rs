//! `swarmconsensus`: fuses the keypoint agents' candidates attached by `swarmdetect` into
//! one keypoint per joint and attaches the final poses.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SwarmConsensus(ObjectSubclass<imp::SwarmConsensus>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "swarmconsensus",
        gst::Rank::NONE,
        SwarmConsensus::static_type(),
    )
}
