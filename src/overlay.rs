//! Drawing persons (skeleton, keypoints, box, track id) onto a [`Canvas`].

use crate::draw::{Canvas, Paint, text_width};
use crate::pose::{Person, SKELETON, Visibility};

/// What to draw and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    pub skeleton: bool,
    pub keypoints: bool,
    pub boxes: bool,
    pub ids: bool,
    /// Limb and box line width in pixels.
    pub line_width: u32,
    /// Keypoint dot radius in pixels.
    pub point_radius: u32,
    /// Keypoints scoring below this are not drawn, nor are limbs touching them.
    pub min_score: f64,
    /// Scale of the 8x8 id font.
    pub text_scale: u32,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        OverlayStyle {
            skeleton: true,
            keypoints: true,
            boxes: true,
            ids: true,
            line_width: 3,
            point_radius: 4,
            min_score: 0.3,
            text_scale: 2,
        }
    }
}

/// Twelve well-separated, saturated colours; track ids cycle through them.
const PALETTE: [[u8; 3]; 12] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
    [0, 128, 128],
    [170, 110, 40],
];

/// The stable colour of a track id (the same id always gets the same colour).
pub fn track_paint(id: Option<u64>) -> Paint {
    match id {
        // Untracked persons: green.
        None => Paint::rgb(0, 255, 0),
        Some(id) => {
            let [r, g, b] = PALETTE[(id % PALETTE.len() as u64) as usize];
            Paint::rgb(r, g, b)
        }
    }
}

/// Draws `persons`, whose coordinates are multiplied by `scale` (x, y) first, so a
/// pose described for another frame size lands on the right pixels.
pub fn draw_persons(
    canvas: &mut Canvas<'_>,
    persons: &[Person],
    scale: (f32, f32),
    style: &OverlayStyle,
) {
    let (sx, sy) = scale;
    let black = Paint::rgb(0, 0, 0);
    let mut label = LabelBuf::default();
    for person in persons {
        let paint = track_paint(person.track_id);
        let kps = &person.keypoints;
        let shown = |i: usize| {
            let k = &kps[i];
            k.visibility != Visibility::Absent && k.score as f64 >= style.min_score
        };
        if style.boxes {
            let b = &person.bbox;
            canvas.stroke_box(
                b.x * sx,
                b.y * sy,
                b.w * sx,
                b.h * sy,
                style.line_width,
                paint,
            );
        }
        if style.skeleton {
            let half = style.line_width as f32 / 2.0;
            for &(a, b) in &SKELETON {
                let (a, b) = (a as usize, b as usize);
                if shown(a) && shown(b) {
                    let limb = if kps[a].visibility == Visibility::Hidden
                        || kps[b].visibility == Visibility::Hidden
                    {
                        paint.dimmed()
                    } else {
                        paint
                    };
                    canvas.stroke_segment(
                        (kps[a].x * sx, kps[a].y * sy),
                        (kps[b].x * sx, kps[b].y * sy),
                        half,
                        limb,
                    );
                }
            }
        }
        if style.keypoints {
            for (i, k) in kps.iter().enumerate() {
                if shown(i) {
                    let dot = if k.visibility == Visibility::Hidden {
                        paint.dimmed()
                    } else {
                        paint
                    };
                    canvas.fill_disc(k.x * sx, k.y * sy, style.point_radius as f32, dot);
                }
            }
        }
        if style.ids
            && let Some(id) = person.track_id
        {
            let text = label.format(id);
            let s = style.text_scale.max(1) as i32;
            let x = (person.bbox.x * sx).round() as i32 + s;
            let y = (person.bbox.y * sy).round() as i32 - 8 * s - 2 * s;
            let x = x.clamp(
                s,
                (canvas.width() as i32 - text_width(text.len(), style.text_scale) - s).max(s),
            );
            canvas.draw_text(x, y.max(s), text, style.text_scale, black, paint);
        }
    }
}

/// Formats ids without allocating.
#[derive(Default)]
struct LabelBuf([u8; 20]);

impl LabelBuf {
    fn format(&mut self, mut v: u64) -> &str {
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.0[i..]).expect("ASCII digits")
    }
}
