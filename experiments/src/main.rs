//! `study`: reproduces the Fashion-MNIST study (14 dense and convolutional
//! variants) with netdsl.
//!
//! ```text
//! study list                          # the variants
//! study summary [ID...] [--json]      # Keras-like model summaries
//! study run [ID... | all] [--epochs 20] [--batch 100] [--seed 0 | --seeds 0..5] [--set KEY=V1,V2,...]...
//!           [--limit N] [--data DIR] [--out results] [--resume] [--shard I/N] [--device cpu|cuda]
//! study sweep ID... --set KEY=V1,V2,... [--set ...] [run options]   # a grid of overrides
//! study calibrate [ROW...] [--seeds 0..3] [--out results/calibration] [--dry-run] [run options]
//! study report [--out results]        # results.md, results.csv, curves/*.png from <out>/*.json;
//!                                     # over seeds: seeds.md, seeds.csv, bands/*.svg; calibration.md
//! study bench [ID...] [--steps 50] [--device cpu|cuda]
//!                                     # seconds per training epoch and per test evaluation,
//!                                     # and (stderr) their ratio to the recorded peers
//! ```
//!
//! Progress goes to stderr, results to stdout. Every error is one line on
//! stderr and exit code 1, a closed or full stdout or stderr included (no
//! panic). `study run` checks everything it can before the first epoch
//! (data, output folder, checkpoints to resume) and holds a lock on its
//! output folder; see the README's "Reliability" section. `--device cuda`
//! needs a build with `--features cuda` and an NVIDIA GPU, and says so in one
//! line before anything is loaded when either is missing (`device.rs`).

// The doc comments below are clap's help text, where `<out>/<id>.json` names
// a path, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use netdsl_experiments::bench::{peak_rss_mib, BATCH};
use netdsl_experiments::calibration::{self, GRIDS};
use netdsl_experiments::console::{error_line, StreamError};
use netdsl_experiments::device::{self, DeviceKind};
use netdsl_experiments::jobs::{self, Shard};
use netdsl_experiments::overrides::{grid, SetArg};
use netdsl_experiments::run::BenchCtx;
use netdsl_experiments::session::Session;
use netdsl_experiments::variants::{find, Variant, VARIANTS};
use netdsl_experiments::{errln, outln, peers, report};
use netdsl_runtime::data::FashionMnist;

/// Each CNN step allocates tens of MB; glibc's malloc returns them to the OS
/// and faults them back in every step, mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "study",
    version,
    about = "Reproduce the Fashion-MNIST DNN/CNN study with netdsl"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the variants: id, description, parameters.
    List,
    /// Print Keras-like summaries (all variants when no id is given).
    Summary {
        ids: Vec<String>,
        /// Print a JSON array instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Train and evaluate variants; writes <out>/<id>.json and <out>/<id>.safetensors.
    ///
    /// One `study run` at a time per output folder (<out>/.study.lock), except
    /// the shards of one (--shard, Slurm arrays), which lock each job instead. Without
    /// --resume every job starts over, and an earlier <stem>.json and
    /// <stem>.safetensors are moved aside to <stem>.json.prev and <stem>.safetensors.prev.
    Run {
        /// Variant ids, or `all`.
        #[arg(default_value = "all")]
        ids: Vec<String>,
        /// Override a setting, one run per value (see `study sweep --help`).
        #[arg(long = "set", value_name = "KEY=V1,V2,...")]
        sets: Vec<SetArg>,
        #[command(flatten)]
        train: TrainArgs,
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Run a grid of settings without rebuilding: one job per combination of
    /// the --set values (and per seed), each in <out>/<id>@<key=value,...>[.s<seed>].json.
    ///
    /// Keys: lr; dropout (every rate), dropout.K (the K-th dropout layer, from 0),
    /// dropout_scale; l2 (the factor), l2_on (conv, dense, conv+dense, none); aug (every
    /// augmentation range times a factor), aug.rotation (degrees), aug.shift, aug.zoom,
    /// aug.noise, aug.flip (cnn3c and cnn3c-do only).
    Sweep {
        /// Variant ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// A key and its values: `--set dropout=0.1,0.2,0.3`; several --set make a grid.
        #[arg(long = "set", value_name = "KEY=V1,V2,...", required = true)]
        sets: Vec<SetArg>,
        #[command(flatten)]
        train: TrainArgs,
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Run the calibration grids of the eight rows that differ from the study
    /// (experiments/src/calibration.rs); `study report --out <out>` then writes
    /// <out>/calibration.md. Seeds default to 0..3.
    Calibrate {
        /// Rows (variant ids with a grid); all eight when none.
        rows: Vec<String>,
        #[command(flatten)]
        train: TrainArgs,
        #[arg(long, default_value = "results/calibration")]
        out: PathBuf,
        /// Print the jobs and their estimated time; run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Merge <out>/*.json into results.md, results.csv and figures.
    Report {
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Time a training epoch (55,000 images, batch 100) and a test evaluation.
    Bench {
        #[arg(default_values_t = ["dnn1", "dnn2", "cnn3a", "cnn3c", "cnn4a"].map(String::from))]
        ids: Vec<String>,
        /// Timed training steps per repeat.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Repeats (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where to compute: `cuda` needs a build with `--features cuda` and an NVIDIA GPU.
        #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
        device: DeviceKind,
    },
}

/// How `study run`, `sweep` and `calibrate` train, and which share of their jobs.
#[derive(Args, Debug)]
struct TrainArgs {
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// One seed; the files are <id>.json.
    #[arg(long, default_value_t = 0, conflicts_with = "seeds")]
    seed: u64,
    /// Several seeds, one job each: `0,1,2`, `0..5` (0 to 4), `0..=4`; the files are
    /// <id>.s<seed>.json, and `study report` gives means and 95% intervals.
    #[arg(long, value_name = "LIST")]
    seeds: Option<String>,
    /// Train on the first N training images only (validation and test stay whole).
    #[arg(long)]
    limit: Option<usize>,
    /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Skip jobs whose <stem>.json is this run's finished result; continue the
    /// others from a checkpoint of the same run (same settings and data; --epochs
    /// may differ but not be below the epochs it holds), else start them over.
    #[arg(long)]
    resume: bool,
    /// Run only part I of N of the jobs (job k when k mod N = I), sharing the output
    /// folder with the other parts; default: Slurm's SLURM_ARRAY_TASK_ID of
    /// SLURM_ARRAY_TASK_COUNT when set.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Where to train: `cuda` needs a build with `--features cuda` and an NVIDIA GPU. The
    /// device is part of a run's identity: --resume continues a checkpoint on its own device only.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
}

impl TrainArgs {
    /// The seeds (`--seeds`, else `default`, else `--seed`) and whether they name the files.
    fn seeds(&self, default: Option<&str>) -> Result<(Vec<u64>, bool)> {
        match self.seeds.as_deref().or(default) {
            Some(list) => Ok((jobs::parse_seeds(list)?, true)),
            None => Ok((vec![self.seed], false)),
        }
    }

    /// The session of `jobs` into `out`; the shard from --shard or Slurm's variables.
    fn session(self, jobs: Vec<jobs::Job>, out: PathBuf) -> Result<Session> {
        let shard = match self.shard {
            Some(shard) => Some(shard),
            None => Shard::from_slurm(|name| std::env::var(name).ok())?,
        };
        Ok(Session {
            jobs,
            shard,
            epochs: self.epochs,
            batch: self.batch,
            limit: self.limit,
            data: self.data,
            out,
            resume: self.resume,
            device: self.device,
        })
    }
}

/// Errors end the program with exit code 1 and one line on stderr; when
/// stderr itself cannot be written, or stdout's reader has gone (`study list
/// | head -1`), with exit code 1 and nothing more to say.
fn main() {
    let code = match real_main() {
        Ok(()) => 0,
        Err(e) => {
            let stream = e.chain().find_map(|c| c.downcast_ref::<StreamError>());
            let unsayable = stream.is_some_and(|s| {
                s.stream == "stderr" || s.source.kind() == std::io::ErrorKind::BrokenPipe
            });
            if !unsayable {
                let _ = writeln!(std::io::stderr(), "error: {}", error_line(&e));
            }
            1
        }
    };
    std::process::exit(code);
}

fn real_main() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help, version and usage errors; clap ignores a failed write, we do not.
        Err(e) => match e.print() {
            Ok(()) => std::process::exit(e.exit_code()),
            Err(_) => std::process::exit(1),
        },
    };
    limit_threads()?;
    match cli.command {
        Command::List => {
            for v in VARIANTS {
                outln!(
                    "{:<9} {:>8}  {:<38} study: {}",
                    v.id,
                    report::thousands(v.params),
                    v.description,
                    v.study_name
                )?;
            }
        }
        Command::Summary { ids, json } => {
            let selected = select(&ids)?;
            if json {
                let all: Vec<serde_json::Value> = selected
                    .iter()
                    .map(|v| {
                        let s = (v.summary)();
                        serde_json::json!({ "id": v.id, "params": s.params, "layers": s.layers, "summary": s })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                for v in selected {
                    outln!("{} ({})\n{}", v.id, v.description, (v.summary)())?;
                }
            }
        }
        Command::Run {
            ids,
            sets,
            train,
            out,
        }
        | Command::Sweep {
            ids,
            sets,
            train,
            out,
        } => {
            let selected = select(&ids)?;
            let points = grid(&sets)?;
            let (seeds, named) = train.seeds(None)?;
            let jobs = jobs::expand(&selected, &points, &seeds, named);
            train.session(jobs, out)?.run()?;
        }
        Command::Calibrate {
            rows,
            train,
            out,
            dry_run,
        } => {
            let grids = calibration_grids(&rows)?;
            let (seeds, _) = train.seeds(Some("0..3"))?;
            let mut all = Vec::new();
            let mut minutes = 0.0;
            for g in &grids {
                let jobs = jobs::expand(&[find(g.row)?], &g.overrides()?, &seeds, true);
                let scale = train.epochs as f64 / calibration::STUDY_EPOCHS as f64;
                minutes += jobs.len() as f64 * g.minutes_per_run * scale;
                if dry_run {
                    outln!(
                        "{:<9} {} points x {} seeds = {:>3} jobs, about {:.0} min",
                        g.row,
                        g.points.len(),
                        seeds.len(),
                        jobs.len(),
                        jobs.len() as f64 * g.minutes_per_run * scale
                    )?;
                }
                all.extend(jobs);
            }
            if dry_run {
                outln!(
                    "total     {} jobs, about {:.1} h on one 2-core machine (full data)",
                    all.len(),
                    minutes / 60.0
                )?;
                return Ok(());
            }
            train.session(all, out)?.run()?;
        }
        Command::Report { out } => {
            let results = report::load_results(&out)?;
            anyhow::ensure!(
                !results.is_empty(),
                "no <id>.json results in {}",
                out.display()
            );
            let files = report::write_report(&out, &results)?;
            outln!("{}", report::summary_table(&results))?;
            for path in files.all() {
                outln!("{}", path.display())?;
            }
        }
        Command::Bench {
            ids,
            steps,
            repeats,
            data,
            device,
        } => {
            anyhow::ensure!(
                steps >= 1 && repeats >= 1,
                "--steps and --repeats must be at least 1"
            );
            let selected = select(&ids)?;
            if let Some(line) = device::check(device)? {
                errln!("{line}")?;
            }
            let data = FashionMnist::load(data.as_deref()).context("loading Fashion-MNIST")?;
            // `steps * BATCH` overflows for absurd --steps: compare with the quotient instead.
            let max_steps = data.train.len() / BATCH;
            anyhow::ensure!(
                steps <= max_steps,
                "--steps {steps} is more than the {max_steps} batches of {BATCH} in the {} training images",
                data.train.len()
            );
            let ctx = BenchCtx {
                data: &data,
                steps,
                repeats,
            };
            let mut plain_cnn3a = None; // for cnn3c's cost of augmentation
            for v in selected {
                let bench = v.on(device)?.bench;
                let b = bench(v, &ctx).with_context(|| format!("variant {}", v.id))?;
                outln!(
                    "{} train_epoch_s={:.3} eval_test_s={:.3}",
                    v.id,
                    b.train_epoch_s,
                    b.eval_test_s
                )?;
                // The ratios to the recorded peers go to stderr: stdout stays `key=value` lines.
                // The peers ran on this project's CPU; a GPU epoch is set beside the study's.
                let comparison = match device {
                    DeviceKind::Cpu => peers::comparison(v.id, b.train_epoch_s, b.eval_test_s),
                    DeviceKind::Cuda => peers::gpu_comparison(v.id, b.train_epoch_s),
                };
                if let Some(line) = comparison {
                    errln!("{line}")?;
                }
                match (v.id, plain_cnn3a) {
                    ("cnn3a", _) => plain_cnn3a = Some(b.train_epoch_s),
                    ("cnn3c", Some(plain)) => {
                        errln!(
                            "  cnn3c: epoch {:.2}x cnn3a's (augmentation)",
                            b.train_epoch_s / plain
                        )?;
                    }
                    _ => {}
                }
            }
            outln!("peak_rss_mib={:.0}", peak_rss_mib().unwrap_or(f64::NAN))?;
        }
    }
    Ok(())
}

/// Threads per core beyond which `RAYON_NUM_THREADS` is cut back: the
/// kernels gain nothing past one thread per core, and 99,999 threads ran for
/// minutes without a line of output.
const MAX_THREADS_PER_CORE: usize = 4;

/// Caps rayon's thread count, which `RAYON_NUM_THREADS` (or the older
/// `RAYON_RS_NUM_CPUS`) sets, at `MAX_THREADS_PER_CORE` x the available
/// cores, with a warning. Results do not depend on the thread count.
fn limit_threads() -> Result<()> {
    // The variable rayon reads: the first that parses to a positive count.
    let asked = ["RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS"]
        .into_iter()
        .find_map(|name| {
            let value = std::env::var(name).ok()?;
            let n = value.trim().parse::<usize>().ok().filter(|&n| n > 0)?;
            Some((name, n))
        });
    let Some((name, asked)) = asked else {
        return Ok(());
    };
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let max = cores.saturating_mul(MAX_THREADS_PER_CORE);
    if asked > max {
        errln!(
            "warning: {name}={asked} is more than {MAX_THREADS_PER_CORE} threads for each of the \
             {cores} available cores; using {max}"
        )?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(max)
            .build_global()
            .context("starting the thread pool")?;
    }
    Ok(())
}

/// The calibration grids of `rows` (none: all eight), in the order given.
fn calibration_grids(rows: &[String]) -> Result<Vec<&'static calibration::Grid>> {
    if rows.is_empty() {
        return Ok(GRIDS.iter().collect());
    }
    rows.iter()
        .map(|row| {
            calibration::grid(row).with_context(|| {
                let known: Vec<&str> = GRIDS.iter().map(|g| g.row).collect();
                format!(
                    "`{row}` has no calibration grid; rows: {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// The variants named by `ids` (`all` or none: every variant), in the order given.
fn select(ids: &[String]) -> Result<Vec<&'static Variant>> {
    if ids.is_empty() || ids.iter().any(|i| i == "all") {
        return Ok(VARIANTS.iter().collect());
    }
    ids.iter().map(|id| find(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
