//! `swarmjson`: a pass-through element writing the poses of every frame as JSON lines.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SwarmJson(ObjectSubclass<imp::SwarmJson>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "swarmjson",
        gst::Rank::NONE,
        SwarmJson::static_type(),
    )
}
