//! Seconds per training epoch (55,000 images, batch 100, Adam) and per
//! test-set evaluation (10,000 images) of three networks declared with
//! `network!`: two CNNs and a small dense network, on Fashion-MNIST.
//!
//! Run: `cargo run --release -p netdsl-runtime --example epoch_bench [STEPS]`
//!
//! An epoch is extrapolated from the median of 3 timed runs of STEPS
//! training steps (default 50) after a 5-step warm-up; evaluation is the
//! median of 3. Output, one line per network, then the peak memory:
//!
//! ```text
//! cnn3a train_epoch_s=4.812 eval_test_s=0.291
//! ```
//!
//! It uses only the public API, so it also builds as the only file of a crate
//! that depends on `netdsl-runtime` alone (drop the two mimalloc lines there):
//! that is how the library's speed for other crates is measured
//! (runtime/PERFORMANCE.md).

use netdsl_runtime::dfdx::nn::BuildOnDevice;
use netdsl_runtime::model::Trainable;
use netdsl_runtime::prelude::*;

network! {
    Cnn3a<1, 28, 28> {
        conv<32, 3>, relu, maxpool<2>,
        conv<64, 3>, relu, maxpool<2>,
        flatten, dense<128>, relu, dense<10>,
    }
    Cnn4a<1, 28, 28> {
        conv<32, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        flatten, dense<64>, relu, dense<10>,
    }
    Dnn2<784> { dense<10>, relu, dense<5>, relu, dense<10> }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 100;
const EPOCH_STEPS: usize = 550;
const REPEATS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).map_or(Ok(50), |s| s.parse())?;
    let data = FashionMnist::load(None)?;
    bench::<Cnn3a>("cnn3a", &data.train, &data.test, steps)?;
    bench::<Cnn4a>("cnn4a", &data.train, &data.test, steps)?;
    let (train, test) = (data.train.clone().flatten(), data.test.clone().flatten());
    bench::<Dnn2>("dnn2", &train, &test, steps)?;
    println!("peak_rss_mib={:.0}", peak_rss_mib().unwrap_or(f64::NAN));
    Ok(())
}

/// Prints `<name> train_epoch_s=X eval_test_s=Y` for network `N`.
fn bench<N>(name: &str, train: &Dataset, test: &Dataset, steps: usize) -> netdsl_runtime::Result<()>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    let fit = Fit {
        batch: BATCH,
        ..Fit::default()
    };
    let mut model = Model::<N>::new(&Cpu::seed_from_u64(0))?;
    let mut trainer = Trainer::new(fit)?;
    trainer.train_epoch(&mut model, &train.take(5 * BATCH), 1, &mut ())?;
    let subset = train.take(steps * BATCH);
    let mut step_s: Vec<f64> = (0..REPEATS)
        .map(|r| {
            Ok(trainer
                .train_epoch(&mut model, &subset, r + 2, &mut ())?
                .seconds
                / steps as f64)
        })
        .collect::<netdsl_runtime::Result<_>>()?;
    let mut eval_s: Vec<f64> = (0..REPEATS)
        .map(|_| Ok(model.evaluate(test)?.seconds))
        .collect::<netdsl_runtime::Result<_>>()?;
    println!(
        "{name} train_epoch_s={:.3} eval_test_s={:.3}",
        median(&mut step_s) * EPOCH_STEPS as f64,
        median(&mut eval_s)
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
