//! Training is a function of the seed alone: an interrupted run resumed from
//! its checkpoint ends bit-identical to an uninterrupted one (dropout on), and
//! two runs with the same seed agree bit for bit.
//!
//! Uses the first 2,000 real Fashion-MNIST training images.

use dfdx::prelude::*;
use netdsl_runtime::__private::dfdx;
use netdsl_runtime::checkpoint::{self, CheckpointMeta};
use netdsl_runtime::data::FashionMnist;
use netdsl_runtime::metrics::EpochMetrics;
use netdsl_runtime::network::{Network, Summary};
use netdsl_runtime::nn::builders::{Dense, Dropout, ReLU};
use netdsl_runtime::train::{TrainConfig, Trainer};
use netdsl_runtime::Error;

type Layers = (
    Dense<784, 32>,
    ReLU,
    Dropout<{ 0.5f32.to_bits() }>,
    Dense<32, 10>,
);

struct SmallDnn;

impl<D: Device<f32>> BuildOnDevice<D, f32> for SmallDnn
where
    Layers: BuildOnDevice<D, f32>,
{
    type Built = <Layers as BuildOnDevice<D, f32>>::Built;
}

impl Network for SmallDnn {
    const NAME: &'static str = "SmallDnn";
    const PARAMS: usize = 784 * 32 + 32 + 32 * 10 + 10;
    type Input = Rank1<784>;
    type Output = Rank1<10>;
    type BatchedInput = (usize, Const<784>);
    type BatchedOutput = (usize, Const<10>);
    fn batched_input(batch: usize) -> Self::BatchedInput {
        (batch, Const)
    }
    fn batched_output(batch: usize) -> Self::BatchedOutput {
        (batch, Const)
    }
    fn summary() -> Summary {
        Summary::new("SmallDnn", "(None, 784)", &[])
    }
}

type Model = <SmallDnn as BuildOnDevice<Cpu, f32>>::Built;

fn without_seconds(h: &[EpochMetrics]) -> Vec<EpochMetrics> {
    h.iter()
        .map(|e| EpochMetrics {
            seconds: 0.0,
            ..e.clone()
        })
        .collect()
}

fn weights(m: &Model) -> Vec<f32> {
    [
        m.0.weight.as_vec(),
        m.0.bias.as_vec(),
        m.3.weight.as_vec(),
        m.3.bias.as_vec(),
    ]
    .concat()
}

/// Trains 3 epochs; with `stop_after = Some(k)` the run "crashes" after
/// checkpointing epoch k and is resumed from the checkpoint by a new trainer.
fn train(
    data: &FashionMnist,
    dir: &std::path::Path,
    stop_after: Option<usize>,
) -> (Vec<EpochMetrics>, Vec<f32>) {
    let train = data.train.take(2_000);
    let val = data.val.take(500);
    let config = TrainConfig {
        epochs: 3,
        seed: 7,
        ..TrainConfig::default()
    };
    let path = dir.join("small.safetensors");
    let save = |model: &Model, adam: &netdsl_runtime::optim::Adam, history: &[EpochMetrics]| {
        let meta = CheckpointMeta {
            network: SmallDnn::NAME.into(),
            params: SmallDnn::PARAMS,
            epoch: history.len(),
            adam_step: adam.step,
            history: history.to_vec(),
        };
        checkpoint::save(&path, model, adam, &meta)?;
        if Some(history.len()) == stop_after {
            return Err(Error::Config("simulated crash".into()));
        }
        Ok(())
    };
    let dev = Cpu::seed_from_u64(7);
    let mut model = dev.build_module::<SmallDnn, f32>();
    let mut trainer = Trainer::<SmallDnn, _, _>::new(dev.clone(), config.clone());
    match trainer.fit(&mut model, &train, &val, Vec::new(), save) {
        Ok(history) => return (history, weights(&model)),
        Err(e) => assert!(e.to_string().contains("simulated crash"), "{e}"),
    }
    // A new process: fresh device, model and trainer, then the checkpoint.
    let dev = Cpu::seed_from_u64(7);
    let mut model = dev.build_module::<SmallDnn, f32>();
    let mut trainer = Trainer::<SmallDnn, _, _>::new(dev.clone(), config);
    let (adam, meta) =
        checkpoint::load::<SmallDnn, _, _>(&path, &mut model, trainer.config.adam()).unwrap();
    assert_eq!(meta.epoch, stop_after.unwrap());
    trainer.optimizer = adam;
    let history = trainer
        .fit(&mut model, &train, &val, meta.history, |_, _, _| Ok(()))
        .unwrap();
    (history, weights(&model))
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit() {
    let data = FashionMnist::load(None).expect("Fashion-MNIST");
    let dir = tempfile::tempdir().unwrap();
    let (h_full, w_full) = train(&data, dir.path(), None);
    let (h_again, w_again) = train(&data, dir.path(), None);
    assert_eq!(
        without_seconds(&h_full),
        without_seconds(&h_again),
        "same seed, same history"
    );
    assert_eq!(w_full, w_again, "same seed, same weights");
    let (h_resumed, w_resumed) = train(&data, dir.path(), Some(1));
    assert_eq!(without_seconds(&h_full), without_seconds(&h_resumed));
    assert_eq!(w_full, w_resumed);
    assert!(h_full[2].val_accuracy > 0.6, "{:?}", h_full);
}

#[test]
fn checkpoint_of_another_network_is_refused() {
    struct Other;
    impl Network for Other {
        const NAME: &'static str = "Other";
        const PARAMS: usize = 1;
        type Input = Rank1<784>;
        type Output = Rank1<10>;
        type BatchedInput = (usize, Const<784>);
        type BatchedOutput = (usize, Const<10>);
        fn batched_input(b: usize) -> Self::BatchedInput {
            (b, Const)
        }
        fn batched_output(b: usize) -> Self::BatchedOutput {
            (b, Const)
        }
        fn summary() -> Summary {
            Summary::new("Other", "(None, 784)", &[])
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let dev = Cpu::default();
    let mut model = dev.build_module::<SmallDnn, f32>();
    let adam = netdsl_runtime::optim::Adam::new(Default::default());
    let meta = CheckpointMeta {
        network: "SmallDnn".into(),
        params: SmallDnn::PARAMS,
        epoch: 0,
        adam_step: 0,
        history: vec![],
    };
    checkpoint::save(&path, &model, &adam, &meta).unwrap();
    let err = checkpoint::load::<Other, _, _>(&path, &mut model, Default::default()).unwrap_err();
    assert!(err.to_string().contains("is of network SmallDnn"), "{err}");
}

#[test]
fn non_finite_loss_stops_with_epoch_and_batch() {
    let data = FashionMnist::load(None).expect("Fashion-MNIST");
    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.build_module::<SmallDnn, f32>();
    let config = TrainConfig {
        epochs: 2,
        learning_rate: 1e30,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::<SmallDnn, _, _>::new(dev, config);
    let mut saved = 0;
    let err = trainer
        .fit(
            &mut model,
            &data.train.take(1_000),
            &data.val.take(100),
            Vec::new(),
            |_, _, _| {
                saved += 1;
                Ok(())
            },
        )
        .unwrap_err();
    match err {
        Error::NonFiniteLoss { epoch, batch, .. } => {
            assert_eq!(epoch, 1);
            assert!(batch >= 2, "the first batch starts from finite weights");
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    assert_eq!(saved, 0, "no checkpoint after a failed epoch");
}
