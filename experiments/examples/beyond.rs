//! A model beyond the study (not one of its fourteen variants, not in its
//! table): convolutions without bias, each followed by batchnorm, and global
//! average pooling instead of `flatten, dense`, trained on Fashion-MNIST.
//!
//! Run: `cargo run --release -p netdsl-experiments --example beyond`
//! (prints one line per epoch with its seconds, then the test accuracy).
//!
//! `--bench`: the cost of batchnorm. The same network with and without a
//! `batchnorm` after each convolution (without it, each `conv, relu[,
//! maxpool]` is a fused `ConvBlock` and the convolutions keep their bias),
//! trained on the same 6,400 images, interleaved for 3 rounds; prints the
//! seconds each took, scaled to a 55,000-image epoch, and their ratio.
//!
//! Needs the data set: `apt-get install dataset-fashion-mnist` (or
//! `FASHION_MNIST_DIR`).

use std::time::Instant;

use netdsl_runtime::prelude::*;

network! {
    /// Three convolutions with batchnorm, global average pooling.
    pub Beyond<1, 28, 28> {
        conv<32, 3, pad = same, bias = false>, batchnorm, relu, maxpool<2>,    // [B, 32, 14, 14]
        conv<64, 3, pad = same, bias = false>, batchnorm, relu, maxpool<2>,    // [B, 64, 7, 7]
        conv<128, 3, pad = same, bias = false>, batchnorm, relu,               // [B, 128, 7, 7]
        globalavgpool, dense<10>,                                              // [B, 10]
    }

    /// `Beyond` without batchnorm, for `--bench`.
    pub Plain<1, 28, 28> {
        conv<32, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        conv<128, 3, pad = same>, relu,
        globalavgpool, dense<10>,
    }
}

/// Images per epoch of the full training set (the default split).
const TRAIN_IMAGES: usize = 55_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = FashionMnist::load(None)?;
    if std::env::args().any(|a| a == "--bench") {
        return bench(&data);
    }
    println!("{}", Beyond::summary());
    let dev = Cpu::seed_from_u64(0);
    let mut model = Model::<Beyond>::new(&dev)?;
    let fit = Fit {
        epochs: 15,
        batch: 64,
        optimizer: Optimizer::adam(1e-3),
        schedule: Schedule::Cosine { alpha: 0.0 },
        ..Fit::default()
    };
    let history = model.fit_with(&data.train, &data.val, &fit, &mut PrintEpochs)?;
    let epochs = history.epochs.len() as f64;
    println!(
        "trained {} epochs in {:.1} s ({:.1} s per epoch)",
        history.epochs.len(),
        history.train_seconds(),
        history.train_seconds() / epochs
    );
    let start = Instant::now();
    let eval = model.evaluate(&data.test)?;
    println!(
        "test loss {:.4}, test accuracy {:.4} ({:.1} s)",
        eval.loss,
        eval.accuracy,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Seconds of one epoch on `subset`, scaled to the full training set.
fn epoch_seconds<N>(subset: &Dataset, fit: &Fit) -> Result<f64, netdsl_runtime::Error>
where
    N: Network + netdsl_runtime::dfdx::nn::BuildOnDevice<Cpu, f32>,
    N::Built: netdsl_runtime::model::Trainable<N, Cpu>,
{
    let mut model = Model::<N>::new(&Cpu::seed_from_u64(0))?;
    let start = Instant::now();
    model.fit(subset, Validation::None, fit)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(seconds * TRAIN_IMAGES as f64 / subset.len() as f64)
}

fn bench(data: &FashionMnist) -> Result<(), Box<dyn std::error::Error>> {
    let subset = data.train.take(6_400);
    let fit = Fit {
        epochs: 1,
        batch: 64,
        optimizer: Optimizer::adam(1e-3),
        ..Fit::default()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let w = epoch_seconds::<Beyond>(&subset, &fit)?;
        let p = epoch_seconds::<Plain>(&subset, &fit)?;
        println!(
            "round {round}: with batchnorm {w:.2} s/epoch, without {p:.2} s/epoch, ratio {:.2}",
            w / p
        );
        with.push(w);
        without.push(p);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, p) = (median(&mut with), median(&mut without));
    println!(
        "median: with batchnorm {w:.2} s/epoch, without {p:.2} s/epoch, ratio {:.2}",
        w / p
    );
    Ok(())
}
