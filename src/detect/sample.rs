//! Resampling video pixels into a stem's int8 input: the letterboxed whole frame (body tier)
//! and square person crops (keypoint tier). Plain Rust, no GStreamer types.
//!
//! Geometry follows the training code (OpenCV `warpAffine`, bilinear, constant-0 border, pixel
//! index coordinates): input pixel `(u, v)` samples the image at `x = (u - u0) / scale`,
//! `y = (v - v0) / scale`. Pixels are RGB; `x = p / 127.5 - 1` is then quantised with the stem's
//! input parameters through a 256-entry table (the bundle's pixel convention).

use crate::engine::QuantParams;

/// A packed RGB(A) image borrowed from a video frame.
#[derive(Clone, Copy, Debug)]
pub struct RgbView<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// Bytes per row.
    pub stride: usize,
    /// Bytes per pixel (3 or 4).
    pub pixel_stride: usize,
    /// Byte offsets of R, G and B inside a pixel.
    pub offsets: [usize; 3],
}

impl<'a> RgbView<'a> {
    /// A tightly packed RGB image (3 bytes per pixel, rows without padding).
    pub fn packed_rgb(data: &'a [u8], width: usize, height: usize) -> Self {
        RgbView {
            data,
            width,
            height,
            stride: width * 3,
            pixel_stride: 3,
            offsets: [0, 1, 2],
        }
    }

    /// Whether `data` holds every pixel the geometry promises.
    pub fn is_consistent(&self) -> bool {
        self.width > 0
            && self.height > 0
            && self.offsets.iter().all(|&o| o < self.pixel_stride)
            && self.stride >= self.width * self.pixel_stride
            && self.data.len() >= (self.height - 1) * self.stride + self.width * self.pixel_stride
    }
}

/// Maps a model input window onto the image: `u = scale * x + u0`, `v = scale * y + v0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub scale: f32,
    pub u0: f32,
    pub v0: f32,
}

impl Window {
    /// The whole `width x height` frame scaled to fit a `side x side` input, centred, black
    /// borders (the body tier's letterbox).
    pub fn letterbox(width: usize, height: usize, side: usize) -> Self {
        let scale = side as f32 / width.max(height).max(1) as f32;
        Window {
            scale,
            u0: (side as f32 - width as f32 * scale) / 2.0,
            v0: (side as f32 - height as f32 * scale) / 2.0,
        }
    }

    /// A square of `crop_side` image pixels centred on `(cx, cy)`, scaled to `side`.
    pub fn square(cx: f32, cy: f32, crop_side: f32, side: usize) -> Self {
        let scale = side as f32 / crop_side.max(1.0);
        let half = side as f32 / 2.0;
        Window {
            scale,
            u0: half - scale * cx,
            v0: half - scale * cy,
        }
    }

    /// Image coordinates of a model-input point.
    pub fn to_image(&self, u: f32, v: f32) -> (f32, f32) {
        ((u - self.u0) / self.scale, (v - self.v0) / self.scale)
    }
}

/// Quantised value of each 8-bit pixel level.
pub fn pixel_table(q: QuantParams) -> [i8; 256] {
    std::array::from_fn(|p| q.quantize(p as f32 / 127.5 - 1.0))
}

/// One axis' bilinear taps: first index (may be out of range) and the weight of the second.
#[derive(Clone, Copy, Debug, Default)]
struct Tap {
    i0: isize,
    w1: f32,
}

/// Reusable scratch for [`Sampler::sample`]; sized once for a `side x side` input.
#[derive(Clone, Debug)]
pub struct Sampler {
    side: usize,
    table: [i8; 256],
    cols: Vec<Tap>,
}

impl Sampler {
    pub fn new(side: usize, input_q: QuantParams) -> Self {
        Sampler {
            side,
            table: pixel_table(input_q),
            cols: vec![Tap::default(); side],
        }
    }

    pub fn side(&self) -> usize {
        self.side
    }

    /// Fills `out` (`side * side * 3`, HWC RGB) with the window of `img`. Allocates nothing.
    /// The two halves of the rows run side by side when rayon has more than one thread.
    pub fn sample(&mut self, img: &RgbView, win: Window, out: &mut [i8]) {
        let side = self.side;
        debug_assert_eq!(out.len(), side * side * 3);
        for (u, c) in self.cols.iter_mut().enumerate() {
            *c = Tap::new(u, win.u0, win.scale);
        }
        let rows = Rows {
            img,
            win,
            cols: &self.cols,
            table: &self.table,
        };
        if side >= 64 && rayon::current_num_threads() > 1 {
            let (top, bottom) = out.split_at_mut(side / 2 * side * 3);
            rayon::join(|| rows.fill(0, top), || rows.fill(side / 2, bottom));
        } else {
            rows.fill(0, out);
        }
    }
}

impl Tap {
    /// The taps of input pixel `u` for a window starting at `origin` with `scale`.
    fn new(u: usize, origin: f32, scale: f32) -> Self {
        let x = (u as f32 - origin) / scale;
        let f = x.floor();
        Tap {
            i0: f as isize,
            w1: x - f,
        }
    }
}

/// What [`Sampler::sample`] shares between the threads filling its rows.
struct Rows<'a> {
    img: &'a RgbView<'a>,
    win: Window,
    cols: &'a [Tap],
    table: &'a [i8; 256],
}

impl Rows<'_> {
    /// Fills the rows from `first` on (as many as `out` holds) of the sampled window.
    fn fill(&self, first: usize, out: &mut [i8]) {
        let (img, side) = (self.img, self.cols.len());
        let (w, h) = (img.width as isize, img.height as isize);
        let texel = |x: isize, y: isize, ch: usize| -> f32 {
            if x < 0 || y < 0 || x >= w || y >= h {
                0.0
            } else {
                let i = y as usize * img.stride + x as usize * img.pixel_stride + img.offsets[ch];
                f32::from(img.data[i])
            }
        };
        let ps = img.pixel_stride;
        for (v, out_row) in (first..).zip(out.chunks_exact_mut(side * 3)) {
            let row = Tap::new(v, self.win.v0, self.win.scale);
            let (y0, fy) = (row.i0, row.w1);
            let rows_inside = y0 >= 0 && y0 + 1 < h;
            for (u, col) in self.cols.iter().enumerate() {
                let (x0, fx) = (col.i0, col.w1);
                let px = &mut out_row[u * 3..u * 3 + 3];
                if rows_inside && x0 >= 0 && x0 + 1 < w {
                    // All four taps inside the image (most of a crop): no border tests. Same
                    // arithmetic, in the same order, as the general case below.
                    let top_left = y0 as usize * img.stride + x0 as usize * ps;
                    let bottom_left = top_left + img.stride;
                    for (o, &off) in px.iter_mut().zip(&img.offsets) {
                        let t = |i: usize| f32::from(img.data[i + off]);
                        let top = t(top_left) * (1.0 - fx) + t(top_left + ps) * fx;
                        let bottom = t(bottom_left) * (1.0 - fx) + t(bottom_left + ps) * fx;
                        *o = self.table[round_level(top * (1.0 - fy) + bottom * fy)];
                    }
                } else {
                    for (ch, o) in px.iter_mut().enumerate() {
                        let top = texel(x0, y0, ch) * (1.0 - fx) + texel(x0 + 1, y0, ch) * fx;
                        let bottom =
                            texel(x0, y0 + 1, ch) * (1.0 - fx) + texel(x0 + 1, y0 + 1, ch) * fx;
                        *o = self.table[round_level(top * (1.0 - fy) + bottom * fy)];
                    }
                }
            }
        }
    }
}

/// `p.round().clamp(0.0, 255.0) as usize` for a blend of pixel levels (`0 <= p < 256`) without
/// `f32::round`, which is a libm call on a baseline x86-64 build (no SSE4.1): truncate `p + 0.5`,
/// then undo the one case where that sum rounds up in f32 (`p` just below `k + 0.5`; `r - 0.5` is
/// exact, `r - p` is not). Checked against `round` on every f32 in `0..=256`.
#[inline(always)]
fn round_level(p: f32) -> usize {
    let p = p.clamp(0.0, 255.0);
    let r = (p + 0.5) as usize;
    if r as f32 - 0.5 > p { r - 1 } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> QuantParams {
        QuantParams {
            scale: 1.0 / 127.5,
            zero_point: 0,
        }
    }

    #[test]
    fn letterbox_centres_the_frame() {
        let w = Window::letterbox(640, 480, 128);
        assert!((w.scale - 0.2).abs() < 1e-6);
        assert_eq!((w.u0, w.v0), (0.0, 16.0));
        let (x, y) = w.to_image(64.0, 64.0);
        assert!((x - 320.0).abs() < 1e-3 && (y - 240.0).abs() < 1e-3);
    }

    #[test]
    fn square_window_maps_centre_to_centre() {
        let w = Window::square(100.0, 50.0, 64.0, 128);
        assert_eq!(w.to_image(64.0, 64.0), (100.0, 50.0));
        assert_eq!(w.to_image(0.0, 0.0), (68.0, 18.0));
    }

    #[test]
    fn round_level_is_round_then_clamp() {
        // Around every half level, a few ulps either side, and every exact level.
        for k in 0..=256u32 {
            let half = k as f32 - 0.5;
            let mut x = half;
            for _ in 0..8 {
                x = f32::from_bits(x.to_bits() - 1);
            }
            for _ in 0..17 {
                if x >= 0.0 {
                    assert_eq!(round_level(x), x.round().clamp(0.0, 255.0) as usize, "{x}");
                }
                x = f32::from_bits(x.to_bits() + 1);
            }
            assert_eq!(round_level(k as f32), (k as usize).min(255));
        }
        for x in [
            0.0, 1e-30, 0.25, 0.49999997, 0.5, 127.49999, 254.5, 255.0, 300.0,
        ] {
            assert_eq!(round_level(x), x.round().clamp(0.0, 255.0) as usize, "{x}");
        }
    }

    #[test]
    fn samples_pixels_and_black_border() {
        // 2x1 BGRx image: left pixel pure red, right pixel pure blue.
        let data = [0u8, 0, 255, 0, 255, 0, 0, 0];
        let img = RgbView {
            data: &data,
            width: 2,
            height: 1,
            stride: 8,
            pixel_stride: 4,
            offsets: [2, 1, 0],
        };
        assert!(img.is_consistent());
        let mut s = Sampler::new(4, q());
        let mut out = vec![0i8; 4 * 4 * 3];
        // Identity scale, image at the top-left: input (0,0) = red, (1,0) = blue, rest black.
        s.sample(
            &img,
            Window {
                scale: 1.0,
                u0: 0.0,
                v0: 0.0,
            },
            &mut out,
        );
        let t = pixel_table(q());
        assert_eq!(&out[0..3], &[t[255], t[0], t[0]]);
        assert_eq!(&out[3..6], &[t[0], t[0], t[255]]);
        assert_eq!(&out[6..9], &[t[0]; 3]);
        assert_eq!(&out[12..15], &[t[0]; 3]);
    }
}
