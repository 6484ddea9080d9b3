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
    /// in the same order. Moves each box with its keypoints, drops the lost persons and, of two
    /// boxes that slid onto one person, the lower-scored.
    pub fn update(&mut self, persons: &[Person]) {
        self.frames_followed += 1;
        let n = persons.len().min(self.persons.len());
        self.persons.truncate(n);
        let mut kept = 0;
        for i in 0..n {
            let mut f = self.persons[i];
            let Some((dx, dy)) = median_displacement(&f.anchor_pose, &persons[i].keypoints) else {
                continue;
            };
            f.bbox = BBox::new(
                f.anchor_box.x + dx,
                f.anchor_box.y + dy,
                f.anchor_box.w,
                f.anchor_box.h,
            );
            let duplicate = self.persons[..kept]
                .iter()
                .any(|o| o.score >= f.score && o.bbox.iou(&f.bbox) > NMS_IOU);
            if !duplicate {
                // A kept person that the newcomer outscores and overlaps gives way to it.
                if let Some(j) = self.persons[..kept]
                    .iter()
                    .position(|o| o.bbox.iou(&f.bbox) > NMS_IOU)
                {
                    self.persons[j] = f;
                } else {
                    self.persons[kept] = f;
                    kept += 1;
                }
            }
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
        let mut now = anchor;
        for k in now.iter_mut() {
            k.x += 3.0;
            k.y -= 2.0;
        }
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
        let mut moved = kp;
        moved.iter_mut().for_each(|k| {
            k.x += 4.0;
            k.y += 1.0
        });
        let faded = pose(&[]);
        f.update(&[person(a.bbox, 0.9, moved), person(b.bbox, 0.7, faded)]);
        let mut boxes = Vec::new();
        f.boxes(10, &mut boxes);
        assert_eq!(boxes, vec![(BBox::new(4.0, 1.0, 100.0, 200.0), 0.9)]);
        // interval 3: two frames follow a body pass, the third runs the body tier.
        assert!(f.can_follow(3));
        f.update(&[person(boxes[0].0, 0.9, moved)]);
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
        let mut moved = kp;
        moved.iter_mut().for_each(|k| k.x += 20.0);
        f.update(&[person(low.bbox, 0.5, moved), person(high.bbox, 0.9, kp)]);
        let mut boxes = Vec::new();
        f.boxes(10, &mut boxes);
        assert_eq!(boxes, vec![(high.bbox, 0.9)]);
    }
}
