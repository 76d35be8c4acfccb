//! Running one variant: build, train (with an indicatif progress bar and a
//! checkpoint after every epoch), evaluate, write `<id>.json`; and
//! benchmarking one variant (`study bench`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use netdsl_runtime::checkpoint::{load_training, save_training};
use netdsl_runtime::data::{Dataset, FashionMnist, SampleShape};
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::model::{input_shape, Model, Trainable};
use netdsl_runtime::network::Network;
use netdsl_runtime::train::{epoch_line, Control, EpochEnd, Fit, FitPlan, Observer, Trainer};

use crate::bench::{bench, BenchResult};
use crate::results::{RunResult, Settings};
use crate::variants::{study_augment, Variant};

/// Runs one variant and returns its result (also written to `<out>/<id>.json`).
/// `None` when `--resume` found the variant finished already.
pub type RunFn = fn(&Variant, &RunCtx) -> Result<Option<RunResult>>;
/// Benchmarks one variant.
pub type BenchFn = fn(&Variant, &BenchCtx) -> Result<BenchResult>;

/// What every run of a `study run` invocation shares.
pub struct RunCtx<'a> {
    pub data: &'a FashionMnist,
    /// Epochs, batch, seed (the study's optimizer; augmentation set per variant).
    pub fit: Fit,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    pub out: PathBuf,
    /// Continue unfinished variants from their checkpoints; skip finished ones.
    pub resume: bool,
    /// Whether progress bars are drawn (stderr a terminal).
    pub progress: bool,
}

/// The data as network `N` takes it: Fashion-MNIST's 1x28x28 images, flattened
/// to 784-vectors for the dense networks.
pub fn shaped_for<N: Network>(data: &Dataset) -> Dataset {
    match (input_shape::<N>(), data.shape()) {
        (SampleShape::Vector(n), SampleShape::Image { .. }) if n == data.shape().len() => {
            data.clone().flatten()
        }
        _ => data.clone(),
    }
}

pub fn run_variant<N>(variant: &Variant, ctx: &RunCtx) -> Result<Option<RunResult>>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    let fit = Fit {
        augment: variant.augment.then(study_augment),
        ..ctx.fit.clone()
    };
    let train = match ctx.limit {
        Some(n) => ctx.data.train.take(n),
        None => ctx.data.train.clone(),
    };
    let (train, val, test) = (
        shaped_for::<N>(&train),
        shaped_for::<N>(&ctx.data.val),
        shaped_for::<N>(&ctx.data.test),
    );
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

    let dev = Cpu::seed_from_u64(fit.seed);
    let mut model = Model::<N>::new(&dev)?;
    let mut trainer = if ctx.resume && checkpoint_path.exists() {
        let (trainer, _) = load_training(&checkpoint_path, &mut model, fit.clone())?;
        eprintln!(
            "{}: resuming after epoch {}",
            variant.id,
            trainer.history().epochs.len()
        );
        trainer
    } else {
        Trainer::new(fit.clone())?
    };
    let mut progress = Progress::new(&checkpoint_path, ctx.progress);
    let history = trainer.fit(&mut model, &train, &val, &mut progress)?;
    let test = model.evaluate(&test)?;
    let result = RunResult {
        id: variant.id.to_string(),
        description: variant.description.to_string(),
        params: N::PARAMS,
        settings: Settings {
            epochs: fit.epochs,
            batch: fit.batch,
            seed: fit.seed,
            limit: ctx.limit,
            learning_rate: fit.optimizer.learning_rate(),
            augment: fit.augment.is_some(),
            threads: rayon::current_num_threads(),
        },
        train_seconds: history.train_seconds(),
        epochs: history.epochs,
        test_seconds: test.seconds,
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        confusion: test.confusion,
    };
    let json = serde_json::to_vec_pretty(&result)?;
    netdsl_runtime::checkpoint::write_atomic(&result_path, &json)?;
    Ok(Some(result))
}

/// The `study run` observer: an epoch bar and a batch bar on stderr (hidden
/// when stderr is not a terminal), one line per epoch, and a training
/// checkpoint after every epoch.
struct Progress<'a> {
    checkpoint: &'a Path,
    draw: bool,
    bars: MultiProgress,
    epochs: ProgressBar,
    batches: ProgressBar,
}

impl<'a> Progress<'a> {
    fn new(checkpoint: &'a Path, draw: bool) -> Self {
        Progress {
            checkpoint,
            draw,
            bars: MultiProgress::new(),
            epochs: ProgressBar::hidden(),
            batches: ProgressBar::hidden(),
        }
    }
}

impl<N> Observer<N, Cpu> for Progress<'_>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    fn on_fit_begin(&mut self, plan: &FitPlan) {
        if !self.draw {
            return;
        }
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> ")
        };
        self.epochs = self.bars.add(ProgressBar::new(plan.epochs as u64));
        self.epochs.set_style(style(
            "{prefix} [{bar:30}] epoch {pos}/{len} {elapsed} (eta {eta})",
        ));
        self.epochs.set_prefix(plan.network);
        self.epochs.set_position(plan.first_epoch as u64 - 1);
        self.batches = self.bars.add(ProgressBar::new(plan.batches as u64));
        self.batches
            .set_style(style("  batches [{bar:30}] {pos}/{len} {per_sec}"));
    }

    fn on_epoch_begin(&mut self, _epoch: usize) {
        self.batches.set_position(0);
    }

    fn on_batch_end(&mut self, _batch: usize, _batches: usize, _loss: f32) {
        self.batches.inc(1);
    }

    fn on_epoch_end(&mut self, end: &EpochEnd<'_, N, Cpu>) -> netdsl_runtime::Result<Control> {
        if let Some(m) = end.history.last() {
            let line = format!("{:>10} {}", N::NAME, epoch_line(m));
            self.epochs.suspend(|| eprintln!("{line}"));
        }
        self.epochs.inc(1);
        let none = serde_json::Value::Null;
        save_training(
            self.checkpoint,
            end.model,
            end.optimizer,
            end.history,
            &none,
        )?;
        Ok(Control::Continue)
    }

    fn on_fit_end(&mut self, _history: &netdsl_runtime::metrics::History) {
        self.batches.finish_and_clear();
        self.epochs.finish_and_clear();
    }
}

/// What `study bench` shares across variants.
pub struct BenchCtx<'a> {
    pub data: &'a FashionMnist,
    /// Timed training steps per repeat.
    pub steps: usize,
    pub repeats: usize,
}

/// Times a training epoch and a test evaluation of one variant (see [`crate::bench`]).
pub fn bench_variant<N>(variant: &Variant, ctx: &BenchCtx) -> Result<BenchResult>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    let augment = variant.augment.then(study_augment);
    bench::<N>(ctx.data, augment, ctx.steps, ctx.repeats)
}
