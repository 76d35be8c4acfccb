//! Where `study run` (also `sweep`, `calibrate`) and `study bench` compute:
//! `--device cpu`, the default, or `--device cuda`.
//!
//! ```text
//! --device cpu    every build; a run's numbers are the same for any thread count
//! --device cuda   a build with the `cuda` feature and an NVIDIA GPU; checked before any
//!                 data is loaded or file written ([`check`]):
//!                   built without the feature    an error saying how to build with it
//!                   the driver fails or sees no  an error naming the driver's code
//!                   device (cuInit, cuDeviceGetCount), not cudarc's panic
//! ```
//!
//! A `cuda` build links the driver's `libcuda.so.1` when it loads (cudarc 0.9
//! cannot load it later), so on a machine without any NVIDIA driver it does
//! not start at all: the loader says `libcuda.so.1: cannot open shared object
//! file`. The default build is the one for such machines.
//!
//! The device is part of a run's identity (`identity.rs`): GPU runs are not
//! bit-reproducible (cuBLAS and atomic adds sum in varying order), so a
//! checkpoint continues only on the device that wrote it.

use std::fmt;

use anyhow::Result;
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::train::EpochDevice;
use serde::{Deserialize, Serialize};

/// `--device`: which dfdx device trains.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU (dfdx's `Cpu` with this project's kernels).
    #[default]
    Cpu,
    /// An NVIDIA GPU (dfdx's `Cuda`, device 0): needs a build with `--features cuda`.
    Cuda,
}

impl DeviceKind {
    /// The name on the command line and in identities: `cpu`, `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }

    /// Whether this is the default, which identities leave out.
    pub fn is_cpu(&self) -> bool {
        *self == DeviceKind::Cpu
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of `--device cuda` in a build without the `cuda` feature.
pub const NOT_BUILT: &str = "--device cuda: this `study` was built without CUDA; \
    build it with `eval \"$(scripts/cuda-toolkit.sh)\"` and \
    `CARGO_TARGET_DIR=target/cuda cargo build --release -p netdsl-experiments --features cuda` \
    (README, \"GPU\")";

/// Checks, before anything is built, that `kind` can compute here; returns
/// what to tell the user about it (the GPU's name), if anything.
///
/// # Errors
/// `--device cuda` in a build without the `cuda` feature ([`NOT_BUILT`]), or
/// when the driver fails to initialise or sees no device (its code named).
pub fn check(kind: DeviceKind) -> Result<Option<String>> {
    match kind {
        DeviceKind::Cpu => Ok(None),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => {
            let info = netdsl_runtime::cuda_probe().map_err(|e| anyhow::anyhow!(no_device(&e)))?;
            Ok(Some(format!("cuda: {info}")))
        }
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => anyhow::bail!(NOT_BUILT),
    }
}

/// The one line for a failed driver probe: `--device cuda: no usable CUDA
/// device: cuInit failed: CUDA_ERROR_NO_DEVICE (100): ...`.
#[cfg(feature = "cuda")]
pub fn no_device(probe: &netdsl_runtime::Error) -> String {
    let cause = match probe {
        netdsl_runtime::Error::Device(message) => message.clone(),
        other => other.to_string(),
    };
    format!("--device cuda: no usable CUDA device: {cause}")
}

/// A device the study trains on: its `--device` name, and how a job builds
/// one from its seed (which drives the parameters' initialisation and the
/// dropout masks).
pub trait StudyDevice: EpochDevice {
    const KIND: DeviceKind;
    /// The device of a job with this seed.
    fn seeded(seed: u64) -> Result<Self>;
}

impl StudyDevice for Cpu {
    const KIND: DeviceKind = DeviceKind::Cpu;
    fn seeded(seed: u64) -> Result<Self> {
        Ok(Cpu::seed_from_u64(seed))
    }
}

/// Device 0, checked by the runtime's `cuda_device` (an error, not a panic,
/// when the driver fails).
#[cfg(feature = "cuda")]
impl StudyDevice for Cuda {
    const KIND: DeviceKind = DeviceKind::Cuda;
    fn seeded(seed: u64) -> Result<Self> {
        Ok(netdsl_runtime::cuda_device(seed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json() {
        for kind in [DeviceKind::Cpu, DeviceKind::Cuda] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<DeviceKind>(&json).unwrap(), kind);
        }
        assert!(check(DeviceKind::Cpu).unwrap().is_none());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        let e = check(DeviceKind::Cuda).unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
        assert!(e.contains("--features cuda"), "{e}");
        assert!(!e.contains('\n'));
    }
}
