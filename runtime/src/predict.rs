//! Prediction: the class and the softmax probabilities of one sample (a
//! tensor of the network's `Input` shape, or sample `i` of a data set) or of
//! a batch, evaluated without a tape (dropout off).
//!
//! ```no_run
//! use netdsl_runtime::prelude::*;
//! network! { pub Net<1, 28, 28> { flatten, dense<10> } }
//! let test = FashionMnist::load(None)?.test;
//! let dev = Cpu::seed_from_u64(0);
//! let model = Model::<Net>::new(&dev)?;
//! // One sample of the network's input type, [1, 28, 28]:
//! let x: Tensor<Rank3<1, 28, 28>, f32, Cpu> = model.input(test.sample(0))?;
//! let p = model.predict(&x)?;
//! println!("class {} with probability {:.2}", p.class, p.probabilities[p.class]);
//! // The same from the data set directly:
//! assert_eq!(model.predict_sample(&test, 0)?, p);
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use dfdx::nn::{BuildOnDevice, Module};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{device_err, Error, Result};
use crate::loss::{argmax, softmax};
use crate::model::{check_data, input_shape, outputs, Model, Trainable};
use crate::network::Network;

/// The predicted class of one sample and the probability of every class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The most probable class (the first one on ties).
    pub class: usize,
    /// Softmax of the logits, one per output.
    pub probabilities: Vec<f32>,
}

impl<N, D> Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    /// One sample's values (channels first, row-major) as a tensor of the
    /// network's input type.
    ///
    /// # Errors
    /// When `values` is not one sample's length.
    pub fn input(&self, values: Vec<f32>) -> Result<Tensor<N::Input, f32, D>>
    where
        N::Input: ConstShape,
    {
        let shape = input_shape::<N>();
        if values.len() != shape.len() {
            return Err(Error::Data(format!(
                "{} values are not one sample of shape {shape}",
                values.len()
            )));
        }
        self.device()
            .try_tensor_from_vec(values, N::Input::default())
            .map_err(device_err)
    }

    /// Predicts one sample.
    pub fn predict(&self, x: &Tensor<N::Input, f32, D>) -> Result<Prediction> {
        let values = x.as_vec();
        let batch = self
            .device()
            .try_tensor_from_vec(values, N::batched_input(1))
            .map_err(device_err)?;
        let mut all = self.predict_batch(batch)?;
        all.pop()
            .ok_or_else(|| Error::Device("no output for one sample".into()))
    }

    /// Predicts every sample of a batch, in order.
    pub fn predict_batch(&self, x: Tensor<N::BatchedInput, f32, D>) -> Result<Vec<Prediction>> {
        let logits = self.module.try_forward(x).map_err(device_err)?.as_vec();
        Ok(logits
            .chunks(outputs::<N>())
            .map(|row| Prediction {
                class: argmax(row),
                probabilities: softmax(row),
            })
            .collect())
    }

    /// Predicts sample `i` of `data`.
    ///
    /// # Errors
    /// When `data` does not fit the network, or `i` is out of range.
    pub fn predict_sample(&self, data: &Dataset, i: usize) -> Result<Prediction> {
        check_data::<N>(data)?;
        if i >= data.len() {
            return Err(Error::Data(format!(
                "sample {i} of a data set of {}",
                data.len()
            )));
        }
        let batch = self
            .device()
            .try_tensor_from_vec(data.sample(i), N::batched_input(1))
            .map_err(device_err)?;
        let mut all = self.predict_batch(batch)?;
        all.pop()
            .ok_or_else(|| Error::Device("no output for one sample".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network;

    network! {
        Pair<2> { dense<3> }
        Pic<1, 2, 2> { flatten, dense<2> }
    }

    #[test]
    fn one_sample_a_batch_and_a_data_set_agree() {
        let dev = Cpu::seed_from_u64(0);
        let mut model = Model::<Pair>::new(&dev).unwrap();
        // Weight [3, 2] = identity-like rows, bias [3] = 0: logits (a, b, 0).
        model
            .set_tensors(vec![vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0], vec![0.0; 3]])
            .unwrap();
        let p = model
            .predict(&model.input(vec![2.0, 1.0]).unwrap())
            .unwrap();
        assert_eq!(p.class, 0);
        let expected = softmax(&[2.0, 1.0, 0.0]);
        assert_eq!(p.probabilities, expected);
        let batch = dev.tensor_from_vec(vec![2.0, 1.0, -1.0, 3.0], (2, Const::<2>));
        let both = model.predict_batch(batch).unwrap();
        assert_eq!((both[0].clone(), both[1].class), (p.clone(), 1));
        let data = Dataset::new(vec![2.0f32, 1.0, -1.0, 3.0], vec![0, 1], 2, 3).unwrap();
        assert_eq!(model.predict_sample(&data, 1).unwrap(), both[1]);
        assert!(model.predict_sample(&data, 2).is_err());
        assert!(model.input(vec![1.0]).is_err());
    }

    #[test]
    fn image_input_type_is_rank3() {
        let dev = Cpu::seed_from_u64(0);
        let model = Model::<Pic>::new(&dev).unwrap();
        let x: Tensor<Rank3<1, 2, 2>, f32, Cpu> = model.input(vec![0.5; 4]).unwrap();
        let p = model.predict(&x).unwrap();
        assert_eq!(p.probabilities.len(), 2);
        let wrong = Dataset::new(vec![0u8; 4], vec![0], 4, 2).unwrap();
        assert!(model.predict_sample(&wrong, 0).is_err());
    }
}
