//! Optimal gated assignment of rows (tracks) to columns (detections) by similarity.
//!
//! The matching maximises the total similarity over pairs whose similarity reaches the
//! gate, with `pathfinding`'s Kuhn-Munkres (Hungarian) solver on integer weights. Gated-out
//! pairs weigh 0, so a maximum-weight complete matching restricted to its positive pairs
//! is a maximum-weight matching of the gated graph.
//!
//! The solver is O(n³), too slow for a 100-person crowd as one matrix, but gating makes
//! the graph sparse: each track competes only with the few detections near it. The pairs
//! are split into connected components, which are independent sub-problems, so solving
//! each one on its own gives the same optimum; most components are a single pair.

use pathfinding::kuhn_munkres::{Weights, kuhn_munkres};

/// Similarities are turned into integer weights with this resolution.
const WEIGHT_SCALE: f32 = 1_000_000.0;

/// Reusable buffers for [`Assignment::solve`]; keeps no state between calls.
#[derive(Debug, Default)]
pub struct Assignment {
    /// Gated similarity of every pair, row-major; 0 for gated-out pairs.
    sims: Vec<f32>,
    /// Union-find parents over rows (0..rows) then columns (rows..rows + cols).
    parent: Vec<u32>,
    /// Nodes sorted by component.
    order: Vec<u32>,
    comp_rows: Vec<usize>,
    comp_cols: Vec<usize>,
    weights: Vec<i64>,
    matches: Vec<(usize, usize)>,
}

impl Assignment {
    pub fn new() -> Self {
        Self::default()
    }

    /// Matches `rows` x `cols` items, maximising the summed `similarity(row, col)` over
    /// matched pairs; pairs below `threshold` (or not finite) are never matched. Returns the
    /// (row, col) pairs sorted by row.
    pub fn solve(
        &mut self,
        rows: usize,
        cols: usize,
        threshold: f32,
        mut similarity: impl FnMut(usize, usize) -> f32,
    ) -> &[(usize, usize)] {
        self.matches.clear();
        if rows == 0 || cols == 0 {
            return &self.matches;
        }
        // A zero threshold would let 0-weight pairs through as "matches".
        let threshold = threshold.max(1.0 / WEIGHT_SCALE);
        let nodes = rows + cols;
        self.sims.clear();
        self.parent.clear();
        self.parent.extend(0..nodes as u32);
        for r in 0..rows {
            for c in 0..cols {
                let s = similarity(r, c);
                let s = if s >= threshold { s.min(1.0) } else { 0.0 };
                self.sims.push(s);
                if s > 0.0 {
                    union(&mut self.parent, r, rows + c);
                }
            }
        }
        for n in 0..nodes {
            let root = find(&mut self.parent, n);
            self.parent[n] = root;
        }
        self.order.clear();
        self.order.extend(0..nodes as u32);
        let parent = &self.parent;
        self.order
            .sort_unstable_by_key(|&n| (parent[n as usize], n));

        let mut start = 0;
        while start < nodes {
            let root = self.parent[self.order[start] as usize];
            let mut end = start;
            self.comp_rows.clear();
            self.comp_cols.clear();
            while end < nodes && self.parent[self.order[end] as usize] == root {
                let n = self.order[end] as usize;
                if n < rows {
                    self.comp_rows.push(n);
                } else {
                    self.comp_cols.push(n - rows);
                }
                end += 1;
            }
            start = end;
            self.solve_component(cols);
        }
        self.matches.sort_unstable();
        &self.matches
    }

    /// Solves the component in `comp_rows` x `comp_cols`, appending its matches.
    fn solve_component(&mut self, cols: usize) {
        let (cr, cc) = (&self.comp_rows, &self.comp_cols);
        match (cr.len(), cc.len()) {
            (0, _) | (_, 0) => {}
            // Connected, so the single pair passed the gate.
            (1, 1) => self.matches.push((cr[0], cc[0])),
            (nr, nc) => {
                // The solver needs rows <= columns: transpose tall components.
                let transposed = nr > nc;
                let (vr, vc) = if transposed { (nc, nr) } else { (nr, nc) };
                self.weights.clear();
                for i in 0..vr {
                    for j in 0..vc {
                        let (r, c) = if transposed {
                            (cr[j], cc[i])
                        } else {
                            (cr[i], cc[j])
                        };
                        let w = (self.sims[r * cols + c] * WEIGHT_SCALE).round() as i64;
                        self.weights.push(w);
                    }
                }
                let view = View {
                    w: &self.weights,
                    rows: vr,
                    cols: vc,
                    negated: false,
                };
                let (_, assigned) = kuhn_munkres(&view);
                for (i, &j) in assigned.iter().enumerate() {
                    if self.weights[i * vc + j] <= 0 {
                        continue;
                    }
                    let pair = if transposed {
                        (cr[j], cc[i])
                    } else {
                        (cr[i], cc[j])
                    };
                    self.matches.push(pair);
                }
            }
        }
    }
}

fn find(parent: &mut [u32], mut n: usize) -> u32 {
    while parent[n] as usize != n {
        // Path halving keeps the trees flat.
        parent[n] = parent[parent[n] as usize];
        n = parent[n] as usize;
    }
    n as u32
}

fn union(parent: &mut [u32], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}

/// A borrowed row-major weight matrix for the solver, so no `Matrix` is built per call.
#[derive(Clone, Copy)]
struct View<'a> {
    w: &'a [i64],
    rows: usize,
    cols: usize,
    negated: bool,
}

impl Weights<i64> for View<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn columns(&self) -> usize {
        self.cols
    }

    fn at(&self, row: usize, col: usize) -> i64 {
        let w = self.w[row * self.cols + col];
        if self.negated { -w } else { w }
    }

    fn neg(&self) -> Self {
        View {
            negated: !self.negated,
            ..*self
        }
    }
}
