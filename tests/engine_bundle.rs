//! Bundle round trip, each corruption's distinct error, and never-panic property tests.

use gstswarmpose::engine::bundle::{
    AgentInfo, Bundle, BundleError, FORMAT_VERSION, Provenance, TierManifest, encode_container,
};
use gstswarmpose::engine::synth::{self, Rng};
use gstswarmpose::engine::{
    Activation, ConvSpec, FloatLayer, FloatNet, MapShape, QuantParams, quantize_net,
};
use proptest::prelude::*;
use serde_json::Value;

const TIER_C: usize = 16;

/// A valid bundle: a small stem (3 -> 16 channels) and `n` random agents.
fn sample_bundle(seed: u64, n: usize) -> Bundle {
    let mut rng = Rng::new(seed);
    let stem_shape = MapShape::new(32, 32, 3);
    let stem_specs = [
        ConvSpec {
            in_c: 3,
            out_c: 8,
            kernel: 3,
            stride: 2,
            groups: 1,
            activation: Activation::Relu6,
        },
        ConvSpec {
            in_c: 8,
            out_c: TIER_C,
            kernel: 1,
            stride: 1,
            groups: 1,
            activation: Activation::Relu,
        },
    ];
    let image = synth::random_map(&mut rng, stem_shape, 0.0, 1.0);
    let stem_float = synth::random_float_net(&mut rng, &stem_specs);
    let stem = quantize_net(
        &stem_float,
        QuantParams::calibrate(&image),
        &[(&image, stem_shape)],
    )
    .unwrap();
    let (features, fshape) = stem_float.forward(&image, stem_shape).unwrap();
    let tier_q = stem.output_q();
    let agents = (0..n)
        .map(|i| {
            let specs = synth::random_specs(&mut rng, TIER_C, 500);
            let net = synth::random_quant_net(&mut rng, &specs, tier_q, &features, fshape).unwrap();
            let info = AgentInfo {
                name: format!("agent{i}"),
                tier: "body".into(),
                keypoint: ["nose", "left_wrist", "right_ankle"][i % 3].into(),
                specialisation: format!("random #{i}"),
            };
            (info, net)
        })
        .collect();
    Bundle::new(
        vec![TierManifest {
            name: "body".into(),
            channels: TIER_C,
            input_quant: tier_q,
        }],
        Some(("stem".into(), stem_shape, stem)),
        agents,
        Provenance {
            command: "cargo test --test engine_bundle".into(),
            data: "synthetic".into(),
            seed,
            notes: "random weights".into(),
        },
    )
    .expect("valid bundle")
}

/// Splits a container into (manifest JSON value, blob).
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let json = serde_json::from_slice(&bytes[16..16 + m]).unwrap();
    let blob = bytes[16 + m + 8..bytes.len() - 4].to_vec();
    (json, blob)
}

fn rebuild(json: &Value, blob: &[u8]) -> Vec<u8> {
    encode_container(&serde_json::to_vec(json).unwrap(), blob)
}

#[test]
fn round_trip_through_bytes_and_file() {
    let bundle = sample_bundle(1, 12);
    let bytes = bundle.to_bytes();
    assert_eq!(&bytes[..8], b"SWPOSE\0\0");
    let back = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(back, bundle);
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.agents.len(), 12);
    assert_eq!(back.swarm("body").unwrap().len(), 12);
    assert!(back.swarm("face").is_err());
    let stem = back.manifest.stem.as_ref().unwrap();
    assert_eq!(stem.param_count, 3 * 8 * 9 + 8 + 8 * 16 + 16);
    assert_eq!(stem.macs_per_frame, 16 * 16 * (8 * 27 + 16 * 8));
    let total: usize = back.agents.iter().map(|a| a.param_count()).sum();
    assert_eq!(back.manifest.total_agent_params, total);

    let path = std::env::temp_dir().join(format!("swarmpose-bundle-{}.swp", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let loaded = Bundle::load(&path);
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.unwrap(), bundle);
    assert!(matches!(
        Bundle::load("/nonexistent/swarmpose.swp"),
        Err(BundleError::Io(_))
    ));
}

#[test]
fn empty_file() {
    assert!(matches!(Bundle::from_bytes(&[]), Err(BundleError::Empty)));
}

#[test]
fn truncated_file() {
    let bytes = sample_bundle(2, 3).to_bytes();
    for cut in [1, 7, 15, 40, bytes.len() / 2, bytes.len() - 1] {
        let r = Bundle::from_bytes(&bytes[..cut]);
        assert!(
            matches!(r, Err(BundleError::Truncated { .. })),
            "cut {cut}: {r:?}"
        );
    }
}

#[test]
fn trailing_bytes() {
    let mut bytes = sample_bundle(2, 3).to_bytes();
    bytes.push(0);
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(BundleError::TrailingBytes { .. })
    ));
}

#[test]
fn bad_magic() {
    let mut bytes = sample_bundle(3, 2).to_bytes();
    bytes[0] = b'X';
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(BundleError::BadMagic)
    ));
}

#[test]
fn wrong_version() {
    let mut bytes = sample_bundle(3, 2).to_bytes();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let r = Bundle::from_bytes(&bytes);
    assert!(
        matches!(r, Err(BundleError::UnsupportedVersion { found, .. }) if found == FORMAT_VERSION + 1),
        "{r:?}"
    );
}

#[test]
fn bit_flip_is_a_checksum_mismatch() {
    let bytes = sample_bundle(4, 3).to_bytes();
    for pos in [20, bytes.len() / 2, bytes.len() - 10, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        let r = Bundle::from_bytes(&b);
        assert!(
            matches!(r, Err(BundleError::ChecksumMismatch { .. })),
            "pos {pos}: {r:?}"
        );
    }
}

#[test]
fn invalid_manifest_json() {
    let bytes = sample_bundle(5, 2).to_bytes();
    let (_, blob) = split(&bytes);
    let r = Bundle::from_bytes(&encode_container(b"{\"tiers\": [", &blob));
    assert!(matches!(r, Err(BundleError::ManifestJson(_))), "{r:?}");
    let r = Bundle::from_bytes(&encode_container(b"{\"tiers\": 3}", &blob));
    assert!(matches!(r, Err(BundleError::ManifestJson(_))), "{r:?}");
}

#[test]
fn layers_that_do_not_chain() {
    let (mut json, blob) = split(&sample_bundle(6, 2).to_bytes());
    // Second layer of agent 0 claims a different input channel count.
    let layers = json["agents"][0]["layers"].as_array_mut().unwrap();
    if layers.len() < 2 {
        layers.push(layers[0].clone());
    }
    let c = layers[0]["out_c"].as_u64().unwrap();
    layers[1]["in_c"] = (c + 1).into();
    let r = Bundle::from_bytes(&rebuild(&json, &blob));
    assert!(matches!(r, Err(BundleError::ShapeMismatch { .. })), "{r:?}");
    // First layer not reading the tier's channels.
    let (mut json, blob) = split(&sample_bundle(6, 2).to_bytes());
    json["tiers"][0]["channels"] = (TIER_C as u64 + 1).into();
    let r = Bundle::from_bytes(&rebuild(&json, &blob));
    assert!(matches!(r, Err(BundleError::ShapeMismatch { .. })), "{r:?}");
    // Kernel 5 is not in the contract.
    let (mut json, blob) = split(&sample_bundle(6, 2).to_bytes());
    json["agents"][1]["layers"][0]["kernel"] = 5.into();
    let r = Bundle::from_bytes(&rebuild(&json, &blob));
    assert!(matches!(r, Err(BundleError::ShapeMismatch { .. })), "{r:?}");
}

#[test]
fn shapes_that_do_not_match_the_blob() {
    let (json, mut blob) = split(&sample_bundle(7, 2).to_bytes());
    blob.pop();
    let r = Bundle::from_bytes(&rebuild(&json, &blob));
    assert!(
        matches!(r, Err(BundleError::BlobSizeMismatch { .. })),
        "{r:?}"
    );
}

#[test]
fn declared_counts_must_match() {
    let (mut json, blob) = split(&sample_bundle(8, 2).to_bytes());
    json["total_agent_params"] = 1.into();
    let r = Bundle::from_bytes(&rebuild(&json, &blob));
    assert!(matches!(r, Err(BundleError::CountMismatch { .. })), "{r:?}");
}

#[test]
fn invalid_quantisation() {
    let (mut json, blob) = split(&sample_bundle(9, 2).to_bytes());
    json["agents"][0]["layers"][0]["output_quant"]["zero_point"] = 300.into();
    let r = Bundle::from_bytes(&rebuild(&json, &blob));
    assert!(matches!(r, Err(BundleError::InvalidQuant { .. })), "{r:?}");
}

/// A float net with the given specs and zero weights, quantised on a dummy input.
fn plain_net(specs: &[ConvSpec], shape: MapShape) -> gstswarmpose::engine::QuantNet {
    let net = FloatNet {
        layers: specs
            .iter()
            .map(|&spec| FloatLayer {
                spec,
                weights: vec![0.01; spec.weight_len()],
                bias: vec![0.0; spec.out_c],
            })
            .collect(),
    };
    let x = vec![1.0; shape.len().unwrap()];
    quantize_net(&net, QuantParams::from_range(-1.0, 1.0), &[(&x, shape)]).unwrap()
}

fn dense(in_c: usize, out_c: usize) -> ConvSpec {
    ConvSpec {
        in_c,
        out_c,
        kernel: 1,
        stride: 1,
        groups: 1,
        activation: Activation::None,
    }
}

fn tier(channels: usize) -> TierManifest {
    TierManifest {
        name: "t".into(),
        channels,
        input_quant: QuantParams::from_range(-1.0, 1.0),
    }
}

fn info(i: usize) -> AgentInfo {
    AgentInfo {
        name: format!("a{i}"),
        tier: "t".into(),
        keypoint: "nose".into(),
        specialisation: String::new(),
    }
}

#[test]
fn agent_over_500_params() {
    // 1x1 16 -> 30: 16 * 30 + 30 = 510 parameters.
    let net = plain_net(&[dense(16, 30)], MapShape::new(2, 2, 16));
    let r = Bundle::new(
        vec![tier(16)],
        None,
        vec![(info(0), net)],
        Provenance::default(),
    );
    assert!(
        matches!(r, Err(BundleError::AgentTooLarge { params: 510, .. })),
        "{r:?}"
    );
}

#[test]
fn stem_over_1m_params() {
    // 1x1 512 -> 2000: 1_026_000 parameters (fan-in stays within the int8 contract).
    let shape = MapShape::new(1, 1, 512);
    let stem = plain_net(&[dense(512, 2000)], shape);
    let r = Bundle::new(
        vec![],
        Some(("big".into(), shape, stem)),
        vec![],
        Provenance::default(),
    );
    assert!(
        matches!(
            r,
            Err(BundleError::StemTooLarge {
                params: 1_026_000,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn more_than_100k_agents() {
    let net = plain_net(&[dense(1, 1)], MapShape::new(1, 1, 1));
    let agents: Vec<_> = (0..100_001).map(|i| (info(i), net.clone())).collect();
    let r = Bundle::new(vec![tier(1)], None, agents, Provenance::default());
    assert!(
        matches!(r, Err(BundleError::TooManyAgents { count: 100_001, .. })),
        "{r:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 12 {
            // Get past the magic/version checks so the deeper parsers see random data too.
            bytes[..8].copy_from_slice(b"SWPOSE\0\0");
            bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        }
        prop_assert!(Bundle::from_bytes(&bytes).is_err());
    }

    #[test]
    fn mutated_bundles_are_refused(kind in 0u8..3, pos in any::<prop::sample::Index>(),
                                   bit in 0u8..8, byte in any::<u8>()) {
        let bytes = valid_bytes();
        let mut b = bytes.clone();
        match kind {
            0 => b.truncate(pos.index(bytes.len())),
            1 => b[pos.index(bytes.len())] ^= 1 << bit,
            _ => b.insert(pos.index(bytes.len() + 1), byte),
        }
        prop_assert!(Bundle::from_bytes(&b).is_err());
    }

    #[test]
    fn mutated_manifests_with_valid_crc_never_panic(pos in any::<prop::sample::Index>(),
                                                    byte in any::<u8>()) {
        // Corrupt the JSON but re-frame it with a correct CRC: the semantic checks must cope.
        let (json, blob) = split(&valid_bytes());
        let mut text = serde_json::to_vec(&json).unwrap();
        let i = pos.index(text.len());
        text[i] = byte;
        let _ = Bundle::from_bytes(&encode_container(&text, &blob));
    }
}

fn valid_bytes() -> Vec<u8> {
    use std::sync::OnceLock;
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| sample_bundle(10, 4).to_bytes())
        .clone()
}
