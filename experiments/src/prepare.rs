//! Before any job trains: check each one's run and decide how it starts
//! ([`prepare_variant`]), so that `study run a b c` trains nothing when `c`
//! cannot run. `<stem>` is the job's file name (`cnn3a`, `cnn3a.s1`, see `jobs.rs`).
//!
//! ```text
//! always          the data fits the network; the overrides fit the variant (dropout.2 needs
//!                 three dropout layers, aug.* an augmented variant); <stem>.json,
//!                 <stem>.safetensors and their .prev are files or absent (a rename onto a
//!                 directory would fail after training)
//! with --resume   <stem>.json finished (parses, complete, same identity)    -> Finished
//!                 else a checkpoint: same identity but the epochs target,
//!                 no more epochs than --epochs, every tensor finite         -> Resume
//!                 else                                                      -> Fresh
//! ```

use std::fs;
use std::io;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use netdsl_runtime::checkpoint::{load_training, read_meta};
use netdsl_runtime::data::SampleShape;
use netdsl_runtime::dfdx::prelude::*;
use netdsl_runtime::model::{check_data, input_shape, Model, Trainable};
use netdsl_runtime::network::Network;
use netdsl_runtime::train::Fit;

use crate::folder::{check_replaceable, prev_path};
use crate::identity::Identity;
use crate::jobs::Job;
use crate::regularize;
use crate::results::RunResult;
use crate::run::{shaped_for, RunCtx};

/// Checks one job's run before anything trains and decides how it starts.
pub type PrepareFn = fn(&Job, &RunCtx) -> Result<Start>;

/// How a variant's run starts, as [`prepare_variant`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `--resume` and `<id>.json` is this run's finished result: nothing to do.
    Finished,
    /// From the first epoch. `why`: with `--resume`, why `<id>.json` is not
    /// this run's finished result (when there is one).
    Fresh { why: Option<String> },
    /// From the checkpoint, after its `done` epochs; `why` as for `Fresh`.
    Resume { done: usize, why: Option<String> },
}

/// Everything about `job`'s run that can be checked before the first
/// epoch of any job, and how it starts:
///
/// - the data fits network `N` (shape, classes; augmentation needs images);
/// - the overrides fit the variant (its dropout layers, its L2, its augmentation);
/// - `<id>.json`, `<id>.safetensors` and their `.prev` are files or absent;
/// - with `--resume`: whether `<id>.json` is this run's finished result
///   ([`finished`]); if not, whether a checkpoint continues it: its identity
///   must equal this run's but for the epochs target, it must hold no more
///   epochs than `--epochs`, and it must load (every tensor and the
///   optimizer's state present, of its shape, finite).
pub fn prepare_variant<N>(job: &Job, ctx: &RunCtx) -> Result<Start>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    let variant = job.variant;
    for data in [ctx.train, ctx.val, ctx.test] {
        check_data::<N>(&shaped_for::<N>(&data.take(1)))?;
    }
    ensure!(
        !variant.augment || matches!(input_shape::<N>(), SampleShape::Image { .. }),
        "augmentation needs images, network {} takes vectors",
        N::NAME
    );
    let fit = ctx.fit_for(job)?;
    if job.overrides.touches_regularizers() {
        let mut model = Model::<N>::new(&Cpu::seed_from_u64(0))?;
        regularize::apply(&mut model, &job.overrides, variant.id)?;
    }
    let (result_path, checkpoint_path) = (ctx.result_path(job), ctx.checkpoint_path(job));
    for path in [&result_path, &checkpoint_path] {
        check_replaceable(path)?;
        check_replaceable(&prev_path(path))?;
    }
    if !ctx.resume {
        return Ok(Start::Fresh { why: None });
    }
    let identity = ctx.identity::<N>(job)?;
    let why = match finished(&result_path, &identity)? {
        Finished::Yes => return Ok(Start::Finished),
        Finished::Missing => None,
        Finished::No(why) => Some(why),
    };
    if !checkpoint_path.exists() {
        return Ok(Start::Fresh { why });
    }
    let done = check_checkpoint::<N>(&checkpoint_path, &identity, fit)?;
    Ok(Start::Resume { done, why })
}

/// Whether `<id>.json` is the finished result of the run `identity` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    Yes,
    /// There is no such file.
    Missing,
    /// There is one, but not this run's finished result: why.
    No(String),
}

/// A result file is finished when it parses as a [`RunResult`], records an
/// identity equal to `identity` (the epochs target included), and is
/// complete: one entry per epoch, and a confusion matrix over the whole test
/// set. Anything else (empty, corrupt, another run's) is not.
pub fn finished(path: &Path, identity: &Identity) -> Result<Finished> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Finished::Missing),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let path = path.display();
    if bytes.is_empty() {
        return Ok(Finished::No(format!("{path} is empty")));
    }
    let result: RunResult = match serde_json::from_slice(&bytes) {
        Ok(result) => result,
        Err(e) => return Ok(Finished::No(format!("{path} is not a run result ({e})"))),
    };
    let Some(recorded) = &result.identity else {
        return Ok(Finished::No(format!(
            "{path} records no run identity (an older `study run` wrote it)"
        )));
    };
    if let Some(d) = recorded.differences(identity).first() {
        return Ok(Finished::No(format!("{path} is of another run: {d}")));
    }
    if result.epochs.len() != identity.epochs {
        return Ok(Finished::No(format!(
            "{path} is incomplete: it holds {} of {} epochs",
            result.epochs.len(),
            identity.epochs
        )));
    }
    let counted: u64 = result.confusion.iter().flatten().sum();
    if counted != identity.data.test.count as u64 {
        return Ok(Finished::No(format!(
            "{path} is incomplete: its confusion matrix counts {counted} of {} test images",
            identity.data.test.count
        )));
    }
    Ok(Finished::Yes)
}

/// Checks that the checkpoint at `path` continues the run `identity` names
/// and loads; returns the epochs it holds.
fn check_checkpoint<N>(path: &Path, identity: &Identity, fit: Fit) -> Result<usize>
where
    N: Network + BuildOnDevice<Cpu, f32>,
    N::Built: Trainable<N, Cpu>,
{
    let shown = path.display();
    let meta = read_meta(path)?;
    if meta.extra.is_null() {
        bail!(
            "checkpoint {shown} records no run identity (an older `study run` or `Model::save` \
             wrote it); run without --resume to start over"
        );
    }
    let recorded: Identity = serde_json::from_value(meta.extra)
        .with_context(|| format!("checkpoint {shown}: its run identity is unreadable"))?;
    if let Some(d) = recorded.difference(identity) {
        bail!(
            "checkpoint {shown} is of another run: {d}; run without --resume to start over, \
             or with the checkpoint's settings"
        );
    }
    let Some(training) = meta.training else {
        bail!("checkpoint {shown} holds weights only, no training state to resume");
    };
    let done = training.history.epochs.len();
    if done > identity.epochs {
        bail!(
            "checkpoint {shown} holds {done} epochs, more than --epochs {}; \
             ask for at least {done}",
            identity.epochs
        );
    }
    if recorded.epochs != identity.epochs && identity.schedule_depends_on_epochs() {
        bail!(
            "checkpoint {shown} is of a {}-epoch run and its learning-rate schedule \
             depends on the epochs; resume with --epochs {}",
            recorded.epochs,
            recorded.epochs
        );
    }
    // Every tensor and the optimizer's state: present, of its shape, finite.
    let mut model = Model::<N>::new(&Cpu::seed_from_u64(0))?;
    load_training(path, &mut model, fit)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DataIdentity;
    use crate::variants::{find, study_fit, Cnn3a, Dnn1};
    use netdsl_runtime::data::Dataset;

    /// Data that is not Fashion-MNIST's shape fails every network's check,
    /// before anything is written.
    #[test]
    fn data_of_another_shape_is_refused() {
        let small = Dataset::new(vec![0u8; 2 * 4], vec![0, 1], (1, 2, 2), 10).unwrap();
        let out = tempfile::tempdir().unwrap();
        let ctx = RunCtx {
            train: &small,
            val: &small,
            test: &small,
            data: DataIdentity::of(&small, &small, &small),
            fit: study_fit(1, 1, 0, None),
            limit: None,
            out: out.path().to_owned(),
            resume: false,
            progress: false,
            device: Default::default(),
        };
        let job = |id| Job {
            variant: find(id).unwrap(),
            overrides: Default::default(),
            seed: 0,
            seed_in_name: false,
        };
        let dnn1 = prepare_variant::<Dnn1>(&job("dnn1"), &ctx).unwrap_err();
        assert_eq!(
            dnn1.to_string(),
            "network Dnn1 takes samples of shape 784, but the data's are 1x2x2"
        );
        let cnn3a = prepare_variant::<Cnn3a>(&job("cnn3a"), &ctx).unwrap_err();
        assert!(
            cnn3a.to_string().contains("takes samples of shape 1x28x28"),
            "{cnn3a}"
        );
        assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
    }
}
