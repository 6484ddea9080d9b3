//! Span rasteriser for the overlay: filled discs, thick segments, box outlines and bitmap
//! text, written straight into packed RGB(A) or planar/semi-planar YUV 4:2:0 frames.
//!
//! Every primitive is reduced to horizontal spans, so each format only needs one span
//! writer and drawing allocates nothing. Coverage is exact and binary: a pixel is painted
//! when its centre lies inside the shape (no anti-aliasing), which keeps drawing cheap and
//! makes the changed pixels predictable for tests.

/// Pixel layouts the canvas can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
    Rgb,
    Bgr,
    I420,
    Nv12,
}

impl PixelFormat {
    /// Byte offsets of R, G, B and the pixel size for packed formats.
    fn packed_layout(self) -> Option<([usize; 3], usize)> {
        match self {
            PixelFormat::Rgba | PixelFormat::Rgbx => Some(([0, 1, 2], 4)),
            PixelFormat::Bgra | PixelFormat::Bgrx => Some(([2, 1, 0], 4)),
            PixelFormat::Rgb => Some(([0, 1, 2], 3)),
            PixelFormat::Bgr => Some(([2, 1, 0], 3)),
            PixelFormat::I420 | PixelFormat::Nv12 => None,
        }
    }
}

/// A colour ready for any format: RGB and its BT.601 limited-range YUV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paint {
    pub rgb: [u8; 3],
    pub yuv: [u8; 3],
}

impl Paint {
    pub fn rgb(r: u8, g: u8, b: u8) -> Self {
        let (rf, gf, bf) = (r as f32, g as f32, b as f32);
        let y = 16.0 + (65.481 * rf + 128.553 * gf + 24.966 * bf) / 255.0;
        let u = 128.0 + (-37.797 * rf - 74.203 * gf + 112.0 * bf) / 255.0;
        let v = 128.0 + (112.0 * rf - 93.786 * gf - 18.214 * bf) / 255.0;
        let q = |c: f32| c.round().clamp(0.0, 255.0) as u8;
        Paint {
            rgb: [r, g, b],
            yuv: [q(y), q(u), q(v)],
        }
    }

    /// The same hue at half brightness (for hidden keypoints).
    pub fn dimmed(self) -> Self {
        let [r, g, b] = self.rgb;
        Paint::rgb(r / 2, g / 2, b / 2)
    }
}

/// One plane of a frame: its bytes and row stride.
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// A frame to draw into. Plane sizes are checked once in [`Canvas::new`], so span
/// writes cannot go out of bounds.
pub struct Canvas<'a> {
    format: PixelFormat,
    width: i32,
    height: i32,
    planes: [Option<Plane<'a>>; 3],
}

/// Why a frame cannot be drawn into.
#[derive(Debug, PartialEq, Eq)]
pub enum CanvasError {
    MissingPlane(usize),
    PlaneTooSmall {
        plane: usize,
        needed: usize,
        got: usize,
    },
    TooLarge,
}

impl std::fmt::Display for CanvasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CanvasError::MissingPlane(i) => write!(f, "plane {i} is missing"),
            CanvasError::PlaneTooSmall { plane, needed, got } => {
                write!(f, "plane {plane} holds {got} bytes, {needed} needed")
            }
            CanvasError::TooLarge => write!(f, "frame is too large"),
        }
    }
}

impl std::error::Error for CanvasError {}

impl<'a> Canvas<'a> {
    /// Wraps the planes of a `width` x `height` frame: one plane for packed formats,
    /// Y, U, V for I420 and Y, UV for NV12.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: impl IntoIterator<Item = Plane<'a>>,
    ) -> Result<Self, CanvasError> {
        if width > i32::MAX as u32 / 4 || height > i32::MAX as u32 / 4 {
            return Err(CanvasError::TooLarge);
        }
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        // (rows, bytes per row) each plane must hold.
        let needs: &[(usize, usize)] = &match format.packed_layout() {
            Some((_, bpp)) => [(h, w * bpp), (0, 0), (0, 0)],
            None if format == PixelFormat::I420 => [(h, w), (ch, cw), (ch, cw)],
            None => [(h, w), (ch, cw * 2), (0, 0)],
        };
        let mut slots: [Option<Plane<'a>>; 3] = [None, None, None];
        let mut given = planes.into_iter();
        for (i, &(rows, row_bytes)) in needs.iter().enumerate() {
            if rows == 0 {
                continue;
            }
            let plane = given.next().ok_or(CanvasError::MissingPlane(i))?;
            let needed = (rows - 1) * plane.stride + row_bytes;
            if plane.stride < row_bytes || plane.data.len() < needed {
                return Err(CanvasError::PlaneTooSmall {
                    plane: i,
                    needed,
                    got: plane.data.len(),
                });
            }
            slots[i] = Some(plane);
        }
        Ok(Canvas {
            format,
            width: width as i32,
            height: height as i32,
            planes: slots,
        })
    }

    pub fn width(&self) -> u32 {
        self.width as u32
    }

    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Paints pixels `x0..x1` (end exclusive) of row `y`, clipped to the frame.
    pub fn fill_span(&mut self, y: i32, x0: i32, x1: i32, paint: Paint) {
        if y < 0 || y >= self.height {
            return;
        }
        let x0 = x0.max(0);
        let x1 = x1.min(self.width);
        if x0 >= x1 {
            return;
        }
        let (y, x0, x1) = (y as usize, x0 as usize, x1 as usize);
        let format = self.format;
        let [p0, p1, p2] = &mut self.planes;
        let p0 = p0.as_mut().expect("checked in new");
        if let Some((offsets, bpp)) = format.packed_layout() {
            let row = &mut p0.data[y * p0.stride + x0 * bpp..y * p0.stride + x1 * bpp];
            for px in row.chunks_exact_mut(bpp) {
                px[offsets[0]] = paint.rgb[0];
                px[offsets[1]] = paint.rgb[1];
                px[offsets[2]] = paint.rgb[2];
            }
            return;
        }
        p0.data[y * p0.stride + x0..y * p0.stride + x1].fill(paint.yuv[0]);
        // 4:2:0 chroma: every chroma sample that any painted pixel falls in.
        let (cy, cx0, cx1) = (y / 2, x0 / 2, (x1 - 1) / 2 + 1);
        let p1 = p1.as_mut().expect("checked in new");
        if format == PixelFormat::I420 {
            let p2 = p2.as_mut().expect("checked in new");
            p1.data[cy * p1.stride + cx0..cy * p1.stride + cx1].fill(paint.yuv[1]);
            p2.data[cy * p2.stride + cx0..cy * p2.stride + cx1].fill(paint.yuv[2]);
        } else {
            let row = &mut p1.data[cy * p1.stride + cx0 * 2..cy * p1.stride + cx1 * 2];
            for uv in row.chunks_exact_mut(2) {
                uv[0] = paint.yuv[1];
                uv[1] = paint.yuv[2];
            }
        }
    }

    /// Rows whose pixel centres (y + 0.5) fall in `lo..=hi`, clipped to the frame.
    fn rows(&self, lo: f32, hi: f32) -> std::ops::RangeInclusive<i32> {
        let first = ((lo - 0.5).ceil() as i32).max(0);
        let last = ((hi - 0.5).floor() as i32).min(self.height - 1);
        first..=last
    }

    /// Paints the pixels of row `y` whose centres have x in `lo..=hi`.
    fn fill_centres(&mut self, y: i32, lo: f32, hi: f32, paint: Paint) {
        if lo > hi || !lo.is_finite() || !hi.is_finite() {
            return;
        }
        let x0 = (lo - 0.5).ceil().max(-1.0).min(self.width as f32) as i32;
        let x1 = (hi - 0.5).floor().max(-1.0).min(self.width as f32) as i32 + 1;
        self.fill_span(y, x0, x1, paint);
    }

    /// Fills the axis-aligned rectangle of pixels `x0..x1`, `y0..y1` (ends exclusive).
    pub fn fill_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, paint: Paint) {
        for y in y0.max(0)..y1.min(self.height) {
            self.fill_span(y, x0, x1, paint);
        }
    }

    /// Fills the disc of radius `r` around (`cx`, `cy`): every pixel whose centre is
    /// within `r`.
    pub fn fill_disc(&mut self, cx: f32, cy: f32, r: f32, paint: Paint) {
        if !(cx.is_finite() && cy.is_finite() && r > 0.0) {
            return;
        }
        for y in self.rows(cy - r, cy + r) {
            let dy = y as f32 + 0.5 - cy;
            let half = (r * r - dy * dy).max(0.0).sqrt();
            self.fill_centres(y, cx - half, cx + half, paint);
        }
    }

    /// Strokes the segment a-b with round caps: every pixel whose centre is within
    /// `half_width` of the segment.
    pub fn stroke_segment(&mut self, a: (f32, f32), b: (f32, f32), half_width: f32, paint: Paint) {
        let (ax, ay, bx, by) = (a.0, a.1, b.0, b.1);
        if !(ax.is_finite() && ay.is_finite() && bx.is_finite() && by.is_finite()) {
            return;
        }
        let r = half_width;
        if r <= 0.0 {
            return;
        }
        let (dx, dy) = (bx - ax, by - ay);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-6 {
            self.fill_disc(ax, ay, r, paint);
            return;
        }
        let (ux, uy) = (dx / len, dy / len);
        for y in self.rows(ay.min(by) - r, ay.max(by) + r) {
            let yc = y as f32 + 0.5;
            // The capsule is convex, so its intersection with a row is one interval: the
            // union of the end discs' and the body rectangle's intervals.
            let mut lo = f32::INFINITY;
            let mut hi = f32::NEG_INFINITY;
            for (cx, cy) in [(ax, ay), (bx, by)] {
                let d = yc - cy;
                if d.abs() <= r {
                    let half = (r * r - d * d).sqrt();
                    lo = lo.min(cx - half);
                    hi = hi.max(cx + half);
                }
            }
            // Rectangle: 0 <= (p - a).u <= len and |(p - a).n| <= r with n = (-uy, ux).
            // Each is linear in x: c0 + c1 * x within [min, max].
            let ry = yc - ay;
            let along = slab(-ax * ux + ry * uy, ux, 0.0, len);
            let across = slab(ax * uy + ry * ux, -uy, -r, r);
            if let (Some((l0, h0)), Some((l1, h1))) = (along, across) {
                let (l, h) = (l0.max(l1), h0.min(h1));
                if l <= h {
                    lo = lo.min(l);
                    hi = hi.max(h);
                }
            }
            self.fill_centres(y, lo, hi, paint);
        }
    }

    /// Strokes the outline of a box, `width` pixels thick, inside the box's edges.
    pub fn stroke_box(&mut self, x: f32, y: f32, w: f32, h: f32, width: u32, paint: Paint) {
        if !(x.is_finite() && y.is_finite() && w.is_finite() && h.is_finite()) {
            return;
        }
        let clamp = |v: f32| v.round().clamp(-1.0, (i32::MAX / 4) as f32) as i32;
        let (x0, y0, x1, y1) = (clamp(x), clamp(y), clamp(x + w), clamp(y + h));
        let t = width as i32;
        self.fill_rect(x0, y0, x1, (y0 + t).min(y1), paint);
        self.fill_rect(x0, (y1 - t).max(y0), x1, y1, paint);
        self.fill_rect(x0, y0, (x0 + t).min(x1), y1, paint);
        self.fill_rect((x1 - t).max(x0), y0, x1, y1, paint);
    }

    /// Draws ASCII `text` with the 8x8 bitmap font scaled by `scale`, top-left at (x, y),
    /// on a filled background so it stays readable on any video.
    pub fn draw_text(
        &mut self,
        x: i32,
        y: i32,
        text: &str,
        scale: u32,
        ink: Paint,
        background: Paint,
    ) {
        let s = scale.max(1) as i32;
        let cell = 8 * s;
        let n = text.chars().count() as i32;
        self.fill_rect(x - s, y - s, x + n * cell + s, y + cell + s, background);
        for (i, ch) in text.chars().enumerate() {
            let glyph = glyph(ch);
            let gx = x + i as i32 * cell;
            for (row, bits) in glyph.iter().enumerate() {
                // font8x8: bit k of a row byte is column k.
                let mut col = 0;
                while col < 8 {
                    if bits & (1 << col) == 0 {
                        col += 1;
                        continue;
                    }
                    let start = col;
                    while col < 8 && bits & (1 << col) != 0 {
                        col += 1;
                    }
                    let y0 = y + row as i32 * s;
                    self.fill_rect(gx + start * s, y0, gx + col * s, y0 + s, ink);
                }
            }
        }
    }
}

/// The x interval where `lo <= c0 + c1 * x <= hi`; `None` when empty, unbounded ends as
/// infinities.
fn slab(c0: f32, c1: f32, lo: f32, hi: f32) -> Option<(f32, f32)> {
    if c1.abs() < 1e-9 {
        return (lo..=hi)
            .contains(&c0)
            .then_some((f32::NEG_INFINITY, f32::INFINITY));
    }
    let (a, b) = ((lo - c0) / c1, (hi - c0) / c1);
    Some((a.min(b), a.max(b)))
}

fn glyph(ch: char) -> [u8; 8] {
    let code = ch as usize;
    if code < 128 {
        font8x8::legacy::BASIC_LEGACY[code]
    } else {
        font8x8::legacy::BASIC_LEGACY[b'?' as usize]
    }
}

/// Text width in pixels of `chars` characters at `scale`.
pub fn text_width(chars: usize, scale: u32) -> i32 {
    (chars as i32) * 8 * scale.max(1) as i32
}
