//! The shipped bundle (`models/swarmpose.bundle`, written by `training/export.py`) loads, fits the
//! budgets, and the engine reproduces the Python integer simulation bit for bit
//! (`tests/data/bundle_golden.json`: one RGB frame of the stem's input size, the stem's int8 output, the body
//! tier's int8 features (stem backbone + body neck), the outputs of `body_0` and `left_wrist_0`).

use gstswarmpose::engine::bundle::{
    Bundle, BundleError, FORMAT_VERSION, MAX_AGENT_PARAMS, MAX_STEM_PARAMS, encode_blob,
    encode_container,
};
use gstswarmpose::engine::swarm::{Backend, Swarm, SwarmRunner};
use gstswarmpose::engine::{MapShape, QuantNet};
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
    // The keypoint tier reads the stem's output; the body tier its body neck's, as the training
    // export recorded them.
    assert_eq!(
        m.tiers[1].channels,
        ints(&g["stem_out_shape_hwc"])[2] as usize
    );
    assert_eq!(
        m.tiers[0].channels,
        ints(&g["body_stem_out_shape_hwc"])[2] as usize
    );
    let stem = m.stem.as_ref().expect("stem");
    assert_eq!(stem.name, "retina");
    assert_eq!(stem.input.h, stem.input.w, "a square stem input");
    assert_eq!(stem.input.c, 3);
    let neck = m.body_neck.as_ref().expect("body neck");
    assert!(
        neck.from_layer < stem.layers.len() - 1,
        "the neck branches off inside the stem"
    );
    assert!(stem.param_count + neck.param_count <= MAX_STEM_PARAMS);
    assert_eq!(b.stem.as_ref().unwrap().output_q(), m.tiers[1].input_quant);
    assert_eq!(
        b.body_neck.as_ref().unwrap().output_q(),
        m.tiers[0].input_quant
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

/// Runs one net on the CPU and requantises its output to the int8 levels it dequantised.
fn run_int8(net: QuantNet, input_shape: MapShape, input: &[i8]) -> Vec<i8> {
    let q = net.output_q();
    let mut runner =
        SwarmRunner::new(&Swarm::new(vec![net]).unwrap(), input_shape, Backend::Cpu).unwrap();
    let mut out = vec![0.0f32; runner.output_len()];
    runner.run(input, &mut out).unwrap();
    out.iter()
        .map(|&v| ((v / q.scale).round() as i32 + q.zero_point) as i8)
        .collect()
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
    let feat = run_int8(b.stem.clone().unwrap(), ishape, &input);
    let expect = ints(&g["stem_q_hwc"]);
    assert_eq!(feat.len(), expect.len());
    let got: Vec<i64> = feat.iter().map(|&q| i64::from(q)).collect();
    assert_eq!(&got[..64], &ints(&g["stem_q_first64"])[..]);
    assert_eq!(got.iter().sum::<i64>(), g["stem_q_sum"].as_i64().unwrap());
    assert_eq!(
        got, expect,
        "stem int8 output differs from the Python simulation"
    );
    // the body tier's features: stem backbone + body neck
    let body_feat = run_int8(b.body_stem().expect("body stem"), ishape, &input);
    let got: Vec<i64> = body_feat.iter().map(|&q| i64::from(q)).collect();
    assert_eq!(
        got.iter().sum::<i64>(),
        g["body_stem_q_sum"].as_i64().unwrap()
    );
    assert_eq!(
        got,
        ints(&g["body_stem_q_hwc"]),
        "body stem int8 output differs from the Python simulation"
    );
    // agents on their tier's int8 features
    for (tier, name, key, feat) in [
        ("body", "body_0", "body_stem_out_shape_hwc", &body_feat),
        ("keypoint", "left_wrist_0", "stem_out_shape_hwc", &feat),
    ] {
        let fshape = shape(key);
        let mut r = SwarmRunner::new(&b.swarm(tier).unwrap(), fshape, Backend::Cpu).unwrap();
        let mut y = vec![0.0f32; r.output_len()];
        r.run(feat, &mut y).unwrap();
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

/// A body neck that reads past the stem, miscounts its MACs, does not feed the body tier or has no stem is
/// refused when the bundle is read.
#[test]
fn broken_body_neck_manifests_are_refused() {
    let (b, _) = load();
    let blob = encode_blob(b.stem.iter().chain(&b.body_neck).chain(&b.agents));
    let read = |edit: &dyn Fn(&mut gstswarmpose::engine::bundle::Manifest)| {
        let mut m = b.manifest.clone();
        edit(&mut m);
        Bundle::from_bytes(&encode_container(&serde_json::to_vec(&m).unwrap(), &blob))
    };
    assert!(read(&|_| {}).is_ok(), "the unedited manifest loads");
    let layers = b.manifest.stem.as_ref().unwrap().layers.len();
    assert!(matches!(
        read(&|m| m.body_neck.as_mut().unwrap().from_layer = layers),
        Err(BundleError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        read(&|m| m.body_neck.as_mut().unwrap().macs_per_frame += 1),
        Err(BundleError::CountMismatch { .. })
    ));
    assert!(matches!(
        read(&|m| m.tiers[0].input_quant.zero_point += 1),
        Err(BundleError::InvalidManifest(_))
    ));
    assert!(matches!(
        read(&|m| m.tiers[0].channels -= 1),
        Err(BundleError::InvalidManifest(_))
    ));
    assert!(matches!(
        read(&|m| m.stem = None),
        Err(BundleError::InvalidManifest(_))
    ));
}

/// The bundle's own `detector.body_side` is used when it suits the body stem's stride, and is a
/// bundle error (not a bad setting) when it does not; the caller's side overrides it.
#[test]
fn body_side_from_the_bundle_is_checked_against_the_body_stride() {
    use gstswarmpose::detect::{DetectError, Detector};
    let (b, _) = load();
    let blob = encode_blob(b.stem.iter().chain(&b.body_neck).chain(&b.agents));
    let with_side = |side: usize| {
        let mut m = b.manifest.clone();
        m.detector.as_mut().unwrap().body_side = Some(side);
        Bundle::from_bytes(&encode_container(&serde_json::to_vec(&m).unwrap(), &blob)).unwrap()
    };
    assert!(Detector::new(&with_side(256), Backend::Cpu).is_ok());
    match Detector::new(&with_side(200), Backend::Cpu) {
        Err(DetectError::Bundle(why)) => assert!(why.contains("body side 200"), "{why}"),
        other => panic!("expected a bundle error, got {:?}", other.err()),
    }
    match Detector::with_body_side(&with_side(256), Backend::Cpu, Some(100)) {
        Err(DetectError::Config(why)) => assert!(why.contains("body side 100"), "{why}"),
        other => panic!("expected a setting error, got {:?}", other.err()),
    }
    assert!(Detector::with_body_side(&with_side(200), Backend::Cpu, Some(160)).is_ok());
}
