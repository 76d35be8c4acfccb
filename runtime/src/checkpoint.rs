//! Checkpoints: a model's weights, and optionally the optimizer's state and
//! the training history, in one safetensors file written atomically
//! (temporary file, fsync, rename), so a crash leaves the previous file or
//! the new one, never half of one.
//!
//! For users, one call each way: [`Model::save`] and [`Model::load`] (the
//! network's name, parameter count and every tensor's shape are checked, and
//! non-finite values are refused). Resumable training builds on the same
//! file: [`save_training`] adds the optimizer's state and the history, [`load_training`]
//! gives a `Trainer` that continues where it stopped.
//!
//! Layout (all tensors little-endian f32, row-major):
//!
//! ```text
//! <path>                   model weights under dfdx's names, e.g. "0.0.weight" [32, 1, 3, 3]
//!                          (tuple indices, then the layer's field: Conv2D weight [O, I, KH, KW],
//!                          Dense weight [OUT, IN], biases [O])
//! optimizer.<slot>.<path>  the optimizer's state for that tensor, same shape
//!                          (Adam: slots m and v; SGD with momentum: momentum)
//! metadata "netdsl"        JSON of [`CheckpointMeta`]: network, params, training state, extra
//! ```
//!
//! Any safetensors reader (Python's `safetensors.numpy.load_file`) reads it;
//! dfdx's `load_safetensors` reads the weights and ignores the rest.
//!
//! ```no_run
//! use netdsl_runtime::prelude::*;
//! network! { pub Net<4> { dense<8>, relu, dense<3> } }
//! let dev = Cpu::seed_from_u64(0);
//! let model = Model::<Net>::new(&dev)?;
//! model.save("net.safetensors")?;
//! let mut again = Model::<Net>::new(&dev)?;
//! again.load("net.safetensors")?;
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ::safetensors::tensor::{Dtype as StDtype, TensorView};
use ::safetensors::SafeTensors;
use dfdx::nn::BuildOnDevice;
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::History;
use crate::model::{Model, NamedTensor, Trainable};
use crate::network::Network;
use crate::optim::{Optimizer, OptimizerState};
use crate::train::{EpochDevice, Fit, Trainer};

/// What a checkpoint says about itself (the `netdsl` metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The network's declared name; a checkpoint of another network is refused.
    pub network: String,
    /// Its trainable parameter count.
    pub params: usize,
    /// The training state, in checkpoints written by [`save_training`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingMeta>,
    /// Whatever the writer adds (e.g. the identity of a run); `null` when nothing.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// The training state of a checkpoint: the optimizer (its tensors are
/// `optimizer.<slot>.<name>`), its step count, the history so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingMeta {
    /// The optimizer's kind and hyperparameters.
    pub optimizer: Optimizer,
    /// Updates made so far.
    pub step: u64,
    /// The completed epochs.
    pub history: History,
}

impl<N, D> Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    /// Saves the weights to `path` (atomically), with the network's name and
    /// parameter count.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write(path.as_ref(), self, None, &serde_json::Value::Null)
    }

    /// Loads weights saved by [`Model::save`] (or [`save_training`]) into this model.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the file is not a netdsl checkpoint, is of
    /// another network (name or parameter count), lacks a tensor, has one of
    /// another shape, or holds a non-finite value (naming the tensor).
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<CheckpointMeta> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let (meta, st) = open::<N>(path, &bytes)?;
        let weights = read_weights(path, &st, &self.tensors()?)?;
        self.set_tensors(weights)?;
        Ok(meta)
    }
}

/// Saves the model with the training state (the optimizer's and the
/// history, as a [`Trainer`] or an observer's [`EpochEnd`](crate::train::EpochEnd)
/// holds them) and `extra` metadata, so that [`load_training`] can resume.
pub fn save_training<N, D>(
    path: &Path,
    model: &Model<N, D>,
    optimizer: &OptimizerState,
    history: &History,
    extra: &serde_json::Value,
) -> Result<()>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    write(path, model, Some((optimizer, history)), extra)
}

/// Loads a checkpoint written by [`save_training`] into `model` and returns a
/// trainer for `fit` that continues after its last epoch, with its metadata.
///
/// # Errors
/// Every error of [`Model::load`]; [`Error::Checkpoint`] when the file holds
/// no training state; [`Error::Config`] when its optimizer is not `fit`'s or
/// it holds more epochs than `fit.epochs`.
pub fn load_training<N, D>(
    path: &Path,
    model: &mut Model<N, D>,
    fit: Fit,
) -> Result<(Trainer<N, D>, CheckpointMeta)>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: EpochDevice,
{
    let bytes = read(path)?;
    let (meta, st) = open::<N>(path, &bytes)?;
    let training = meta.training.clone().ok_or_else(|| Error::Checkpoint {
        path: path.to_owned(),
        reason: "it holds weights only, no training state to resume".into(),
    })?;
    let tensors = model.tensors()?;
    let weights = read_weights(path, &st, &tensors)?;
    let slot_names = training.optimizer.slot_names();
    let mut slots = vec![Vec::new(); slot_names.len()];
    if training.step > 0 {
        for (slot, values) in slot_names.iter().zip(&mut slots) {
            for t in tensors.iter().filter(|t| t.trainable) {
                let name = format!("optimizer.{slot}.{}", t.name);
                values.push(read_tensor(path, &st, &name, &t.shape)?);
            }
        }
    }
    let optimizer = OptimizerState::from_parts(training.optimizer, training.step, slots)?;
    let trainer = Trainer::resume(fit, optimizer, training.history)?;
    model.set_tensors(weights)?;
    Ok((trainer, meta))
}

/// Reads a checkpoint's metadata without touching a model.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = read(path)?;
    meta_of(path, &bytes)
}

/// Writes the model's tensors, the optimizer's slots and the metadata.
fn write<N, D>(
    path: &Path,
    model: &Model<N, D>,
    training: Option<(&OptimizerState, &History)>,
    extra: &serde_json::Value,
) -> Result<()>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    let tensors = model.tensors()?;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    if let Some((optimizer, _)) = training {
        let names = optimizer.config.slot_names();
        for (slot, values) in names.iter().zip(optimizer.slots()) {
            // The optimizer keeps state for the trainable tensors, in order.
            let trainable = tensors.iter().filter(|t| t.trainable);
            for (t, v) in trainable.zip(values) {
                let name = format!("optimizer.{slot}.{}", t.name);
                named.push((name, t.shape.clone(), le_bytes(v)));
            }
        }
    }
    for t in &tensors {
        named.push((t.name.clone(), t.shape.clone(), le_bytes(&t.values)));
    }
    let views = named
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(StDtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::Checkpoint {
                    path: path.to_owned(),
                    reason: format!("{name}: {e:?}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = CheckpointMeta {
        network: N::NAME.to_string(),
        params: N::PARAMS,
        training: training.map(|(optimizer, history)| TrainingMeta {
            optimizer: optimizer.config,
            step: optimizer.step,
            history: history.clone(),
        }),
        extra: extra.clone(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| Error::Checkpoint {
        path: path.to_owned(),
        reason: format!("metadata: {e}"),
    })?;
    let metadata = HashMap::from([("netdsl".to_string(), json)]);
    let bytes =
        ::safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::Checkpoint {
            path: path.to_owned(),
            reason: format!("{e:?}"),
        })?;
    write_atomic(path, &bytes)
}

/// Parses the file and checks that it is a checkpoint of `N`.
fn open<'a, N: Network>(path: &Path, bytes: &'a [u8]) -> Result<(CheckpointMeta, SafeTensors<'a>)> {
    let meta = meta_of(path, bytes)?;
    if meta.network != N::NAME || meta.params != N::PARAMS {
        return Err(Error::Checkpoint {
            path: path.to_owned(),
            reason: format!(
                "it is of network {} ({} parameters), not {} ({} parameters)",
                meta.network,
                meta.params,
                N::NAME,
                N::PARAMS
            ),
        });
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| corrupt(path, format!("{e:?}")))?;
    Ok((meta, st))
}

/// The values of the model's `tensors`, by name and shape, from the file.
fn read_weights(path: &Path, st: &SafeTensors, tensors: &[NamedTensor]) -> Result<Vec<Vec<f32>>> {
    tensors
        .iter()
        .map(|t| read_tensor(path, st, &t.name, &t.shape))
        .collect()
}

/// Tensor `name` of `shape` as f32 values, all finite.
fn read_tensor(path: &Path, st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let view = st.tensor(name).map_err(|_| Error::Checkpoint {
        path: path.to_owned(),
        reason: format!("it has no tensor {name}"),
    })?;
    if view.shape() != shape || view.dtype() != StDtype::F32 {
        return Err(Error::Checkpoint {
            path: path.to_owned(),
            reason: format!(
                "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            ),
        });
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Checkpoint {
            path: path.to_owned(),
            reason: format!(
                "tensor {name} holds the non-finite value {} at {i}",
                values[i]
            ),
        });
    }
    Ok(values)
}

fn meta_of(path: &Path, bytes: &[u8]) -> Result<CheckpointMeta> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, format!("{e:?}")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("netdsl"))
        .ok_or_else(|| corrupt(path, "no netdsl metadata: not a netdsl checkpoint".into()))?;
    serde_json::from_str(json).map_err(|e| corrupt(path, format!("metadata: {e}")))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io_error(path))
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn corrupt(path: &Path, reason: String) -> Error {
    Error::Checkpoint {
        path: path.to_owned(),
        reason: format!("corrupt: {reason}"),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the
/// new one: a temporary file beside it (named after the path, this process
/// and a counter, so concurrent writers never share one), fsync, rename,
/// fsync of the directory. The temporary file is removed on every error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_atomically(path, |tmp| {
        let mut f = fs::File::create(tmp).map_err(io_error(tmp))?;
        f.write_all(bytes).map_err(io_error(tmp))?;
        f.sync_all().map_err(io_error(tmp))
    })
}

/// [`write_atomic`] for writers that create the file themselves from a path
/// (an image encoder): `write` writes the temporary path it is given, which
/// is then fsynced and renamed to `path`. The temporary file is removed when
/// `write` or anything after it fails.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    replace_atomically(path, |tmp| {
        write(tmp)?;
        // Opened for writing: Windows cannot flush a read-only handle.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .map_err(io_error(tmp))?;
        f.sync_all().map_err(io_error(tmp))
    })
}

/// The temporary file of one atomic write of `path`: `<path>.<pid>.<n>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = path.as_os_str().to_owned();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    PathBuf::from(name)
}

/// `write` fills a temporary file (durably), which then replaces `path`; the
/// directory is fsynced so that the rename survives a crash.
fn replace_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let written = write(&tmp).and_then(|()| fs::rename(&tmp, path).map_err(io_error(path)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Maps an I/O error on `path` to [`Error::Io`].
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::EpochMetrics;
    use crate::network;

    network! {
        Small<3> { dense<4>, relu, dense<2> }
        Other<3> { dense<2> }
    }

    /// The metadata's f64 metrics parse back to the same bits (serde_json's
    /// `float_roundtrip` feature: without it this value came back one ULP
    /// off, and a resumed run's history differed from the uninterrupted one).
    #[test]
    fn metadata_round_trips_f64_exactly() {
        let metrics = EpochMetrics {
            epoch: 1,
            loss: 2.0913792490959167,
            accuracy: 0.2325,
            val_loss: Some(1.7418665523231973),
            val_accuracy: Some(0.406),
            seconds: 0.1,
        };
        let meta = CheckpointMeta {
            network: "Net".into(),
            params: 1,
            training: Some(TrainingMeta {
                optimizer: Optimizer::default(),
                step: 20,
                history: History {
                    epochs: vec![metrics],
                    ..History::default()
                },
            }),
            extra: serde_json::json!({"seed": 3}),
        };
        let json = serde_json::to_string(&meta).unwrap();
        let back: CheckpointMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn save_load_checks_network_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.safetensors");
        let dev = Cpu::seed_from_u64(5);
        let model = Model::<Small>::new(&dev).unwrap();
        model.save(&path).unwrap();
        let mut other = Model::<Small>::new(&Cpu::seed_from_u64(6)).unwrap();
        assert_ne!(other.tensors().unwrap(), model.tensors().unwrap());
        let meta = other.load(&path).unwrap();
        assert_eq!(
            (meta.network.as_str(), meta.params, meta.training),
            ("Small", 26, None)
        );
        assert_eq!(other.tensors().unwrap(), model.tensors().unwrap());

        let err = Model::<Other>::new(&dev).unwrap().load(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("it is of network Small (26 parameters), not Other (8 parameters)"),
            "{err}"
        );

        let mut broken = model.clone();
        let mut values: Vec<Vec<f32>> = broken
            .tensors()
            .unwrap()
            .into_iter()
            .map(|t| t.values)
            .collect();
        values[2][1] = f32::NAN;
        broken.set_tensors(values).unwrap();
        broken.save(&path).unwrap();
        let err = other.load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("tensor 2.weight holds the non-finite value NaN at 1"),
            "{err}"
        );

        std::fs::write(&path, b"not a checkpoint").unwrap();
        let err = other.load(&path).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["small.safetensors"]);
    }

    #[test]
    fn write_atomic_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a-dir");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"keep").unwrap();
        // Renaming a file over a non-empty directory fails.
        assert!(write_atomic(&target, b"data").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a-dir"]);

        // A writer that fails halfway leaves nothing either.
        let png = dir.path().join("figure.png");
        let err = write_atomic_with(&png, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Plot {
                path: tmp.to_owned(),
                message: "drawing failed".into(),
            })
        });
        assert!(err.is_err());
        write_atomic_with(&png, |tmp| {
            std::fs::write(tmp, b"whole").map_err(io_error(tmp))
        })
        .unwrap();
        assert_eq!(std::fs::read(&png).unwrap(), b"whole");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a-dir", "figure.png"]);
    }
}
