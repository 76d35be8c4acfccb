//! [`Model`]: a `network!` network built on a device, with what every step
//! after declaring needs: training ([`Model::fit`], in `train.rs`),
//! evaluation ([`Model::evaluate`], `eval.rs`), prediction
//! ([`Model::predict`], `predict.rs`) and checkpoints ([`Model::save`],
//! [`Model::load`], `checkpoint.rs`).
//!
//! The device is a type parameter: `Cpu`, or with the `cuda` feature dfdx's
//! `Cuda`, built with `cuda_device` (which asks the driver first, so that a
//! machine without a GPU gets an error, not cudarc's panic); see
//! [`cuda_available`].
//!
//! ```
//! use netdsl_runtime::prelude::*;
//!
//! network! { pub Tiny<4> { dense<8>, relu, dense<3> } }
//!
//! let dev = Cpu::seed_from_u64(0);
//! let model = Model::<Tiny>::new(&dev)?;
//! assert_eq!(model.input_shape(), SampleShape::Vector(4));
//! assert_eq!(model.outputs(), 3);
//! # Ok::<(), netdsl_runtime::Error>(())
//! ```

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::nn::{BuildOnDevice, Module, ModuleMut};
use dfdx::prelude::*;

use crate::data::{Dataset, SampleShape};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::nn::{L2Penalty, Regularizer, Regularizers};

/// A network `N` declared with `network!`, built on device `D` (the CPU by
/// default): its parameters in [`Model::module`], a dfdx module.
pub struct Model<N, D = Cpu>
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    /// The dfdx module holding the parameters (`dev.build_module::<N, f32>()`).
    pub module: N::Built,
    device: D,
}

impl<N, D> Clone for Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Clone,
    D: Device<f32>,
{
    fn clone(&self) -> Self {
        Model {
            module: self.module.clone(),
            device: self.device.clone(),
        }
    }
}

impl<N, D> std::fmt::Debug for Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Model<{}> ({} parameters)", N::NAME, N::PARAMS)
    }
}

/// What a built network must be to be trained on device `D` as network `N`:
/// `forward_mut` on a taped batch (training, dropout on), `forward` on an
/// untaped one (evaluation), parameters visible to the optimizer, and an L2
/// penalty. Every `network!` network is.
pub trait Trainable<N: Network, D: Device<f32>>:
    TensorCollection<f32, D>
    + L2Penalty<f32, D>
    + Regularizers
    + ModuleMut<
        Tensor<N::BatchedInput, f32, D, OwnedTape<f32, D>>,
        Output = Tensor<N::BatchedOutput, f32, D, OwnedTape<f32, D>>,
    > + Module<Tensor<N::BatchedInput, f32, D>, Output = Tensor<N::BatchedOutput, f32, D>>
{
}

impl<N: Network, D: Device<f32>, M> Trainable<N, D> for M where
    M: TensorCollection<f32, D>
        + L2Penalty<f32, D>
        + Regularizers
        + ModuleMut<
            Tensor<N::BatchedInput, f32, D, OwnedTape<f32, D>>,
            Output = Tensor<N::BatchedOutput, f32, D, OwnedTape<f32, D>>,
        > + Module<Tensor<N::BatchedInput, f32, D>, Output = Tensor<N::BatchedOutput, f32, D>>
{
}

impl<N, D> Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    /// Builds `N` on `device` with fresh parameters (Keras' initialisation:
    /// Glorot uniform kernels, zero biases), drawn from the device's seeded RNG.
    pub fn new(device: &D) -> Result<Self> {
        let module = N::try_build_on_device(device).map_err(|e| Error::Device(format!("{e:?}")))?;
        Ok(Model {
            module,
            device: device.clone(),
        })
    }

    /// A model around a module built already (`dev.build_module::<N, f32>()`).
    pub fn from_module(device: &D, module: N::Built) -> Self {
        Model {
            module,
            device: device.clone(),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The shape of one input sample: `C x H x W` or a vector length.
    pub fn input_shape(&self) -> SampleShape {
        input_shape::<N>()
    }

    /// The number of outputs (classes) of one sample.
    pub fn outputs(&self) -> usize {
        outputs::<N>()
    }

    /// Checks that `data` fits this network: same sample shape, and no more
    /// classes than outputs.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming both shapes (with a hint to flatten
    /// images for a vector network of the same size), or [`Error::TooManyClasses`].
    pub fn check_data(&self, data: &Dataset) -> Result<()> {
        check_data::<N>(data)
    }

    /// The trainable and non-trainable tensors, in dfdx's visiting order,
    /// e.g. `0.0.weight` of shape `[32, 1, 3, 3]`.
    pub fn tensors(&self) -> Result<Vec<NamedTensor>> {
        let mut collect = CollectTensors { out: Vec::new() };
        <N::Built as TensorCollection<f32, D>>::iter_tensors(&mut RecursiveWalker {
            m: (&self.module, String::new()),
            f: &mut collect,
        })
        .map_err(|e| Error::Device(format!("{e:?}")))?;
        Ok(collect.out)
    }

    /// Overwrites every tensor with `values`, one `Vec` per tensor in the order
    /// of [`Model::tensors`].
    ///
    /// # Errors
    /// When the number of tensors or any length differs.
    pub fn set_tensors(&mut self, values: Vec<Vec<f32>>) -> Result<()> {
        let count = values.len();
        let mut writer = WriteTensors {
            data: values.into_iter(),
            visited: 0,
            mismatch: None,
        };
        <N::Built as TensorCollection<f32, D>>::iter_tensors(&mut RecursiveWalker {
            m: &mut self.module,
            f: &mut writer,
        })
        .map_err(|e| Error::Device(format!("{e:?}")))?;
        if let Some((index, expected, found)) = writer.mismatch {
            return Err(Error::Config(format!(
                "tensor {index} of {} holds {expected} values, {found} given",
                N::NAME
            )));
        }
        if writer.visited != count {
            return Err(Error::Config(format!(
                "{} has {} tensors, {count} given",
                N::NAME,
                writer.visited
            )));
        }
        Ok(())
    }
}

impl<N, D> Model<N, D>
where
    N: Network + BuildOnDevice<D, f32>,
    N::Built: Trainable<N, D>,
    D: Device<f32>,
{
    /// Every dropout rate and kernel L2 factor of the network, in layer
    /// order: `(kind, value)`. Convolution and dense layers without a
    /// declared `l2` report 0.
    ///
    /// ```
    /// use netdsl_runtime::prelude::*;
    /// use netdsl_runtime::nn::Regularizer::{DenseL2, Dropout};
    /// network! { pub Net<4> { dense<8, l2 = 0.01>, relu, dropout<0.5>, dense<3> } }
    /// let mut model = Model::<Net>::new(&Cpu::seed_from_u64(0))?;
    /// assert_eq!(model.regularizers(), [(DenseL2, 0.01), (Dropout, 0.5), (DenseL2, 0.0)]);
    /// // Halve every dropout rate, put λ = 0.001 on every dense kernel:
    /// model.set_regularizers(|kind, _, value| if kind == Dropout { value / 2.0 } else { 0.001 })?;
    /// assert_eq!(model.regularizers(), [(DenseL2, 0.001), (Dropout, 0.25), (DenseL2, 0.001)]);
    /// # Ok::<(), netdsl_runtime::Error>(())
    /// ```
    pub fn regularizers(&self) -> Vec<(Regularizer, f32)> {
        let mut out = Vec::new();
        self.module.regularizers(&mut out);
        out
    }

    /// Changes the regularisers without rebuilding: `f(kind, index among that
    /// kind (0-based), current value)` returns the new value. They stay as
    /// set until changed again or the model is rebuilt (a checkpoint holds
    /// weights only).
    ///
    /// # Errors
    /// [`Error::Config`] when a rate is outside `[0, 1)` or a factor is
    /// negative or not finite; nothing is changed then.
    pub fn set_regularizers(
        &mut self,
        mut f: impl FnMut(Regularizer, usize, f32) -> f32,
    ) -> Result<()> {
        let mut seen = std::collections::HashMap::new();
        let mut values = Vec::new();
        for (kind, value) in self.regularizers() {
            let index = seen.entry(kind).or_insert(0usize);
            let new = f(kind, *index, value);
            let ok = match kind {
                Regularizer::Dropout => (0.0..1.0).contains(&new),
                Regularizer::ConvL2 | Regularizer::DenseL2 => new.is_finite() && new >= 0.0,
            };
            if !ok {
                let what = match kind {
                    Regularizer::Dropout => "dropout rate",
                    Regularizer::ConvL2 => "convolution L2 factor",
                    Regularizer::DenseL2 => "dense L2 factor",
                };
                return Err(Error::Config(format!(
                    "{what} {new} (number {} of its kind) is outside {}",
                    *index + 1,
                    if kind == Regularizer::Dropout {
                        "[0, 1)"
                    } else {
                        "[0, inf)"
                    }
                )));
            }
            *index += 1;
            values.push(new);
        }
        self.module.set_regularizers(&mut values.into_iter());
        Ok(())
    }
}

/// One tensor of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// dfdx's name: tuple indices, then the layer's field (`"0.1.weight"`).
    pub name: String,
    /// Dimensions, e.g. `[32, 1, 3, 3]` for a convolution's kernel.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
    /// Whether the optimizer updates it (a moving statistic is not trainable).
    pub trainable: bool,
}

/// The shape of one input sample of `N`.
pub fn input_shape<N: Network>() -> SampleShape {
    let dims: Vec<usize> = N::batched_input(1).concrete().into();
    // `network!` takes `<N>` or `<C, H, W>` only, so the rank is 1 or 3.
    SampleShape::from_dims(&dims[1..]).unwrap_or(SampleShape::Vector(dims[1..].iter().product()))
}

/// The number of outputs of one sample of `N`.
pub fn outputs<N: Network>() -> usize {
    N::batched_output(1).num_elements()
}

/// See [`Model::check_data`].
pub fn check_data<N: Network>(data: &Dataset) -> Result<()> {
    let expected = input_shape::<N>();
    if data.shape() != expected {
        let hint = match (expected, data.shape()) {
            (SampleShape::Vector(n), found) if found.len() == n => {
                "; flatten the images with `Dataset::flatten`"
            }
            _ => "",
        };
        return Err(Error::ShapeMismatch {
            network: N::NAME,
            expected: expected.to_string(),
            found: data.shape().to_string(),
            hint,
        });
    }
    if data.classes() > outputs::<N>() {
        return Err(Error::TooManyClasses {
            network: N::NAME,
            classes: data.classes(),
            outputs: outputs::<N>(),
        });
    }
    Ok(())
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
        opts: TensorOptions<S, f32, D>,
        (t, name): (&Tensor<S, f32, D>, String),
    ) -> std::result::Result<Option<Tensor<S, f32, D>>, D::Err> {
        let mut values = vec![0.0; t.shape().num_elements()];
        t.copy_into(&mut values);
        self.out.push(NamedTensor {
            name,
            shape: t.shape().concrete().into_iter().collect(),
            values,
            trainable: opts.do_gradient_update,
        });
        Ok(None)
    }
}

struct WriteTensors<I> {
    data: I,
    visited: usize,
    /// (tensor index, its length, the length given), for the first mismatch.
    mismatch: Option<(usize, usize, usize)>,
}

impl<D: Device<f32>, I: Iterator<Item = Vec<f32>>> TensorVisitor<f32, D> for WriteTensors<I> {
    type Viewer = ViewTensorMut;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        t: &mut Tensor<S, f32, D>,
    ) -> std::result::Result<Option<Tensor<S, f32, D>>, D::Err> {
        let index = self.visited;
        self.visited += 1;
        if let Some(values) = self.data.next() {
            let n = t.shape().num_elements();
            if values.len() == n {
                t.copy_from(&values);
            } else if self.mismatch.is_none() {
                self.mismatch = Some((index, n, values.len()));
            }
        }
        Ok(None)
    }
}

// ---- choosing a device ----------------------------------------------------

/// Whether this build can train on a GPU: built with the `cuda` feature, the
/// NVIDIA driver answers and reports at least one device ([`cuda_probe`]).
/// Always `false` without the feature.
#[cfg(feature = "cuda")]
pub fn cuda_available() -> bool {
    cuda_probe().is_ok()
}

/// Whether this build can train on a GPU: never, it was built without the
/// `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub fn cuda_available() -> bool {
    false
}

/// What the NVIDIA driver reports, as [`cuda_probe`] found it.
#[cfg(feature = "cuda")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaInfo {
    /// The driver's CUDA version, e.g. `13000` for 13.0.
    pub driver_version: i32,
    /// Devices the driver sees.
    pub devices: usize,
    /// Device 0's name, e.g. `NVIDIA H200`.
    pub name: String,
    /// Device 0's compute capability, e.g. `(9, 0)`.
    pub compute_capability: (i32, i32),
}

#[cfg(feature = "cuda")]
impl std::fmt::Display for CudaInfo {
    /// `NVIDIA H200 (sm_90), 1 device, driver CUDA 13.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor) = self.compute_capability;
        let v = self.driver_version;
        write!(
            f,
            "{} (sm_{major}{minor}), {} device{}, driver CUDA {}.{}",
            self.name,
            self.devices,
            if self.devices == 1 { "" } else { "s" },
            v / 1000,
            v % 1000 / 10
        )
    }
}

/// Asks the NVIDIA driver (`cuInit`, `cuDeviceGetCount`, device 0's name)
/// whether there is a device to build on, without building anything.
///
/// dfdx's `Cuda::seed_from_u64` and `Cuda::try_build` call cudarc's
/// `CudaDevice::new`, which unwraps `cuInit`: without a working driver they
/// panic. This probe turns that into an error naming the driver's code.
/// A `cuda` build links the driver's `libcuda.so.1` when it loads, so on a
/// machine without any NVIDIA driver it does not start at all; the link-only
/// stub of `scripts/cuda-toolkit.sh` makes `cuInit` fail with
/// `CUDA_ERROR_STUB_LIBRARY` instead.
///
/// # Errors
/// [`Error::Device`] when the driver fails to initialise or sees no device.
#[cfg(feature = "cuda")]
pub fn cuda_probe() -> Result<CudaInfo> {
    use driver::{
        check, cuDeviceGet, cuDeviceGetAttribute, cuDeviceGetCount, cuDeviceGetName,
        cuDriverGetVersion, cuInit, COMPUTE_CAPABILITY_MAJOR, COMPUTE_CAPABILITY_MINOR,
    };
    use std::ffi::{c_char, c_int, CStr};
    // SAFETY: each declaration in `driver` matches cuda.h (CUdevice, CUresult
    // and CUdevice_attribute are C ints), and each call gets pointers to live
    // locals of the type it writes. cuDeviceGetName writes at most `len`
    // bytes into `name`; its last byte is set to NUL afterwards, so
    // `CStr::from_ptr` finds a terminator inside the buffer whatever the
    // driver wrote.
    unsafe {
        check("cuInit", cuInit(0))?;
        let mut version: c_int = 0;
        check("cuDriverGetVersion", cuDriverGetVersion(&mut version))?;
        let mut count: c_int = 0;
        check("cuDeviceGetCount", cuDeviceGetCount(&mut count))?;
        if count < 1 {
            return Err(Error::Device(
                "the NVIDIA driver answers but sees no CUDA device".into(),
            ));
        }
        let mut device: c_int = 0;
        check("cuDeviceGet", cuDeviceGet(&mut device, 0))?;
        let mut name = [0 as c_char; 256];
        check(
            "cuDeviceGetName",
            cuDeviceGetName(name.as_mut_ptr(), name.len() as c_int, device),
        )?;
        name[name.len() - 1] = 0;
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        check(
            "cuDeviceGetAttribute",
            cuDeviceGetAttribute(&mut major, COMPUTE_CAPABILITY_MAJOR, device),
        )?;
        check(
            "cuDeviceGetAttribute",
            cuDeviceGetAttribute(&mut minor, COMPUTE_CAPABILITY_MINOR, device),
        )?;
        Ok(CudaInfo {
            driver_version: version,
            devices: count as usize,
            name: CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
            compute_capability: (major, minor),
        })
    }
}

/// dfdx's CUDA device 0, seeded with `seed` (the seed drives the
/// parameters' initialisation and dropout, as on the CPU), after
/// [`cuda_probe`] found a device: an error instead of cudarc's panic.
///
/// # Errors
/// [`Error::Device`] from the probe, from building the device (cuBLAS,
/// streams), or when building it panics after all.
#[cfg(feature = "cuda")]
pub fn cuda_device(seed: u64) -> Result<Cuda> {
    cuda_probe()?;
    // The probe checked what cudarc unwraps first (cuInit, device 0); it also
    // unwraps retaining the device's primary context, which can still fail
    // (a device in exclusive-process mode, out of memory). The panic message
    // is printed by the panic hook, the error then says what failed.
    match std::panic::catch_unwind(|| Cuda::try_build(0, seed)) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(Error::Device(format!("building the CUDA device: {e:?}"))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(Error::Device(format!(
                "building the CUDA device panicked: {what}"
            )))
        }
    }
}

/// The driver's entry points that [`cuda_probe`] calls, resolved by the
/// `-lcuda` that cudarc's build script adds. `CUresult` is a plain `c_int`
/// here: cudarc declares it as a Rust enum of CUDA 11.8's codes, and a code
/// a newer driver added would be undefined behaviour as that enum.
#[cfg(feature = "cuda")]
mod driver {
    use std::ffi::{c_char, c_int, c_uint, CStr};

    use crate::error::{Error, Result};

    /// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` and `_MINOR` (cuda.h).
    pub const COMPUTE_CAPABILITY_MAJOR: c_int = 75;
    pub const COMPUTE_CAPABILITY_MINOR: c_int = 76;

    extern "C" {
        pub fn cuInit(flags: c_uint) -> c_int;
        pub fn cuDriverGetVersion(version: *mut c_int) -> c_int;
        pub fn cuDeviceGetCount(count: *mut c_int) -> c_int;
        pub fn cuDeviceGet(device: *mut c_int, ordinal: c_int) -> c_int;
        pub fn cuDeviceGetName(name: *mut c_char, len: c_int, device: c_int) -> c_int;
        pub fn cuDeviceGetAttribute(value: *mut c_int, attribute: c_int, device: c_int) -> c_int;
        fn cuGetErrorName(error: c_int, name: *mut *const c_char) -> c_int;
        fn cuGetErrorString(error: c_int, text: *mut *const c_char) -> c_int;
    }

    /// `Ok` for `CUDA_SUCCESS`, else an error naming the call and the code:
    /// `cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is
    /// detected; no NVIDIA GPU is visible (CUDA_VISIBLE_DEVICES?)`.
    pub fn check(call: &str, code: c_int) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: `f` is cuGetErrorName or cuGetErrorString, declared as in
        // cuda.h; each writes through the valid `&mut s` either a pointer to a
        // static NUL-terminated string or nothing (returning an error, with
        // `s` still null), and `s` is read only after success and a null check.
        let text = |f: unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int| unsafe {
            let mut s: *const c_char = std::ptr::null();
            (f(code, &mut s) == 0 && !s.is_null())
                .then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
        };
        // The stub of scripts/cuda-toolkit.sh answers both with its own text.
        let name = text(cuGetErrorName)
            .filter(|n| n.starts_with("CUDA_ERROR_"))
            .or_else(|| known_name(code).map(String::from))
            .unwrap_or_else(|| "CUresult".into());
        let mut line = format!("{call} failed: {name} ({code})");
        if let Some(description) = text(cuGetErrorString) {
            line = format!("{line}: {description}");
        }
        let hint = match code {
            34 => {
                "; the loader found a stub libcuda.so.1, not the NVIDIA driver's (LD_LIBRARY_PATH?)"
            }
            35 => "; the NVIDIA driver is older than this build's CUDA 13.0",
            100 => "; no NVIDIA GPU is visible (CUDA_VISIBLE_DEVICES?)",
            _ => "",
        };
        Err(Error::Device(format!("{line}{hint}")))
    }

    /// cuda.h's names of the codes a missing or unusable driver returns.
    fn known_name(code: c_int) -> Option<&'static str> {
        Some(match code {
            3 => "CUDA_ERROR_NOT_INITIALIZED",
            34 => "CUDA_ERROR_STUB_LIBRARY",
            35 => "CUDA_ERROR_INSUFFICIENT_DRIVER",
            46 => "CUDA_ERROR_DEVICE_UNAVAILABLE",
            100 => "CUDA_ERROR_NO_DEVICE",
            101 => "CUDA_ERROR_INVALID_DEVICE",
            802 => "CUDA_ERROR_SYSTEM_NOT_READY",
            803 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
            804 => "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
            999 => "CUDA_ERROR_UNKNOWN",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network;

    network! {
        Img<3, 4, 4> { conv<2, 3, pad = same>, relu, flatten, dense<5> }
        Vec16<16> { dense<3> }
    }

    #[test]
    fn shapes_and_outputs_come_from_the_types() {
        assert_eq!(input_shape::<Img>().to_string(), "3x4x4");
        assert_eq!((outputs::<Img>(), outputs::<Vec16>()), (5, 3));
        assert_eq!(input_shape::<Vec16>(), SampleShape::Vector(16));
    }

    #[test]
    fn check_data_names_both_shapes() {
        let images = Dataset::new(vec![0u8; 2 * 16], vec![0, 1], (1, 4, 4), 2).unwrap();
        let err = check_data::<Img>(&images).unwrap_err().to_string();
        assert_eq!(
            err,
            "network Img takes samples of shape 3x4x4, but the data's are 1x4x4"
        );
        let err = check_data::<Vec16>(&images).unwrap_err().to_string();
        assert!(
            err.ends_with("are 1x4x4; flatten the images with `Dataset::flatten`"),
            "{err}"
        );
        assert!(check_data::<Vec16>(&images.clone().flatten()).is_ok());
        let many = Dataset::new(vec![0u8; 16], vec![3], 16, 4).unwrap();
        let err = check_data::<Vec16>(&many).unwrap_err().to_string();
        assert_eq!(
            err,
            "the data has 4 classes, but network Vec16 has only 3 outputs"
        );
    }

    network! {
        Reg<1, 6, 6> {
            conv<2, 3, l2 = 0.01>, relu, maxpool<2>, dropout<0.25>,
            flatten, dense<4>, relu, dropout<0.5>, dense<2, l2 = 0.1>,
        }
    }

    #[test]
    fn regularizers_change_at_run_time() {
        use crate::nn::Regularizer::{ConvL2, DenseL2, Dropout};
        let mut model = Model::<Reg>::new(&Cpu::seed_from_u64(0)).unwrap();
        let declared = [
            (ConvL2, 0.01),
            (Dropout, 0.25),
            (DenseL2, 0.0),
            (Dropout, 0.5),
            (DenseL2, 0.1),
        ];
        assert_eq!(model.regularizers(), declared);
        let penalty = |m: &Model<Reg>| m.module.l2_penalty().map(|p| p.array());
        let before = penalty(&model).unwrap();
        // Dense kernels too, at 0.02; the second dropout off.
        model
            .set_regularizers(|kind, i, v| match (kind, i) {
                (DenseL2, _) => 0.02,
                (Dropout, 1) => 0.0,
                _ => v,
            })
            .unwrap();
        assert_eq!(
            model.regularizers(),
            [
                (ConvL2, 0.01),
                (Dropout, 0.25),
                (DenseL2, 0.02),
                (Dropout, 0.0),
                (DenseL2, 0.02)
            ]
        );
        let sum_sq = |t: &NamedTensor| t.values.iter().map(|v| v * v).sum::<f32>();
        let tensors = model.tensors().unwrap();
        let expected =
            0.01 * sum_sq(&tensors[0]) + 0.02 * (sum_sq(&tensors[2]) + sum_sq(&tensors[4]));
        let after = penalty(&model).unwrap();
        assert!(
            (after - expected).abs() < 1e-5 * expected,
            "{after} vs {expected}"
        );
        assert_ne!(after, before);
        // A bad value changes nothing.
        let err = model.set_regularizers(|kind, _, v| if kind == Dropout { 1.0 } else { v });
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("dropout rate 1 (number 1 of its kind)"));
        assert!(model.set_regularizers(|_, _, _| f32::NAN).is_err());
        assert_eq!(model.regularizers()[2], (DenseL2, 0.02));
        // With every rate at 0, training mode computes what evaluation does.
        let x: Tensor<(usize, Const<1>, Const<6>, Const<6>), f32, Cpu> =
            model.device().sample_normal_like(&(3, Const, Const, Const));
        let eval = model.module.forward(x.clone()).as_vec();
        let grads = model.module.alloc_grads();
        let noisy = model.module.forward_mut(x.clone().traced(grads)).as_vec();
        assert_ne!(noisy, eval, "dropout at 0.25 is active while training");
        model
            .set_regularizers(|kind, _, v| if kind == Dropout { 0.0 } else { v })
            .unwrap();
        let grads = model.module.alloc_grads();
        assert_eq!(model.module.forward_mut(x.traced(grads)).as_vec(), eval);
    }

    #[test]
    fn tensors_round_trip() {
        let dev = Cpu::seed_from_u64(1);
        let mut model = Model::<Img>::new(&dev).unwrap();
        let tensors = model.tensors().unwrap();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
        assert_eq!(tensors[0].shape, [2, 3, 3, 3]);
        assert!(tensors.iter().all(|t| t.trainable));
        let zeros: Vec<Vec<f32>> = tensors.iter().map(|t| vec![0.0; t.values.len()]).collect();
        model.set_tensors(zeros).unwrap();
        assert!(model
            .tensors()
            .unwrap()
            .iter()
            .all(|t| t.values.iter().all(|&v| v == 0.0)));
        assert!(model.set_tensors(vec![vec![0.0; 3]]).is_err());
    }
}
