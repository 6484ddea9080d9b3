//! Turning a user's `--input` into the head of a gst-launch description.

use std::path::Path;

/// A gst-launch fragment producing decoded video from `input`: an `rtsp://` URL, an
/// image-sequence pattern with a printf-style index (`frames/%05d.jpg`), or a video file.
pub fn source_description(input: &str) -> Result<String, String> {
    if input.starts_with("rtsp://") || input.starts_with("rtsps://") {
        return Ok(format!(
            "rtspsrc location={} latency=200 ! decodebin",
            quote(input)
        ));
    }
    if input.contains('%') {
        let first =
            first_index(input).ok_or_else(|| format!("the pattern {input} matches no file"))?;
        let lower = input.to_ascii_lowercase();
        let decoder = if lower.ends_with(".png") {
            "pngdec"
        } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
            "jpegdec"
        } else {
            return Err(format!("image sequences must be .jpg or .png: {input}"));
        };
        let caps = if decoder == "pngdec" {
            "image/png"
        } else {
            "image/jpeg"
        };
        return Ok(format!(
            "multifilesrc location={} start-index={first} caps=\"{caps},framerate=(fraction)25/1\" ! {decoder}",
            quote(input)
        ));
    }
    let path = Path::new(input);
    if !path.is_file() {
        return Err(format!("input file not found: {input}"));
    }
    Ok(format!("filesrc location={} ! decodebin", quote(input)))
}

/// The first index in 0..=1 for which the pattern names an existing file (sequences
/// start at 0 or 1).
fn first_index(pattern: &str) -> Option<u32> {
    (0..=1).find(|&i| format_index(pattern, i).is_some_and(|p| Path::new(&p).is_file()))
}

/// Expands the one `%d` / `%0Nd` of `pattern` with `index`.
fn format_index(pattern: &str, index: u32) -> Option<String> {
    let start = pattern.find('%')?;
    let rest = &pattern[start + 1..];
    let end = rest.find('d')?;
    let spec = &rest[..end];
    let width: usize = if spec.is_empty() {
        0
    } else {
        spec.trim_start_matches('0').parse().ok()?
    };
    let zero = spec.starts_with('0');
    let number = if zero {
        format!("{index:0width$}")
    } else {
        format!("{index:width$}")
    };
    Some(format!(
        "{}{}{}",
        &pattern[..start],
        number,
        &rest[end + 1..]
    ))
}

/// Quotes a value for gst-launch syntax.
pub fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand() {
        assert_eq!(format_index("f/%05d.jpg", 3).unwrap(), "f/00003.jpg");
        assert_eq!(format_index("f/%d.png", 12).unwrap(), "f/12.png");
        assert!(format_index("f/none.png", 1).is_none());
    }

    #[test]
    fn missing_inputs_are_clear_errors() {
        assert!(
            source_description("/nonexistent/clip.mp4")
                .unwrap_err()
                .contains("not found")
        );
        assert!(
            source_description("/nonexistent/%05d.jpg")
                .unwrap_err()
                .contains("matches no file")
        );
        assert!(
            source_description("rtsp://127.0.0.1:1/x")
                .unwrap()
                .starts_with("rtspsrc")
        );
    }
}
