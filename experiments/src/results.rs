//! The result of one variant's run, `<out>/<id>.json`: what `study run`
//! writes and `study report` reads back, so field names are part of the file
//! format.

use netdsl_runtime::metrics::EpochMetrics;
use serde::{Deserialize, Serialize};

use crate::identity::Identity;

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
    /// Everything that determined the numbers (absent in files written
    /// before identities were recorded; such a file never counts as finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub epochs: Vec<EpochMetrics>,
    pub train_seconds: f64,
    pub test_seconds: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// `confusion[true][predicted]` on the test set.
    pub confusion: Vec<Vec<u64>>,
}
