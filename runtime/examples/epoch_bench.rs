//! Seconds per training epoch (55,000 images, batch 100) and per test-set
//! evaluation for the study's CNN3a, CNN4a and DNN2, declared with `network!`.
//!
//! Run: `cargo run --release -p netdsl-runtime --example epoch_bench [STEPS]`
//! (`study bench` does the same for any of the fourteen variants).

use netdsl_runtime::bench::{bench, peak_rss_mib};
use netdsl_runtime::data::FashionMnist;
use netdsl_runtime::network;

network! {
    Cnn3a<1, 28, 28> {
        conv<32, 3>, relu, maxpool<2>,
        conv<64, 3>, relu, maxpool<2>,
        flatten, dense<128>, relu, dense<10>,
    }
    Cnn4a<1, 28, 28> {
        conv<32, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        conv<64, 3, pad = same>, relu, maxpool<2>,
        flatten, dense<64>, relu, dense<10>,
    }
    Dnn2<784> { dense<10>, relu, dense<5>, relu, dense<10> }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).map_or(Ok(50), |s| s.parse())?;
    let data = FashionMnist::load(None)?;
    let print = |name: &str, r: netdsl_runtime::bench::BenchResult| {
        println!(
            "{name} train_epoch_s={:.3} eval_test_s={:.3}",
            r.train_epoch_s, r.eval_test_s
        )
    };
    print("cnn3a", bench::<Cnn3a>(&data, None, steps, 3)?);
    print("cnn4a", bench::<Cnn4a>(&data, None, steps, 3)?);
    print("dnn2", bench::<Dnn2>(&data, None, steps, 3)?);
    println!("peak_rss_mib={:.0}", peak_rss_mib().unwrap_or(f64::NAN));
    Ok(())
}
