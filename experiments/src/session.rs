//! One `study run` (also `study sweep` and `study calibrate`): check the
//! device, load the data, hold the output folder, check every job before the
//! first epoch, then run them one after another.
//!
//! ```text
//! --device    checked first (device.rs): `cuda` without a usable GPU fails before
//!             any data is read or file written
//! unsharded   lock <out> exclusively; remove stale temporary files; prepare every job; run
//! shard I/N   the jobs k with k % N == I; lock <out> shared and each of those jobs
//!             exclusively (<out>/.locks/<stem>.lock); remove their temporary files;
//!             prepare; run
//! ```
//!
//! See `folder.rs` for the locks and `jobs.rs` for the job list.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use netdsl_runtime::data::FashionMnist;

use crate::bench::peak_rss_mib;
use crate::device::{self, DeviceKind};
use crate::identity::DataIdentity;
use crate::jobs::{Job, Shard};
use crate::run::RunCtx;
use crate::variants::study_fit;
use crate::{errln, folder, outln};

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct Session {
    /// Every job of the command (all shards').
    pub jobs: Vec<Job>,
    /// This process's part, if the jobs are split.
    pub shard: Option<Shard>,
    pub epochs: usize,
    pub batch: usize,
    pub limit: Option<usize>,
    pub data: Option<PathBuf>,
    pub out: PathBuf,
    pub resume: bool,
    /// `--device`.
    pub device: DeviceKind,
}

impl Session {
    /// Runs the session's jobs (this shard's), printing one line per job
    /// that ran on stdout.
    pub fn run(self) -> Result<()> {
        if let Some(line) = device::check(self.device)? {
            errln!("{line}")?;
        }
        let fit = study_fit(self.epochs, self.batch, 0, None);
        fit.check()?;
        let total = self.jobs.len();
        let jobs = match self.shard {
            Some(shard) => shard.select(self.jobs.clone()),
            None => self.jobs.clone(),
        };
        if jobs.is_empty() {
            let shard = self.shard.map(|s| s.to_string()).unwrap_or_default();
            errln!("shard {shard}: none of the {total} jobs; nothing to run")?;
            return Ok(());
        }
        let data_dir = FashionMnist::resolve_dir(self.data.as_deref());
        let data = FashionMnist::load(Some(&data_dir)).context("loading Fashion-MNIST")?;
        if let Some(n) = self.limit {
            anyhow::ensure!(
                n >= 1 && n <= data.train.len(),
                "--limit {n} is outside 1..={} (the training images)",
                data.train.len()
            );
        }
        let train = match self.limit {
            Some(n) => data.train.take(n),
            None => data.train.clone(),
        };
        for (set, name) in [
            (&train, "training"),
            (&data.val, "validation"),
            (&data.test, "test"),
        ] {
            anyhow::ensure!(
                !set.is_empty(),
                "the {name} set in {} is empty",
                data_dir.display()
            );
        }
        anyhow::ensure!(
            self.batch <= train.len(),
            "batch size {} is larger than the {} training images",
            self.batch,
            train.len()
        );
        let out = &self.out;
        // Held until the end: the folder (exclusive, or shared by shards) and,
        // for a shard, each of its jobs.
        let (_folder_lock, _job_locks) = match self.shard {
            None => {
                let lock = folder::lock(out)?;
                for path in folder::remove_stale_temps(out)? {
                    errln!("removed {} (its writer is gone)", path.display())?;
                }
                (lock, Vec::new())
            }
            Some(_) => {
                let lock = folder::lock_shared(out)?;
                let mut job_locks = Vec::with_capacity(jobs.len());
                for job in &jobs {
                    let stem = job.stem();
                    job_locks.push(folder::lock_job(out, &stem)?);
                    for path in folder::remove_job_temps(out, &stem)? {
                        errln!("removed {} (its writer is gone)", path.display())?;
                    }
                }
                (lock, job_locks)
            }
        };
        let ctx = RunCtx {
            train: &train,
            val: &data.val,
            test: &data.test,
            data: DataIdentity::of(&train, &data.val, &data.test),
            fit,
            limit: self.limit,
            out: out.clone(),
            resume: self.resume,
            progress: std::io::stderr().is_terminal(),
            device: self.device,
        };
        // Every job is checked before the first one trains.
        let starts = jobs
            .iter()
            .map(|job| (job.variant.prepare)(job, &ctx).with_context(|| job_name(job)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(shard) = self.shard {
            errln!("shard {shard}: {} of {total} jobs", jobs.len())?;
        }
        for (job, start) in jobs.iter().zip(starts) {
            let run = job.variant.on(self.device)?.run;
            let Some(r) = run(job, &ctx, start).with_context(|| job_name(job))? else {
                continue;
            };
            let last = r.epochs.last().context("no epoch ran")?;
            let val = |x: Option<f64>| x.unwrap_or(f64::NAN);
            outln!(
                "{:<9} loss {:.4} acc {:.4} val_loss {:.4} val_acc {:.4} test_acc {:.4} train {:.1}s test {:.2}s",
                job.stem(), last.loss, last.accuracy, val(last.val_loss), val(last.val_accuracy),
                r.test_accuracy, r.train_seconds, r.test_seconds
            )?;
        }
        errln!(
            "results in {}; peak resident memory {:.0} MiB; `study report --out {}` builds the table and figures",
            out.display(),
            peak_rss_mib().unwrap_or(f64::NAN),
            out.display()
        )?;
        Ok(())
    }
}

/// `variant cnn3a`, or `cnn3a.s1` / `cnn3b@l2=0.05` when the job has a longer name.
fn job_name(job: &Job) -> String {
    let stem = job.stem();
    if stem == job.variant.id {
        format!("variant {stem}")
    } else {
        stem
    }
}
