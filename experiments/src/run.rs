//! Running one variant: build, train, evaluate, checkpoint, write `<id>.json`;
//! and benchmarking one variant (`study bench`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use netdsl_runtime::__private::dfdx::prelude::*;
use netdsl_runtime::data::{Augment, FashionMnist};
use netdsl_runtime::eval::evaluate;
use netdsl_runtime::metrics::{RunResult, Settings};
use netdsl_runtime::network::Network;
use netdsl_runtime::train::{TrainConfig, Trainable, Trainer};

use crate::variants::Variant;

/// Runs one variant and returns its result (also written to `<out>/<id>.json`).
pub type RunFn = fn(&Variant, &RunCtx) -> Result<RunResult>;
/// Benchmarks one variant.
pub type BenchFn = fn(&Variant, &BenchCtx) -> Result<BenchResult>;

/// What every run of a `study run` invocation shares.
pub struct RunCtx<'a> {
    pub data: &'a FashionMnist,
    pub config: TrainConfig,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    pub out: PathBuf,
}

pub fn run_variant<N>(variant: &Variant, ctx: &RunCtx) -> Result<RunResult>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu> + SaveToSafetensors,
{
    let mut config = ctx.config.clone();
    if variant.augment {
        config.augment = Some(Augment::study());
    }
    let train = match ctx.limit {
        Some(n) => ctx.data.train.take(n),
        None => ctx.data.train.clone(),
    };
    config.check(train.len())?;
    fs::create_dir_all(&ctx.out).with_context(|| format!("creating {}", ctx.out.display()))?;

    let dev = Cpu::seed_from_u64(config.seed);
    let mut model = dev.try_build_module::<N, f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut trainer = Trainer::<N, _, _>::new(dev.clone(), config.clone());
    let checkpoint = ctx.out.join(format!("{}.safetensors", variant.id));
    let epochs = trainer.fit(&mut model, &train, &ctx.data.val, 1, |model, _| {
        save_checkpoint(model, &checkpoint)
            .map_err(|e| netdsl_runtime::Error::Config(format!("{e:#}")))
    })?;
    let test = evaluate::<N, _, _>(&model, &dev, &ctx.data.test, config.eval_batch)?;
    let result = RunResult {
        id: variant.id.to_string(),
        description: variant.description.to_string(),
        params: N::PARAMS,
        settings: Settings {
            epochs: config.epochs,
            batch: config.batch,
            seed: config.seed,
            limit: ctx.limit,
            learning_rate: config.learning_rate,
            augment: config.augment.is_some(),
            threads: rayon::current_num_threads(),
        },
        train_seconds: epochs.iter().map(|e| e.seconds).sum(),
        epochs,
        test_seconds: test.seconds,
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        confusion: test.confusion,
    };
    let json = serde_json::to_vec_pretty(&result)?;
    write_atomic(&ctx.out.join(format!("{}.json", variant.id)), &json)?;
    Ok(result)
}

/// Saves the model's weights as safetensors, atomically (temporary file, fsync, rename).
fn save_checkpoint<M: SaveToSafetensors>(model: &M, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    model
        .save_safetensors(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// What `study bench` shares across variants.
pub struct BenchCtx<'a> {
    pub data: &'a FashionMnist,
    /// Timed training steps per repeat.
    pub steps: usize,
    pub repeats: usize,
}

/// Seconds for a training epoch of 55,000 images at batch 100, and for
/// evaluating the 10,000 test images.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    pub train_epoch_s: f64,
    pub eval_test_s: f64,
}

/// Times `steps` training steps (after a warm-up of a few steps), `repeats`
/// times, and extrapolates the median to a 550-step epoch; times the test-set
/// evaluation `repeats` times and takes the median.
pub fn bench_variant<N>(variant: &Variant, ctx: &BenchCtx) -> Result<BenchResult>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu> + SaveToSafetensors,
{
    const BATCH: usize = 100;
    const EPOCH_STEPS: f64 = 550.0;
    let mut config = TrainConfig::default();
    if variant.augment {
        config.augment = Some(Augment::study());
    }
    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.try_build_module::<N, f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut trainer = Trainer::<N, _, _>::new(dev.clone(), config.clone());
    let quiet = indicatif::ProgressBar::hidden();
    let warm = ctx.data.train.take(5 * BATCH);
    trainer.train_epoch(&mut model, &warm, 1, &quiet)?;
    let subset = ctx.data.train.take(ctx.steps * BATCH);
    let mut per_step = Vec::new();
    for r in 0..ctx.repeats {
        let t = trainer.train_epoch(&mut model, &subset, r + 2, &quiet)?;
        per_step.push(t.seconds / ctx.steps as f64);
    }
    let mut eval = Vec::new();
    for _ in 0..ctx.repeats {
        let e = evaluate::<N, _, _>(&model, &dev, &ctx.data.test, config.eval_batch)?;
        eval.push(e.seconds);
    }
    Ok(BenchResult {
        train_epoch_s: median(&mut per_step) * EPOCH_STEPS,
        eval_test_s: median(&mut eval),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
