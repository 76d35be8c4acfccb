//! `study`: reproduces the Fashion-MNIST study (14 dense and convolutional
//! variants) with netdsl.
//!
//! ```text
//! study list                          # the variants
//! study summary [ID...] [--json]      # Keras-like model summaries
//! study run [ID... | all] [--epochs 20] [--batch 100] [--seed 0] [--limit N] [--data DIR] [--out results]
//! study report [--out results]        # results.md, results.csv, curves/*.png from <out>/*.json
//! study bench [ID...] [--steps 50]    # seconds per training epoch and per test evaluation,
//!                                     # and (stderr) their ratio to the recorded peers
//! ```
//!
//! Progress goes to stderr, results to stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netdsl_experiments::bench::peak_rss_mib;
use netdsl_experiments::run::{BenchCtx, RunCtx};
use netdsl_experiments::variants::{find, study_fit, Variant, VARIANTS};
use netdsl_experiments::{peers, report};
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
        /// Continue unfinished variants from their last checkpoint; skip finished ones.
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

/// `println!` that returns an error instead of panicking when stdout is
/// closed (`study bench | head -1`).
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)
    };
}

fn main() {
    if let Err(e) = real_main() {
        let broken_pipe = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
        if broken_pipe {
            return; // the reader has gone: nothing left to say
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for v in VARIANTS {
                out!(
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
                out!("{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                for v in selected {
                    out!("{} ({})\n{}", v.id, v.description, (v.summary)())?;
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
            let data = FashionMnist::load(data.as_deref()).context("loading Fashion-MNIST")?;
            if let Some(n) = limit {
                anyhow::ensure!(
                    n >= 1 && n <= data.train.len(),
                    "--limit {n} is outside 1..={} (the training images)",
                    data.train.len()
                );
            }
            let train_len = limit.unwrap_or(data.train.len());
            anyhow::ensure!(
                batch <= train_len,
                "batch size {batch} is larger than the {train_len} training images"
            );
            let ctx = RunCtx {
                data: &data,
                fit,
                limit,
                out: out.clone(),
                resume,
                progress: std::io::stderr().is_terminal(),
            };
            for v in selected {
                let Some(r) = (v.run)(v, &ctx).with_context(|| format!("variant {}", v.id))? else {
                    continue;
                };
                let last = r.epochs.last().context("no epoch ran")?;
                let val = |x: Option<f64>| x.unwrap_or(f64::NAN);
                out!(
                    "{:<9} loss {:.4} acc {:.4} val_loss {:.4} val_acc {:.4} test_acc {:.4} train {:.1}s test {:.2}s",
                    r.id, last.loss, last.accuracy, val(last.val_loss), val(last.val_accuracy),
                    r.test_accuracy, r.train_seconds, r.test_seconds
                )?;
            }
            eprintln!(
                "results in {}; peak resident memory {:.0} MiB; `study report --out {}` builds the table and figures",
                out.display(),
                peak_rss_mib().unwrap_or(f64::NAN),
                out.display()
            );
        }
        Command::Report { out } => {
            let results = report::load_results(&out)?;
            anyhow::ensure!(
                !results.is_empty(),
                "no <id>.json results in {}",
                out.display()
            );
            let files = report::write_report(&out, &results)?;
            out!("{}", report::markdown_table(&results))?;
            for path in files.all() {
                out!("{}", path.display())?;
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
            anyhow::ensure!(
                steps * 100 <= data.train.len(),
                "--steps {steps} needs more than the training set"
            );
            let ctx = BenchCtx {
                data: &data,
                steps,
                repeats,
            };
            let mut plain_cnn3a = None; // for cnn3c's cost of augmentation
            for v in selected {
                let b = (v.bench)(v, &ctx).with_context(|| format!("variant {}", v.id))?;
                out!(
                    "{} train_epoch_s={:.3} eval_test_s={:.3}",
                    v.id,
                    b.train_epoch_s,
                    b.eval_test_s
                )?;
                // The ratios to the recorded peers go to stderr: stdout stays `key=value` lines.
                if let Some(line) = peers::comparison(v.id, b.train_epoch_s, b.eval_test_s) {
                    eprintln!("{line}");
                }
                match (v.id, plain_cnn3a) {
                    ("cnn3a", _) => plain_cnn3a = Some(b.train_epoch_s),
                    ("cnn3c", Some(plain)) => {
                        eprintln!(
                            "  cnn3c: epoch {:.2}x cnn3a's (augmentation)",
                            b.train_epoch_s / plain
                        )
                    }
                    _ => {}
                }
            }
            out!("peak_rss_mib={:.0}", peak_rss_mib().unwrap_or(f64::NAN))?;
        }
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
