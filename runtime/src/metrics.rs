//! What training and evaluation report, as serde types: per-epoch
//! [`EpochMetrics`], the [`History`] of a fit, an [`Evaluation`], and their
//! snapshots for tests.
//!
//! # Snapshot-testing a run
//!
//! A seeded CPU run is deterministic (bit for bit, for any thread count), so
//! its numbers can be pinned with [insta](https://insta.rs). The snapshots
//! leave out wall-clock seconds and round every float to 6 decimals, so they
//! are stable wherever the run is deterministic and readable in review:
//!
//! ```ignore
//! let history = model.fit(&train, &val, &fit)?;
//! insta::assert_json_snapshot!(history.snapshot());
//! insta::assert_json_snapshot!(model.evaluate(&test)?.snapshot());
//! ```

use serde::{Deserialize, Serialize};

/// Metrics of one epoch, named as in Keras' `History` (`loss`, `accuracy`,
/// `val_loss`, `val_accuracy`). Training loss and accuracy are averages over
/// the epoch's batches; validation ones come from a pass after the epoch, and
/// are absent when the fit had no validation data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, L2 penalty included.
    pub loss: f64,
    /// Mean training accuracy over the epoch's batches.
    pub accuracy: f64,
    /// Validation loss (L2 penalty included, as Keras reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch's training (validation excluded).
    pub seconds: f64,
}

/// Why a fit ended before its last epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Early stopping: the monitored metric did not improve for `patience` epochs.
    EarlyStopping,
    /// An observer asked to stop.
    Observer,
}

/// The result of a fit: every completed epoch's metrics, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Completed epochs, in order.
    pub epochs: Vec<EpochMetrics>,
    /// Set when training stopped before the planned epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stop>,
    /// With early stopping: the epoch whose weights the model holds at the end
    /// (the best one when `restore_best_weights` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
}

impl History {
    /// The last completed epoch, if any.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }

    /// Wall-clock seconds of all training epochs.
    pub fn train_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }

    /// The history without timings, floats rounded to 6 decimals: stable
    /// for `insta::assert_json_snapshot!` wherever the run is deterministic.
    pub fn snapshot(&self) -> HistorySnapshot {
        HistorySnapshot {
            epochs: self
                .epochs
                .iter()
                .map(|e| EpochSnapshot {
                    epoch: e.epoch,
                    loss: round6(e.loss),
                    accuracy: round6(e.accuracy),
                    val_loss: e.val_loss.map(round6),
                    val_accuracy: e.val_accuracy.map(round6),
                })
                .collect(),
            stopped: self.stopped,
            best_epoch: self.best_epoch,
        }
    }
}

/// [`History::snapshot`]: a history without wall-clock time, rounded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistorySnapshot {
    /// The completed epochs.
    pub epochs: Vec<EpochSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// See [`History::stopped`].
    pub stopped: Option<Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// See [`History::best_epoch`].
    pub best_epoch: Option<usize>,
}

/// One epoch of a [`HistorySnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochSnapshot {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Mean training accuracy.
    pub accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Validation loss, when validated.
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Validation accuracy, when validated.
    pub val_accuracy: Option<f64>,
}

/// Loss, accuracy and confusion matrix of one pass over a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy (plus L2 penalty where the model has one).
    pub loss: f64,
    /// Fraction of correctly classified samples.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts; one row and column per output of the network.
    pub confusion: Vec<Vec<u64>>,
    /// Wall-clock seconds of the pass.
    pub seconds: f64,
}

impl Evaluation {
    /// Number of classes (the network's outputs).
    pub fn classes(&self) -> usize {
        self.confusion.len()
    }

    /// Recall of each class: the share of its samples predicted as it
    /// (NaN for a class without samples).
    pub fn recall(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| row[c] as f64 / row.iter().sum::<u64>() as f64)
            .collect()
    }

    /// The evaluation without wall-clock time, floats rounded to 6 decimals.
    pub fn snapshot(&self) -> EvaluationSnapshot {
        EvaluationSnapshot {
            loss: round6(self.loss),
            accuracy: round6(self.accuracy),
            confusion: self.confusion.clone(),
        }
    }
}

/// [`Evaluation::snapshot`]: an evaluation without wall-clock time, rounded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationSnapshot {
    /// Mean loss, rounded.
    pub loss: f64,
    /// Accuracy, rounded.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// `x` rounded to 6 decimals (through its decimal text, so the JSON shows
/// at most 6 decimals).
pub fn round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.6}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, val: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch,
            loss: 0.123_456_789,
            accuracy: 0.5,
            val_loss: val,
            val_accuracy: val,
            seconds: 1.5,
        }
    }

    #[test]
    fn snapshot_drops_seconds_and_rounds() {
        let h = History {
            epochs: vec![epoch(1, Some(2.0 / 3.0)), epoch(2, None)],
            stopped: Some(Stop::EarlyStopping),
            best_epoch: Some(1),
        };
        let json = serde_json::to_string(&h.snapshot()).unwrap();
        assert_eq!(
            json,
            r#"{"epochs":[{"epoch":1,"loss":0.123457,"accuracy":0.5,"val_loss":0.666667,"val_accuracy":0.666667},{"epoch":2,"loss":0.123457,"accuracy":0.5}],"stopped":"early_stopping","best_epoch":1}"#
        );
        assert_eq!(h.train_seconds(), 3.0);
    }

    #[test]
    fn missing_validation_is_left_out_of_the_json() {
        let json = serde_json::to_value(epoch(1, None)).unwrap();
        assert!(json.get("val_loss").is_none());
        let back: EpochMetrics = serde_json::from_value(json).unwrap();
        assert_eq!(back, epoch(1, None));
        let with = serde_json::to_value(epoch(1, Some(0.25))).unwrap();
        assert_eq!(with["val_accuracy"], 0.25);
    }

    #[test]
    fn recall_per_class() {
        let e = Evaluation {
            loss: 1.0,
            accuracy: 0.5,
            confusion: vec![vec![3, 1], vec![2, 2]],
            seconds: 0.0,
        };
        assert_eq!((e.classes(), e.recall()), (2, vec![0.75, 0.5]));
        assert!(!serde_json::to_string(&e.snapshot())
            .unwrap()
            .contains("seconds"));
    }
}
