//! Micro-benchmark of the stable `Conv2D`: forward and backward of the
//! convolutions of CNN3a and CNN4a at batch 100 (f32, Cpu), in GFLOP/s.
//!
//! Run: `cargo run --release -p netdsl-runtime --example conv_bench [-- REPS]`
//! (`CONV_BENCH_ONLY=conv2` runs only the layers whose name contains it).
//!
//! FLOPs count 2 per multiply-add: forward `2·B·O·HO·WO·I·K²`, backward twice
//! that (weight gradient + input gradient; the bias gradient is negligible).
//! "backward" is (forward with tape + sum + backward) minus the tape-less
//! forward and minus the `sum` + backward alone. Wall figures are medians of
//! REPS runs (default 30) after 3 warm-ups; "/cpu-s" divides by the CPU time
//! the process used instead (per core, steadier on this shared machine).

use std::time::{Duration, Instant};

use dfdx::nn::{BuildOnDevice, DeviceBuildExt, Module, ZeroGrads};
use dfdx::prelude::*;
use netdsl_runtime::nn::{builders, modules::Conv2DKernel};

const BATCH: usize = 100;

/// CPU time of this process so far: the sum over its threads of
/// /proc/self/task/*/schedstat (ns on a CPU); `None` where that is missing.
/// On a shared machine this is steadier than wall time.
fn cpu_time() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

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
    if std::env::var("CONV_BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return (0.0, 0.0);
    }
    let m = dev.build_module::<M, f32>();
    let x: Tensor<(usize, Const<I>, Const<H>, Const<W>), f32, Cpu> =
        dev.sample_uniform_like(&(BATCH, Const, Const, Const));
    let y0 = m.forward(x.clone());
    let mut grads = m.alloc_grads();

    // Runs `f` reps times after 3 warm-ups: (median wall, mean CPU time) per run.
    let time = |f: &mut dyn FnMut()| {
        for _ in 0..3 {
            f();
        }
        let cpu0 = cpu_time();
        let walls: Vec<Duration> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        let cpu = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() / reps as f64,
            _ => f64::NAN,
        };
        (median(walls).as_secs_f64(), cpu)
    };
    let fwd = time(&mut || {
        std::hint::black_box(m.forward(x.clone()));
    });
    let train = time(&mut || {
        let y = m.forward(x.trace(Gradients::leaky()));
        std::hint::black_box(y.sum::<Rank0, _>().backward());
    });
    // the same loss on the output alone, to subtract: sum forward + backward
    let loss_only = time(&mut || {
        let g = y0.trace(Gradients::leaky()).sum::<Rank0, _>().backward();
        std::hint::black_box(g);
    });
    grads = {
        m.zero_grads(&mut grads);
        grads
    };
    drop(grads);

    let bwd = (train.0 - fwd.0 - loss_only.0, train.1 - fwd.1 - loss_only.1);
    let flops = 2.0 * (BATCH * O * HO * WO * I * kernel * kernel) as f64;
    let rate = |f: f64, t: f64| f / t / 1e9;
    println!(
        "{name:<12} [{BATCH},{I},{H},{W}]->[{BATCH},{O},{HO},{WO}]  \
         fwd {:6.2} ms {:6.1} GFLOP/s ({:5.1}/cpu-s)   bwd {:6.2} ms {:6.1} GFLOP/s ({:5.1}/cpu-s)",
        fwd.0 * 1e3,
        rate(flops, fwd.0),
        rate(flops, fwd.1),
        bwd.0 * 1e3,
        rate(2.0 * flops, bwd.0),
        rate(2.0 * flops, bwd.1),
    );
    (fwd.0, bwd.0)
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
    let (f, b) =
        bench::<builders::Conv2D<1, 32, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26>, 1, 32, 28, 28, 26, 26>(
            "cnn3a.conv1",
            &dev,
            3,
            reps,
        );
    total += f + b;
    let (f, b) = bench::<
        builders::Conv2D<32, 64, 3, 3, 1, 1, 0, 0, 13, 13, 11, 11>,
        32,
        64,
        13,
        13,
        11,
        11,
    >("cnn3a.conv2", &dev, 3, reps);
    total += f + b;
    println!(
        "cnn3a convs per training epoch ({steps} steps): {:.2} s",
        total * steps as f64
    );

    let mut total = 0.0;
    let (f, b) =
        bench::<builders::Conv2D<1, 32, 3, 3, 1, 1, 1, 1, 28, 28, 28, 28>, 1, 32, 28, 28, 28, 28>(
            "cnn4a.conv1",
            &dev,
            3,
            reps,
        );
    total += f + b;
    let (f, b) = bench::<
        builders::Conv2D<32, 64, 3, 3, 1, 1, 1, 1, 14, 14, 14, 14>,
        32,
        64,
        14,
        14,
        14,
        14,
    >("cnn4a.conv2", &dev, 3, reps);
    total += f + b;
    let (f, b) = bench::<builders::Conv2D<64, 64, 3, 3, 1, 1, 1, 1, 7, 7, 7, 7>, 64, 64, 7, 7, 7, 7>(
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
