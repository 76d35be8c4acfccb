//! `study`: reproduces the Fashion-MNIST study (14 dense and convolutional
//! variants) with netdsl.
//!
//! ```text
//! study list                          # the variants
//! study summary [ID...] [--json]      # Keras-like model summaries
//! study run [ID... | all] [--epochs 20] [--batch 100] [--seed 0] [--limit N] [--data DIR] [--out results] [--resume]
//! study report [--out results]        # results.md, results.csv, curves/*.png from <out>/*.json
//! study bench [ID...] [--steps 50]    # seconds per training epoch and per test evaluation,
//!                                     # and (stderr) their ratio to the recorded peers
//! ```
//!
//! Progress goes to stderr, results to stdout. Every error is one line on
//! stderr and exit code 1, a closed or full stdout or stderr included (no
//! panic). `study run` checks everything it can before the first epoch
//! (data, output folder, checkpoints to resume) and holds a lock on its
//! output folder; see the README's "Reliability" section.

// The doc comments below are clap's help text, where `<out>/<id>.json` names
// a path, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netdsl_experiments::bench::{peak_rss_mib, BATCH};
use netdsl_experiments::console::{error_line, StreamError};
use netdsl_experiments::identity::DataIdentity;
use netdsl_experiments::run::{BenchCtx, RunCtx};
use netdsl_experiments::variants::{find, study_fit, Variant, VARIANTS};
use netdsl_experiments::{errln, folder, outln, peers, report};
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
    /// One `study run` at a time per output folder (<out>/.study.lock). Without
    /// --resume every variant starts over, and an earlier <id>.json and
    /// <id>.safetensors are moved aside to <id>.json.prev and <id>.safetensors.prev.
    Run {
        /// Variant ids, or `all`.
        #[arg(default_value = "all")]
        ids: Vec<String>,
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Train on the first N training images only (validation and test stay whole).
        #[arg(long)]
        limit: Option<usize>,
        /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Skip variants whose <id>.json is this run's finished result; continue the
        /// others from a checkpoint of the same run (same settings and data; --epochs
        /// may differ but not be below the epochs it holds), else start them over.
        #[arg(long)]
        resume: bool,
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
    },
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
            epochs,
            batch,
            seed,
            limit,
            data,
            out,
            resume,
        } => {
            let selected = select(&ids)?;
            let fit = study_fit(epochs, batch, seed, None);
            fit.check()?;
            let data_dir = FashionMnist::resolve_dir(data.as_deref());
            let data = FashionMnist::load(Some(&data_dir)).context("loading Fashion-MNIST")?;
            if let Some(n) = limit {
                anyhow::ensure!(
                    n >= 1 && n <= data.train.len(),
                    "--limit {n} is outside 1..={} (the training images)",
                    data.train.len()
                );
            }
            let train = match limit {
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
                batch <= train.len(),
                "batch size {batch} is larger than the {} training images",
                train.len()
            );
            // Held until the end: one `study run` per folder.
            let _lock = folder::lock(&out)?;
            for path in folder::remove_stale_temps(&out)? {
                errln!("removed {} (its writer is gone)", path.display())?;
            }
            let ctx = RunCtx {
                train: &train,
                val: &data.val,
                test: &data.test,
                data: DataIdentity::of(&train, &data.val, &data.test),
                fit,
                limit,
                out: out.clone(),
                resume,
                progress: std::io::stderr().is_terminal(),
            };
            // Every variant is checked before the first one trains.
            let starts = selected
                .iter()
                .map(|v| (v.prepare)(v, &ctx).with_context(|| format!("variant {}", v.id)))
                .collect::<Result<Vec<_>>>()?;
            for (v, start) in selected.into_iter().zip(starts) {
                let Some(r) =
                    (v.run)(v, &ctx, start).with_context(|| format!("variant {}", v.id))?
                else {
                    continue;
                };
                let last = r.epochs.last().context("no epoch ran")?;
                let val = |x: Option<f64>| x.unwrap_or(f64::NAN);
                outln!(
                    "{:<9} loss {:.4} acc {:.4} val_loss {:.4} val_acc {:.4} test_acc {:.4} train {:.1}s test {:.2}s",
                    r.id, last.loss, last.accuracy, val(last.val_loss), val(last.val_accuracy),
                    r.test_accuracy, r.train_seconds, r.test_seconds
                )?;
            }
            errln!(
                "results in {}; peak resident memory {:.0} MiB; `study report --out {}` builds the table and figures",
                out.display(),
                peak_rss_mib().unwrap_or(f64::NAN),
                out.display()
            )?;
        }
        Command::Report { out } => {
            let results = report::load_results(&out)?;
            anyhow::ensure!(
                !results.is_empty(),
                "no <id>.json results in {}",
                out.display()
            );
            let files = report::write_report(&out, &results)?;
            outln!("{}", report::markdown_table(&results))?;
            for path in files.all() {
                outln!("{}", path.display())?;
            }
        }
        Command::Bench {
            ids,
            steps,
            repeats,
            data,
        } => {
            anyhow::ensure!(
                steps >= 1 && repeats >= 1,
                "--steps and --repeats must be at least 1"
            );
            let selected = select(&ids)?;
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
                let b = (v.bench)(v, &ctx).with_context(|| format!("variant {}", v.id))?;
                outln!(
                    "{} train_epoch_s={:.3} eval_test_s={:.3}",
                    v.id,
                    b.train_epoch_s,
                    b.eval_test_s
                )?;
                // The ratios to the recorded peers go to stderr: stdout stays `key=value` lines.
                if let Some(line) = peers::comparison(v.id, b.train_epoch_s, b.eval_test_s) {
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
