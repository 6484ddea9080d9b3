//! Resampling video pixels into a stem's int8 input: the letterboxed whole frame (body tier)
//! and square person crops (keypoint tier). Plain Rust, no GStreamer types.
//!
//! Geometry follows the training code (OpenCV `warpAffine`, bilinear, constant-0 border, pixel
//! index coordinates): input pixel `(u, v)` samples the image at `x = (u - u0) / scale`,
//! `y = (v - v0) / scale`. Pixels are RGB; `x = p / 127.5 - 1` is then quantised with the stem's
//! input parameters through a 256-entry table (the bundle's pixel convention).

use crate::engine::QuantParams;
use wide::{f32x8, i32x8};

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
    /// The whole `width x height` frame scaled by `side / max(width, height)` into an
    /// `out_w x out_h` input (at least as large), centred, black borders (the body tier's
    /// letterbox: see [`letterbox_shape`]).
    pub fn fit(width: usize, height: usize, out_w: usize, out_h: usize) -> Self {
        let scale = out_w.max(out_h) as f32 / width.max(height).max(1) as f32;
        Window {
            scale,
            u0: (out_w as f32 - width as f32 * scale) / 2.0,
            v0: (out_h as f32 - height as f32 * scale) / 2.0,
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

/// The body tier's input for a `width x height` frame, as `(w, h)`: the long side is `side`,
/// the short one the scaled frame's, rounded up to a multiple of `stride` (the stem is fully
/// convolutional, so the black bands of a square letterbox would only cost compute: a quarter
/// of it for 4:3 video, 42 % for 16:9). `side` is a positive multiple of `stride` (checked
/// when the detector is built).
pub fn letterbox_shape(width: usize, height: usize, side: usize, stride: usize) -> (usize, usize) {
    let long = width.max(height).max(1) as f32;
    let short = |n: usize| {
        let scaled = (n as f32 * side as f32 / long).ceil() as usize;
        scaled
            .next_multiple_of(stride.max(1))
            .clamp(stride.max(1), side)
    };
    if width >= height {
        (side, short(height))
    } else {
        (short(width), side)
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

/// Reusable scratch for [`Sampler::sample`]; sized once for a `width x height` input.
#[derive(Clone, Debug)]
pub struct Sampler {
    width: usize,
    height: usize,
    table: [i8; 256],
    cols: Vec<Tap>,
    /// Per half of the output rows: two horizontally blended source rows (`width * 3` each).
    blended: Vec<f32>,
}

impl Sampler {
    pub fn new(width: usize, height: usize, input_q: QuantParams) -> Self {
        Sampler {
            width,
            height,
            table: pixel_table(input_q),
            cols: vec![Tap::default(); width],
            blended: vec![0.0; 2 * 2 * width * 3],
        }
    }

    /// Width of the input it fills, in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Fills `out` (`width * height * 3`, HWC RGB) with the window of `img`. Allocates
    /// nothing. The two halves of the rows run side by side when rayon has more than one
    /// thread.
    pub fn sample(&mut self, img: &RgbView, win: Window, out: &mut [i8]) {
        let (width, height) = (self.width, self.height);
        debug_assert_eq!(out.len(), width * height * 3);
        for (u, c) in self.cols.iter_mut().enumerate() {
            *c = Tap::new(u, win.u0, win.scale);
        }
        let rows = Rows {
            img,
            win,
            cols: &self.cols,
            table: &self.table,
        };
        let (cache_top, cache_bottom) = self.blended.split_at_mut(2 * width * 3);
        if height >= 64 && rayon::current_num_threads() > 1 {
            let (top, bottom) = out.split_at_mut(height / 2 * width * 3);
            rayon::join(
                || rows.fill(0, top, cache_top),
                || rows.fill(height / 2, bottom, cache_bottom),
            );
        } else {
            rows.fill(0, out, cache_top);
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
    /// Bilinear in two steps: each source row is blended horizontally once
    /// (`p(x0) * (1 - fx) + p(x0 + 1) * fx` for every output column; consecutive output rows
    /// mostly share their source rows), then each output row blends two such rows
    /// vertically. The float operations, and their order, are those of the direct formula.
    /// `cache` holds two blended rows.
    fn fill(&self, first: usize, out: &mut [i8], cache: &mut [f32]) {
        let len = self.cols.len() * 3;
        if len == 0 {
            return;
        }
        let (slot_a, slot_b) = cache.split_at_mut(len);
        let (mut top, mut bottom) = (slot_a, slot_b);
        // Source rows held by `top` and `bottom` (none yet).
        let mut held = (isize::MIN, isize::MIN);
        for (v, out_row) in (first..).zip(out.chunks_exact_mut(len)) {
            let y0 = Tap::new(v, self.win.v0, self.win.scale);
            let (y, fy) = (y0.i0, y0.w1);
            if held != (y, y + 1) {
                if held.1 == y {
                    // The old bottom row is the new top one.
                    std::mem::swap(&mut top, &mut bottom);
                } else {
                    self.blend_row(y, top);
                }
                self.blend_row(y + 1, bottom);
                held = (y, y + 1);
            }
            self.blend_vertical(top, bottom, fy, out_row);
        }
    }

    /// `out = table[round_level(top * (1 - fy) + bottom * fy)]`, 8 values per step (`wide`:
    /// the same IEEE operations lane by lane, no fused multiply-add), the rest one by one.
    fn blend_vertical(&self, top: &[f32], bottom: &[f32], fy: f32, out: &mut [i8]) {
        let (wt, wb) = (f32x8::splat(1.0 - fy), f32x8::splat(fy));
        let (half, max) = (f32x8::splat(0.5), f32x8::splat(255.0));
        let mut o8 = out.chunks_exact_mut(8);
        let (mut t8, mut b8) = (top.chunks_exact(8), bottom.chunks_exact(8));
        for ((o, t), b) in (&mut o8).zip(&mut t8).zip(&mut b8) {
            let t = f32x8::new(t.try_into().expect("8 lanes"));
            let b = f32x8::new(b.try_into().expect("8 lanes"));
            // `round_level`, lane by lane.
            let p = (t * wt + b * wb).max(f32x8::ZERO).min(max);
            let r = (p + half).fast_trunc_int();
            let over: i32x8 = bytemuck::cast((r.round_float() - half).simd_gt(p));
            for (o, level) in o.iter_mut().zip((r + over).to_array()) {
                *o = self.table[level as usize];
            }
        }
        let rest = o8
            .into_remainder()
            .iter_mut()
            .zip(t8.remainder())
            .zip(b8.remainder());
        for ((o, &t), &b) in rest {
            *o = self.table[round_level(t * (1.0 - fy) + b * fy)];
        }
    }

    /// Source row `y` (may be outside the image: black) blended horizontally at every output
    /// column, HWC.
    fn blend_row(&self, y: isize, out: &mut [f32]) {
        let img = self.img;
        let (w, h) = (img.width as isize, img.height as isize);
        if y < 0 || y >= h {
            // Every tap is black: 0 * (1 - fx) + 0 * fx.
            out.fill(0.0);
            return;
        }
        let row = y as usize * img.stride;
        let texel = |x: isize, off: usize| -> f32 {
            if x < 0 || x >= w {
                0.0
            } else {
                f32::from(img.data[row + x as usize * img.pixel_stride + off])
            }
        };
        for (px, col) in out.chunks_exact_mut(3).zip(self.cols) {
            let (x0, fx) = (col.i0, col.w1);
            if x0 >= 0 && x0 + 1 < w {
                // Both taps inside (most columns): no border tests.
                let left = row + x0 as usize * img.pixel_stride;
                let right = left + img.pixel_stride;
                for (o, &off) in px.iter_mut().zip(&img.offsets) {
                    let (a, b) = (
                        f32::from(img.data[left + off]),
                        f32::from(img.data[right + off]),
                    );
                    *o = a * (1.0 - fx) + b * fx;
                }
            } else {
                for (o, &off) in px.iter_mut().zip(&img.offsets) {
                    *o = texel(x0, off) * (1.0 - fx) + texel(x0 + 1, off) * fx;
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
        let w = Window::fit(640, 480, 128, 128);
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

    /// The bilinear formula written directly, one output value at a time (the sampler before it
    /// was split into horizontal and vertical passes).
    fn direct(img: &RgbView, win: Window, (w, h): (usize, usize), table: &[i8; 256]) -> Vec<i8> {
        let texel = |x: isize, y: isize, ch: usize| -> f32 {
            if x < 0 || y < 0 || x >= img.width as isize || y >= img.height as isize {
                0.0
            } else {
                let i = y as usize * img.stride + x as usize * img.pixel_stride + img.offsets[ch];
                f32::from(img.data[i])
            }
        };
        let mut out = Vec::with_capacity(w * h * 3);
        for v in 0..h {
            let Tap { i0: y0, w1: fy } = Tap::new(v, win.v0, win.scale);
            for u in 0..w {
                let Tap { i0: x0, w1: fx } = Tap::new(u, win.u0, win.scale);
                for ch in 0..3 {
                    let top = texel(x0, y0, ch) * (1.0 - fx) + texel(x0 + 1, y0, ch) * fx;
                    let bottom =
                        texel(x0, y0 + 1, ch) * (1.0 - fx) + texel(x0 + 1, y0 + 1, ch) * fx;
                    let p = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0);
                    out.push(table[p as usize]);
                }
            }
        }
        out
    }

    #[test]
    fn sampler_matches_the_direct_formula_byte_for_byte() {
        // A 37x23 BGRx image of pseudo-random levels; windows inside, across the border, mostly
        // outside, shrinking and enlarging; a side with a tail of 4 values per row (36 * 3)
        // run on one thread, and 96 (two halves, side by side when rayon has two threads).
        let (w, h) = (37, 23);
        let mut state = 12345u32;
        let data: Vec<u8> = (0..w * h * 4)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let img = RgbView {
            data: &data,
            width: w,
            height: h,
            stride: w * 4,
            pixel_stride: 4,
            offsets: [2, 1, 0],
        };
        for side in [36, 96] {
            let mut sampler = Sampler::new(side, side, q());
            let mut out = vec![0i8; side * side * 3];
            for (cx, cy, crop) in [
                (18.0, 11.0, 20.0),
                (3.3, 20.7, 31.0),
                (-10.0, 5.0, 12.5),
                (18.5, 11.5, 80.0),
                (30.0, 2.0, 7.0),
            ] {
                let win = Window::square(cx, cy, crop, side);
                sampler.sample(&img, win, &mut out);
                assert_eq!(
                    out,
                    direct(&img, win, (side, side), &sampler.table),
                    "{win:?}"
                );
            }
            let win = Window::fit(w, h, side, side);
            sampler.sample(&img, win, &mut out);
            assert_eq!(
                out,
                direct(&img, win, (side, side), &sampler.table),
                "letterbox"
            );
            // The body tier's letterbox without its black bands: wider than tall.
            let (lw, lh) = letterbox_shape(w, h, side, 4);
            assert!(lw == side && lh < side, "{lw}x{lh}");
            let mut sampler = Sampler::new(lw, lh, q());
            let mut out = vec![0i8; lw * lh * 3];
            let win = Window::fit(w, h, lw, lh);
            sampler.sample(&img, win, &mut out);
            assert_eq!(
                out,
                direct(&img, win, (lw, lh), &sampler.table),
                "fit {lw}x{lh}"
            );
        }
    }

    #[test]
    fn letterbox_shape_drops_the_black_bands() {
        assert_eq!(letterbox_shape(640, 480, 192, 16), (192, 144));
        assert_eq!(letterbox_shape(1280, 720, 192, 16), (192, 112));
        assert_eq!(letterbox_shape(480, 640, 192, 16), (144, 192));
        assert_eq!(letterbox_shape(500, 500, 192, 16), (192, 192));
        // A sliver keeps one stride; the scaled frame always fits.
        assert_eq!(letterbox_shape(4000, 10, 192, 16), (192, 16));
        for (w, h) in [(640, 427), (427, 640), (1920, 1080), (333, 500)] {
            let (lw, lh) = letterbox_shape(w, h, 192, 16);
            let win = Window::fit(w, h, lw, lh);
            let (x0, y0) = win.to_image(0.0, 0.0);
            let (x1, y1) = win.to_image(lw as f32, lh as f32);
            assert!(x0 <= 1e-3 && y0 <= 1e-3, "{w}x{h}: {x0} {y0}");
            assert!(
                x1 >= w as f32 - 1e-3 && y1 >= h as f32 - 1e-3,
                "{w}x{h}: {x1} {y1}"
            );
            assert!(lw % 16 == 0 && lh % 16 == 0 && lw.max(lh) == 192);
        }
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
        let mut s = Sampler::new(4, 4, q());
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
