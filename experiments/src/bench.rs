//! Speed measurement of the study's variants: seconds per training epoch
//! (55,000 images, batch 100) and per test-set evaluation (10,000 images),
//! as `study bench` prints them.
//!
//! An epoch is extrapolated from the median of `repeats` timed runs of
//! `steps` training steps (after a 5-step warm-up), so a benchmark takes
//! seconds instead of minutes; evaluation is timed whole, median of `repeats`.
//! On the GPU the timings are honest without explicit synchronisation: every
//! training step reads its loss back, and evaluation its logits.

use anyhow::{ensure, Result};
use netdsl_runtime::data::{Augment, FashionMnist};
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::model::{Model, Trainable};
use netdsl_runtime::network::Network;
use netdsl_runtime::train::Trainer;

use crate::device::StudyDevice;
use crate::run::shaped_for;
use crate::variants::study_fit;

/// Batch size and steps of the study's epoch: 55,000 / 100.
pub const BATCH: usize = 100;
pub const EPOCH_STEPS: usize = 550;

/// Seconds for a training epoch and for evaluating the test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    pub train_epoch_s: f64,
    pub eval_test_s: f64,
}

/// Benchmarks network `N` on device `D`, with `augment` applied to training batches.
pub fn bench<N, D>(
    data: &FashionMnist,
    augment: Option<Augment>,
    steps: usize,
    repeats: usize,
) -> Result<BenchResult>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: StudyDevice,
{
    let max_steps = data.train.len() / BATCH;
    ensure!(
        (1..=max_steps).contains(&steps) && repeats >= 1,
        "bench needs 1 <= steps <= {max_steps} and repeats >= 1"
    );
    let fit = study_fit(1, BATCH, 0, augment);
    let dev = D::seeded(0)?;
    let mut model = Model::<N, D>::new(&dev)?;
    let mut trainer = Trainer::new(fit)?;
    let warm_up = shaped_for::<N>(&data.train.take(5 * BATCH));
    trainer.train_epoch(&mut model, &warm_up, 1, &mut ())?;
    let subset = shaped_for::<N>(&data.train.take(steps * BATCH));
    let test = shaped_for::<N>(&data.test);
    let mut per_step = Vec::new();
    for r in 0..repeats {
        let t = trainer.train_epoch(&mut model, &subset, r + 2, &mut ())?;
        per_step.push(t.seconds / steps as f64);
    }
    let mut eval = Vec::new();
    for _ in 0..repeats {
        eval.push(model.evaluate(&test)?.seconds);
    }
    Ok(BenchResult {
        train_epoch_s: median(&mut per_step) * EPOCH_STEPS as f64,
        eval_test_s: median(&mut eval),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
