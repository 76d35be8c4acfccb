//! Training: seeded shuffling, batch -> `forward_mut` -> loss -> `backward`
//! -> optimizer -> `zero_grads`, one epoch at a time, in plain code.
//!
//! ```text
//! for epoch in 1..=epochs:
//!     order = shuffle(0..n, seed, epoch)
//!     lr = schedule(optimizer.lr, epoch)
//!     for batch in order.chunks(batch):
//!         x = samples (u8 / 255), augmented when asked    // [B, C, H, W] or [B, N]
//!         logits = model.forward_mut(x.traced(grads))     // [B, K], dropout active
//!         loss = cross_entropy(logits, smoothed one_hot(y)) + Σ λ·Σw²
//!         grads = loss.backward(); optimizer.update(model, grads, lr); zero_grads
//!     val = evaluate(model, validation set)               // no tape, dropout off
//!     observer.on_epoch_end(..); early stopping
//! ```
//!
//! What users need around the loop enters through [`Fit`] (optimizer,
//! schedule, label smoothing, augmentation, early stopping) and an
//! [`Observer`] (progress, logging, checkpoints, stopping), as Keras
//! callbacks do. The library draws nothing itself: [`PrintEpochs`] prints one
//! line per epoch when asked.
//!
//! ```no_run
//! use netdsl_runtime::prelude::*;
//! network! { pub Net<1, 28, 28> { conv<8, 3>, relu, maxpool<2>, flatten, dense<10> } }
//!
//! let data = FashionMnist::load(None)?;
//! let dev = Cpu::seed_from_u64(0);
//! let mut model = Model::<Net>::new(&dev)?;
//! let fit = Fit {
//!     epochs: 20,
//!     optimizer: Optimizer::nesterov(0.01, 0.9),
//!     schedule: Schedule::Cosine { alpha: 0.0 },
//!     early_stopping: Some(EarlyStopping::patience(3)),
//!     ..Fit::default()
//! };
//! let history = model.fit_with(&data.train, &data.val, &fit, &mut PrintEpochs)?;
//! println!("stopped: {:?}, best epoch {:?}", history.stopped, history.best_epoch);
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use std::marker::PhantomData;
use std::time::Instant;

use dfdx::nn::{BuildOnDevice, ZeroGrads};
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::data::{Augment, Dataset, SampleShape, Split};
use crate::error::{device_err, Error, Result};
use crate::eval::evaluate_batched;
use crate::loss::{count_correct, targets};
use crate::metrics::{EpochMetrics, History, Stop};
use crate::model::{check_data, outputs, Model, Trainable};
use crate::network::Network;
use crate::nn::L2Penalty;
use crate::optim::{Optimizer, OptimizerState, Schedule};

/// How to train. The defaults are Keras' `model.fit` defaults (1 epoch,
/// batch 32, Adam with lr 1e-3) and no extras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fit {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per training step.
    pub batch: usize,
    /// Seeds the shuffling, dropout masks and augmentation.
    pub seed: u64,
    /// The optimizer and its base learning rate.
    pub optimizer: Optimizer,
    /// How the optimizer's learning rate changes per epoch.
    pub schedule: Schedule,
    /// Label smoothing ε in `[0, 1)` for the loss (0: plain one-hot targets).
    pub label_smoothing: f32,
    /// Augmentation applied to every training batch (image data only), when set.
    pub augment: Option<Augment>,
    /// Stop when a metric no longer improves, when set.
    pub early_stopping: Option<EarlyStopping>,
    /// Batch size for validation passes (only speed depends on it).
    pub eval_batch: usize,
}

impl Default for Fit {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch: 32,
            seed: 0,
            optimizer: Optimizer::default(),
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            augment: None,
            early_stopping: None,
            eval_batch: 500,
        }
    }
}

impl Fit {
    /// Rejects settings that cannot train, before any data is touched.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Config("epochs must be at least 1".into()));
        }
        if self.batch == 0 || self.eval_batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::Config(format!(
                "label smoothing {} is outside [0, 1)",
                self.label_smoothing
            )));
        }
        self.optimizer.check()?;
        self.schedule.check()
    }

    /// The learning rate of `epoch` (1-based).
    pub fn learning_rate(&self, epoch: usize) -> f32 {
        self.schedule
            .rate(self.optimizer.learning_rate(), epoch, self.epochs)
    }
}

/// Which metric early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Training loss.
    Loss,
    /// Training accuracy.
    Accuracy,
    /// Validation loss.
    ValLoss,
    /// Validation accuracy.
    ValAccuracy,
}

impl Monitor {
    /// The value in `m`, if the epoch has it (validation metrics need validation data).
    fn value(self, m: &EpochMetrics) -> Option<f64> {
        match self {
            Monitor::Loss => Some(m.loss),
            Monitor::Accuracy => Some(m.accuracy),
            Monitor::ValLoss => m.val_loss,
            Monitor::ValAccuracy => m.val_accuracy,
        }
    }

    /// Whether larger is better.
    fn maximise(self) -> bool {
        matches!(self, Monitor::Accuracy | Monitor::ValAccuracy)
    }
}

/// Keras' `EarlyStopping`: stop when `monitor` has not improved by more
/// than `min_delta` for `patience` epochs; with `restore_best_weights`, the
/// model ends with the weights of its best epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// The metric to watch.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The least change that counts as an improvement.
    pub min_delta: f64,
    /// Put the best epoch's weights back when training ends.
    pub restore_best_weights: bool,
}

impl EarlyStopping {
    /// Watch the validation loss, stop after `patience` epochs without
    /// improvement, restore the best weights.
    pub fn patience(patience: usize) -> Self {
        Self {
            monitor: Monitor::ValLoss,
            patience,
            min_delta: 0.0,
            restore_best_weights: true,
        }
    }
}

/// Validation data for [`Model::fit`]: none, a data set (`&val` converts),
/// or a fraction of the training data held back as Keras'
/// `validation_split` does (the last samples, before shuffling).
#[derive(Debug, Clone, Copy)]
pub enum Validation<'a> {
    /// No validation.
    None,
    /// Validate on this data set.
    Data(&'a Dataset),
    /// Hold back this fraction of the training data (the last samples).
    Split(f64),
}

impl<'a> From<&'a Dataset> for Validation<'a> {
    fn from(data: &'a Dataset) -> Self {
        Validation::Data(data)
    }
}

impl<'a> From<Option<&'a Dataset>> for Validation<'a> {
    fn from(data: Option<&'a Dataset>) -> Self {
        data.map_or(Validation::None, Validation::Data)
    }
}

/// What an [`Observer`] is told when training starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitPlan {
    /// The network's declared name.
    pub network: &'static str,
    /// The last epoch (1-based); training runs `first_epoch..=epochs`.
    pub epochs: usize,
    /// The first epoch to run (after those a resumed history holds).
    pub first_epoch: usize,
    /// Batches per epoch.
    pub batches: usize,
}

/// The state at the end of an epoch, for an [`Observer`].
pub struct EpochEnd<'a, N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    /// The history so far; its last entry is this epoch.
    pub history: &'a History,
    /// The model, after this epoch's updates.
    pub model: &'a Model<N, D>,
    /// The optimizer with its state after this epoch.
    pub optimizer: &'a OptimizerState,
    /// The learning rate this epoch used.
    pub learning_rate: f32,
}

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on with the next epoch.
    Continue,
    /// End training after this epoch; `fit` returns the history.
    Stop,
}

/// Callbacks around the training loop, as Keras' callbacks: progress bars,
/// logs, checkpoints, custom stopping. Every method does nothing by default;
/// `()` is the observer that observes nothing.
pub trait Observer<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    /// Before the first epoch.
    fn on_fit_begin(&mut self, _plan: &FitPlan) {}
    /// Before each epoch (1-based).
    fn on_epoch_begin(&mut self, _epoch: usize) {}
    /// After each training batch: `batch` of `batches` (1-based), its loss.
    fn on_batch_end(&mut self, _batch: usize, _batches: usize, _loss: f32) {}
    /// After each epoch's validation; an error stops training and is returned by `fit`.
    fn on_epoch_end(&mut self, _end: &EpochEnd<'_, N, D>) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After the last epoch (also after an early stop).
    fn on_fit_end(&mut self, _history: &History) {}
}

impl<N, D> Observer<N, D> for ()
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
}

/// Prints one line per epoch to stderr:
/// `Net epoch 3/20: loss 0.3120 acc 0.8875 val_loss 0.3301 val_acc 0.8802 (4.1s)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintEpochs;

impl<N, D> Observer<N, D> for PrintEpochs
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    fn on_epoch_end(&mut self, end: &EpochEnd<'_, N, D>) -> Result<Control> {
        if let Some(m) = end.history.last() {
            eprintln!("{} {}", N::NAME, epoch_line(m));
        }
        Ok(Control::Continue)
    }
}

/// `epoch 3: loss 0.3120 acc 0.8875 val_loss 0.3301 val_acc 0.8802 (4.1s)`.
pub fn epoch_line(m: &EpochMetrics) -> String {
    let mut line = format!(
        "epoch {}: loss {:.4} acc {:.4}",
        m.epoch, m.loss, m.accuracy
    );
    if let (Some(l), Some(a)) = (m.val_loss, m.val_accuracy) {
        line += &format!(" val_loss {l:.4} val_acc {a:.4}");
    }
    line + &format!(" ({:.1}s)", m.seconds)
}

/// Mean loss and accuracy of one training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochTrain {
    /// Mean loss over the epoch's batches (L2 penalty included).
    pub loss: f64,
    /// Mean accuracy over the epoch's batches.
    pub accuracy: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Training state kept across epochs and fits: the settings, the optimizer
/// with its state, the history, early stopping's bookkeeping and the
/// gradient buffers. [`Model::fit`] makes one per call; keep one yourself to
/// train in steps or to resume from a checkpoint (`checkpoint::load_training`).
pub struct Trainer<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    fit: Fit,
    optimizer: OptimizerState,
    history: History,
    best: Option<Best>,
    grads: Option<Gradients<f32, D>>,
    _network: PhantomData<fn() -> N>,
}

impl<N, D> std::fmt::Debug for Trainer<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("network", &N::NAME)
            .field("fit", &self.fit)
            .field("step", &self.optimizer.step)
            .field("epochs_done", &self.history.epochs.len())
            .finish_non_exhaustive()
    }
}

/// Early stopping's memory: the best value, its epoch, and its weights when
/// they are to be restored.
struct Best {
    value: f64,
    epoch: usize,
    weights: Option<Vec<Vec<f32>>>,
}

impl<N, D> Trainer<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: EpochDevice,
{
    /// A fresh trainer (checks `fit`).
    pub fn new(fit: Fit) -> Result<Self> {
        let optimizer = OptimizerState::new(fit.optimizer);
        Self::resume(fit, optimizer, History::default())
    }

    /// A trainer continuing after `history` with `optimizer`'s state (from a
    /// checkpoint). Early stopping's counter is recomputed from the history;
    /// the best weights of epochs before the resume are not restored.
    ///
    /// # Errors
    /// When `fit` is invalid, when the optimizer is not the one `fit` asks
    /// for, or when the history holds more epochs than `fit.epochs`.
    pub fn resume(fit: Fit, optimizer: OptimizerState, history: History) -> Result<Self> {
        fit.check()?;
        if optimizer.config != fit.optimizer {
            return Err(Error::Config(format!(
                "the saved optimizer {:?} is not the requested {:?}",
                optimizer.config, fit.optimizer
            )));
        }
        if history.epochs.len() > fit.epochs {
            return Err(Error::Config(format!(
                "{} epochs are done already, more than the {} asked for",
                history.epochs.len(),
                fit.epochs
            )));
        }
        let done = history.epochs.clone();
        let mut trainer = Self {
            fit,
            optimizer,
            history,
            best: None,
            grads: None,
            _network: PhantomData,
        };
        for m in &done {
            trainer.track_best(m, None)?;
        }
        Ok(trainer)
    }

    /// The settings.
    pub fn settings(&self) -> &Fit {
        &self.fit
    }

    /// The optimizer and its state.
    pub fn optimizer(&self) -> &OptimizerState {
        &self.optimizer
    }

    /// The epochs completed so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Trains until `fit.epochs`, continuing after the epochs already in the
    /// history, validating after each epoch, and returns the history of all
    /// epochs (also when stopped early).
    ///
    /// Everything that can be checked before the first step is: the data's
    /// shape against the network's input, its classes against the outputs,
    /// the batch size, augmentation on images only.
    pub fn fit<'v>(
        &mut self,
        model: &mut Model<N, D>,
        train: &Dataset,
        val: impl Into<Validation<'v>>,
        observer: &mut impl Observer<N, D>,
    ) -> Result<History> {
        let split;
        let (train, val) = match val.into() {
            Validation::None => (train, None),
            Validation::Data(val) => (train, Some(val)),
            Validation::Split(fraction) => {
                split = train.split(fraction, Split::Last)?;
                (&split.0, Some(&split.1))
            }
        };
        self.check_train(train)?;
        self.check_val(val)?;
        let epochs = self.fit.epochs;
        let first_epoch = self.history.epochs.len() + 1;
        observer.on_fit_begin(&FitPlan {
            network: N::NAME,
            epochs,
            first_epoch,
            batches: train.len().div_ceil(self.fit.batch),
        });
        for epoch in first_epoch..=epochs {
            observer.on_epoch_begin(epoch);
            let t = self.train_epoch(model, train, epoch, observer)?;
            let v = match val {
                Some(val) => Some(evaluate_batched::<N, D>(
                    model,
                    val,
                    self.fit.eval_batch,
                    self.fit.label_smoothing,
                )?),
                None => None,
            };
            let m = EpochMetrics {
                epoch,
                loss: t.loss,
                accuracy: t.accuracy,
                val_loss: v.as_ref().map(|v| v.loss),
                val_accuracy: v.as_ref().map(|v| v.accuracy),
                seconds: t.seconds,
            };
            let early_stop = self.track_best(&m, Some(model))?;
            self.history.epochs.push(m);
            let control = observer.on_epoch_end(&EpochEnd {
                history: &self.history,
                model,
                optimizer: &self.optimizer,
                learning_rate: self.fit.learning_rate(epoch),
            })?;
            if early_stop {
                self.history.stopped = Some(Stop::EarlyStopping);
                break;
            }
            if control == Control::Stop {
                self.history.stopped = Some(Stop::Observer);
                break;
            }
        }
        self.restore_best(model)?;
        observer.on_fit_end(&self.history);
        Ok(self.history.clone())
    }

    /// Trains one epoch (1-based `epoch`: it seeds the shuffle, the dropout
    /// masks and the augmentation) over `data`.
    pub fn train_epoch(
        &mut self,
        model: &mut Model<N, D>,
        data: &Dataset,
        epoch: usize,
        observer: &mut impl Observer<N, D>,
    ) -> Result<EpochTrain> {
        self.check_train(data)?;
        let cfg = &self.fit;
        let start = Instant::now();
        let order = epoch_order(data.len(), cfg.seed, epoch);
        let lr = cfg.learning_rate(epoch);
        let classes = outputs::<N>();
        let sample_len = data.shape().len();
        let image = match data.shape() {
            SampleShape::Image {
                channels,
                height,
                width,
            } => Some((channels, height, width)),
            SampleShape::Vector(_) => None,
        };
        let dev = model
            .device()
            .for_epoch(mix(mix(cfg.seed, epoch as u64), u64::MAX));
        let mut grads = match self.grads.take() {
            Some(g) => g,
            None => model.module.try_alloc_grads().map_err(device_err)?,
        };
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut x = Vec::with_capacity(cfg.batch * sample_len);
        let mut labels = Vec::with_capacity(cfg.batch);
        let batches = order.len().div_ceil(cfg.batch);
        for (b, idx) in order.chunks(cfg.batch).enumerate() {
            let n = idx.len();
            data.batch_into(idx, &mut x);
            if let (Some(aug), Some(shape)) = (&cfg.augment, image) {
                let batch_seed = mix(mix(cfg.seed, epoch as u64), b as u64);
                aug.apply(&mut x, shape, batch_seed);
            }
            data.labels_into(idx, &mut labels);
            let input = dev
                .try_tensor_from_vec(std::mem::take(&mut x), N::batched_input(n))
                .map_err(device_err)?;
            let y = targets(&labels, classes, cfg.label_smoothing)?;
            let y = dev
                .try_tensor_from_vec(y, N::batched_output(n))
                .map_err(device_err)?;
            let logits = model
                .module
                .try_forward_mut(input.traced(grads))
                .map_err(device_err)?;
            correct += count_correct(&logits.as_vec(), &labels);
            let mut loss = cross_entropy_with_logits_loss(logits, y);
            if let Some(penalty) = model.module.try_l2_penalty().map_err(device_err)? {
                loss = loss + penalty;
            }
            let loss_value = loss.as_vec()[0];
            if !loss_value.is_finite() {
                return Err(Error::NonFiniteLoss {
                    loss: loss_value,
                    epoch,
                    batch: b + 1,
                });
            }
            loss_sum += loss_value as f64 * n as f64;
            seen += n;
            grads = loss.try_backward().map_err(device_err)?;
            self.optimizer.update(&mut model.module, &grads, lr)?;
            model
                .module
                .try_zero_grads(&mut grads)
                .map_err(device_err)?;
            x = Vec::with_capacity(cfg.batch * sample_len);
            observer.on_batch_end(b + 1, batches, loss_value);
        }
        self.grads = Some(grads);
        Ok(EpochTrain {
            loss: loss_sum / seen as f64,
            accuracy: correct as f64 / seen as f64,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Checks the training data against the network and the settings.
    fn check_train(&self, train: &Dataset) -> Result<()> {
        check_data::<N>(train)?;
        if train.is_empty() {
            return Err(Error::Config("the training data is empty".into()));
        }
        if self.fit.batch > train.len() {
            return Err(Error::Config(format!(
                "batch size {} is larger than the {} training samples",
                self.fit.batch,
                train.len()
            )));
        }
        if self.fit.augment.is_some() && matches!(train.shape(), SampleShape::Vector(_)) {
            return Err(Error::Config(
                "augmentation needs images, the training data holds vectors".into(),
            ));
        }
        Ok(())
    }

    /// Checks the validation data, and that early stopping has what it watches.
    fn check_val(&self, val: Option<&Dataset>) -> Result<()> {
        if let Some(val) = val {
            check_data::<N>(val)?;
            if val.is_empty() {
                return Err(Error::Config("the validation data is empty".into()));
            }
        }
        if let (Some(es), None) = (&self.fit.early_stopping, val) {
            if matches!(es.monitor, Monitor::ValLoss | Monitor::ValAccuracy) {
                return Err(Error::Config(format!(
                    "early stopping watches {:?}, which needs validation data",
                    es.monitor
                )));
            }
        }
        Ok(())
    }

    /// Early stopping after epoch `m`: records an improvement (and the
    /// weights, when `model` is given and they are to be restored); returns
    /// whether to stop.
    fn track_best(&mut self, m: &EpochMetrics, model: Option<&Model<N, D>>) -> Result<bool> {
        let Some(es) = self.fit.early_stopping else {
            return Ok(false);
        };
        let Some(value) = es.monitor.value(m) else {
            return Ok(false);
        };
        let improved = match &self.best {
            None => true,
            Some(best) if es.monitor.maximise() => value > best.value + es.min_delta,
            Some(best) => value < best.value - es.min_delta,
        };
        if improved {
            let weights = match model {
                Some(model) if es.restore_best_weights => {
                    Some(model.tensors()?.into_iter().map(|t| t.values).collect())
                }
                _ => None,
            };
            self.best = Some(Best {
                value,
                epoch: m.epoch,
                weights,
            });
            self.history.best_epoch = Some(m.epoch);
            return Ok(false);
        }
        let best_epoch = self.best.as_ref().map_or(0, |b| b.epoch);
        Ok(m.epoch - best_epoch >= es.patience)
    }

    /// With `restore_best_weights`, puts the best epoch's weights back.
    fn restore_best(&mut self, model: &mut Model<N, D>) -> Result<()> {
        let restore = self
            .fit
            .early_stopping
            .is_some_and(|es| es.restore_best_weights);
        if let (true, Some(best)) = (restore, &mut self.best) {
            if let Some(weights) = best.weights.take() {
                model.set_tensors(weights.clone())?;
                best.weights = Some(weights);
            }
        }
        Ok(())
    }
}

impl<N, D> Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: EpochDevice,
{
    /// Trains with `fit` on `train`, validating on `val` (a `&Dataset`,
    /// `Validation::Split(0.1)` or `Validation::None`) after each epoch, and
    /// returns the history. Prints nothing; see [`Model::fit_with`].
    pub fn fit<'v>(
        &mut self,
        train: &Dataset,
        val: impl Into<Validation<'v>>,
        fit: &Fit,
    ) -> Result<History> {
        self.fit_with(train, val, fit, &mut ())
    }

    /// [`Model::fit`] with an [`Observer`] (progress, logs, checkpoints):
    /// `&mut PrintEpochs` prints one line per epoch.
    pub fn fit_with<'v>(
        &mut self,
        train: &Dataset,
        val: impl Into<Validation<'v>>,
        fit: &Fit,
        observer: &mut impl Observer<N, D>,
    ) -> Result<History> {
        Trainer::new(fit.clone())?.fit(self, train, val, observer)
    }
}

/// A device for one epoch's batches. On the CPU it is a fresh device seeded
/// from (seed, epoch), so dropout masks depend on the epoch alone and a
/// resumed run draws exactly what an uninterrupted one would.
pub trait EpochDevice: Device<f32> {
    /// A device for the epoch whose seed is `seed`.
    fn for_epoch(&self, seed: u64) -> Self;
}

impl EpochDevice for Cpu {
    fn for_epoch(&self, seed: u64) -> Self {
        Cpu::seed_from_u64(seed)
    }
}

/// On CUDA the model's own device is used (a new device would mean a new
/// context); GPU runs are not bit-reproducible anyway (atomic adds).
#[cfg(feature = "cuda")]
impl EpochDevice for Cuda {
    fn for_epoch(&self, _seed: u64) -> Self {
        self.clone()
    }
}

/// The shuffled order of epoch `epoch` (1-based): a function of (seed, epoch)
/// only, so a resumed run sees the same batches.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(mix(seed, epoch as u64));
    order.shuffle(&mut rng);
    order
}

/// Mixes two numbers into one RNG seed (SplitMix64's finaliser), so that
/// seeds for (seed, epoch, batch) never collide in practice.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network;

    network! {
        /// Logistic regression on 2 features, 2 classes.
        Linear2<2> { dense<2> }
        /// The same with a hidden layer and dropout.
        Hidden<2> { dense<8>, relu, dropout<0.1>, dense<2> }
    }

    /// `n` points: class 1 when x + y > 0, features in [-1, 1], a fixed sequence.
    fn separable(n: usize) -> Dataset {
        let mut state = 7u64;
        let mut next = || {
            state = mix(state, 1);
            (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        let points: Vec<[f32; 2]> = (0..n).map(|_| [next(), next()]).collect();
        let labels = points
            .iter()
            .map(|p| u32::from(p[0] + p[1] > 0.0))
            .collect();
        Dataset::new(points.concat(), labels, 2, 2).unwrap()
    }

    /// Records what the trainer reports.
    #[derive(Default)]
    struct Record {
        plan: Option<FitPlan>,
        rates: Vec<f32>,
        batches: usize,
        weights_after: Vec<Vec<Vec<f32>>>,
        stop_at: Option<usize>,
    }

    impl<N> Observer<N, Cpu> for Record
    where
        N: Network + BuildOnDevice<Cpu, f32>,
        N::Built: Trainable<N, Cpu>,
    {
        fn on_fit_begin(&mut self, plan: &FitPlan) {
            self.plan = Some(*plan);
        }
        fn on_batch_end(&mut self, _: usize, _: usize, loss: f32) {
            assert!(loss.is_finite());
            self.batches += 1;
        }
        fn on_epoch_end(&mut self, end: &EpochEnd<'_, N, Cpu>) -> Result<Control> {
            self.rates.push(end.learning_rate);
            let weights = end.model.tensors()?.into_iter().map(|t| t.values).collect();
            self.weights_after.push(weights);
            let done = end.history.epochs.len();
            Ok(if Some(done) == self.stop_at {
                Control::Stop
            } else {
                Control::Continue
            })
        }
    }

    #[test]
    fn sgd_with_nesterov_momentum_learns_a_separable_problem() {
        let (train, test) = (separable(400), separable(200));
        let mut model = Model::<Hidden>::new(&Cpu::seed_from_u64(1)).unwrap();
        let fit = Fit {
            epochs: 15,
            batch: 16,
            optimizer: Optimizer::nesterov(0.05, 0.9),
            ..Fit::default()
        };
        let history = model.fit(&train, &test, &fit).unwrap();
        assert_eq!((history.epochs.len(), history.stopped), (15, None));
        let accuracy = model.evaluate(&test).unwrap().accuracy;
        assert!(accuracy >= 0.95, "{accuracy} {history:?}");
        assert!(history.epochs[14].loss < history.epochs[0].loss);
    }

    #[test]
    fn early_stopping_stops_and_restores_the_best_weights() {
        let data = separable(200);
        let mut model = Model::<Linear2>::new(&Cpu::seed_from_u64(2)).unwrap();
        // No epoch can beat the first by 1e9: stop after `patience` more.
        let fit = Fit {
            epochs: 10,
            batch: 20,
            early_stopping: Some(EarlyStopping {
                monitor: Monitor::Loss,
                patience: 2,
                min_delta: 1e9,
                restore_best_weights: true,
            }),
            ..Fit::default()
        };
        let mut record = Record::default();
        let history = model
            .fit_with(&data, Validation::None, &fit, &mut record)
            .unwrap();
        assert_eq!(history.epochs.len(), 3);
        assert_eq!(
            (history.stopped, history.best_epoch),
            (Some(Stop::EarlyStopping), Some(1))
        );
        assert!(history.epochs.iter().all(|e| e.val_loss.is_none()));
        let now: Vec<Vec<f32>> = model
            .tensors()
            .unwrap()
            .into_iter()
            .map(|t| t.values)
            .collect();
        assert_eq!(
            now, record.weights_after[0],
            "the first epoch's weights are back"
        );
        assert_ne!(now, record.weights_after[2]);
        assert_eq!(record.batches, 30);
        let plan = record.plan.unwrap();
        assert_eq!((plan.epochs, plan.first_epoch, plan.batches), (10, 1, 10));
    }

    #[test]
    fn observer_can_stop_and_schedule_sets_the_rate() {
        let data = separable(100);
        let mut model = Model::<Linear2>::new(&Cpu::seed_from_u64(3)).unwrap();
        let fit = Fit {
            epochs: 8,
            batch: 10,
            optimizer: Optimizer::sgd(0.1),
            schedule: Schedule::StepDecay {
                every: 2,
                factor: 0.5,
            },
            ..Fit::default()
        };
        let mut record = Record {
            stop_at: Some(5),
            ..Record::default()
        };
        let history = model
            .fit_with(&data, Validation::Split(0.2), &fit, &mut record)
            .unwrap();
        assert_eq!(
            (history.epochs.len(), history.stopped),
            (5, Some(Stop::Observer))
        );
        assert_eq!(record.rates, [0.1, 0.1, 0.05, 0.05, 0.025]);
        // 80 training samples after the split, batches of 10.
        assert_eq!(record.plan.unwrap().batches, 8);
        assert!(history.epochs.iter().all(|e| e.val_accuracy.is_some()));
    }

    #[test]
    fn data_that_does_not_fit_fails_before_the_first_step() {
        let images = Dataset::new(vec![0u8; 8], vec![0, 1], (1, 2, 2), 2).unwrap();
        let mut model = Model::<Linear2>::new(&Cpu::seed_from_u64(0)).unwrap();
        let mut record = Record::default();
        let err = model
            .fit_with(&images, Validation::None, &Fit::default(), &mut record)
            .unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        assert!(record.plan.is_none(), "nothing ran");
        let data = separable(10);
        let too_big = Fit {
            batch: 11,
            ..Fit::default()
        };
        assert!(model.fit(&data, Validation::None, &too_big).is_err());
        let augmented = Fit {
            augment: Some(Augment {
                flip: true,
                ..Augment::default()
            }),
            ..Fit::default()
        };
        assert!(model.fit(&data, Validation::None, &augmented).is_err());
        let watch_val = Fit {
            early_stopping: Some(EarlyStopping::patience(1)),
            ..Fit::default()
        };
        assert!(model.fit(&data, Validation::None, &watch_val).is_err());
    }

    #[test]
    fn label_smoothing_trains_and_reports_a_higher_loss() {
        let data = separable(200);
        let run = |smoothing: f32| {
            let mut model = Model::<Linear2>::new(&Cpu::seed_from_u64(5)).unwrap();
            let fit = Fit {
                epochs: 5,
                batch: 20,
                label_smoothing: smoothing,
                optimizer: Optimizer::adam(0.05),
                ..Fit::default()
            };
            model.fit(&data, &data, &fit).unwrap()
        };
        let (plain, smooth) = (run(0.0), run(0.2));
        let (p, s) = (plain.last().unwrap(), smooth.last().unwrap());
        assert!(s.val_loss.unwrap() > p.val_loss.unwrap(), "{p:?} {s:?}");
        assert!(s.accuracy > 0.9, "{s:?}");
    }

    #[test]
    fn mix_separates_neighbours() {
        assert_ne!(mix(0, 1), mix(1, 0));
        assert_ne!(mix(0, 1), mix(0, 2));
    }

    #[test]
    fn fit_check_rejects_nonsense() {
        assert!(Fit::default().check().is_ok());
        for bad in [
            Fit {
                epochs: 0,
                ..Fit::default()
            },
            Fit {
                batch: 0,
                ..Fit::default()
            },
            Fit {
                label_smoothing: 1.0,
                ..Fit::default()
            },
            Fit {
                optimizer: Optimizer::sgd(-1.0),
                ..Fit::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn epoch_line_leaves_out_missing_validation() {
        let mut m = EpochMetrics {
            epoch: 3,
            loss: 0.31204,
            accuracy: 0.8875,
            val_loss: None,
            val_accuracy: None,
            seconds: 4.12,
        };
        assert_eq!(epoch_line(&m), "epoch 3: loss 0.3120 acc 0.8875 (4.1s)");
        (m.val_loss, m.val_accuracy) = (Some(0.33), Some(0.88));
        assert_eq!(
            epoch_line(&m),
            "epoch 3: loss 0.3120 acc 0.8875 val_loss 0.3300 val_acc 0.8800 (4.1s)"
        );
    }
}
