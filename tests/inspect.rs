//! The built plugin as a user meets it: gst-inspect-1.0 and gst-launch-1.0 with
//! GST_PLUGIN_PATH pointing at the cargo output folder.

use std::path::PathBuf;
use std::process::Command;

/// The folder holding `libgstswarmpose.so` for this build profile (target/<profile>).
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libgstswarmpose.so").is_file(),
        "plugin built in {}",
        dir.display()
    );
    dir
}

fn gst_tool(tool: &str, args: &[&str]) -> std::process::Output {
    let registry = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("registry-{tool}.bin"));
    Command::new(tool)
        .args(args)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", registry)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"))
}

#[test]
fn gst_inspect_documents_every_overlay_property() {
    let out = gst_tool("gst-inspect-1.0", &["swarmoverlay"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Swarm pose overlay"));
    for (property, range) in [
        ("draw-skeleton", "Default: true"),
        ("draw-keypoints", "Default: true"),
        ("draw-boxes", "Default: true"),
        ("draw-ids", "Default: true"),
        ("line-width", "Range: 1 - 32 Default: 3"),
        ("point-radius", "Range: 1 - 32 Default: 4"),
        ("min-score", "Default:             0.3"),
        ("text-scale", "Range: 1 - 8 Default: 2"),
    ] {
        let at = text
            .find(&format!("  {property} "))
            .unwrap_or_else(|| panic!("{property} listed"));
        let block: String = text[at..].lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(block.contains(range), "{property}: {block}");
    }
}

#[test]
fn gst_launch_runs_the_overlay_on_nv12() {
    let out = gst_tool(
        "gst-launch-1.0",
        &[
            "videotestsrc",
            "num-buffers=30",
            "!",
            "video/x-raw,format=NV12,width=640,height=480",
            "!",
            "swarmoverlay",
            "!",
            "fakesink",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Got EOS"));
}
