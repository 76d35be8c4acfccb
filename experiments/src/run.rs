//! Running one job (a variant at a sweep point with a seed, see `jobs.rs`),
//! as [`prepare_variant`](crate::prepare::prepare_variant) decided before any
//! job trained: move an older `<stem>.json` (and, starting over,
//! `<stem>.safetensors`) aside to `*.prev`, build, set the overrides'
//! dropout rates and L2 factors, train (with an indicatif progress bar and a
//! checkpoint carrying the run's identity after every epoch), evaluate,
//! write `<stem>.json` ([`run_variant`]); and benchmarking one variant
//! (`study bench`). Both are generic over the device (`Cpu`, or `Cuda` in a
//! build with the `cuda` feature); the variants' table holds an instance of
//! each per device (`variants.rs`), and `--device` picks one.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use netdsl_runtime::checkpoint::{load_training, save_training, write_atomic};
use netdsl_runtime::data::{Dataset, FashionMnist, SampleShape};
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::model::{input_shape, Model, Trainable};
use netdsl_runtime::network::Network;
use netdsl_runtime::train::{epoch_line, Control, EpochEnd, Fit, FitPlan, Observer, Trainer};

use crate::bench::{bench, BenchResult};
use crate::console::StreamError;
use crate::device::{DeviceKind, StudyDevice};
use crate::errln;
use crate::folder::move_aside;
use crate::identity::{DataIdentity, Identity};
use crate::jobs::Job;
use crate::prepare::Start;
use crate::regularize;
use crate::results::{RunResult, Settings};
use crate::variants::{study_augment, Variant};

/// Runs one job as [`PrepareFn`](crate::prepare::PrepareFn) decided and returns its result (also
/// written to `<out>/<stem>.json`); `None` when it was finished already.
pub type RunFn = fn(&Job, &RunCtx, Start) -> Result<Option<RunResult>>;
/// Benchmarks one variant.
pub type BenchFn = fn(&Variant, &BenchCtx) -> Result<BenchResult>;

/// What every run of a `study run` invocation shares.
pub struct RunCtx<'a> {
    /// The training images used (the first `limit` when limited).
    pub train: &'a Dataset,
    pub val: &'a Dataset,
    pub test: &'a Dataset,
    /// Counts and fingerprints of `train`, `val` and `test`.
    pub data: DataIdentity,
    /// Epochs, batch (the study's optimizer; seed, augmentation and overrides set per job).
    pub fit: Fit,
    /// `--limit`: `train` is the first `limit` training images.
    pub limit: Option<usize>,
    pub out: PathBuf,
    /// Continue unfinished variants from their checkpoints; skip finished ones.
    pub resume: bool,
    /// Whether progress bars are drawn (stderr a terminal).
    pub progress: bool,
    /// `--device`: where the jobs train (checked before the context is built).
    pub device: DeviceKind,
}

impl RunCtx<'_> {
    /// `<out>/<stem>.json`.
    pub fn result_path(&self, job: &Job) -> PathBuf {
        self.out.join(format!("{}.json", job.stem()))
    }

    /// `<out>/<stem>.safetensors`.
    pub fn checkpoint_path(&self, job: &Job) -> PathBuf {
        self.out.join(format!("{}.safetensors", job.stem()))
    }

    /// The training settings of `job`: the shared ones, its seed, its
    /// variant's augmentation, and what its overrides change (learning rate,
    /// augmentation; an augmentation key on a variant that does not augment
    /// is an error).
    pub fn fit_for(&self, job: &Job) -> Result<Fit> {
        let variant = job.variant;
        let augment = variant.augment.then(study_augment);
        Ok(Fit {
            seed: job.seed,
            optimizer: job.overrides.optimizer(self.fit.optimizer),
            augment: job.overrides.augment(augment, variant.id)?,
            ..self.fit.clone()
        })
    }

    /// The identity of `job`'s run, network `N`.
    pub fn identity<N: Network>(&self, job: &Job) -> Result<Identity> {
        let identity = Identity::new(
            job.variant.id,
            N::NAME,
            N::PARAMS,
            &self.fit_for(job)?,
            self.limit,
            self.data.clone(),
        );
        Ok(identity
            .with_overrides(job.overrides.clone())
            .on_device(self.device))
    }
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

/// Runs `job` (network `N`) on device `D` as `start` says: trains,
/// checkpointing after every epoch, evaluates on the test set and writes
/// `<out>/<stem>.json`. `D` must be the context's `--device`.
pub fn run_variant<N, D>(job: &Job, ctx: &RunCtx, start: Start) -> Result<Option<RunResult>>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: StudyDevice,
{
    anyhow::ensure!(
        ctx.device == D::KIND,
        "internal: a {} run in a --device {} session",
        D::KIND,
        ctx.device
    );
    let variant = job.variant;
    let stem = job.stem();
    let id = stem.as_str();
    let fit = ctx.fit_for(job)?;
    let identity = ctx.identity::<N>(job)?;
    let (result_path, checkpoint_path) = (ctx.result_path(job), ctx.checkpoint_path(job));
    let why = match &start {
        Start::Finished => {
            errln!(
                "{id}: finished already ({}), skipped",
                result_path.display()
            )?;
            return Ok(None);
        }
        Start::Fresh { why } | Start::Resume { why, .. } => why,
    };
    if let Some(why) = why {
        errln!("{id}: {why}: not finished, running it")?;
    }
    // Whatever <id>.json holds now is not this run's result, nor is the
    // checkpoint when starting over: out of the way before the first epoch,
    // so that neither can pass for this run's later. The checkpoint first:
    // a run killed in between leaves the old result, not a mismatched pair.
    if let Start::Fresh { .. } = start {
        if let Some(prev) = move_aside(&checkpoint_path)? {
            errln!("{id}: moved the previous checkpoint to {}", prev.display())?;
        }
    }
    if let Some(prev) = move_aside(&result_path)? {
        errln!("{id}: moved the previous result to {}", prev.display())?;
    }

    let train = shaped_for::<N>(ctx.train);
    let (val, test) = (shaped_for::<N>(ctx.val), shaped_for::<N>(ctx.test));
    let dev = D::seeded(fit.seed)?;
    let mut model = Model::<N, D>::new(&dev)?;
    regularize::apply(&mut model, &job.overrides, variant.id)?;
    let mut trainer = match start {
        Start::Resume { done, .. } => {
            let (trainer, _) = load_training(&checkpoint_path, &mut model, fit.clone())?;
            // The weights file holds no dropout rates or L2 factors: set them again.
            regularize::apply(&mut model, &job.overrides, variant.id)?;
            errln!("{id}: resuming after epoch {done}")?;
            trainer
        }
        _ => Trainer::new(fit.clone())?,
    };
    let mut progress = Progress::new(&checkpoint_path, identity.to_json()?, ctx.progress);
    let history = match trainer.fit(&mut model, &train, &val, &mut progress) {
        Ok(history) => history,
        Err(e) => {
            return Err(progress
                .failed_line
                .take()
                .map_or_else(|| e.into(), Into::into))
        }
    };
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
        identity: Some(identity),
        train_seconds: history.train_seconds(),
        epochs: history.epochs,
        test_seconds: test.seconds,
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        confusion: test.confusion,
    };
    let json = serde_json::to_vec_pretty(&result)?;
    write_atomic(&result_path, &json)?;
    Ok(Some(result))
}

/// The `study run` observer: an epoch bar and a batch bar on stderr (hidden
/// when stderr is not a terminal), a training checkpoint with the run's
/// identity after every epoch, then one line per epoch.
struct Progress<'a> {
    checkpoint: &'a Path,
    /// The run's [`Identity`], the checkpoints' `extra` metadata.
    identity: serde_json::Value,
    draw: bool,
    bars: MultiProgress,
    epochs: ProgressBar,
    batches: ProgressBar,
    /// The epoch line could not be written (stderr closed or full): the
    /// error `fit` returns stands for this one.
    failed_line: Option<StreamError>,
}

impl<'a> Progress<'a> {
    fn new(checkpoint: &'a Path, identity: serde_json::Value, draw: bool) -> Self {
        let target = if draw {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            checkpoint,
            identity,
            draw,
            bars: MultiProgress::with_draw_target(target),
            epochs: ProgressBar::hidden(),
            batches: ProgressBar::hidden(),
            failed_line: None,
        }
    }

    /// One line on stderr above the bars. Not `ProgressBar::suspend`, which
    /// panics when stderr cannot be written.
    fn line(&self, line: &str) -> std::result::Result<(), StreamError> {
        if self.draw {
            self.bars.println(line).map_err(|source| StreamError {
                stream: "stderr",
                source,
            })
        } else {
            errln!("{line}")
        }
    }
}

impl<N, D> Observer<N, D> for Progress<'_>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
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

    fn on_epoch_end(&mut self, end: &EpochEnd<'_, N, D>) -> netdsl_runtime::Result<Control> {
        save_training(
            self.checkpoint,
            end.model,
            end.optimizer,
            end.history,
            &self.identity,
        )?;
        self.epochs.inc(1);
        if let Some(m) = end.history.last() {
            if let Err(e) = self.line(&format!("{:>10} {}", N::NAME, epoch_line(m))) {
                let stand_in = io::Error::new(e.source.kind(), e.to_string());
                self.failed_line = Some(e);
                return Err(netdsl_runtime::Error::Io {
                    path: PathBuf::from("<stderr>"),
                    source: stand_in,
                });
            }
        }
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

/// Times a training epoch and a test evaluation of one variant on device
/// `D` (see [`crate::bench`]).
pub fn bench_variant<N, D>(variant: &Variant, ctx: &BenchCtx) -> Result<BenchResult>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: StudyDevice,
{
    let augment = variant.augment.then(study_augment);
    bench::<N, D>(ctx.data, augment, ctx.steps, ctx.repeats)
}
