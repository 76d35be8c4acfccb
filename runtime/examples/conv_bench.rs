//! Micro-benchmark of the stable `Conv2D`: forward and backward of the
//! convolutions of CNN3a and CNN4a at batch 100 (f32, Cpu), in GFLOP/s.
//!
//! Run: `cargo run --release -p netdsl-runtime --example conv_bench [-- REPS]`
//!
//! FLOPs count 2 per multiply-add: forward `2·B·O·HO·WO·I·K²`, backward twice
//! that (weight gradient + input gradient; the bias gradient is negligible).
//! "backward" is (forward with tape + sum + backward) minus the taped-less
//! forward, so it includes the small `sum` op. Each figure is the median of
//! REPS runs (default 30) after 3 warm-up runs. The machine is shared: repeat.

use std::time::{Duration, Instant};

use dfdx::nn::{BuildOnDevice, DeviceBuildExt, Module, ZeroGrads};
use dfdx::prelude::*;
use netdsl_runtime::nn::{builders, modules::Conv2DKernel};

const BATCH: usize = 100;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times one convolution layer; returns (forward, backward) seconds.
fn bench<
    M,
    const I: usize,
    const O: usize,
    const H: usize,
    const W: usize,
    const HO: usize,
    const WO: usize,
>(
    name: &str,
    dev: &Cpu,
    kernel: usize,
    reps: usize,
) -> (f64, f64)
where
    M: BuildOnDevice<Cpu, f32>,
    M::Built: Module<
            Tensor<(usize, Const<I>, Const<H>, Const<W>), f32, Cpu>,
            Output = Tensor<(usize, Const<O>, Const<HO>, Const<WO>), f32, Cpu>,
        > + Module<
            Tensor<(usize, Const<I>, Const<H>, Const<W>), f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<(usize, Const<O>, Const<HO>, Const<WO>), f32, Cpu, OwnedTape<f32, Cpu>>,
        > + ZeroGrads<f32, Cpu>,
    Cpu: Conv2DKernel<f32>,
{
    let m = dev.build_module::<M, f32>();
    let x: Tensor<(usize, Const<I>, Const<H>, Const<W>), f32, Cpu> =
        dev.sample_uniform_like(&(BATCH, Const, Const, Const));
    let mut grads = m.alloc_grads();

    let mut fwd = Vec::with_capacity(reps);
    let mut train = Vec::with_capacity(reps);
    for rep in 0..reps + 3 {
        let t = Instant::now();
        let y = m.forward(x.clone());
        std::hint::black_box(&y);
        let t_fwd = t.elapsed();
        drop(y);

        let t = Instant::now();
        let y = m.forward(x.trace(grads));
        grads = y.sum::<Rank0, _>().backward();
        let t_train = t.elapsed();
        m.zero_grads(&mut grads);
        if rep >= 3 {
            fwd.push(t_fwd);
            train.push(t_train);
        }
    }
    let (t_fwd, t_train) = (median(fwd).as_secs_f64(), median(train).as_secs_f64());
    let t_bwd = (t_train - t_fwd).max(1e-9);
    let flops = 2.0 * (BATCH * O * HO * WO * I * kernel * kernel) as f64;
    println!(
        "{name:<13} [{BATCH},{I},{H},{W}]->[{BATCH},{O},{HO},{WO}]  \
         fwd {:6.2} ms {:6.1} GFLOP/s   bwd {:6.2} ms {:6.1} GFLOP/s   fwd+bwd {:6.2} ms",
        t_fwd * 1e3,
        flops / t_fwd / 1e9,
        t_bwd * 1e3,
        2.0 * flops / t_bwd / 1e9,
        t_train * 1e3,
    );
    (t_fwd, t_bwd)
}

fn main() {
    let reps = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dev = Cpu::seed_from_u64(0);
    println!("rayon threads: {}", rayon::current_num_threads());

    let steps = 55_000 / BATCH;
    let mut total = 0.0;
    let (f, b) = bench::<builders::Conv2D<1, 32, 3, 1, 0, 0, 28, 28, 26, 26>, 1, 32, 28, 28, 26, 26>(
        "cnn3a.conv1",
        &dev,
        3,
        reps,
    );
    total += f + b;
    let (f, b) =
        bench::<builders::Conv2D<32, 64, 3, 1, 0, 0, 13, 13, 11, 11>, 32, 64, 13, 13, 11, 11>(
            "cnn3a.conv2",
            &dev,
            3,
            reps,
        );
    total += f + b;
    println!(
        "cnn3a convs per training epoch ({steps} steps): {:.2} s",
        total * steps as f64
    );

    let mut total = 0.0;
    let (f, b) = bench::<builders::Conv2D<1, 32, 3, 1, 1, 1, 28, 28, 28, 28>, 1, 32, 28, 28, 28, 28>(
        "cnn4a.conv1",
        &dev,
        3,
        reps,
    );
    total += f + b;
    let (f, b) =
        bench::<builders::Conv2D<32, 64, 3, 1, 1, 1, 14, 14, 14, 14>, 32, 64, 14, 14, 14, 14>(
            "cnn4a.conv2",
            &dev,
            3,
            reps,
        );
    total += f + b;
    let (f, b) = bench::<builders::Conv2D<64, 64, 3, 1, 1, 1, 7, 7, 7, 7>, 64, 64, 7, 7, 7, 7>(
        "cnn4a.conv3",
        &dev,
        3,
        reps,
    );
    total += f + b;
    println!(
        "cnn4a convs per training epoch ({steps} steps): {:.2} s",
        total * steps as f64
    );
}
