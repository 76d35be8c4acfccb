//! The study's fourteen variants: seven architectures, each with and without
//! dropout, declared with `network!`, plus their training settings.
//!
//! | id    | study's name        | what                                     | params  |
//! |-------|---------------------|------------------------------------------|---------|
//! | dnn1  | DNN (2 layers)      | 784 -> 5 -> 10                           | 3,985   |
//! | dnn2  | DNN (3 layers)      | 784 -> 10 -> 5 -> 10                     | 7,965   |
//! | cnn3a | CNN (2 layers)      | two conv blocks (32, 64), dense 128      | 225,034 |
//! | cnn3b | CNN (2 layers L2)   | cnn3a with L2 on the conv kernels        | 225,034 |
//! | cnn3c | CNN (2 layers aug)  | cnn3a trained on augmented images        | 225,034 |
//! | cnn4a | CNN (3 layers)      | three `same` conv blocks (32, 64, 64)    | 93,322  |
//! | cnn4b | CNN (3 layers L2)   | cnn4a with L2 on the conv kernels        | 93,322  |
//!
//! `<id>-do` adds dropout: rate 0.5 after every hidden dense layer and 0.25
//! after every pooling block (the usual Keras choices; see the README).
//! L2 is Keras' `regularizers.l2()` default factor, 0.01, on conv kernels.

use netdsl_runtime::network;

network! {
    /// DNN1: one hidden layer of 5 units.
    pub Dnn1<784> { dense<5>, relu, dense<10> }

    /// DNN1 with dropout on the hidden layer.
    pub Dnn1Do<784> { dense<5>, relu, dropout<0.5>, dense<10> }

    /// DNN2: hidden layers of 10 and 5 units.
    pub Dnn2<784> { dense<10>, relu, dense<5>, relu, dense<10> }

    /// DNN2 with dropout on the hidden layers.
    pub Dnn2Do<784> { dense<10>, relu, dropout<0.5>, dense<5>, relu, dropout<0.5>, dense<10> }

    /// CNN3a: two convolution blocks (also used by cnn3c, which augments).
    pub Cnn3a<1, 28, 28> {
        conv<32, 3>, relu, maxpool<2>,
        conv<64, 3>, relu, maxpool<2>,
        flatten, dense<128>, relu, dense<10>,
    }

    /// CNN3a with dropout after each block and the hidden dense layer.
    pub Cnn3aDo<1, 28, 28> {
        conv<32, 3>, relu, maxpool<2>, dropout<0.25>,
        conv<64, 3>, relu, maxpool<2>, dropout<0.25>,
        flatten, dense<128>, relu, dropout<0.5>, dense<10>,
    }

    /// CNN3b: CNN3a with L2 on the convolution kernels.
    pub Cnn3b<1, 28, 28> {
        conv<32, 3, l2 = 0.01>, relu, maxpool<2>,
        conv<64, 3, l2 = 0.01>, relu, maxpool<2>,
        flatten, dense<128>, relu, dense<10>,
    }

    /// CNN3b with dropout.
    pub Cnn3bDo<1, 28, 28> {
        conv<32, 3, l2 = 0.01>, relu, maxpool<2>, dropout<0.25>,
        conv<64, 3, l2 = 0.01>, relu, maxpool<2>, dropout<0.25>,
        flatten, dense<128>, relu, dropout<0.5>, dense<10>,
    }

    /// CNN4a: three `same` convolution blocks, 28 -> 14 -> 7 -> 3.
    pub Cnn4a<1, 28, 28> {
        conv<32, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        flatten, dense<64>, relu, dense<10>,
    }

    /// CNN4a with dropout.
    pub Cnn4aDo<1, 28, 28> {
        conv<32, 3, pad = same>, relu, maxpool<2>, dropout<0.25>,
        conv<64, 3, pad = same>, relu, maxpool<2>, dropout<0.25>,
        conv<64, 3, pad = same>, relu, maxpool<2>, dropout<0.25>,
        flatten, dense<64>, relu, dropout<0.5>, dense<10>,
    }

    /// CNN4b: CNN4a with L2 on the convolution kernels.
    pub Cnn4b<1, 28, 28> {
        conv<32, 3, pad = same, l2 = 0.01>, relu, maxpool<2>,
        conv<64, 3, pad = same, l2 = 0.01>, relu, maxpool<2>,
        conv<64, 3, pad = same, l2 = 0.01>, relu, maxpool<2>,
        flatten, dense<64>, relu, dense<10>,
    }

    /// CNN4b with dropout.
    pub Cnn4bDo<1, 28, 28> {
        conv<32, 3, pad = same, l2 = 0.01>, relu, maxpool<2>, dropout<0.25>,
        conv<64, 3, pad = same, l2 = 0.01>, relu, maxpool<2>, dropout<0.25>,
        conv<64, 3, pad = same, l2 = 0.01>, relu, maxpool<2>, dropout<0.25>,
        flatten, dense<64>, relu, dropout<0.5>, dense<10>,
    }
}

use crate::device::DeviceKind;
use crate::prepare::{prepare_variant, PrepareFn};
use crate::run::{bench_variant, run_variant, BenchFn, RunFn};
use netdsl_runtime::data::Augment;
use netdsl_runtime::dfdx::prelude::Cpu;
#[cfg(feature = "cuda")]
use netdsl_runtime::dfdx::prelude::Cuda;
use netdsl_runtime::network::{Network, Summary};
use netdsl_runtime::optim::Optimizer;
use netdsl_runtime::train::Fit;

/// The study's training settings: Adam as Keras computes it with lr 1e-3
/// (`runtime/src/optim`), the given epochs, batch and seed (the study's are
/// 20 and 100), validation in batches of 500 (speed only).
pub fn study_fit(epochs: usize, batch: usize, seed: u64, augment: Option<Augment>) -> Fit {
    Fit {
        epochs,
        batch,
        seed,
        optimizer: Optimizer::adam(1e-3),
        augment,
        eval_batch: 500,
        ..Fit::default()
    }
}

/// The augmentation of the study's augmented variants (`cnn3c`, `cnn3c-do`):
/// rotation ±10°, shift ±10% (±2.8 px), zoom ±10%, flips, noise σ = 0.05,
/// clamped to the pixel range `[0, 1]`.
///
/// Why these (the study does not say): Fashion-MNIST photos are centred,
/// upright and size-normalised, so only small geometric changes keep an
/// image looking like the data set (10° and 10% are the common
/// `ImageDataGenerator` settings); every class is left-right symmetric in
/// meaning (a mirrored sneaker is a sneaker), so flips are free variety;
/// σ = 0.05 is noise about 1/20 of the pixel range, visible but far below the
/// contrast of the garments' edges.
pub fn study_augment() -> Augment {
    Augment {
        rotation_deg: 10.0,
        shift: 0.1,
        zoom: 0.1,
        flip: true,
        noise_std: 0.05,
        clamp: Some([0.0, 1.0]),
    }
}

/// One row of the study: an id, the study's own name, and what to run.
#[derive(Debug)]
pub struct Variant {
    /// The id used on the command line and in file names (`cnn3a-do`).
    pub id: &'static str,
    /// The model's name in the study's results table.
    pub study_name: &'static str,
    pub description: &'static str,
    /// Whether training batches are augmented (cnn3c).
    pub augment: bool,
    pub params: usize,
    pub summary: fn() -> Summary,
    /// Checks a run before anything trains and decides how it starts (on
    /// the CPU, whatever the device: checks only).
    pub prepare: PrepareFn,
    /// Runs and benchmarks on the CPU.
    pub cpu: OnDevice,
    /// Runs and benchmarks on the GPU (builds with the `cuda` feature).
    #[cfg(feature = "cuda")]
    pub cuda: OnDevice,
}

/// A variant's run and benchmark, instantiated for one device.
#[derive(Debug)]
pub struct OnDevice {
    pub run: RunFn,
    pub bench: BenchFn,
}

impl Variant {
    /// The run and benchmark on `device`; `--device cuda` in a build
    /// without the `cuda` feature is an error saying how to build with it
    /// (also checked before any data is loaded: `device::check`).
    pub fn on(&self, device: DeviceKind) -> anyhow::Result<&OnDevice> {
        match device {
            DeviceKind::Cpu => Ok(&self.cpu),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => Ok(&self.cuda),
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda => anyhow::bail!(crate::device::NOT_BUILT),
        }
    }
}

macro_rules! variant {
    ($id:literal, $net:ty, $study:literal, $desc:literal, augment = $aug:literal) => {
        Variant {
            id: $id,
            study_name: $study,
            description: $desc,
            augment: $aug,
            params: <$net as Network>::PARAMS,
            summary: <$net as Network>::summary,
            prepare: prepare_variant::<$net>,
            cpu: OnDevice {
                run: run_variant::<$net, Cpu>,
                bench: bench_variant::<$net, Cpu>,
            },
            #[cfg(feature = "cuda")]
            cuda: OnDevice {
                run: run_variant::<$net, Cuda>,
                bench: bench_variant::<$net, Cuda>,
            },
        }
    };
}

/// The fourteen variants, in the study's table order.
pub const VARIANTS: &[Variant] = &[
    variant!(
        "dnn1",
        Dnn1,
        "DNN (2 layers)",
        "1 hidden layer (5 nodes)",
        augment = false
    ),
    variant!(
        "dnn2",
        Dnn2,
        "DNN (3 layers)",
        "2 hidden layers (10 / 5 nodes)",
        augment = false
    ),
    variant!(
        "cnn3a",
        Cnn3a,
        "CNN (2 layers)",
        "2 conv (32, 64) + 2 max-pool",
        augment = false
    ),
    variant!(
        "cnn3b",
        Cnn3b,
        "CNN (2 layers L2)",
        "cnn3a with L2 0.01 on conv kernels",
        augment = false
    ),
    variant!(
        "cnn3c",
        Cnn3a,
        "CNN (2 layers aug)",
        "cnn3a trained on augmented images",
        augment = true
    ),
    variant!(
        "cnn4a",
        Cnn4a,
        "CNN (3 layers)",
        "3 same conv (32, 64, 64) + 3 max-pool",
        augment = false
    ),
    variant!(
        "cnn4b",
        Cnn4b,
        "CNN (3 layers L2)",
        "cnn4a with L2 0.01 on conv kernels",
        augment = false
    ),
    variant!(
        "dnn1-do",
        Dnn1Do,
        "DNN (2 layers DO)",
        "dnn1 + dropout 0.5",
        augment = false
    ),
    variant!(
        "dnn2-do",
        Dnn2Do,
        "DNN (3 layers DO)",
        "dnn2 + dropout 0.5",
        augment = false
    ),
    variant!(
        "cnn3a-do",
        Cnn3aDo,
        "CNN (2 layers DO)",
        "cnn3a + dropout 0.25 / 0.5",
        augment = false
    ),
    variant!(
        "cnn3b-do",
        Cnn3bDo,
        "CNN (2 layers L2 DO)",
        "cnn3b + dropout 0.25 / 0.5",
        augment = false
    ),
    variant!(
        "cnn3c-do",
        Cnn3aDo,
        "CNN (2 layers aug DO)",
        "cnn3c + dropout 0.25 / 0.5",
        augment = true
    ),
    variant!(
        "cnn4a-do",
        Cnn4aDo,
        "CNN (3 layers DO)",
        "cnn4a + dropout 0.25 / 0.5",
        augment = false
    ),
    variant!(
        "cnn4b-do",
        Cnn4bDo,
        "CNN (3 layers L2 DO)",
        "cnn4b + dropout 0.25 / 0.5",
        augment = false
    ),
];

/// The variant with this id, or an error listing the known ids.
pub fn find(id: &str) -> anyhow::Result<&'static Variant> {
    VARIANTS.iter().find(|v| v.id == id).ok_or_else(|| {
        let known: Vec<&str> = VARIANTS.iter().map(|v| v.id).collect();
        anyhow::anyhow!("unknown variant `{id}`; known: {}", known.join(", "))
    })
}
