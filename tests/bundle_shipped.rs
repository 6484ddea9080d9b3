//! The shipped bundle (`models/swarmpose.bundle`, written by `training/export.py`) loads, fits the
//! budgets, and the engine reproduces the Python integer simulation bit for bit
//! (`tests/data/bundle_golden.json`: one RGB frame of the stem's input size, the stem's int8 output, the outputs of
//! `body_0` and `left_wrist_0`).

use gstswarmpose::engine::MapShape;
use gstswarmpose::engine::bundle::{Bundle, FORMAT_VERSION, MAX_AGENT_PARAMS, MAX_STEM_PARAMS};
use gstswarmpose::engine::swarm::{Backend, Swarm, SwarmRunner};
use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> (Bundle, Value) {
    let bundle =
        Bundle::load(root().join("models/swarmpose.bundle")).expect("shipped bundle loads");
    let golden: Value = serde_json::from_slice(
        &std::fs::read(root().join("tests/data/bundle_golden.json")).expect("golden file"),
    )
    .expect("golden JSON");
    (bundle, golden)
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn shipped_bundle_tiers_counts_and_budgets() {
    let (b, g) = load();
    assert_eq!(FORMAT_VERSION, 2);
    let m = &b.manifest;
    let tiers: Vec<&str> = m.tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tiers, ["body", "keypoint"]);
    // Both tiers read the stem's output channels, as the training export recorded them.
    let channels = ints(&g["stem_out_shape_hwc"])[2] as usize;
    assert!(m.tiers.iter().all(|t| t.channels == channels), "{channels}");
    assert_eq!(m.tiers[0].input_quant, m.tiers[1].input_quant);
    let stem = m.stem.as_ref().expect("stem");
    assert_eq!(stem.name, "retina");
    assert_eq!(stem.input.h, stem.input.w, "a square stem input");
    assert_eq!(stem.input.c, 3);
    assert!(stem.param_count <= MAX_STEM_PARAMS);
    assert_eq!(
        b.stem.as_ref().unwrap().output_q(),
        m.tiers[0].input_quant,
        "tiers read the stem's output"
    );
    let body = m.agents.iter().filter(|a| a.tier == "body").count();
    let kp = m.agents.iter().filter(|a| a.tier == "keypoint").count();
    assert!((4..=8).contains(&body), "{body} body agents");
    assert_eq!(kp, 17 * 6, "6 keypoint agents per COCO keypoint");
    assert!(
        m.agents[..body]
            .iter()
            .all(|a| a.tier == "body" && a.keypoint == "person")
    );
    assert_eq!(m.agents[body + 9 * 6].name, "left_wrist_0");
    assert!(m.agents.iter().all(|a| a.param_count <= MAX_AGENT_PARAMS));
    assert!(m.total_agent_params <= 100_000);
    assert_eq!(m.detector.as_ref().map(|d| d.crop_margin), Some(0.25));
    assert!(!m.provenance.command.is_empty());
}

#[test]
fn shipped_bundle_matches_python_integer_simulation() {
    let (b, g) = load();
    // stem on the golden frame: q = p - 128
    let input: Vec<i8> = hex_bytes(g["input_hex"].as_str().unwrap())
        .iter()
        .map(|&p| (i32::from(p) - 128) as i8)
        .collect();
    let shape = |key: &str| -> MapShape {
        let v = ints(&g[key]);
        MapShape::new(v[0] as usize, v[1] as usize, v[2] as usize)
    };
    let ishape = shape("input_shape_hwc");
    let stem_in = b.manifest.stem.as_ref().unwrap().input;
    assert_eq!(
        (ishape.h, ishape.w, ishape.c),
        (stem_in.h, stem_in.w, stem_in.c)
    );
    assert_eq!(input.len(), ishape.h * ishape.w * ishape.c);
    let stem = b.stem.clone().unwrap();
    let sq = stem.output_q();
    let mut runner =
        SwarmRunner::new(&Swarm::new(vec![stem]).unwrap(), ishape, Backend::Cpu).unwrap();
    let mut out = vec![0.0f32; runner.output_len()];
    runner.run(&input, &mut out).unwrap();
    let feat: Vec<i8> = out
        .iter()
        .map(|&v| ((v / sq.scale).round() as i32 + sq.zero_point) as i8)
        .collect();
    let expect = ints(&g["stem_q_hwc"]);
    assert_eq!(feat.len(), expect.len());
    let got: Vec<i64> = feat.iter().map(|&q| i64::from(q)).collect();
    assert_eq!(&got[..64], &ints(&g["stem_q_first64"])[..]);
    assert_eq!(got.iter().sum::<i64>(), g["stem_q_sum"].as_i64().unwrap());
    assert_eq!(
        got, expect,
        "stem int8 output differs from the Python simulation"
    );
    // agents on the stem's int8 output
    let fshape = shape("stem_out_shape_hwc");
    assert_eq!(fshape.c, b.manifest.tiers[0].channels);
    for (tier, name) in [("body", "body_0"), ("keypoint", "left_wrist_0")] {
        let mut r = SwarmRunner::new(&b.swarm(tier).unwrap(), fshape, Backend::Cpu).unwrap();
        let mut y = vec![0.0f32; r.output_len()];
        r.run(&feat, &mut y).unwrap();
        let idx = g[name]["index_in_tier"].as_u64().unwrap() as usize;
        let o = r.offsets();
        let got = &y[o[idx]..o[idx + 1]];
        let expect: Vec<f32> = g[name]["f32_hwc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(
            got,
            &expect[..],
            "{name} output differs from the Python simulation"
        );
    }
}
