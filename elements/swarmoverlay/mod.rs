//! `swarmoverlay`: draws the persons of the swarmpose meta (skeleton limbs, keypoint dots,
//! boxes and track ids) into the video, in place.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SwarmOverlay(ObjectSubclass<imp::SwarmOverlay>) @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "swarmoverlay",
        gst::Rank::NONE,
        SwarmOverlay::static_type(),
    )
}
