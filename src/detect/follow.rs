//! Person crops that follow their keypoints between body-tier passes (`body-interval`).
//!
//! The body tier costs a whole stem pass over the letterboxed frame. In video a person moves
//! little from one frame to the next, so with `body-interval` N the body agents run on one
//! frame in N, and on the frames between each person's crop is the box the body tier gave,
//! moved by the median displacement of the person's confident keypoints since that pass.
//! The box keeps the body tier's size and its place relative to the body, so the keypoint
//! agents see crops like the ones they were trained on; the median ignores a keypoint that
//! jumps. A person whose keypoints fade is dropped until the next body pass, which also finds
//! persons entering the scene.
//!
//! Sized once: nothing here allocates after [`Follower::new`].

use super::{MAX_PERSONS, NMS_IOU};
use crate::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person};

/// A keypoint counts for the displacement when its provisional score reaches this, in the
/// body-pass pose and in the current one.
pub const FOLLOW_MIN_SCORE: f32 = 0.3;
/// A person with fewer keypoints confident in both poses is lost.
pub const FOLLOW_MIN_KEYPOINTS: usize = 4;

/// One person followed since the last body pass.
#[derive(Clone, Copy, Debug)]
struct Followed {
    /// The body tier's box at the last body pass.
    anchor_box: BBox,
    /// The pose found in that box at the last body pass.
    anchor_pose: [Keypoint; NUM_KEYPOINTS],
    /// Where the crop goes on the next frame.
    bbox: BBox,
    score: f32,
}

/// The persons followed between body passes, and how many frames followed the last pass.
pub struct Follower {
    persons: Vec<Followed>,
    frames_followed: u32,
}

impl Default for Follower {
    fn default() -> Self {
        Self::new()
    }
}

impl Follower {
    pub fn new() -> Self {
        Follower {
            persons: Vec::with_capacity(MAX_PERSONS),
            frames_followed: 0,
        }
    }

    /// Forgets every person (a seek, a flush, upstream boxes): the next frame runs the body tier.
    pub fn reset(&mut self) {
        self.persons.clear();
        self.frames_followed = 0;
    }

    /// Whether the next frame may follow the persons instead of running the body tier: with
    /// `body_interval` N, up to N − 1 frames follow each body pass, while anyone is followed.
    pub fn can_follow(&self, body_interval: u32) -> bool {
        !self.persons.is_empty() && self.frames_followed + 1 < body_interval
    }

    /// Pushes the followed persons' boxes and scores, at most `max_persons`.
    pub fn boxes(&self, max_persons: usize, out: &mut Vec<(BBox, f32)>) {
        out.extend(
            self.persons
                .iter()
                .take(max_persons)
                .map(|p| (p.bbox, p.score)),
        );
    }

    /// After a body pass: follows every person whose pose has enough confident keypoints.
    pub fn anchor(&mut self, persons: &[Person]) {
        self.reset();
        for p in persons.iter().take(MAX_PERSONS) {
            let confident = p
                .keypoints
                .iter()
                .filter(|k| k.score >= FOLLOW_MIN_SCORE)
                .count();
            if confident >= FOLLOW_MIN_KEYPOINTS {
                self.persons.push(Followed {
                    anchor_box: p.bbox,
                    anchor_pose: p.keypoints,
                    bbox: p.bbox,
                    score: p.score,
                });
            }
        }
    }

    /// After a followed frame: `persons` are the poses found in the boxes [`Self::boxes`] gave,
    /// in the same order. Moves each box with its keypoints (clipped to the `width` x `height`
    /// image, as the body tier's boxes are), drops the lost persons and those moved off the
    /// image and, of boxes that slid onto one person, all but the best-scored.
    pub fn update(&mut self, persons: &[Person], width: f32, height: f32) {
        self.frames_followed += 1;
        let n = persons.len().min(self.persons.len());
        self.persons.truncate(n);
        let mut kept = 0;
        for (i, now) in persons.iter().enumerate().take(n) {
            let mut f = self.persons[i];
            let Some((dx, dy)) = median_displacement(&f.anchor_pose, &now.keypoints) else {
                continue;
            };
            let a = f.anchor_box;
            let (x0, y0) = ((a.x + dx).clamp(0.0, width), (a.y + dy).clamp(0.0, height));
            let (x1, y1) = (
                (a.x + a.w + dx).clamp(0.0, width),
                (a.y + a.h + dy).clamp(0.0, height),
            );
            if x1 - x0 < 2.0 || y1 - y0 < 2.0 {
                continue;
            }
            f.bbox = BBox::new(x0, y0, x1 - x0, y1 - y0);
            let overlaps = |o: &Followed| o.bbox.iou(&f.bbox) > NMS_IOU;
            if self.persons[..kept]
                .iter()
                .any(|o| overlaps(o) && o.score >= f.score)
            {
                continue;
            }
            // Kept persons that this better-scored one overlaps give way to it (in place: the
            // slots before `kept` never run ahead of `i`).
            let mut w = 0;
            for j in 0..kept {
                if !overlaps(&self.persons[j]) {
                    self.persons[w] = self.persons[j];
                    w += 1;
                }
            }
            self.persons[w] = f;
            kept = w + 1;
        }
        self.persons.truncate(kept);
    }
}

/// Median x and y displacement, from `anchor` to `now`, of the keypoints confident in both;
/// `None` when fewer than [`FOLLOW_MIN_KEYPOINTS`] are.
pub fn median_displacement(
    anchor: &[Keypoint; NUM_KEYPOINTS],
    now: &[Keypoint; NUM_KEYPOINTS],
) -> Option<(f32, f32)> {
    let mut dx = [0.0f32; NUM_KEYPOINTS];
    let mut dy = [0.0f32; NUM_KEYPOINTS];
    let mut n = 0;
    for (a, b) in anchor.iter().zip(now) {
        if a.score >= FOLLOW_MIN_SCORE
            && b.score >= FOLLOW_MIN_SCORE
            && (b.x - a.x).is_finite()
            && (b.y - a.y).is_finite()
        {
            dx[n] = b.x - a.x;
            dy[n] = b.y - a.y;
            n += 1;
        }
    }
    (n >= FOLLOW_MIN_KEYPOINTS).then(|| (median(&mut dx[..n]), median(&mut dy[..n])))
}

/// Median of a non-empty slice (mean of the middle two for an even length); sorts it.
fn median(v: &mut [f32]) -> f32 {
    v.sort_unstable_by(f32::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose(points: &[(f32, f32, f32)]) -> [Keypoint; NUM_KEYPOINTS] {
        std::array::from_fn(|k| {
            let (x, y, score) = points.get(k).copied().unwrap_or((0.0, 0.0, 0.0));
            Keypoint {
                x,
                y,
                score,
                ..Keypoint::default()
            }
        })
    }

    /// `pose` with every keypoint moved by (dx, dy).
    fn shifted(pose: [Keypoint; NUM_KEYPOINTS], dx: f32, dy: f32) -> [Keypoint; NUM_KEYPOINTS] {
        pose.map(|k| Keypoint {
            x: k.x + dx,
            y: k.y + dy,
            ..k
        })
    }

    fn person(bbox: BBox, score: f32, keypoints: [Keypoint; NUM_KEYPOINTS]) -> Person {
        Person {
            bbox,
            score,
            keypoints,
            ..Person::default()
        }
    }

    #[test]
    fn median_displacement_ignores_an_outlier_and_faint_keypoints() {
        let anchor = pose(&[(10.0, 10.0, 0.9); 8]);
        let mut now = shifted(anchor, 3.0, -2.0);
        now[0].x += 100.0; // one keypoint jumps
        now[1].score = 0.1; // one fades
        assert_eq!(median_displacement(&anchor, &now), Some((3.0, -2.0)));
    }

    #[test]
    fn too_few_shared_keypoints_is_lost() {
        let anchor = pose(&[(10.0, 10.0, 0.9); 5]);
        let mut now = anchor;
        now[0].score = 0.0;
        now[1].score = 0.0;
        assert_eq!(median_displacement(&anchor, &now), None);
    }

    #[test]
    fn boxes_move_with_their_keypoints_and_lost_persons_go() {
        let kp = pose(&[(50.0, 50.0, 0.8); 10]);
        let a = person(BBox::new(0.0, 0.0, 100.0, 200.0), 0.9, kp);
        let b = person(
            BBox::new(300.0, 0.0, 100.0, 200.0),
            0.7,
            pose(&[(350.0, 50.0, 0.8); 10]),
        );
        let mut f = Follower::new();
        f.anchor(&[a, b]);
        assert!(f.can_follow(3) && !f.can_follow(1));

        // Frame 1: a moved by (4, 1); b's keypoints faded.
        let moved = shifted(kp, 4.0, 1.0);
        let faded = pose(&[]);
        f.update(
            &[person(a.bbox, 0.9, moved), person(b.bbox, 0.7, faded)],
            640.0,
            480.0,
        );
        let mut boxes = Vec::new();
        f.boxes(10, &mut boxes);
        assert_eq!(boxes, vec![(BBox::new(4.0, 1.0, 100.0, 200.0), 0.9)]);
        // interval 3: two frames follow a body pass, the third runs the body tier.
        assert!(f.can_follow(3));
        f.update(&[person(boxes[0].0, 0.9, moved)], 640.0, 480.0);
        assert!(!f.can_follow(3));
    }

    #[test]
    fn two_boxes_sliding_onto_one_person_keep_the_better() {
        let kp = pose(&[(50.0, 50.0, 0.8); 10]);
        let low = person(BBox::new(0.0, 0.0, 100.0, 200.0), 0.5, kp);
        let high = person(BBox::new(20.0, 0.0, 100.0, 200.0), 0.9, kp);
        let mut f = Follower::new();
        f.anchor(&[low, high]);
        // Both persons' keypoints land on the same spot: low's box moves onto high's.
        let moved = shifted(kp, 20.0, 0.0);
        f.update(
            &[person(low.bbox, 0.5, moved), person(high.bbox, 0.9, kp)],
            640.0,
            480.0,
        );
        let mut boxes = Vec::new();
        f.boxes(10, &mut boxes);
        assert_eq!(boxes, vec![(high.bbox, 0.9)]);
    }

    #[test]
    fn boxes_are_clipped_to_the_image_and_dropped_when_off_it() {
        let kp = pose(&[(50.0, 50.0, 0.8); 10]);
        let mut f = Follower::new();
        f.anchor(&[person(BBox::new(0.0, 0.0, 100.0, 200.0), 0.9, kp)]);
        f.update(
            &[person(BBox::default(), 0.9, shifted(kp, -30.0, 0.0))],
            640.0,
            480.0,
        );
        let mut boxes = Vec::new();
        f.boxes(10, &mut boxes);
        assert_eq!(boxes, vec![(BBox::new(0.0, 0.0, 70.0, 200.0), 0.9)]);
        f.update(
            &[person(BBox::default(), 0.9, shifted(kp, -200.0, 0.0))],
            640.0,
            480.0,
        );
        boxes.clear();
        f.boxes(10, &mut boxes);
        assert!(boxes.is_empty() && !f.can_follow(10));
    }

    #[test]
    fn a_better_box_displaces_every_worse_one_it_overlaps() {
        let kp = pose(&[(50.0, 50.0, 0.8); 10]);
        let at = |x: f32, score: f32| person(BBox::new(x, 0.0, 100.0, 200.0), score, kp);
        let mut f = Follower::new();
        // The first two do not overlap each other (IoU 0.25); the third overlaps both (0.54).
        let persons = [at(0.0, 0.5), at(60.0, 0.6), at(30.0, 0.9)];
        f.anchor(&persons);
        f.update(&persons, 640.0, 480.0);
        let mut boxes = Vec::new();
        f.boxes(10, &mut boxes);
        assert_eq!(boxes, vec![(BBox::new(30.0, 0.0, 100.0, 200.0), 0.9)]);
    }
}
