//! Trains the study's CNN3a, declared by hand from the runtime's layers, on
//! the real Fashion-MNIST files: one epoch on the first 10,000 training
//! images must reach at least 80% accuracy on the 10,000 test images.
//!
//! Needs `apt-get install dataset-fashion-mnist` (or FASHION_MNIST_DIR).
//! Run: `cargo test -p netdsl-runtime --test real_data`.

use dfdx::prelude::*;
use netdsl_runtime::__private::dfdx;
use netdsl_runtime::data::FashionMnist;
use netdsl_runtime::eval::evaluate;
use netdsl_runtime::network::{Network, Summary};
use netdsl_runtime::nn::builders::{Conv2D, Dense, Flatten, MaxPool2D, ReLU};
use netdsl_runtime::train::{TrainConfig, Trainer};

/// conv 32 3x3 -> relu -> pool 2 -> conv 64 3x3 -> relu -> pool 2 -> flatten -> dense 128 -> relu -> dense 10
type Layers = (
    (
        Conv2D<1, 32, 3, 1, 0, 0, 28, 28, 26, 26>, // [B, 32, 26, 26]
        ReLU,
        MaxPool2D<32, 2, 2, 26, 26, 13, 13>, // [B, 32, 13, 13]
        Conv2D<32, 64, 3, 1, 0, 0, 13, 13, 11, 11>, // [B, 64, 11, 11]
        ReLU,
        MaxPool2D<64, 2, 2, 11, 11, 5, 5>, // [B, 64, 5, 5]
    ),
    (
        Flatten<64, 5, 5, 1600>, // [B, 1600]
        Dense<1600, 128>,
        ReLU,
        Dense<128, 10>, // [B, 10]
    ),
);

struct HandCnn3a;

impl<D: Device<f32>> BuildOnDevice<D, f32> for HandCnn3a
where
    Layers: BuildOnDevice<D, f32>,
{
    type Built = <Layers as BuildOnDevice<D, f32>>::Built;
}

impl Network for HandCnn3a {
    const NAME: &'static str = "HandCnn3a";
    const PARAMS: usize = 225_034;
    type Input = Rank3<1, 28, 28>;
    type Output = Rank1<10>;
    type BatchedInput = (usize, Const<1>, Const<28>, Const<28>);
    type BatchedOutput = (usize, Const<10>);
    fn batched_input(batch: usize) -> Self::BatchedInput {
        (batch, Const, Const, Const)
    }
    fn batched_output(batch: usize) -> Self::BatchedOutput {
        (batch, Const)
    }
    fn summary() -> Summary {
        Summary::new("HandCnn3a", "(None, 1, 28, 28)", &[])
    }
}

#[test]
fn cnn3a_reaches_80_percent_after_one_epoch_on_10k_real_images() {
    let data =
        FashionMnist::load(None).expect("Fashion-MNIST (apt-get install dataset-fashion-mnist)");
    assert_eq!(
        (data.train.len(), data.val.len(), data.test.len()),
        (55_000, 5_000, 10_000)
    );
    let train = data.train.take(10_000);

    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.build_module::<HandCnn3a, f32>();
    assert_eq!(model.num_trainable_params(), 225_034);
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::<HandCnn3a, _, _>::new(dev.clone(), config);
    let epoch = trainer
        .train_epoch(&mut model, &train, 1, &indicatif::ProgressBar::hidden())
        .unwrap();
    let test = evaluate::<HandCnn3a, _, _>(&model, &dev, &data.test, 500).unwrap();
    eprintln!(
        "train loss {:.4} acc {:.4} ({:.1}s); test loss {:.4} acc {:.4}",
        epoch.loss, epoch.accuracy, epoch.seconds, test.loss, test.accuracy
    );
    assert!(
        epoch.loss.is_finite() && epoch.loss < 1.0,
        "train loss {}",
        epoch.loss
    );
    assert!(
        test.accuracy >= 0.80,
        "test accuracy {} < 0.80",
        test.accuracy
    );
    let total: u64 = test.confusion.iter().flatten().sum();
    assert_eq!(total, 10_000);
}
