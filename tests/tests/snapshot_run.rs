//! Snapshot-testing a training run, the way a user of netdsl does it: a
//! network declared here, seeded data built here, a short seeded fit, and
//! insta snapshots of the history and the evaluation. `snapshot()` leaves out
//! wall-clock time and rounds to 6 decimals, so the snapshot holds wherever
//! the run is deterministic (any thread count on the same kind of CPU).
//!
//! Run: `cargo test -p netdsl-tests --test snapshot_run`
//! (review changes with `cargo insta review`).

use netdsl_runtime::prelude::*;

network! {
    /// A tiny CNN for 2-channel 8x8 images in 3 classes, with dropout.
    Tiny<2, 8, 8> {
        conv<4, 3, pad = same>, relu, maxpool<2>,
        flatten, dropout<0.2>, dense<3>,
    }
}

/// `n` images: class c has a bright column at 2 + 2c in channel c % 2, over
/// a fixed pseudo-random background.
fn data(n: usize) -> Dataset {
    let mut state = 12345u32;
    let mut noise = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 28) as u8
    };
    let mut pixels = Vec::with_capacity(n * 128);
    for i in 0..n {
        let class = i % 3;
        for c in 0..2 {
            for _y in 0..8 {
                for x in 0..8 {
                    let on = c == class % 2 && x == 2 + 2 * class;
                    pixels.push(if on { 200 } else { noise() * 8 });
                }
            }
        }
    }
    let labels = (0..n).map(|i| (i % 3) as u32).collect();
    Dataset::new(pixels, labels, (2, 8, 8), 3).unwrap()
}

#[test]
fn seeded_fit_history_and_evaluation() {
    let train = data(240);
    let test = data(60);
    let mut model = Model::<Tiny>::new(&Cpu::seed_from_u64(4)).unwrap();
    let fit = Fit {
        epochs: 3,
        batch: 16,
        seed: 4,
        optimizer: Optimizer::momentum(0.05, 0.9),
        ..Fit::default()
    };
    let history = model.fit(&train, Validation::Split(0.25), &fit).unwrap();
    insta::assert_json_snapshot!("tiny_history", history.snapshot());
    let eval = model.evaluate(&test).unwrap();
    assert_eq!(eval.confusion.iter().flatten().sum::<u64>(), 60);
    insta::assert_json_snapshot!("tiny_evaluation", eval.snapshot());
}
