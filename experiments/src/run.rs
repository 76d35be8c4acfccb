//! Running one variant: build, train, evaluate, checkpoint, write `<id>.json`;
//! and benchmarking one variant (`study bench`).

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use netdsl_runtime::__private::dfdx::prelude::*;
use netdsl_runtime::bench::{bench, BenchResult};
use netdsl_runtime::checkpoint::{self, CheckpointMeta};
use netdsl_runtime::data::{Augment, FashionMnist};
use netdsl_runtime::eval::evaluate;
use netdsl_runtime::metrics::{RunResult, Settings};
use netdsl_runtime::network::Network;
use netdsl_runtime::train::{TrainConfig, Trainable, Trainer};

use crate::variants::Variant;

/// Runs one variant and returns its result (also written to `<out>/<id>.json`).
/// `None` when `--resume` found the variant finished already.
pub type RunFn = fn(&Variant, &RunCtx) -> Result<Option<RunResult>>;
/// Benchmarks one variant.
pub type BenchFn = fn(&Variant, &BenchCtx) -> Result<BenchResult>;

/// What every run of a `study run` invocation shares.
pub struct RunCtx<'a> {
    pub data: &'a FashionMnist,
    pub config: TrainConfig,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    pub out: PathBuf,
    /// Continue unfinished variants from their checkpoints; skip finished ones.
    pub resume: bool,
}

pub fn run_variant<N>(variant: &Variant, ctx: &RunCtx) -> Result<Option<RunResult>>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
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
    let result_path = ctx.out.join(format!("{}.json", variant.id));
    let checkpoint_path = ctx.out.join(format!("{}.safetensors", variant.id));
    if ctx.resume && result_path.exists() {
        eprintln!(
            "{}: finished already ({}), skipped",
            variant.id,
            result_path.display()
        );
        return Ok(None);
    }

    let dev = Cpu::seed_from_u64(config.seed);
    let mut model = dev
        .try_build_module::<N, f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut trainer = Trainer::<N, _, _>::new(dev.clone(), config.clone());
    let mut history = Vec::new();
    if ctx.resume && checkpoint_path.exists() {
        let (adam, meta) =
            checkpoint::load::<N, _, _>(&checkpoint_path, &mut model, config.adam())?;
        eprintln!("{}: resuming after epoch {}", variant.id, meta.epoch);
        trainer.optimizer = adam;
        history = meta.history;
    }
    let epochs = trainer.fit(
        &mut model,
        &train,
        &ctx.data.val,
        history,
        |model, adam, history| {
            let meta = CheckpointMeta {
                network: N::NAME.to_string(),
                params: N::PARAMS,
                epoch: history.len(),
                adam_step: adam.step,
                history: history.to_vec(),
            };
            checkpoint::save(&checkpoint_path, model, adam, &meta)
        },
    )?;
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
    checkpoint::write_atomic(&result_path, &json)?;
    Ok(Some(result))
}

/// What `study bench` shares across variants.
pub struct BenchCtx<'a> {
    pub data: &'a FashionMnist,
    /// Timed training steps per repeat.
    pub steps: usize,
    pub repeats: usize,
}

/// Times a training epoch and a test evaluation of one variant (see [`netdsl_runtime::bench`]).
pub fn bench_variant<N>(variant: &Variant, ctx: &BenchCtx) -> Result<BenchResult>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    let augment = variant.augment.then(Augment::study);
    Ok(bench::<N>(ctx.data, augment, ctx.steps, ctx.repeats)?)
}
