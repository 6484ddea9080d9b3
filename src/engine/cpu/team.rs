//! One agent's pass (the stem) split over the rayon pool with a single `join` per pass.
//!
//! Splitting every layer with its own `rayon::join` made one fork/join per layer, and the
//! helper thread fell asleep between them: on a 2-core KVM guest a one-person frame spent
//! ~10 % of its CPU time in futex sleeps and wake-ups, and two threads ran the frame only
//! 1.22x faster than one. Here the pass is cut into *tickets* once, at start-up: each layer is
//! a *step* of one or more parts, disjoint ranges of its output planes. Every thread of the
//! team takes the next ticket from one atomic counter and, before running it, spins until the
//! step before is complete. Where the next layer reads quad planes, a part also repacks the
//! pairs it has just written (still in its core's cache), so that needs no step of its own.
//!
//! Why this cannot deadlock: tickets are taken in order, so when a thread waits for step
//! `s - 1`, every ticket of it is already held by a running thread, and the lowest unfinished
//! step never waits. A thread that never arrives (the pool is busy elsewhere) leaves its
//! tickets to the others, so one thread alone still completes the pass.
//!
//! Why the buffers need no lock: a step writes other planes than it reads (layer `l` reads
//! one ping-pong buffer, or the quad planes, and writes the other buffer and maybe the quad
//! planes of layer `l + 1`), its parts write disjoint plane ranges (a part's repacking reads
//! only the pairs the part wrote), and a step starts only after the one before
//! it, hence (by induction) every earlier one, has finished: whatever it overwrites has been
//! read. The slices of a ticket live only while it runs.

use super::{AgentPlan, Isa, LayerInput, Worker, conv_layer, fill_quads};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Below this many multiply-adds (or lanes repacked) a step stays one part: the other thread
/// would wait for it longer than it takes.
const MIN_PART_WORK: usize = 1 << 16;

/// Parts are whole multiples of this many pairs: even, so that each part repacks whole quads.
const PART_ALIGN: usize = 2;

/// Parts per thread for large steps: a thread that starts late (waking up) still finds work.
const PARTS_PER_THREAD: usize = 2;

/// Spins before each `yield_now` while waiting for a step (a busy machine may have descheduled
/// the thread that holds its last part).
const SPINS_BEFORE_YIELD: u32 = 1 << 12;

#[derive(Clone, Debug)]
struct Ticket {
    step: usize,
    layer: usize,
    /// A repacking into quad planes of layer 0's input (else the layer's convolution).
    fill: bool,
    /// After the convolution, repack its output pairs into the quad planes of the next layer.
    pack: bool,
    /// Quad planes (repacking) or output pairs (convolution).
    range: Range<usize>,
}

/// The tickets of one agent's pass and the counters of its current run.
#[derive(Debug)]
pub(super) struct Team {
    threads: usize,
    tickets: Vec<Ticket>,
    /// Tickets per step.
    parts: Vec<usize>,
    done: Vec<AtomicUsize>,
    next: AtomicUsize,
    /// Set by a thread that panicked in a ticket, so that the others stop waiting.
    abort: AtomicBool,
}

impl Team {
    /// Cuts `plan` into tickets for `threads` threads.
    pub(super) fn new(plan: &AgentPlan, isa: Isa, threads: usize) -> Self {
        let mut tickets = Vec::new();
        let mut parts = Vec::new();
        let mut push = |layer: usize, fill: bool, pack: bool, n: usize, work: usize| {
            let step = parts.len();
            let count = split_count(n, work, threads);
            let per = n.div_ceil(count).next_multiple_of(PART_ALIGN).min(n);
            let mut start = 0;
            while start < n {
                let end = (start + per).min(n);
                tickets.push(Ticket {
                    step,
                    layer,
                    fill,
                    pack,
                    range: start..end,
                });
                start = end;
            }
            parts.push(n.div_ceil(per));
        };
        for (l, layer) in plan.simd.iter().enumerate() {
            if let Some(q) = layer
                .quads
                .as_ref()
                .filter(|_| l == 0 && plan.reads_quads(0, isa))
            {
                push(l, true, false, q.count, q.count * layer.src.plane_len);
            }
            let d = &layer.dst;
            let macs = d.pairs * 2 * d.shape.h * d.shape.w * layer.fan_in;
            push(l, false, plan.reads_quads(l + 1, isa), d.pairs, macs);
        }
        let done = parts.iter().map(|_| AtomicUsize::new(0)).collect();
        Self {
            threads,
            tickets,
            parts,
            done,
            next: AtomicUsize::new(0),
            abort: AtomicBool::new(false),
        }
    }

    /// Runs `plan` on `input_planes` with the team (the calling thread is one of it; call it
    /// on a pool thread, where `join` is a deque push), then unpacks the result into `out`.
    pub(super) fn forward(
        &mut self,
        plan: &AgentPlan,
        input_planes: &[i32],
        worker: &mut Worker,
        out: &mut [i8],
        isa: Isa,
    ) {
        self.next.store(0, Ordering::Relaxed);
        self.abort.store(false, Ordering::Relaxed);
        self.done.iter().for_each(|d| d.store(0, Ordering::Relaxed));
        let bufs = Buffers::new(worker);
        let run = Run {
            team: self,
            plan,
            input_planes,
            bufs,
            isa,
        };
        run.spawn(self.threads);
        plan.unpack(worker, out);
    }
}

/// How many parts a step of `n` planes and `work` operations gets.
fn split_count(n: usize, work: usize, threads: usize) -> usize {
    if work < 2 * MIN_PART_WORK || n < 2 * PART_ALIGN {
        return 1;
    }
    (threads * PARTS_PER_THREAD)
        .min(work / MIN_PART_WORK)
        .min(n / PART_ALIGN)
        .max(1)
}

/// Raw views of a worker's scratch, shared by the team for one pass: the ping-pong pair
/// planes, and the quad planes, layer `l` reading `quads[l % 2]`.
#[derive(Clone, Copy)]
struct Buffers {
    planes: [(*mut i32, usize); 2],
    quads: [(*mut i32, usize); 2],
}

// SAFETY: the pointers are only dereferenced through the step discipline of the module docs
// (no two threads write the same lanes, nobody reads lanes another thread writes).
unsafe impl Send for Buffers {}
unsafe impl Sync for Buffers {}

impl Buffers {
    fn new(worker: &mut Worker) -> Self {
        let raw = |v: &mut Vec<i32>| (v.as_mut_ptr(), v.len());
        let ([a, b], [qa, qb]) = (&mut worker.planes, &mut worker.quads);
        Self {
            planes: [raw(a), raw(b)],
            quads: [raw(qa), raw(qb)],
        }
    }
}

struct Run<'a> {
    team: &'a Team,
    plan: &'a AgentPlan,
    input_planes: &'a [i32],
    bufs: Buffers,
    isa: Isa,
}

impl Run<'_> {
    /// `n` threads of [`Self::work`] by nested `rayon::join`.
    fn spawn(&self, n: usize) {
        if n <= 1 {
            self.work();
        } else {
            rayon::join(|| self.spawn(n / 2), || self.spawn(n - n / 2));
        }
    }

    /// Takes and runs tickets until none is left (or another thread panicked).
    fn work(&self) {
        let team = self.team;
        let guard = AbortOnPanic(&team.abort);
        loop {
            let t = team.next.fetch_add(1, Ordering::Relaxed);
            let Some(ticket) = team.tickets.get(t) else {
                break;
            };
            if ticket.step > 0 && !self.wait(ticket.step - 1) {
                break;
            }
            self.run(ticket);
            team.done[ticket.step].fetch_add(1, Ordering::Release);
        }
        std::mem::forget(guard);
    }

    /// Spins until step `s` is complete; false if another thread panicked.
    fn wait(&self, s: usize) -> bool {
        let (done, parts) = (&self.team.done[s], self.team.parts[s]);
        let mut spins = 0u32;
        while done.load(Ordering::Acquire) < parts {
            if self.team.abort.load(Ordering::Relaxed) {
                return false;
            }
            spins += 1;
            if spins.is_multiple_of(SPINS_BEFORE_YIELD) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        true
    }

    fn run(&self, ticket: &Ticket) {
        let plan = self.plan;
        let l = ticket.layer;
        let layer = &plan.simd[l];
        let isa = self.isa;
        // Ping-pong as in `forward_simd`: layer 0 reads the input planes and writes buffer 0;
        // an odd layer reads 0 and writes 1, an even one reads 1 and writes 0.
        let (src_i, dst_i) = if l % 2 == 1 { (0, 1) } else { (1, 0) };
        // SAFETY (both slices below): see the module docs; the step reading buffer `src_i`
        // writes none of it, and every step writing it has finished.
        let src: &[i32] = if l == 0 {
            self.input_planes
        } else {
            let (p, len) = self.bufs.planes[src_i];
            unsafe { std::slice::from_raw_parts(p, len) }
        };
        let r = ticket.range.clone();
        // SAFETY: the quad planes `quads` of layer `l`'s input that a ticket writes, written by
        // no other ticket of its step, read by none (layer `l - 1` reads the other buffer).
        let quad_planes = |l: usize, quads: Range<usize>, plane: usize| {
            let (qp, qlen) = self.bufs.quads[l % 2];
            assert!(quads.end * plane <= qlen);
            unsafe {
                std::slice::from_raw_parts_mut(qp.add(quads.start * plane), quads.len() * plane)
            }
        };
        if ticket.fill {
            let q = layer
                .quads
                .as_ref()
                .expect("a repacking ticket has quad weights");
            let quads = quad_planes(l, r.clone(), layer.src.plane_len);
            fill_quads(layer, q, (src, 0), quads, r.start, isa);
            return;
        }
        let input = match &layer.quads {
            Some(q) if plan.reads_quads(l, isa) => {
                let (qp, qlen) = self.bufs.quads[l % 2];
                let len = q.count * layer.src.plane_len;
                assert!(len <= qlen);
                // SAFETY: written by the finished step before this one.
                LayerInput::Quads(unsafe { std::slice::from_raw_parts(qp, len) })
            }
            _ => LayerInput::Pairs(src),
        };
        let plane = layer.dst.plane_len;
        let (dp, dlen) = self.bufs.planes[dst_i];
        assert!(r.end * plane <= dlen);
        // SAFETY: this ticket's output planes, written by no other ticket of its step and
        // read by no step before the next.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(dp.add(r.start * plane), r.len() * plane) };
        conv_layer(
            layer,
            input,
            dst,
            r.clone(),
            isa,
            plan.restores_borders(l, isa),
        );
        if ticket.pack {
            let next = &plan.simd[l + 1];
            let q = next
                .quads
                .as_ref()
                .expect("a packing ticket's next layer has quad weights");
            let quads = quad_planes(l + 1, r.start / 2..r.end.div_ceil(2), next.src.plane_len);
            fill_quads(next, q, (dst, r.start), quads, r.start / 2, isa);
        }
    }
}

/// Tells the other threads to stop waiting when a ticket panics (dropped only on unwind).
struct AbortOnPanic<'a>(&'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
