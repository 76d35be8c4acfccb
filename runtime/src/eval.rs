//! Evaluation: loss, accuracy and confusion matrix of a model over a labelled
//! set, in batches, without a tape (so dropout is off and nothing is kept for
//! a backward pass).

use std::time::Instant;

use dfdx::nn::Module;
use dfdx::prelude::*;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Evaluation;
use crate::network::Network;
use crate::nn::L2Penalty;
use crate::train::{argmax, device_err};

/// Evaluates `model` on all of `data` in batches of `batch` images.
///
/// The loss is the mean cross-entropy plus the model's L2 penalty, as Keras'
/// `model.evaluate` reports it.
pub fn evaluate<N, M, D>(model: &M, dev: &D, data: &Dataset, batch: usize) -> Result<Evaluation>
where
    N: Network,
    D: Device<f32>,
    M: Module<Tensor<N::BatchedInput, f32, D>, Output = Tensor<N::BatchedOutput, f32, D>>
        + L2Penalty<f32, D>,
{
    let start = Instant::now();
    if data.is_empty() {
        return Err(Error::Config("cannot evaluate on an empty data set".into()));
    }
    let penalty = match model.try_l2_penalty().map_err(device_err)? {
        Some(p) => p.as_vec()[0] as f64,
        None => 0.0,
    };
    let mut confusion = vec![vec![0u64; 10]; 10];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for idx in indices.chunks(batch.max(1)) {
        data.batch_into(idx, &mut x);
        let input = dev
            .try_tensor_from_vec(std::mem::take(&mut x), N::batched_input(idx.len()))
            .map_err(device_err)?;
        let logits = model.try_forward(input).map_err(device_err)?;
        data.labels_into(idx, &mut labels);
        let host = logits.as_vec();
        let classes = host.len() / idx.len();
        for (row, &y) in host.chunks(classes).zip(&labels) {
            let p = argmax(row);
            correct += usize::from(p == y as usize);
            if (y as usize) < 10 && p < 10 {
                confusion[y as usize][p] += 1;
            }
            loss_sum += cross_entropy_row(row, y as usize);
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

/// `-log softmax(row)[y]`, computed stably in f64.
fn cross_entropy_row(row: &[f32], y: usize) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - row[y] as f64
}

/// One-hot targets for `labels`, shaped as the network's batched output.
pub fn labels_to_one_hot<N: Network, D: Device<f32>>(
    dev: &D,
    labels: &[u8],
) -> Result<Tensor<N::BatchedOutput, f32, D>> {
    let shape = N::batched_output(labels.len());
    let classes = shape.num_elements() / labels.len().max(1);
    let mut v = vec![0.0f32; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        if (y as usize) >= classes {
            return Err(Error::Config(format!(
                "label {y} does not fit a network with {classes} outputs"
            )));
        }
        v[i * classes + y as usize] = 1.0;
    }
    dev.try_tensor_from_vec(v, shape).map_err(device_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let ce = cross_entropy_row(&[0.0; 10], 3);
        assert!((ce - 10f64.ln()).abs() < 1e-12);
        // stable for large logits
        let ce = cross_entropy_row(&[1000.0, 0.0], 0);
        assert!(ce.abs() < 1e-12);
    }
}
