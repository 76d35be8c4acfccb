//! Per-epoch training history and the result of one variant's run, as serde types.
//!
//! These are the JSON the `study` program writes (`<out>/<id>.json`) and the
//! report reads back, so field names are part of the file format.

use serde::{Deserialize, Serialize};

/// Metrics of one epoch, named as in Keras' `History` (`loss`, `accuracy`,
/// `val_loss`, `val_accuracy`). Training loss and accuracy are averages over
/// the epoch's batches; validation ones come from a pass after the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, L2 penalty included.
    pub loss: f64,
    /// Mean training accuracy over the epoch's batches.
    pub accuracy: f64,
    /// Validation loss (L2 penalty included, as Keras reports it).
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Wall-clock seconds of the epoch's training (validation excluded).
    pub seconds: f64,
}

/// Loss, accuracy and confusion matrix of one pass over a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy (plus L2 penalty where the model has one).
    pub loss: f64,
    /// Fraction of correctly classified images.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Wall-clock seconds of the pass.
    pub seconds: f64,
}

/// Settings a run was made with; stored next to its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    /// Trained on the first `limit` training images only (validation and test stay whole).
    pub limit: Option<usize>,
    pub learning_rate: f32,
    /// Whether training batches were augmented.
    pub augment: bool,
    /// Number of rayon threads used.
    pub threads: usize,
}

/// Everything one variant's run produced: the `<id>.json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub id: String,
    pub description: String,
    pub params: usize,
    pub settings: Settings,
    pub epochs: Vec<EpochMetrics>,
    pub train_seconds: f64,
    pub test_seconds: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// `confusion[true][predicted]` on the test set.
    pub confusion: Vec<Vec<u64>>,
}
