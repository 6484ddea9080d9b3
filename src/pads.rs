//! Pad templates shared by the filter elements.

/// The always-present "src" and "sink" templates of a one-in, one-out filter with `caps`.
pub(crate) fn filter_pad_templates(caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("src", gst::PadDirection::Src),
        ("sink", gst::PadDirection::Sink),
    ]
    .into_iter()
    .map(|(name, dir)| {
        gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps)
            .expect("static template caps are valid")
    })
    .collect()
}
