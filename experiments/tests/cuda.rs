//! The study's networks on the GPU against the CPU, and `study --device
//! cuda` without a usable driver (feature `cuda`).
//!
//! The test executable links the driver's `libcuda.so.1` and does not start
//! where there is none. Build it anywhere, run it where there is a GPU
//! (`scripts/gpu-carry.sh`, then `scripts/gpu-check.sh` there); on a machine
//! without one, the link-only stub of `scripts/cuda-toolkit.sh` lets it
//! start, and then the comparisons skip with a message while the first test
//! checks the one-line error:
//!
//! ```text
//! eval "$(scripts/cuda-toolkit.sh)"
//! CARGO_TARGET_DIR=target/cuda cargo test --release -p netdsl-experiments --features cuda --test cuda --no-run
//! LD_LIBRARY_PATH=~/.cache/netdsl-cuda/stub:~/.cache/netdsl-cuda/pip/nvidia/cu13/lib \
//!     target/cuda/release/deps/cuda-<hash> --test-threads 1
//! ```
//!
//! `STUDY_BIN` names the `study` binary to run (default: the one cargo built
//! beside this test), so the test also runs from a copied folder.
//!
//! Tolerances: the same parameters and batches on both devices; the first
//! step's loss agrees to float rounding (~1e-6), and every later one drifts
//! by the different summation order of cuBLAS and the kernels, amplified by
//! Adam's division by √v for small gradients. Measured bounds are printed.

#![cfg(feature = "cuda")]

use std::path::PathBuf;

use netdsl_experiments::device::no_device;
use netdsl_experiments::run::shaped_for;
use netdsl_experiments::variants::{
    study_fit, Cnn3a, Cnn3aDo, Cnn3b, Cnn3bDo, Cnn4a, Cnn4aDo, Cnn4b, Cnn4bDo, Dnn1, Dnn1Do, Dnn2,
    Dnn2Do,
};
use netdsl_runtime::data::{Dataset, FashionMnist};
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::model::{Model, Trainable};
use netdsl_runtime::network::Network;
use netdsl_runtime::nn::Regularizer;
use netdsl_runtime::train::{Observer, Trainer};
use netdsl_runtime::{cuda_device, cuda_probe};

/// The `study` binary: `$STUDY_BIN`, else the one cargo built with this test.
fn study_bin() -> PathBuf {
    std::env::var_os("STUDY_BIN").map_or_else(|| env!("CARGO_BIN_EXE_study").into(), PathBuf::from)
}

/// Whether a GPU answers; prints why a test skips when not.
fn gpu(test: &str) -> bool {
    match cuda_probe() {
        Ok(info) => {
            eprintln!("{test}: on {info}");
            true
        }
        Err(e) => {
            eprintln!("{test}: skipped, no CUDA device: {e}");
            false
        }
    }
}

/// Without a usable driver `study run --device cuda` ends with one line
/// naming the driver's error before it reads data or writes a file; with a
/// GPU the same command trains and records the device in the run's identity.
#[test]
fn study_device_cuda_is_one_line_without_a_gpu_and_trains_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let output = std::process::Command::new(study_bin())
        .args(["run", "dnn1", "--device", "cuda", "--epochs", "1"])
        .args(["--limit", "500", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    match cuda_probe() {
        Err(e) => {
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            assert_eq!(stderr, format!("error: {}\n", no_device(&e)));
            assert!(output.stdout.is_empty());
            assert!(!out.exists(), "nothing written without a device");
            eprintln!("the one-line error: {}", stderr.trim_end());
        }
        Ok(info) => {
            assert!(output.status.success(), "{stderr}");
            assert!(stderr.starts_with(&format!("cuda: {info}\n")), "{stderr}");
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("dnn1.json")).unwrap()).unwrap();
            assert_eq!(json["identity"]["device"], "cuda");
            eprintln!("dnn1 on cuda: test accuracy {}", json["test_accuracy"]);
        }
    }
}

/// Each training step's loss, as the trainer reports it.
#[derive(Default)]
struct Losses(Vec<f32>);

impl<N, D> Observer<N, D> for Losses
where
    N: Network + BuildOnDevice<D, f32>,
    D: Device<f32>,
{
    fn on_batch_end(&mut self, _batch: usize, _batches: usize, loss: f32) {
        self.0.push(loss);
    }
}

/// What differs after training the same parameters on the same batches.
#[derive(Debug)]
struct Drift {
    /// Largest |loss_cuda - loss_cpu| over the steps, and at the first step.
    loss: f32,
    first_loss: f32,
    /// Largest |w_cuda - w_cpu| over every parameter after the last step.
    weight: f32,
    /// |Δ| of the evaluation's loss and accuracy.
    eval_loss: f64,
    eval_accuracy: f64,
}

/// Trains `N` for one pass over `train` (batch 100, the study's Adam) from
/// the same parameters on both devices, dropout off (the devices draw
/// different masks), and evaluates both on `test`.
fn drift<N>(data: &FashionMnist, train: usize, test: usize) -> Drift
where
    N: Network + BuildOnDevice<Cpu, f32> + BuildOnDevice<Cuda, f32>,
    <N as BuildOnDevice<Cpu, f32>>::Built: Trainable<N, Cpu>,
    <N as BuildOnDevice<Cuda, f32>>::Built: Trainable<N, Cuda>,
{
    let train: Dataset = shaped_for::<N>(&data.train.take(train));
    let test: Dataset = shaped_for::<N>(&data.test.take(test));
    let no_dropout = |kind, _, v| if kind == Regularizer::Dropout { 0.0 } else { v };
    let fit = study_fit(1, 100, 0, None);

    let mut cpu = Model::<N, Cpu>::new(&Cpu::seed_from_u64(0)).unwrap();
    cpu.set_regularizers(no_dropout).unwrap();
    let mut cuda = Model::<N, Cuda>::new(&cuda_device(0).unwrap()).unwrap();
    cuda.set_regularizers(no_dropout).unwrap();
    let start: Vec<Vec<f32>> = cpu
        .tensors()
        .unwrap()
        .into_iter()
        .map(|t| t.values)
        .collect();
    cuda.set_tensors(start).unwrap();

    let (mut l_cpu, mut l_cuda) = (Losses::default(), Losses::default());
    Trainer::new(fit.clone())
        .unwrap()
        .train_epoch(&mut cpu, &train, 1, &mut l_cpu)
        .unwrap();
    Trainer::new(fit)
        .unwrap()
        .train_epoch(&mut cuda, &train, 1, &mut l_cuda)
        .unwrap();
    assert_eq!(l_cpu.0.len(), l_cuda.0.len());
    assert!(l_cuda.0.iter().all(|l| l.is_finite()), "{:?}", l_cuda.0);
    let loss = l_cpu.0.iter().zip(&l_cuda.0).map(|(a, b)| (a - b).abs());
    let weight = cpu
        .tensors()
        .unwrap()
        .iter()
        .zip(cuda.tensors().unwrap())
        .flat_map(|(a, b)| {
            let d: Vec<f32> = a
                .values
                .iter()
                .zip(&b.values)
                .map(|(x, y)| (x - y).abs())
                .collect();
            d
        })
        .fold(0.0f32, f32::max);
    let (e_cpu, e_cuda) = (cpu.evaluate(&test).unwrap(), cuda.evaluate(&test).unwrap());
    Drift {
        first_loss: (l_cpu.0[0] - l_cuda.0[0]).abs(),
        loss: loss.fold(0.0f32, f32::max),
        weight,
        eval_loss: (e_cpu.loss - e_cuda.loss).abs(),
        eval_accuracy: (e_cpu.accuracy - e_cuda.accuracy).abs(),
    }
}

/// [`drift`] for one network, on the loaded data.
type DriftOf = fn(&FashionMnist) -> Drift;

/// Every network of the study (the `-do` ones with dropout off), 5 steps
/// on both devices: the losses, weights and evaluation agree.
#[test]
fn every_network_trains_alike_on_cuda_and_cpu() {
    if !gpu("every_network_trains_alike_on_cuda_and_cpu") {
        return;
    }
    let data = FashionMnist::load(None).expect("Fashion-MNIST (FASHION_MNIST_DIR)");
    let runs: [(&str, DriftOf); 12] = [
        ("Dnn1", |d| drift::<Dnn1>(d, 500, 1000)),
        ("Dnn1Do", |d| drift::<Dnn1Do>(d, 500, 1000)),
        ("Dnn2", |d| drift::<Dnn2>(d, 500, 1000)),
        ("Dnn2Do", |d| drift::<Dnn2Do>(d, 500, 1000)),
        ("Cnn3a", |d| drift::<Cnn3a>(d, 500, 1000)),
        ("Cnn3aDo", |d| drift::<Cnn3aDo>(d, 500, 1000)),
        ("Cnn3b", |d| drift::<Cnn3b>(d, 500, 1000)),
        ("Cnn3bDo", |d| drift::<Cnn3bDo>(d, 500, 1000)),
        ("Cnn4a", |d| drift::<Cnn4a>(d, 500, 1000)),
        ("Cnn4aDo", |d| drift::<Cnn4aDo>(d, 500, 1000)),
        ("Cnn4b", |d| drift::<Cnn4b>(d, 500, 1000)),
        ("Cnn4bDo", |d| drift::<Cnn4bDo>(d, 500, 1000)),
    ];
    for (name, run) in runs {
        let d = run(&data);
        eprintln!("{name}: {d:?}");
        assert!(d.first_loss <= 1e-4, "{name}: first step {d:?}");
        assert!(d.loss <= 1e-3, "{name}: losses {d:?}");
        assert!(d.weight <= 1e-3, "{name}: weights {d:?}");
        assert!(d.eval_loss <= 1e-3, "{name}: evaluation {d:?}");
        assert!(d.eval_accuracy <= 0.003, "{name}: evaluation {d:?}");
    }
}

/// CNN3a over 2,000 images (20 steps): what the study trains, a little longer.
#[test]
fn cnn3a_twenty_steps_alike_on_cuda_and_cpu() {
    if !gpu("cnn3a_twenty_steps_alike_on_cuda_and_cpu") {
        return;
    }
    let data = FashionMnist::load(None).expect("Fashion-MNIST (FASHION_MNIST_DIR)");
    let d = drift::<Cnn3a>(&data, 2000, 2000);
    eprintln!("Cnn3a, 20 steps: {d:?}");
    assert!(d.first_loss <= 1e-4, "{d:?}");
    assert!(d.loss <= 2e-3, "{d:?}");
    assert!(d.weight <= 2e-3, "{d:?}");
    assert!(d.eval_loss <= 2e-3, "{d:?}");
    assert!(d.eval_accuracy <= 0.005, "{d:?}");
}

/// Dropout on the GPU draws its own masks: cnn3a-do trains (finite losses
/// that fall) rather than matching the CPU.
#[test]
fn cnn3a_do_trains_with_dropout_on_cuda() {
    if !gpu("cnn3a_do_trains_with_dropout_on_cuda") {
        return;
    }
    let data = FashionMnist::load(None).expect("Fashion-MNIST (FASHION_MNIST_DIR)");
    let train = data.train.take(2000);
    let mut model = Model::<Cnn3aDo, Cuda>::new(&cuda_device(1).unwrap()).unwrap();
    let mut losses = Losses::default();
    Trainer::new(study_fit(1, 100, 1, None))
        .unwrap()
        .train_epoch(&mut model, &train, 1, &mut losses)
        .unwrap();
    let l = &losses.0;
    eprintln!("cnn3a-do on cuda, 20 steps: first {} last {}", l[0], l[19]);
    assert!(l.iter().all(|x| x.is_finite()), "{l:?}");
    assert!(
        l[15..].iter().sum::<f32>() < l[..5].iter().sum::<f32>(),
        "{l:?}"
    );
}
