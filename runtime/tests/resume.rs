//! Training is a function of the seed alone: an interrupted run resumed from
//! its checkpoint ends bit-identical to an uninterrupted one (dropout on), and
//! two runs with the same seed agree bit for bit.
//!
//! Uses the first 2,000 real Fashion-MNIST training images.
//! Run: `cargo test -p netdsl-runtime --test resume`.

use std::path::{Path, PathBuf};

use netdsl_runtime::checkpoint::{load_training, save_training};
use netdsl_runtime::prelude::*;

network! {
    /// A small dense network with dropout.
    SmallDnn<784> { dense<32>, relu, dropout<0.5>, dense<10> }
}

fn without_seconds(h: &History) -> Vec<EpochMetrics> {
    h.epochs
        .iter()
        .map(|e| EpochMetrics {
            seconds: 0.0,
            ..e.clone()
        })
        .collect()
}

fn weights(m: &Model<SmallDnn>) -> Vec<Vec<f32>> {
    m.tensors().unwrap().into_iter().map(|t| t.values).collect()
}

/// Checkpoints after every epoch; "crashes" after checkpointing epoch `stop_after`.
struct Checkpointer {
    path: PathBuf,
    stop_after: Option<usize>,
    /// The optimizer's step count and the history at the last checkpoint.
    saved: Option<(u64, History)>,
}

impl Observer<SmallDnn, Cpu> for Checkpointer {
    fn on_epoch_end(
        &mut self,
        end: &EpochEnd<'_, SmallDnn, Cpu>,
    ) -> netdsl_runtime::Result<Control> {
        let none = serde_json::Value::Null;
        save_training(&self.path, end.model, end.optimizer, end.history, &none)?;
        self.saved = Some((end.optimizer.step, end.history.clone()));
        if Some(end.history.epochs.len()) == self.stop_after {
            return Err(Error::Config("simulated crash".into()));
        }
        Ok(Control::Continue)
    }
}

fn fit() -> Fit {
    Fit {
        epochs: 3,
        batch: 100,
        seed: 7,
        ..Fit::default()
    }
}

/// Trains 3 epochs; with `stop_after = Some(k)` the run "crashes" after
/// checkpointing epoch k and is resumed from the checkpoint by a new trainer.
fn train(data: &FashionMnist, dir: &Path, stop_after: Option<usize>) -> (History, Vec<Vec<f32>>) {
    let train = data.train.take(2_000).flatten();
    let val = data.val.take(500).flatten();
    let path = dir.join("small.safetensors");
    let dev = Cpu::seed_from_u64(7);
    let mut model = Model::<SmallDnn>::new(&dev).unwrap();
    let mut observer = Checkpointer {
        path: path.clone(),
        stop_after,
        saved: None,
    };
    match model.fit_with(&train, &val, &fit(), &mut observer) {
        Ok(history) => return (history, weights(&model)),
        Err(e) => assert!(e.to_string().contains("simulated crash"), "{e}"),
    }
    // A new process: fresh device, model and trainer, then the checkpoint.
    let dev = Cpu::seed_from_u64(7);
    let mut model = Model::<SmallDnn>::new(&dev).unwrap();
    let (mut trainer, meta) = load_training(&path, &mut model, fit()).unwrap();
    let training = meta.training.unwrap();
    assert_eq!(training.history.epochs.len(), stop_after.unwrap());
    assert_eq!(Some((training.step, training.history)), observer.saved);
    let history = trainer.fit(&mut model, &train, &val, &mut ()).unwrap();
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
    let last = h_full.last().unwrap();
    assert!(last.val_accuracy.unwrap() > 0.6, "{h_full:?}");
}

#[test]
fn training_checkpoint_needs_the_same_optimizer_and_network() {
    network! { Other<784> { dense<10> } }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let dev = Cpu::default();
    let model = Model::<SmallDnn>::new(&dev).unwrap();
    let trainer = Trainer::<SmallDnn, Cpu>::new(fit()).unwrap();
    let note = serde_json::json!({"note": "test"});
    save_training(&path, &model, trainer.optimizer(), trainer.history(), &note).unwrap();

    let mut other = Model::<Other>::new(&dev).unwrap();
    let err = load_training(&path, &mut other, fit()).unwrap_err();
    assert!(err.to_string().contains("is of network SmallDnn"), "{err}");

    let mut same = Model::<SmallDnn>::new(&dev).unwrap();
    let sgd = Fit {
        optimizer: Optimizer::sgd(0.1),
        ..fit()
    };
    let err = load_training(&path, &mut same, sgd).unwrap_err();
    assert!(err.to_string().contains("is not the requested"), "{err}");
    let short = Fit { epochs: 0, ..fit() };
    assert!(load_training(&path, &mut same, short).is_err());
    let (_, meta) = load_training(&path, &mut same, fit()).unwrap();
    assert_eq!(meta.extra["note"], "test");

    // A weights-only file cannot resume training.
    model.save(&path).unwrap();
    let err = load_training(&path, &mut same, fit()).unwrap_err();
    assert!(err.to_string().contains("no training state"), "{err}");
}

#[test]
fn non_finite_loss_stops_with_epoch_and_batch() {
    let data = FashionMnist::load(None).expect("Fashion-MNIST");
    let dev = Cpu::seed_from_u64(0);
    let mut model = Model::<SmallDnn>::new(&dev).unwrap();
    let fit = Fit {
        epochs: 2,
        batch: 100,
        optimizer: Optimizer::adam(1e30),
        ..Fit::default()
    };
    struct Count(usize);
    impl Observer<SmallDnn, Cpu> for Count {
        fn on_epoch_end(
            &mut self,
            _: &EpochEnd<'_, SmallDnn, Cpu>,
        ) -> netdsl_runtime::Result<Control> {
            self.0 += 1;
            Ok(Control::Continue)
        }
    }
    let mut saved = Count(0);
    let err = model
        .fit_with(
            &data.train.take(1_000).flatten(),
            &data.val.take(100).flatten(),
            &fit,
            &mut saved,
        )
        .unwrap_err();
    match err {
        Error::NonFiniteLoss { epoch, batch, .. } => {
            assert_eq!(epoch, 1);
            assert!(batch >= 2, "the first batch starts from finite weights");
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    assert_eq!(saved.0, 0, "no epoch end after a failed epoch");
}
