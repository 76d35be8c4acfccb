//! Checkpoints: model weights, Adam state and training progress in one
//! safetensors file, written atomically (temporary file, fsync, rename), so a
//! crash leaves the previous checkpoint or the new one, never half of one.
//!
//! Layout of `<id>.safetensors` (all tensors little-endian f32, row-major):
//!
//! ```text
//! <path>                   model weights under dfdx's names, e.g. "0.0.weight" [32, 1, 3, 3]
//!                          (tuple indices, then the layer's field: Conv2D weight [O, I, K, K],
//!                          Dense weight [OUT, IN], biases [O])
//! optimizer.m.<path>       Adam's first moment for that tensor, same shape
//! optimizer.v.<path>       Adam's second moment
//! metadata "netdsl"        JSON of [`CheckpointMeta`]: network, params, epoch, Adam step, history
//! ```
//!
//! Any safetensors reader (Python's `safetensors.numpy.load_file`) reads it;
//! dfdx's `load_safetensors` reads the weights and ignores the rest.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use ::safetensors::tensor::{Dtype as StDtype, TensorView};
use ::safetensors::SafeTensors;
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::EpochMetrics;
use crate::optim::{Adam, AdamConfig};

/// What a checkpoint says about the run it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The network's declared name; a checkpoint of another network is refused.
    pub network: String,
    pub params: usize,
    /// Last completed epoch (1-based).
    pub epoch: usize,
    /// Adam's update count.
    pub adam_step: u64,
    /// Metrics of the completed epochs.
    pub history: Vec<EpochMetrics>,
}

/// Writes `model`, `adam` and `meta` to `path` atomically.
pub fn save<M: TensorCollection<f32, D>, D: Device<f32>>(
    path: &Path,
    model: &M,
    adam: &Adam,
    meta: &CheckpointMeta,
) -> Result<()> {
    let tensors = collect_tensors(model)?;
    let (m, v) = adam.moments();
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, shape, data)) in tensors.into_iter().enumerate() {
        if let (Some(m), Some(v)) = (m.get(i), v.get(i)) {
            named.push((format!("optimizer.m.{name}"), shape.clone(), le_bytes(m)));
            named.push((format!("optimizer.v.{name}"), shape.clone(), le_bytes(v)));
        }
        named.push((name, shape, le_bytes(&data)));
    }
    let views = named
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(StDtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| corrupt(path, format!("{e:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(meta).map_err(|e| corrupt(path, e.to_string()))?;
    let metadata = HashMap::from([("netdsl".to_string(), json)]);
    let bytes = ::safetensors::serialize(views, &Some(metadata))
        .map_err(|e| corrupt(path, format!("{e:?}")))?;
    write_atomic(path, &bytes)
}

/// Reads the metadata of a checkpoint without touching a model.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = read(path)?;
    meta_of(path, &bytes)
}

/// Loads weights into `model` and returns the Adam state and metadata.
/// Refuses a checkpoint of another network (name or parameter count differ).
pub fn load<N: crate::network::Network, M: TensorCollection<f32, D>, D: Device<f32>>(
    path: &Path,
    model: &mut M,
    config: AdamConfig,
) -> Result<(Adam, CheckpointMeta)> {
    let bytes = read(path)?;
    let meta = meta_of(path, &bytes)?;
    if meta.network != N::NAME || meta.params != N::PARAMS {
        return Err(Error::Config(format!(
            "checkpoint {} is of network {} ({} parameters), not {} ({} parameters)",
            path.display(),
            meta.network,
            meta.params,
            N::NAME,
            N::PARAMS
        )));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, format!("{e:?}")))?;
    let names: Vec<(String, Vec<usize>)> = collect_tensors(model)?
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect();
    let read_f32 = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = st
            .tensor(name)
            .map_err(|e| corrupt(path, format!("{name}: {e:?}")))?;
        if view.shape() != shape || view.dtype() != StDtype::F32 {
            return Err(corrupt(
                path,
                format!("{name} has shape {:?}, expected {shape:?}", view.shape()),
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let mut weights = Vec::new();
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for (name, shape) in &names {
        weights.push(read_f32(name, shape)?);
        if meta.adam_step > 0 {
            m.push(read_f32(&format!("optimizer.m.{name}"), shape)?);
            v.push(read_f32(&format!("optimizer.v.{name}"), shape)?);
        }
    }
    let mut writer = WriteTensors {
        data: weights.into_iter(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut writer,
    })
    .map_err(|e| Error::Device(format!("{e:?}")))?;
    Ok((Adam::from_state(config, meta.adam_step, m, v), meta))
}

/// One tensor of a model: dfdx name, shape, values.
type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// The model's tensors, in visit order.
fn collect_tensors<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
) -> Result<Vec<NamedTensor>> {
    let mut collect = CollectTensors { out: Vec::new() };
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut collect,
    })
    .map_err(|e| Error::Device(format!("{e:?}")))?;
    Ok(collect.out)
}

struct CollectTensors {
    out: Vec<NamedTensor>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for CollectTensors {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        (t, name): (&Tensor<S, f32, D>, String),
    ) -> std::result::Result<Option<Tensor<S, f32, D>>, D::Err> {
        let shape = t.shape().concrete().into_iter().collect();
        self.out.push((name, shape, t.as_vec()));
        Ok(None)
    }
}

struct WriteTensors<I> {
    data: I,
}

impl<D: Device<f32>, I: Iterator<Item = Vec<f32>>> TensorVisitor<f32, D> for WriteTensors<I> {
    type Viewer = dfdx::nn::tensor_collection::ViewTensorMut;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        t: &mut Tensor<S, f32, D>,
    ) -> std::result::Result<Option<Tensor<S, f32, D>>, D::Err> {
        if let Some(values) = self.data.next() {
            t.copy_from(&values);
        }
        Ok(None)
    }
}

fn meta_of(path: &Path, bytes: &[u8]) -> Result<CheckpointMeta> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, format!("{e:?}")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("netdsl"))
        .ok_or_else(|| corrupt(path, "no netdsl metadata: not a netdsl checkpoint".into()))?;
    serde_json::from_str(json).map_err(|e| corrupt(path, e.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn corrupt(path: &Path, what: String) -> Error {
    Error::Config(format!("bad checkpoint {}: {what}", path.display()))
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the
/// new one: a temporary file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata's f64 metrics parse back to the same bits (serde_json's
    /// `float_roundtrip` feature: without it this value came back one ULP
    /// off, and a resumed run's history differed from the uninterrupted one).
    #[test]
    fn metadata_round_trips_f64_exactly() {
        let metrics = EpochMetrics {
            epoch: 1,
            loss: 2.0913792490959167,
            accuracy: 0.2325,
            val_loss: 1.7418665523231973,
            val_accuracy: 0.406,
            seconds: 0.1,
        };
        let meta = CheckpointMeta {
            network: "Net".into(),
            params: 1,
            epoch: 1,
            adam_step: 20,
            history: vec![metrics],
        };
        let json = serde_json::to_string(&meta).unwrap();
        let back: CheckpointMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, meta);
    }
}
