//! Evaluation: loss, accuracy and confusion matrix of a model over a labelled
//! set, in batches, without a tape (so dropout is off and nothing is kept for
//! a backward pass). The confusion matrix has one row and column per output
//! of the network.
//!
//! ```no_run
//! use netdsl_runtime::prelude::*;
//! network! { pub Net<1, 28, 28> { flatten, dense<10> } }
//! let data = FashionMnist::load(None)?;
//! let model = Model::<Net>::new(&Cpu::seed_from_u64(0))?;
//! let eval = model.evaluate(&data.test)?;
//! println!("accuracy {:.4}\n{}", eval.accuracy, confusion_table(&eval.confusion, data.test.class_names()));
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use std::time::Instant;

use dfdx::nn::{BuildOnDevice, Module};
use dfdx::prelude::*;

use crate::data::Dataset;
use crate::error::{device_err, Result};
use crate::loss::{argmax, cross_entropy_row};
use crate::metrics::Evaluation;
use crate::model::{check_data, outputs, Model, Trainable};
use crate::network::Network;
use crate::nn::L2Penalty;

/// Samples per forward pass of [`Model::evaluate`] (only speed depends on it).
pub const EVAL_BATCH: usize = 500;

impl<N, D> Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    /// Loss, accuracy and confusion matrix over all of `data`.
    ///
    /// The loss is the mean cross-entropy plus the model's L2 penalty, as
    /// Keras' `model.evaluate` reports it.
    ///
    /// # Errors
    /// When `data` is empty, or does not fit the network (shape, classes).
    pub fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        evaluate_batched(self, data, EVAL_BATCH, 0.0)
    }
}

/// [`Model::evaluate`] in batches of `batch` samples, the loss computed with
/// label smoothing `smoothing` (as the training loss was).
pub fn evaluate_batched<N, D>(
    model: &Model<N, D>,
    data: &Dataset,
    batch: usize,
    smoothing: f32,
) -> Result<Evaluation>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    let start = Instant::now();
    check_data::<N>(data)?;
    if data.is_empty() {
        return Err(crate::Error::Config(
            "cannot evaluate on an empty data set".into(),
        ));
    }
    let penalty = match model.module.try_l2_penalty().map_err(device_err)? {
        Some(p) => p.as_vec()[0] as f64,
        None => 0.0,
    };
    let classes = outputs::<N>();
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for idx in indices.chunks(batch.max(1)) {
        data.batch_into(idx, &mut x);
        let input = model
            .device()
            .try_tensor_from_vec(std::mem::take(&mut x), N::batched_input(idx.len()))
            .map_err(device_err)?;
        let logits = model.module.try_forward(input).map_err(device_err)?;
        data.labels_into(idx, &mut labels);
        let host = logits.as_vec();
        // `check_data` made sure every label is below `classes`.
        for (row, &y) in host.chunks(classes).zip(&labels) {
            let (y, p) = (y as usize, argmax(row));
            correct += usize::from(p == y);
            confusion[y][p] += 1;
            loss_sum += cross_entropy_row(row, y, smoothing);
        }
    }
    let n = data.len() as f64;
    Ok(Evaluation {
        loss: loss_sum / n + penalty,
        accuracy: correct as f64 / n,
        confusion,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A confusion matrix as a text table: rows are true classes, columns
/// predicted ones, each row labelled with its class name when given.
///
/// ```
/// use netdsl_runtime::eval::confusion_table;
/// let names = ["cat".to_string(), "dog".to_string()];
/// assert_eq!(confusion_table(&[vec![5, 1], vec![0, 4]], Some(&names)), "\
/// true \\ predicted   0   1
///          cat (0)   5   1
///          dog (1)   0   4
/// ");
/// ```
pub fn confusion_table(confusion: &[Vec<u64>], class_names: Option<&[String]>) -> String {
    let label = |c: usize| match class_names.and_then(|n| n.get(c)) {
        Some(name) => format!("{name} ({c})"),
        None => c.to_string(),
    };
    let head = "true \\ predicted";
    let first = (0..confusion.len())
        .map(|c| label(c).len())
        .chain([head.len()])
        .max()
        .unwrap_or(0);
    let width = confusion
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .chain([confusion.len().saturating_sub(1).to_string().len()])
        .max()
        .unwrap_or(1)
        + 3;
    let mut out = format!("{head:>first$}");
    for c in 0..confusion.len() {
        out += &format!("{c:>width$}");
    }
    out.push('\n');
    for (c, row) in confusion.iter().enumerate() {
        out += &format!("{:>first$}", label(c));
        for v in row {
            out += &format!("{v:>width$}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network;

    network! {
        Three<4> { dense<3> }
        Twelve<4> { dense<12> }
    }

    /// `n` 4-value samples labelled `i % classes`.
    fn data(n: usize, classes: usize) -> Dataset {
        let values: Vec<f32> = (0..n * 4).map(|i| (i % 7) as f32 / 7.0).collect();
        let labels = (0..n).map(|i| (i % classes) as u32).collect();
        Dataset::new(values, labels, 4, classes).unwrap()
    }

    #[test]
    fn confusion_is_sized_by_the_outputs() {
        let dev = Cpu::seed_from_u64(0);
        let three = Model::<Three>::new(&dev).unwrap();
        let e = three.evaluate(&data(90, 3)).unwrap();
        assert_eq!(
            (e.classes(), e.confusion.iter().flatten().sum::<u64>()),
            (3, 90)
        );
        let row_sums: Vec<u64> = e.confusion.iter().map(|r| r.iter().sum()).collect();
        assert_eq!(row_sums, [30, 30, 30]);

        let twelve = Model::<Twelve>::new(&dev).unwrap();
        let e = twelve.evaluate(&data(600, 12)).unwrap();
        assert_eq!(
            (e.classes(), e.confusion.iter().flatten().sum::<u64>()),
            (12, 600)
        );
        assert!(e.confusion.iter().all(|r| r.iter().sum::<u64>() == 50));
        let correct: u64 = (0..12).map(|c| e.confusion[c][c]).sum();
        assert_eq!(correct as f64 / 600.0, e.accuracy);
        // Fewer classes than outputs: still a 12x12 matrix.
        assert_eq!(twelve.evaluate(&data(30, 3)).unwrap().classes(), 12);
    }

    #[test]
    fn labels_the_network_cannot_predict_are_an_error() {
        let model = Model::<Twelve>::new(&Cpu::seed_from_u64(0)).unwrap();
        let err = model.evaluate(&data(26, 13)).unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::TooManyClasses {
                    classes: 13,
                    outputs: 12,
                    ..
                }
            ),
            "{err}"
        );
        let empty = Dataset::new(Vec::<f32>::new(), vec![], 4, 3).unwrap();
        assert!(model.evaluate(&empty).is_err());
    }
}
