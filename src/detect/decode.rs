//! Decoding agent output maps into person boxes and keypoint candidates.
//!
//! Output conventions (the bundle's, set by the training code):
//! * body agent, 5 channels per cell: centre logit, centre offset dx, dy (cells), log(w / stride),
//!   log(h / stride); the body agents' maps are averaged, then every 3x3 local maximum above the
//!   score threshold is a person (centre `((c + 0.5 + dx) * stride, (r + 0.5 + dy) * stride)`).
//! * keypoint agent, 3 channels per cell: logit, dx, dy; the agent's candidate is its arg-max
//!   cell plus the offset, with confidence `sigmoid(logit)`.

/// Logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A person proposal in model-input pixels (centre, size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxProposal {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
}

impl BoxProposal {
    fn iou(&self, o: &BoxProposal) -> f32 {
        let ix = (self.cx + self.w / 2.0).min(o.cx + o.w / 2.0)
            - (self.cx - self.w / 2.0).max(o.cx - o.w / 2.0);
        let iy = (self.cy + self.h / 2.0).min(o.cy + o.h / 2.0)
            - (self.cy - self.h / 2.0).max(o.cy - o.h / 2.0);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.w * self.h + o.w * o.h - inter).max(1e-6)
    }
}

/// Channels of a body agent's output.
pub const BODY_CHANNELS: usize = 5;
/// Channels of a keypoint agent's output.
pub const KEYPOINT_CHANNELS: usize = 3;
/// Largest box side accepted from `exp(log size)`, in cells; keeps garbage logits finite.
const MAX_LOG_SIZE: f32 = 6.0;

/// Averages `n` agents' `[grid_h, grid_w, 5]` maps (concatenated in `maps`) into `mean`.
pub fn average_maps(maps: &[f32], n: usize, mean: &mut [f32]) {
    mean.fill(0.0);
    if n == 0 {
        return;
    }
    for agent in maps.chunks_exact(mean.len()).take(n) {
        for (m, v) in mean.iter_mut().zip(agent) {
            *m += v;
        }
    }
    let inv = 1.0 / n as f32;
    mean.iter_mut().for_each(|m| *m *= inv);
}

/// Person proposals from an averaged body map: 3x3 local maxima with `sigmoid(logit) >=
/// min_score`, greedy non-maximum suppression at `nms_iou`, best first, at most `max`.
/// `out` is cleared first and never grows beyond its capacity, so this allocates nothing.
#[allow(clippy::too_many_arguments)]
pub fn decode_bodies(
    mean: &[f32],
    grid_h: usize,
    grid_w: usize,
    stride: f32,
    min_score: f32,
    nms_iou: f32,
    max: usize,
    out: &mut Vec<BoxProposal>,
) {
    out.clear();
    let logit = |r: usize, c: usize| mean[(r * grid_w + c) * BODY_CHANNELS];
    for r in 0..grid_h {
        for c in 0..grid_w {
            let l = logit(r, c);
            if !l.is_finite() || sigmoid(l) < min_score {
                continue;
            }
            let mut is_peak = true;
            for nr in r.saturating_sub(1)..(r + 2).min(grid_h) {
                for nc in c.saturating_sub(1)..(c + 2).min(grid_w) {
                    let n = logit(nr, nc);
                    // Ties go to the first cell in raster order.
                    if (nr, nc) != (r, c) && (n > l || (n == l && (nr, nc) < (r, c))) {
                        is_peak = false;
                    }
                }
            }
            if !is_peak {
                continue;
            }
            let v = &mean[(r * grid_w + c) * BODY_CHANNELS..][..BODY_CHANNELS];
            let size = |x: f32| x.clamp(-MAX_LOG_SIZE, MAX_LOG_SIZE).exp() * stride;
            let p = BoxProposal {
                cx: (c as f32 + 0.5 + v[1]) * stride,
                cy: (r as f32 + 0.5 + v[2]) * stride,
                w: size(v[3]),
                h: size(v[4]),
                score: sigmoid(l),
            };
            if p.cx.is_finite() && p.cy.is_finite() && out.len() < out.capacity() {
                out.push(p);
            }
        }
    }
    out.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    // Greedy NMS in place: keep a proposal when it overlaps no better kept one.
    let mut kept = 0;
    for i in 0..out.len() {
        let p = out[i];
        if kept < max && out[..kept].iter().all(|k| k.iou(&p) <= nms_iou) {
            out[kept] = p;
            kept += 1;
        }
    }
    out.truncate(kept);
}

/// One keypoint agent's candidate in model-input pixels: `(x, y, confidence)`.
pub fn decode_keypoint(map: &[f32], grid_w: usize, stride: f32) -> (f32, f32, f32) {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, cell) in map.chunks_exact(KEYPOINT_CHANNELS).enumerate() {
        if cell[0] > best.1 {
            best = (i, cell[0]);
        }
    }
    let (i, logit) = best;
    let cell = &map[i * KEYPOINT_CHANNELS..][..KEYPOINT_CHANNELS];
    let (r, c) = (i / grid_w.max(1), i % grid_w.max(1));
    (
        (c as f32 + 0.5 + cell[1]) * stride,
        (r as f32 + 0.5 + cell[2]) * stride,
        if logit.is_finite() {
            sigmoid(logit)
        } else {
            0.0
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_map(grid: usize, peaks: &[(usize, usize, f32)]) -> Vec<f32> {
        let mut m = vec![-10.0f32; grid * grid * BODY_CHANNELS];
        for c in m.chunks_exact_mut(BODY_CHANNELS) {
            c[1..].fill(0.0);
        }
        for &(r, c, l) in peaks {
            m[(r * grid + c) * BODY_CHANNELS] = l;
        }
        m
    }

    #[test]
    fn peaks_become_boxes_best_first() {
        let m = body_map(8, &[(2, 3, 1.0), (6, 6, 3.0), (2, 4, 0.5)]);
        let mut out = Vec::with_capacity(16);
        decode_bodies(&m, 8, 8, 16.0, 0.3, 0.5, 10, &mut out);
        assert_eq!(out.len(), 2, "(2,4) is not a peak next to (2,3)");
        assert_eq!((out[0].cx, out[0].cy), (6.5 * 16.0, 6.5 * 16.0));
        assert_eq!((out[1].cx, out[1].cy), (3.5 * 16.0, 2.5 * 16.0));
        assert_eq!(out[0].w, 16.0);
        assert!(out[0].score > out[1].score);
    }

    #[test]
    fn threshold_nms_and_max() {
        let mut m = body_map(8, &[(1, 1, 2.0), (1, 3, 1.0), (5, 5, -3.0)]);
        // Make both boxes large so they overlap heavily.
        for c in m.chunks_exact_mut(BODY_CHANNELS) {
            c[3] = 2.0;
            c[4] = 2.0;
        }
        let mut out = Vec::with_capacity(16);
        decode_bodies(&m, 8, 8, 16.0, 0.3, 0.5, 10, &mut out);
        assert_eq!(
            out.len(),
            1,
            "overlapping weaker box suppressed, low score dropped"
        );
        decode_bodies(&m, 8, 8, 16.0, 0.3, 0.95, 10, &mut out);
        assert_eq!(out.len(), 2);
        decode_bodies(&m, 8, 8, 16.0, 0.3, 0.95, 1, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn keypoint_argmax_plus_offset() {
        let mut m = vec![0.0f32; 4 * 4 * 3];
        m[(2 * 4 + 1) * 3] = 5.0;
        m[(2 * 4 + 1) * 3 + 1] = 0.25;
        m[(2 * 4 + 1) * 3 + 2] = -0.5;
        let (x, y, c) = decode_keypoint(&m, 4, 16.0);
        assert_eq!(
            (x, y),
            ((1.0 + 0.5 + 0.25) * 16.0, (2.0 + 0.5 - 0.5) * 16.0)
        );
        assert!((c - sigmoid(5.0)).abs() < 1e-6);
        let nan = vec![f32::NAN; 4 * 4 * 3];
        assert_eq!(decode_keypoint(&nan, 4, 16.0).2, 0.0);
    }

    #[test]
    fn averaging() {
        let maps = [1.0f32, 3.0, 3.0, 5.0];
        let mut mean = [0.0f32; 2];
        average_maps(&maps, 2, &mut mean);
        assert_eq!(mean, [2.0, 4.0]);
    }
}
