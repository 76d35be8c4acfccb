//! Training: seeded shuffling, batch -> `forward_mut` -> loss -> `backward` ->
//! Adam -> `zero_grads`, one epoch at a time, in plain code.
//!
//! ```text
//! for epoch in 1..=epochs:
//!     order = shuffle(0..n, seed, epoch)
//!     for batch in order.chunks(batch):
//!         x = pixels / 255 (augmented when asked)       // [B, 1, 28, 28] or [B, 784]
//!         logits = model.forward_mut(x.traced(grads))   // [B, 10], dropout active
//!         loss = cross_entropy(logits, one_hot(y)) + Σ λ·Σw²
//!         grads = loss.backward(); adam.update(model, grads); zero_grads
//!     val = evaluate(model, validation set)             // no tape, dropout off
//! ```
//!
//! Study defaults (`TrainConfig::default()`): batch 100, 20 epochs, Adam as
//! Keras computes it (see [`crate::optim`]) with learning rate 1e-3.

use std::time::Instant;

use dfdx::nn::{Module, ModuleMut, TensorCollection, ZeroGrads};
use dfdx::prelude::*;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::{Augment, Dataset};
use crate::error::{Error, Result};
use crate::eval::{evaluate, labels_to_one_hot};
use crate::metrics::EpochMetrics;
use crate::network::Network;
use crate::nn::L2Penalty;
use crate::optim::{Adam, AdamConfig};

/// How to train: the study's settings by default.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub learning_rate: f32,
    /// Augmentation applied to every training batch, when set.
    pub augment: Option<Augment>,
    /// Batch size for validation and test passes (only speed depends on it).
    pub eval_batch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch: 100,
            seed: 0,
            learning_rate: 1e-3,
            augment: None,
            eval_batch: 500,
        }
    }
}

impl TrainConfig {
    /// Adam as Keras configures it, with this config's learning rate.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.learning_rate,
            ..AdamConfig::default()
        }
    }

    /// Rejects settings that cannot train on `n` images.
    pub fn check(&self, n: usize) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Config("epochs must be at least 1".into()));
        }
        if self.batch == 0 || self.eval_batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if self.batch > n {
            return Err(Error::Config(format!(
                "batch size {} is larger than the {n} training images",
                self.batch
            )));
        }
        Ok(())
    }
}

/// A built model that can be trained on device `D` as network `N`:
/// `forward_mut` on a taped batch (training, dropout on), `forward` on an
/// untaped one (evaluation), parameters visible to Adam, and an L2 penalty.
pub trait Trainable<N: Network, D: Device<f32>>:
    TensorCollection<f32, D>
    + L2Penalty<f32, D>
    + ModuleMut<
        Tensor<N::BatchedInput, f32, D, OwnedTape<f32, D>>,
        Output = Tensor<N::BatchedOutput, f32, D, OwnedTape<f32, D>>,
    > + Module<Tensor<N::BatchedInput, f32, D>, Output = Tensor<N::BatchedOutput, f32, D>>
{
}

impl<N: Network, D: Device<f32>, M> Trainable<N, D> for M where
    M: TensorCollection<f32, D>
        + L2Penalty<f32, D>
        + ModuleMut<
            Tensor<N::BatchedInput, f32, D, OwnedTape<f32, D>>,
            Output = Tensor<N::BatchedOutput, f32, D, OwnedTape<f32, D>>,
        > + Module<Tensor<N::BatchedInput, f32, D>, Output = Tensor<N::BatchedOutput, f32, D>>
{
}

/// The network and model types a [`Trainer`] is for (no data of them is held).
type Types<N, M> = (N, fn(&M));

/// Training state kept across epochs: the optimizer and the gradient buffers.
pub struct Trainer<N: Network, M, D: Device<f32>> {
    pub config: TrainConfig,
    pub optimizer: Adam,
    grads: Option<Gradients<f32, D>>,
    device: D,
    _marker: std::marker::PhantomData<Types<N, M>>,
}

/// Mean loss and accuracy of one training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochTrain {
    pub loss: f64,
    pub accuracy: f64,
    pub seconds: f64,
}

impl<N: Network, M: Trainable<N, D>, D: EpochDevice> Trainer<N, M, D> {
    pub fn new(device: D, config: TrainConfig) -> Self {
        let optimizer = Adam::new(config.adam());
        Self {
            config,
            optimizer,
            grads: None,
            device,
            _marker: std::marker::PhantomData,
        }
    }

    /// The shuffled order of epoch `epoch` (1-based): a function of (seed, epoch) only,
    /// so a resumed run sees the same batches.
    pub fn epoch_order(&self, n: usize, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = StdRng::seed_from_u64(mix(self.config.seed, epoch as u64));
        order.shuffle(&mut rng);
        order
    }

    /// Trains one epoch over `data`; `pb` shows progress (use `ProgressBar::hidden()` when quiet).
    pub fn train_epoch(
        &mut self,
        model: &mut M,
        data: &Dataset,
        epoch: usize,
        pb: &ProgressBar,
    ) -> Result<EpochTrain> {
        let cfg = self.config.clone();
        cfg.check(data.len())?;
        let start = Instant::now();
        let order = self.epoch_order(data.len(), epoch);
        let pixels = data.pixels();
        let dev = self
            .device
            .for_epoch(mix(mix(cfg.seed, epoch as u64), u64::MAX));
        let mut grads = match self.grads.take() {
            Some(g) => g,
            None => model.try_alloc_grads().map_err(device_err)?,
        };
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut x = Vec::with_capacity(cfg.batch * pixels);
        let mut labels = Vec::with_capacity(cfg.batch);
        let num_batches = order.len().div_ceil(cfg.batch);
        pb.set_length(num_batches as u64);
        pb.set_position(0);
        for (b, idx) in order.chunks(cfg.batch).enumerate() {
            let n = idx.len();
            data.batch_into(idx, &mut x);
            if let Some(aug) = &cfg.augment {
                let batch_seed = mix(mix(cfg.seed, epoch as u64), b as u64);
                aug.apply(&mut x, data.rows, data.cols, batch_seed);
            }
            data.labels_into(idx, &mut labels);
            let input = dev
                .try_tensor_from_vec(std::mem::take(&mut x), N::batched_input(n))
                .map_err(device_err)?;
            let targets = labels_to_one_hot::<N, D>(&dev, &labels)?;
            let logits = model
                .try_forward_mut(input.traced(grads))
                .map_err(|e| Error::Device(format!("{e:?}")))?;
            correct += count_correct(&logits.as_vec(), &labels);
            let mut loss = cross_entropy_with_logits_loss(logits, targets);
            if let Some(penalty) = model.try_l2_penalty().map_err(device_err)? {
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
            self.optimizer.update(model, &grads)?;
            model.try_zero_grads(&mut grads).map_err(device_err)?;
            x = Vec::with_capacity(cfg.batch * pixels);
            pb.inc(1);
        }
        self.grads = Some(grads);
        Ok(EpochTrain {
            loss: loss_sum / seen as f64,
            accuracy: correct as f64 / seen as f64,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Trains until `config.epochs`, continuing after the epochs already in
    /// `history` (empty for a fresh run, a checkpoint's history on resume),
    /// evaluating on `val` after each epoch; calls `on_epoch` with the model,
    /// the optimizer and the history so far (e.g. to checkpoint).
    pub fn fit(
        &mut self,
        model: &mut M,
        train: &Dataset,
        val: &Dataset,
        mut history: Vec<EpochMetrics>,
        mut on_epoch: impl FnMut(&M, &Adam, &[EpochMetrics]) -> Result<()>,
    ) -> Result<Vec<EpochMetrics>> {
        let bars = MultiProgress::new();
        let bar = bars.add(epoch_bar(self.config.epochs as u64));
        bar.set_prefix(N::NAME);
        bar.set_position(history.len() as u64);
        let batches = bars.add(ProgressBar::new(0));
        batches.set_style(
            ProgressStyle::with_template("  batches [{bar:30}] {pos}/{len} {per_sec}")
                .expect("static template")
                .progress_chars("=> "),
        );
        for epoch in history.len() + 1..=self.config.epochs {
            let t = self.train_epoch(model, train, epoch, &batches)?;
            let v = evaluate::<N, M, D>(model, &self.device, val, self.config.eval_batch)?;
            let m = EpochMetrics {
                epoch,
                loss: t.loss,
                accuracy: t.accuracy,
                val_loss: v.loss,
                val_accuracy: v.accuracy,
                seconds: t.seconds,
            };
            bar.println(format!(
                "{:>10} epoch {epoch:>2}/{}: loss {:.4} acc {:.4} val_loss {:.4} val_acc {:.4} ({:.1}s)",
                N::NAME,
                self.config.epochs,
                m.loss,
                m.accuracy,
                m.val_loss,
                m.val_accuracy,
                m.seconds
            ));
            bar.inc(1);
            history.push(m);
            on_epoch(model, &self.optimizer, &history)?;
        }
        batches.finish_and_clear();
        bar.finish_and_clear();
        Ok(history)
    }
}

/// A device for one epoch's batches. On the CPU it is a fresh device seeded
/// from (seed, epoch), so dropout masks depend on the epoch alone and a
/// resumed run draws exactly what an uninterrupted one would.
pub trait EpochDevice: Device<f32> {
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

/// A progress bar over epochs on stderr; indicatif hides it when stderr is not a terminal.
pub fn epoch_bar(epochs: u64) -> ProgressBar {
    let bar = ProgressBar::new(epochs);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] epoch {pos}/{len} {elapsed} (eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// Number of rows of `logits` (row-major, `labels.len()` rows) whose arg-max is the label.
pub fn count_correct(logits: &[f32], labels: &[u8]) -> usize {
    let classes = logits.len() / labels.len().max(1);
    logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &y)| argmax(row) == y as usize)
        .count()
}

/// Index of the largest value (the first one on ties, as numpy's argmax).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Mixes two numbers into one RNG seed (SplitMix64's finaliser), so that
/// seeds for (seed, epoch, batch) never collide in practice.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn device_err(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 0.0]), 1);
        assert_eq!(count_correct(&[0.0, 1.0, 5.0, 2.0], &[1, 1]), 1);
    }

    #[test]
    fn mix_separates_neighbours() {
        assert_ne!(mix(0, 1), mix(1, 0));
        assert_ne!(mix(0, 1), mix(0, 2));
    }
}
