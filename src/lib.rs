//! swarmpose: real-time multi-person pose estimation and tracking as a swarm of tiny int8
//! agents, packaged as GStreamer elements.
//!
//! The engine modules (`pose`, `json`, `draw`, `overlay`, `consensus`, `track`, `engine`,
//! `stats`) are plain Rust with no GStreamer types; `meta`, `stats_glue` and the elements
//! under `elements/` are the GStreamer glue.

use gst::glib;

pub mod consensus;
pub mod detect;
pub mod draw;
pub mod engine;
pub mod json;
pub mod meta;
pub mod overlay;
mod pads;
pub mod pose;
pub mod stats;
pub mod stats_glue;
pub mod track;
pub mod validate;

#[path = "../elements/swarmconsensus/mod.rs"]
pub mod swarmconsensus;
#[path = "../elements/swarmdetect/mod.rs"]
pub mod swarmdetect;
#[path = "../elements/swarmjson/mod.rs"]
pub mod swarmjson;
#[path = "../elements/swarmoverlay/mod.rs"]
pub mod swarmoverlay;
#[path = "../elements/swarmtrack/mod.rs"]
pub mod swarmtrack;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    swarmdetect::register(plugin)?;
    swarmoverlay::register(plugin)?;
    swarmjson::register(plugin)?;
    swarmconsensus::register(plugin)?;
    swarmtrack::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    swarmpose,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
