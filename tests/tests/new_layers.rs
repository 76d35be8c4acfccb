//! The layers beyond the study inside a `Model`: batchnorm's moving statistics
//! are tensors that training updates but the optimizer does not, that
//! `Model::tensors` reports as not trainable, and that a checkpoint saves and
//! loads; the summary shows Keras' trainable and non-trainable counts.
//!
//! Run: `cargo test -p netdsl-tests --test new_layers`.

use netdsl_runtime::prelude::*;

network! {
    Bn<1, 8, 8> {
        conv<4, 3, bias = false>, batchnorm, relu, avgpool<2>, globalavgpool,
        dense<5, bias = false>, batchnorm<momentum = 0.9>, leaky_relu, dense<3>,
    }
}

/// 64 random 8x8 images in 3 classes.
fn data() -> Dataset {
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        (state >> 56) as u8
    };
    let values: Vec<u8> = (0..64 * 64).map(|_| next()).collect();
    let labels: Vec<u32> = (0..64).map(|i| i % 3).collect();
    Dataset::new(values, labels, (1, 8, 8), 3).unwrap()
}

#[test]
fn moving_statistics_train_save_and_load() {
    let data = data();
    let mut model = Model::<Bn>::new(&Cpu::seed_from_u64(0)).unwrap();
    let before = model.tensors().unwrap();
    let frozen: Vec<&str> = before
        .iter()
        .filter(|t| !t.trainable)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(frozen.len(), 4, "{frozen:?}");
    assert!(frozen
        .iter()
        .all(|n| n.ends_with("moving_mean") || n.ends_with("moving_variance")));
    assert!(!before
        .iter()
        .any(|t| t.name.ends_with(".bias") && t.shape == [4]));

    let fit = Fit {
        epochs: 2,
        batch: 16,
        ..Fit::default()
    };
    model.fit(&data, Validation::None, &fit).unwrap();
    let after = model.tensors().unwrap();
    for (b, a) in before.iter().zip(&after) {
        // training moves every tensor: the trainable ones by the optimizer,
        // the moving statistics by the forward passes
        assert_ne!(b.values, a.values, "{} did not change", b.name);
    }

    let dir = tempdir();
    let path = dir.join("bn.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Model::<Bn>::new(&Cpu::seed_from_u64(1)).unwrap();
    loaded.load(&path).unwrap();
    let reloaded = loaded.tensors().unwrap();
    for (a, r) in after.iter().zip(&reloaded) {
        assert_eq!(
            (&a.name, &a.values, a.trainable),
            (&r.name, &r.values, r.trainable)
        );
    }
    // evaluation uses the moving statistics: the same on both models
    let (e1, e2) = (
        model.evaluate(&data).unwrap(),
        loaded.evaluate(&data).unwrap(),
    );
    assert_eq!(e1.loss, e2.loss);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn summary_counts_trainable_and_non_trainable() {
    assert_eq!(Bn::NON_TRAINABLE_PARAMS, 8 + 10);
    let text = Bn::summary().to_string();
    let trainable = format!("Trainable params: {}\n", Bn::PARAMS);
    assert!(text.contains(&trainable), "{text}");
    assert!(text.contains("Non-trainable params: 18\n"), "{text}");
}

network! {
    /// Horizontal strokes found by 1x5 kernels, vertical ones by 5x1 kernels.
    Strokes<1, 12, 12> {
        conv<6, (1, 5), pad = same>, relu, maxpool<2>,
        conv<8, (5, 1), stride = (1, 2), pad = same>, relu,
        globalavgpool, dense<2>,
    }
}

/// 128 12x12 images, each with one bright line in a random place: a row
/// (class 0) or a column (class 1), on noise.
fn strokes() -> Dataset {
    let mut state = 99u64;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for i in 0..128 {
        let class = i % 2;
        let at = next(12) as usize;
        for r in 0..12 {
            for c in 0..12 {
                let on = if class == 0 { r == at } else { c == at };
                values.push(if on {
                    200 + next(56) as u8
                } else {
                    next(80) as u8
                });
            }
        }
        labels.push(class as u32);
    }
    Dataset::new(values, labels, (1, 12, 12), 2).unwrap()
}

/// Non-square kernels and per-axis strides inside a `Model`: the summary
/// writes them as declared, and training on rows against columns learns.
#[test]
fn rectangular_kernels_train() {
    assert_eq!(Strokes::PARAMS, (5 * 6 + 6) + (6 * 5 * 8 + 8) + (8 * 2 + 2));
    let text = Strokes::summary().to_string();
    assert!(text.contains("conv<6, (1, 5), pad = same>"), "{text}");
    assert!(
        text.contains("conv<8, (5, 1), stride = (1, 2), pad = same>"),
        "{text}"
    );
    assert!(text.contains("(None, 8, 6, 3)"), "{text}");

    let data = strokes();
    let mut model = Model::<Strokes>::new(&Cpu::seed_from_u64(0)).unwrap();
    let fit = Fit {
        epochs: 12,
        batch: 16,
        optimizer: Optimizer::adam(0.01),
        ..Fit::default()
    };
    let history = model.fit(&data, Validation::None, &fit).unwrap();
    // near chance after the first epoch, learned by the last
    let curve: Vec<f64> = history.epochs.iter().map(|e| e.accuracy).collect();
    assert!(curve[0] < 0.8, "{curve:?}");
    assert!(curve[curve.len() - 1] >= 0.95, "{curve:?}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netdsl-new-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
