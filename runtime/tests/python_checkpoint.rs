//! Checkpoints are readable by others: Python's `safetensors` + numpy load a
//! CNN3a checkpoint, recompute the forward pass (tests/python/cnn3a_forward.py)
//! and match the Rust logits within 1e-4.
//!
//! Needs `python3 -m pip install safetensors numpy` (.ci/run installs them).

mod common;

use common::HandCnn3a;
use netdsl_runtime::dfdx::nn::Module;
use netdsl_runtime::prelude::*;

#[test]
fn numpy_forward_from_checkpoint_matches_rust_logits() {
    let data = FashionMnist::load(None).expect("Fashion-MNIST");
    let dev = Cpu::seed_from_u64(1);
    let mut model = Model::<HandCnn3a>::new(&dev).unwrap();
    // A few training steps, so the weights are not just their initialisation.
    let fit = Fit {
        epochs: 1,
        batch: 100,
        ..Fit::default()
    };
    model
        .fit(&data.train.take(500), Validation::None, &fit)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("cnn3a.safetensors");
    model.save(&ckpt).unwrap();

    let n = 8;
    let idx: Vec<usize> = (0..n).collect();
    let mut x = Vec::new();
    data.test.batch_into(&idx, &mut x);
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let inputs = dir.path().join("inputs.f32");
    std::fs::write(&inputs, bytes).unwrap();
    let logits = model
        .module
        .forward(dev.tensor_from_vec(x, HandCnn3a::batched_input(n)))
        .as_vec();

    let out = dir.path().join("logits.f32");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/cnn3a_forward.py");
    let status = std::process::Command::new("python3")
        .args([
            script,
            ckpt.to_str().unwrap(),
            inputs.to_str().unwrap(),
            &n.to_string(),
            out.to_str().unwrap(),
        ])
        .status()
        .expect("python3");
    assert!(
        status.success(),
        "python3 failed (pip install safetensors numpy?)"
    );
    let py: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(py.len(), logits.len());
    for (i, (a, b)) in logits.iter().zip(&py).enumerate() {
        assert!((a - b).abs() <= 1e-4, "logit {i}: rust {a} vs numpy {b}");
    }
}
