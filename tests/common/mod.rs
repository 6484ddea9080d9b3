//! Helpers shared by the tracking tests. Each test binary uses a different subset, hence
//! the dead-code allowance.
#![allow(dead_code)]

pub mod crowd;
pub mod metrics;

use std::sync::Once;

/// Initialises GStreamer and registers the plugin statically, once per test binary.
pub fn init_gst() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstswarmpose::plugin_register_static().unwrap();
    });
}
