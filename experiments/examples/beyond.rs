//! A model beyond the study (not one of its fourteen variants, not in its
//! table): convolutions without bias, each followed by batchnorm (fused
//! into one `ConvBnBlock` per `conv, batchnorm, relu[, maxpool]`), and a
//! dense head with batchnorm and dropout, trained on Fashion-MNIST with
//! mirrored and shifted images.
//!
//! Run: `cargo run --release -p netdsl-experiments --example beyond`
//! (prints one line per epoch with its seconds, then the test accuracy).
//!
//! `--bench`: the cost of batchnorm after each convolution. The same network
//! with and without those `batchnorm`s (without them, each `conv, relu[,
//! maxpool]` is a fused `ConvBlock` and the convolutions keep their bias),
//! trained on the same 6,400 images, interleaved for 3 rounds; prints the
//! seconds each took, scaled to a 55,000-image epoch, and their ratio.
//!
//! Needs the data set: `apt-get install dataset-fashion-mnist` (or
//! `FASHION_MNIST_DIR`).

use std::time::Instant;

use netdsl_runtime::prelude::*;

network! {
    /// Three convolutions with batchnorm, a dense head with batchnorm.
    pub Beyond<1, 28, 28> {
        conv<32, 3, pad = same, bias = false>, batchnorm, relu, maxpool<2>,    // [B, 32, 14, 14]
        conv<64, 3, pad = same, bias = false>, batchnorm, relu, maxpool<2>,    // [B, 64, 7, 7]
        conv<128, 3, pad = same, bias = false>, batchnorm, relu,               // [B, 128, 7, 7]
        flatten, dropout<0.3>,                                                 // [B, 6272]
        dense<128, bias = false>, batchnorm, relu, dropout<0.3>, dense<10>,    // [B, 10]
    }

    /// `Beyond` without the convolutions' batchnorm, for `--bench`.
    pub Plain<1, 28, 28> {
        conv<32, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        conv<128, 3, pad = same>, relu,
        flatten, dropout<0.3>,
        dense<128, bias = false>, batchnorm, relu, dropout<0.3>, dense<10>,
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
        epochs: 20,
        batch: 64,
        optimizer: Optimizer::adam(1e-3),
        schedule: Schedule::Cosine { alpha: 0.0 },
        // Mirrored, and shifted up to 2 pixels each way.
        augment: Some(Augment {
            flip: true,
            shift: 0.08,
            ..Augment::default()
        }),
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

/// Seconds this process has run on a CPU (user + system), from
/// `/proc/self/stat` (Linux; 10 ms steps), or `None` where unreadable.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the whole line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Wall and CPU seconds of one epoch on `subset`, scaled to the full training set.
fn epoch_seconds<N>(subset: &Dataset, fit: &Fit) -> Result<(f64, f64), netdsl_runtime::Error>
where
    N: Network + netdsl_runtime::dfdx::nn::BuildOnDevice<Cpu, f32>,
    N::Built: netdsl_runtime::model::Trainable<N, Cpu>,
{
    let mut model = Model::<N>::new(&Cpu::seed_from_u64(0))?;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    model.fit(subset, Validation::None, fit)?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_start)
        .map_or(f64::NAN, |(b, a)| b - a);
    let scale = TRAIN_IMAGES as f64 / subset.len() as f64;
    Ok((wall * scale, cpu * scale))
}

/// Interleaved rounds of both networks; the ratio of wall time, and of CPU
/// time (steadier on a shared machine: run with `RAYON_NUM_THREADS=1`).
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
            "round {round}: with batchnorm {:.2} s/epoch (cpu {:.2}), without {:.2} (cpu {:.2}), \
             ratio {:.2} (cpu {:.2})",
            w.0,
            w.1,
            p.0,
            p.1,
            w.0 / p.0,
            w.1 / p.1
        );
        with.push(w);
        without.push(p);
    }
    let median = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = v.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, p) = (median(&with, |t| t.0), median(&without, |t| t.0));
    let (wc, pc) = (median(&with, |t| t.1), median(&without, |t| t.1));
    println!(
        "median: with batchnorm {w:.2} s/epoch (cpu {wc:.2}), without {p:.2} (cpu {pc:.2}), \
         ratio {:.2} (cpu {:.2})",
        w / p,
        wc / pc
    );
    Ok(())
}
