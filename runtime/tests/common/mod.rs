//! The study's CNN3a declared by hand from the runtime's layers (what
//! `network!` generates, written out), shared by the integration tests.

use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::network::{Network, Summary};
use netdsl_runtime::nn::builders::{Conv2D, Dense, Flatten, MaxPool2D, ReLU};

/// conv 32 3x3 -> relu -> pool 2 -> conv 64 3x3 -> relu -> pool 2 -> flatten -> dense 128 -> relu -> dense 10
pub type Layers = (
    (
        Conv2D<1, 32, 3, 3, 1, 1, 0, 0, 28, 28, 26, 26>, // [B, 32, 26, 26]
        ReLU,
        MaxPool2D<32, 2, 2, 26, 26, 13, 13>, // [B, 32, 13, 13]
        Conv2D<32, 64, 3, 3, 1, 1, 0, 0, 13, 13, 11, 11>, // [B, 64, 11, 11]
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

pub struct HandCnn3a;

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
