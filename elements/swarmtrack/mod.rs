//! `swarmtrack`: gives the persons of the swarmpose meta stable track ids, smooths their
//! poses, and fills frames the detector skipped (buffers without meta) with predicted
//! poses.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SwarmTrack(ObjectSubclass<imp::SwarmTrack>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "swarmtrack",
        gst::Rank::NONE,
        SwarmTrack::static_type(),
    )
}
