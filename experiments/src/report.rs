//! The study's published table ([`STUDY`]), its variant order, and the report
//! folder built from the `<id>.json` files that runs write.
//!
//! `study report --out results` calls [`load_results`] then [`write_report`], which writes
//!
//! ```text
//! results/results.md          the study's table for our runs, then ours next to the study's
//! results/results.csv         one row per variant, full precision
//! results/curves/<id>.png     learning curves (loss, accuracy; train vs validation; the study's
//!                             final validation values as reference lines)
//! results/confusion/<id>.png  test-set confusion matrix
//! results/overview.png        all variants: validation accuracy by epoch, test accuracy
//! ```
//!
//! and, when the folder holds several seeds of a run or sweep points (`--seeds`, `--set`):
//!
//! ```text
//! results/results.md          also: every group of seeds next to the study (mean ± 95%,
//!                             the study's value in or out of our interval)
//! results/seeds.csv           per group and metric: mean, sd, 95% interval; the study's value
//! results/bands/<name>.svg    learning curves over seeds: mean lines inside 95% bands
//! results/confusion/<name>.png  the group's test confusion matrices, summed
//! results/calibration.md, calibration.svg   when it holds points of the calibration grids
//! ```
//!
//! Rows follow the study's order (dnn1, dnn2, cnn3a .. cnn4b, then the same with `-do`), so
//! runs made on different machines, or by the shards of a Slurm array, merge by being in one
//! folder; two files with the same run (identity and seed) are refused. Every file is written
//! atomically (temporary file, rename), so a report killed halfway leaves each file as it was
//! before or complete.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use netdsl_runtime::checkpoint::{write_atomic, write_atomic_with};
use netdsl_runtime::data::CLASS_NAMES;
use netdsl_runtime::error::Error;
use netdsl_runtime::metrics::EpochMetrics;
pub use netdsl_runtime::network::thousands;
use netdsl_runtime::plot::{self, Reference, Run};

use crate::calibration;
use crate::folder::{remove_stale_temps, remove_stale_temps_of};
use crate::results::RunResult;
use crate::seeds::{self, group_key, name_of, seed_of, Group};
use crate::svg;

/// The study's variant ids, in the order of its results table.
pub const VARIANT_ORDER: [&str; 14] = [
    "dnn1", "dnn2", "cnn3a", "cnn3b", "cnn3c", "cnn4a", "cnn4b", //
    "dnn1-do", "dnn2-do", "cnn3a-do", "cnn3b-do", "cnn3c-do", "cnn4a-do", "cnn4b-do",
];

/// One row of the study's own results table (final epoch of 20; Keras on a Colab GPU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StudyRow {
    /// Our variant id for this row.
    pub id: &'static str,
    /// The study's name for the model.
    pub model: &'static str,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub train_seconds: f64,
    pub test_seconds: f64,
}

const fn row(
    id: &'static str,
    model: &'static str,
    [loss, accuracy, val_loss, val_accuracy, train_seconds, test_seconds]: [f64; 6],
) -> StudyRow {
    StudyRow {
        id,
        model,
        loss,
        accuracy,
        val_loss,
        val_accuracy,
        train_seconds,
        test_seconds,
    }
}

/// The study's results table, copied from its "Results" section (shared/seed/study.md,
/// C. Boetticher, "Assignment 2: Deep Neural Networks and CNNs for Computer Vision",
/// MSDS 458): model, loss, accuracy, val_loss, val_accuracy, training and testing time (s).
#[rustfmt::skip]
pub const STUDY: [StudyRow; 14] = [
    row("dnn1",     "DNN (2 layers)",        [0.445179, 0.845818, 0.446092, 0.8482, 33.456518, 0.959970]),
    row("dnn2",     "DNN (3 layers)",        [0.393804, 0.862691, 0.418285, 0.8578, 33.351694, 0.907039]),
    row("cnn3a",    "CNN (2 layers)",        [0.062694, 0.977255, 0.342600, 0.9102, 46.694116, 1.092569]),
    row("cnn3b",    "CNN (2 layers L2)",     [0.520660, 0.857909, 0.493949, 0.8732, 43.898222, 1.081623]),
    row("cnn3c",    "CNN (2 layers aug)",    [1.025814, 0.621236, 0.765337, 0.7222, 436.083312, 1.024631]),
    row("cnn4a",    "CNN (3 layers)",        [0.082464, 0.969909, 0.314664, 0.9150, 44.815734, 1.112644]),
    row("cnn4b",    "CNN (3 layers L2)",     [0.589668, 0.846236, 0.581835, 0.8528, 48.277778, 1.097991]),
    row("dnn1-do",  "DNN (2 layers DO)",     [1.039818, 0.627073, 0.687543, 0.8116, 25.842328, 0.654728]),
    row("dnn2-do",  "DNN (3 layers DO)",     [0.979232, 0.608491, 0.672728, 0.7602, 25.392829, 0.637817]),
    row("cnn3a-do", "CNN (2 layers DO)",     [0.146241, 0.944364, 0.230351, 0.9198, 43.519450, 0.802108]),
    row("cnn3b-do", "CNN (2 layers L2 DO)",  [0.593767, 0.836236, 0.556045, 0.8532, 40.009027, 0.826110]),
    row("cnn3c-do", "CNN (2 layers aug DO)", [0.986620, 0.632764, 0.713365, 0.7226, 274.081636, 0.759575]),
    row("cnn4a-do", "CNN (3 layers DO)",     [0.204254, 0.922327, 0.212962, 0.9220, 41.460279, 0.794109]),
    row("cnn4b-do", "CNN (3 layers L2 DO)",  [0.674064, 0.819782, 0.629076, 0.8384, 42.996661, 1.006160]),
];

/// The study's row for a variant id, if the study has one.
pub fn study_row(id: &str) -> Option<&'static StudyRow> {
    STUDY.iter().find(|row| row.id == id)
}

/// Sort key: the study's order first, unknown ids after it by name.
pub fn order_key(id: &str) -> (usize, &str) {
    let position = VARIANT_ORDER.iter().position(|v| *v == id);
    (position.unwrap_or(VARIANT_ORDER.len()), id)
}

/// Sort results into the study's order (unknown ids after, by name).
pub fn sort_results(results: &mut [RunResult]) {
    results.sort_by(|a, b| order_key(&a.id).cmp(&order_key(&b.id)));
}

/// Read every `*.json` in `dir` that is a run result, sorted as in the study's table.
///
/// A file counts as a run result when it is a JSON object with an `id` and `epochs`, or when
/// its name is a study variant (`cnn3a.json`) or a job of one (`cnn3a.s1.json`,
/// `cnn3b@l2=0.05.json`); such a file must then parse as [`RunResult`], or the error names
/// it. Other JSON (e.g. a saved `summary.json`) is skipped, as is every file not ending in
/// `.json`. A `.json` that is not JSON at all is an error (a runtime [`Error::Json`], as is
/// an unreadable file an [`Error::Io`]), and so are two files with the same run: the same
/// identity and seed, or (written before identities) the same id and settings.
pub fn load_results(dir: &Path) -> Result<Vec<RunResult>> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();

    let mut results = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        let json_error = |source| Error::Json {
            path: path.clone(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(json_error)?;
        let named_as_variant = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .map(|stem| stem.split(['@', '.']).next().unwrap_or(stem))
            .is_some_and(|stem| VARIANT_ORDER.contains(&stem));
        let looks_like_run = value.get("id").is_some() && value.get("epochs").is_some();
        if named_as_variant || looks_like_run {
            let result: RunResult = serde_json::from_value(value).map_err(json_error)?;
            let run = format!("{} seed {}", group_key(&result), seed_of(&result));
            if let Some(first) = seen.get(&run) {
                bail!(
                    "{} and {} both hold results of `{}` (seed {}); remove one",
                    first.display(),
                    path.display(),
                    name_of(&result),
                    seed_of(&result)
                );
            }
            seen.insert(run, path.clone());
            results.push(result);
        }
    }
    sort_results(&mut results);
    Ok(results)
}

/// Fixed decimals, or an en dash for a missing or non-finite value.
fn fixed(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "–".to_string(),
    }
}

/// A value of the final epoch, if there is one.
fn last(result: &RunResult, field: fn(&EpochMetrics) -> Option<f64>) -> Option<f64> {
    result.epochs.last().and_then(field)
}

/// Append one Markdown table row.
fn push_row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

/// Append a Markdown header row and its separator; `right[i]` right-aligns column `i`.
fn push_header(out: &mut String, names: &[&str], right: &[bool]) {
    let _ = writeln!(out, "| {} |", names.join(" | "));
    let rules: Vec<&str> = right
        .iter()
        .map(|&r| if r { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "| {} |", rules.join(" | "));
}

/// The study's columns for our runs (final-epoch values), plus test accuracy and parameters.
///
/// ```text
/// | model | loss | accuracy | val_loss | val_accuracy | training time (s) | testing time (s) | test accuracy | parameters |
/// ```
pub fn markdown_table(results: &[RunResult]) -> String {
    let mut out = String::new();
    push_header(
        &mut out,
        &[
            "model",
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "training time (s)",
            "testing time (s)",
            "test accuracy",
            "parameters",
        ],
        &[false, true, true, true, true, true, true, true, true],
    );
    for r in results {
        push_row(
            &mut out,
            &[
                format!("`{}`", r.id),
                fixed(last(r, |e| Some(e.loss)), 4),
                fixed(last(r, |e| Some(e.accuracy)), 4),
                fixed(last(r, |e| e.val_loss), 4),
                fixed(last(r, |e| e.val_accuracy), 4),
                fixed(Some(r.train_seconds), 1),
                fixed(Some(r.test_seconds), 2),
                fixed(Some(r.test_accuracy), 4),
                thousands(r.params),
            ],
        );
    }
    out
}

/// Our final-epoch numbers next to the study's, column by column ("–" where the study has
/// no such variant).
pub fn comparison_table(results: &[RunResult]) -> String {
    let mut out = String::new();
    push_header(
        &mut out,
        &[
            "variant",
            "study's model",
            "loss",
            "study",
            "accuracy",
            "study",
            "val_loss",
            "study",
            "val_accuracy",
            "study",
            "training (s)",
            "study",
            "testing (s)",
            "study",
        ],
        &[
            false, false, true, true, true, true, true, true, true, true, true, true, true, true,
        ],
    );
    for r in results {
        let study = study_row(&r.id);
        let theirs = |field: fn(&StudyRow) -> f64| study.map(field);
        push_row(
            &mut out,
            &[
                format!("`{}`", r.id),
                study.map_or_else(|| "–".to_string(), |s| s.model.to_string()),
                fixed(last(r, |e| Some(e.loss)), 4),
                fixed(theirs(|s| s.loss), 4),
                fixed(last(r, |e| Some(e.accuracy)), 4),
                fixed(theirs(|s| s.accuracy), 4),
                fixed(last(r, |e| e.val_loss), 4),
                fixed(theirs(|s| s.val_loss), 4),
                fixed(last(r, |e| e.val_accuracy), 4),
                fixed(theirs(|s| s.val_accuracy), 4),
                fixed(Some(r.train_seconds), 1),
                fixed(theirs(|s| s.train_seconds), 1),
                fixed(Some(r.test_seconds), 2),
                fixed(theirs(|s| s.test_seconds), 2),
            ],
        );
    }
    out
}

/// Quote a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per run, final-epoch values at full precision (empty where there are no epochs).
///
/// Columns: `id,description,params,epochs,loss,accuracy,val_loss,val_accuracy,
/// train_seconds,test_seconds,test_loss,test_accuracy`.
pub fn csv_table(results: &[RunResult]) -> String {
    let mut out = String::from(
        "id,description,params,epochs,loss,accuracy,val_loss,val_accuracy,\
         train_seconds,test_seconds,test_loss,test_accuracy\n",
    );
    let opt = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    for r in results {
        let cells = [
            csv_field(&r.id),
            csv_field(&r.description),
            r.params.to_string(),
            r.epochs.len().to_string(),
            opt(last(r, |e| Some(e.loss))),
            opt(last(r, |e| Some(e.accuracy))),
            opt(last(r, |e| e.val_loss)),
            opt(last(r, |e| e.val_accuracy)),
            r.train_seconds.to_string(),
            r.test_seconds.to_string(),
            r.test_loss.to_string(),
            r.test_accuracy.to_string(),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// How the runs were made, one line per distinct setting ("20 epochs, batch 100, ...").
fn settings_lines(results: &[RunResult]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for r in results {
        let s = &r.settings;
        let data = match s.limit {
            Some(n) => format!("first {} training images", thousands(n)),
            None => "all training images".to_string(),
        };
        let line = format!(
            "{} epochs, batch {}, Adam({}), seed {}, {}, {}, {} thread{}",
            s.epochs,
            s.batch,
            s.learning_rate,
            s.seed,
            data,
            if s.augment {
                "augmented"
            } else {
                "not augmented"
            },
            s.threads,
            if s.threads == 1 { "" } else { "s" },
        );
        match groups.iter_mut().find(|(l, _)| *l == line) {
            Some((_, ids)) => ids.push(&r.id),
            None => groups.push((line, vec![&r.id])),
        }
    }
    let mut out = String::new();
    for (line, ids) in groups {
        let ids: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
        let _ = writeln!(out, "- {}: {line}", ids.join(", "));
    }
    out
}

/// Whether a folder's report needs the sections over seeds: some group of
/// runs has two or more seeds, or some run is a sweep point.
fn is_grouped(groups: &[Group<'_>]) -> bool {
    groups.iter().any(|g| g.n() > 1 || !g.overrides.is_empty())
}

/// The whole `results.md`: our table, how it was made, the comparison and the figures;
/// for several seeds or sweep points, first the groups over seeds next to the study.
pub fn markdown_report(results: &[RunResult]) -> String {
    let groups = seeds::group(results);
    if is_grouped(&groups) {
        return grouped_report(&groups);
    }
    let mut out = String::from("# Results\n\n");
    out.push_str(
        "Final-epoch training and validation metrics, wall-clock training and test time, \
         and accuracy on the 10,000 test images.\n\n",
    );
    out.push_str(&markdown_table(results));
    out.push_str("\nSettings:\n\n");
    out.push_str(&settings_lines(results));
    out.push_str("\n## Compared with the study\n\n");
    out.push_str(
        "Each metric is ours, then the study's (its results table: Keras, 20 epochs, \
         batch 100, on a Colab GPU).\n\n",
    );
    out.push_str(&comparison_table(results));
    out.push_str("\n## Figures\n\n![overview](overview.png)\n");
    for r in results {
        let _ = write!(out, "\n### `{}`", r.id);
        if !r.description.is_empty() {
            let _ = write!(out, ": {}", r.description);
        }
        let name = figure_name(&r.id);
        let _ = writeln!(out, "\n\n![{} learning curves](curves/{name}.png)", r.id);
        if plot::is_square(&r.confusion) {
            let _ = writeln!(out, "![{} confusion matrix](confusion/{name}.png)", r.id);
        }
    }
    out
}

/// The table `study report` prints: [`markdown_table`], or for several seeds
/// or sweep points the groups next to the study ([`seeds::markdown_table`]).
pub fn summary_table(results: &[RunResult]) -> String {
    let groups = seeds::group(results);
    if is_grouped(&groups) {
        seeds::markdown_table(&groups)
    } else {
        markdown_table(results)
    }
}

/// `results.md` for groups of seeds and sweep points.
fn grouped_report(groups: &[Group<'_>]) -> String {
    let mut out = String::from("# Results\n\n");
    out.push_str(
        "Runs grouped over seeds (every setting the same but the seed). Each cell is the \
         mean of the final epoch over the group's n runs ± half the width of its 95% \
         interval (Student t, n - 1 degrees of freedom; standard deviations and bounds are \
         in `seeds.csv`). Beside it the study's value (Keras, 20 epochs, batch 100, one run \
         on a Colab GPU), **bold** and `out` where it lies outside our interval. A sweep \
         point is named `<id>@<settings>`.\n\n",
    );
    out.push_str(&seeds::markdown_table(groups));
    out.push_str("\nSettings:\n\n");
    for g in groups {
        let r = g.runs[0];
        let s = &r.settings;
        let data = match s.limit {
            Some(n) => format!("first {} training images", thousands(n)),
            None => "all training images".to_string(),
        };
        let seeds: Vec<String> = g.seeds().iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "- `{}`: {} epochs, batch {}, Adam({}), {} {}, {}, {}",
            g.name,
            g.epochs(),
            s.batch,
            s.learning_rate,
            if g.n() == 1 { "seed" } else { "seeds" },
            seeds.join(", "),
            data,
            if s.augment {
                "augmented"
            } else {
                "not augmented"
            },
        );
    }
    out.push_str("\n## Figures\n\n![overview: means over seeds](overview.png)\n");
    for g in groups {
        let name = figure_name(&g.name);
        let _ = write!(out, "\n### `{}` (n = {})", g.name, g.n());
        // A sweep point is not the variant its description describes.
        if !g.runs[0].description.is_empty() && g.overrides.is_empty() {
            let _ = write!(out, ": {}", g.runs[0].description);
        }
        if g.n() > 1 {
            let _ = writeln!(
                out,
                "\n\n![{} learning curves over seeds](bands/{name}.svg)",
                g.name
            );
        } else {
            let _ = writeln!(out, "\n\n![{} learning curves](curves/{name}.png)", g.name);
        }
        if plot::is_square(&g.pooled_confusion()) {
            let _ = writeln!(out, "![{} confusion matrix](confusion/{name}.png)", g.name);
        }
    }
    out
}

/// The file name (without extension) for a run's figures: its id, with anything but ASCII
/// letters, digits, `-` and `_` replaced by `_`, so that no id can name a path outside the
/// report folder.
pub fn figure_name(id: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let name: String = id.chars().map(|c| if safe(c) { c } else { '_' }).collect();
    if name.is_empty() {
        "_".to_string()
    } else {
        name
    }
}

/// Paths of everything [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub csv: PathBuf,
    pub overview: PathBuf,
    /// `curves/<name>.png` of every single run (a group of one seed), in the study's order.
    pub curves: Vec<PathBuf>,
    /// `confusion/<name>.png` for every group with a square confusion matrix.
    pub confusion: Vec<PathBuf>,
    /// `bands/<name>.svg` of every group of two or more seeds.
    pub bands: Vec<PathBuf>,
    /// `seeds.csv`, `calibration.md`, `calibration.svg` when written.
    pub extra: Vec<PathBuf>,
}

impl ReportFiles {
    /// All paths, tables first.
    pub fn all(&self) -> Vec<&Path> {
        let mut all = vec![
            self.markdown.as_path(),
            self.csv.as_path(),
            self.overview.as_path(),
        ];
        all.extend(self.extra.iter().map(PathBuf::as_path));
        all.extend(self.curves.iter().map(PathBuf::as_path));
        all.extend(self.bands.iter().map(PathBuf::as_path));
        all.extend(self.confusion.iter().map(PathBuf::as_path));
        all
    }
}

/// The files in the report folder itself that [`write_report`] writes (and
/// whose stale temporary files it removes; the others in that folder are
/// the runs', which may be writing on another machine).
const REPORT_FILES: [&str; 6] = [
    "results.md",
    "results.csv",
    "overview.png",
    "seeds.csv",
    "calibration.md",
    "calibration.svg",
];

/// Write `results.md`, `results.csv`, `overview.png`, `curves/<name>.png` and
/// `confusion/<name>.png` under `dir` (created if missing), each atomically;
/// with several seeds or sweep points also `seeds.csv` and `bands/<name>.svg`,
/// and with points of the calibration grids `calibration.md` and `calibration.svg`.
/// Temporary files that a killed report left behind are removed first.
///
/// # Errors
/// I/O and plotting errors (runtime [`Error`]s), and two ids that would share
/// a figure (`a/b` and `a_b` both draw `curves/a_b.png`).
pub fn write_report(dir: &Path, results: &[RunResult]) -> Result<ReportFiles> {
    let create = |path: &Path| {
        fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let write = |path: &Path, text: String| write_atomic(path, text.as_bytes());
    let groups = seeds::group(results);
    let grouped = is_grouped(&groups);
    let mut figures: HashMap<String, &str> = HashMap::new();
    for g in &groups {
        if let Some(other) = figures.insert(figure_name(&g.name), &g.name) {
            bail!(
                "ids `{other}` and `{}` would share the figures {}.png; rename one",
                g.name,
                figure_name(&g.name)
            );
        }
    }
    let curves_dir = dir.join("curves");
    let confusion_dir = dir.join("confusion");
    let bands_dir = dir.join("bands");
    create(dir)?;
    remove_stale_temps_of(dir, &REPORT_FILES)?;
    for folder in [&curves_dir, &confusion_dir, &bands_dir] {
        remove_stale_temps(folder)?;
    }

    let single: Vec<&Group<'_>> = groups.iter().filter(|g| g.n() == 1).collect();
    let several: Vec<&Group<'_>> = groups.iter().filter(|g| g.n() > 1).collect();
    let confusions: Vec<(&Group<'_>, Vec<Vec<u64>>)> = groups
        .iter()
        .map(|g| (g, g.pooled_confusion()))
        .filter(|(_, c)| plot::is_square(c))
        .collect();
    let mut files = ReportFiles {
        markdown: dir.join("results.md"),
        csv: dir.join("results.csv"),
        overview: dir.join("overview.png"),
        curves: single
            .iter()
            .map(|g| curves_dir.join(format!("{}.png", figure_name(&g.name))))
            .collect(),
        confusion: confusions
            .iter()
            .map(|(g, _)| confusion_dir.join(format!("{}.png", figure_name(&g.name))))
            .collect(),
        bands: several
            .iter()
            .map(|g| bands_dir.join(format!("{}.svg", figure_name(&g.name))))
            .collect(),
        extra: Vec::new(),
    };
    write(&files.markdown, markdown_report(results))?;
    write(&files.csv, csv_table(results))?;
    if grouped {
        let path = dir.join("seeds.csv");
        write(&path, seeds::csv_table(&groups))?;
        files.extra.push(path);
    }
    if let Some((md, figure)) = calibration::report(&groups) {
        for (name, text) in [("calibration.md", md), ("calibration.svg", figure)] {
            let path = dir.join(name);
            write(&path, text)?;
            files.extra.push(path);
        }
    }
    let means: Vec<Vec<EpochMetrics>> = groups.iter().map(Group::mean_epochs).collect();
    write_atomic_with(&files.overview, |tmp| {
        plot::compare(tmp, "All variants", &overview_runs(&groups, &means))
    })?;
    if !files.curves.is_empty() {
        create(&curves_dir)?;
    }
    for (g, path) in single.iter().zip(&files.curves) {
        let r = g.runs[0];
        let title = if r.description.is_empty() || !g.overrides.is_empty() {
            g.name.clone()
        } else {
            format!("{}: {}", g.name, r.description)
        };
        let study = study_row(&r.id).map(|s| Reference {
            label: "study",
            val_loss: s.val_loss,
            val_accuracy: s.val_accuracy,
        });
        write_atomic_with(path, |tmp| {
            plot::learning_curves(tmp, &title, &r.epochs, study.as_ref())
        })?;
    }
    if !files.bands.is_empty() {
        create(&bands_dir)?;
    }
    for (g, path) in several.iter().zip(&files.bands) {
        let study = study_row(g.id);
        let (loss, val_loss) = (g.series(|e| Some(e.loss)), g.series(|e| e.val_loss));
        let (acc, val_acc) = (g.series(|e| Some(e.accuracy)), g.series(|e| e.val_accuracy));
        let title = format!("{}: mean of {} seeds, 95% band", g.name, g.n());
        let text = svg::band_curves(
            &title,
            [
                svg::BandPanel {
                    metric: "loss",
                    train: &loss,
                    val: &val_loss,
                    study: study.map(|s| s.val_loss),
                },
                svg::BandPanel {
                    metric: "accuracy",
                    train: &acc,
                    val: &val_acc,
                    study: study.map(|s| s.val_accuracy),
                },
            ],
        );
        write(path, text)?;
    }
    if !files.confusion.is_empty() {
        create(&confusion_dir)?;
    }
    for ((g, confusion), path) in confusions.iter().zip(&files.confusion) {
        let title = if g.n() == 1 {
            format!("{}: test confusion matrix", g.name)
        } else {
            format!("{}: test confusion matrix, {} seeds summed", g.name, g.n())
        };
        // The study's runs are on Fashion-MNIST: its class names label a 10x10 matrix.
        let names: Vec<String> = CLASS_NAMES.iter().map(|n| n.to_string()).collect();
        let names = (confusion.len() == names.len()).then_some(&names[..]);
        write_atomic_with(path, |tmp| plot::confusion(tmp, &title, confusion, names))?;
    }
    Ok(files)
}

/// The runs of the overview figure: one per group (its mean epochs, its
/// mean test accuracy), one colour per architecture (the id without `-do`,
/// in first-seen order), the dropout twins dashed.
fn overview_runs<'a>(groups: &'a [Group<'_>], means: &'a [Vec<EpochMetrics>]) -> Vec<Run<'a>> {
    let mut architectures: Vec<&str> = Vec::new();
    groups
        .iter()
        .zip(means)
        .map(|(g, epochs)| {
            let (base, dashed) = match g.id.strip_suffix("-do") {
                Some(base) => (base, true),
                None => (g.id, false),
            };
            let color = match architectures.iter().position(|a| *a == base) {
                Some(i) => i,
                None => {
                    architectures.push(base);
                    architectures.len() - 1
                }
            };
            let test: Vec<f64> = g.runs.iter().map(|r| r.test_accuracy).collect();
            Run {
                name: &g.name,
                epochs: if g.n() == 1 {
                    &g.runs[0].epochs
                } else {
                    epochs
                },
                test_accuracy: test.iter().sum::<f64>() / test.len() as f64,
                color,
                dashed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Settings;

    fn run(id: &str) -> RunResult {
        RunResult {
            id: id.to_string(),
            description: String::new(),
            params: 3985,
            settings: Settings {
                epochs: 1,
                batch: 100,
                seed: 0,
                limit: None,
                learning_rate: 1e-3,
                augment: false,
                threads: 2,
            },
            identity: None,
            epochs: vec![],
            train_seconds: 1.0,
            test_seconds: 0.5,
            test_loss: 0.5,
            test_accuracy: 0.8,
            confusion: vec![],
        }
    }

    #[test]
    fn dropout_twins_share_a_colour() {
        let results = ["dnn1", "cnn3a", "cnn3a-do"].map(run);
        let groups = seeds::group(&results);
        let means: Vec<Vec<EpochMetrics>> = groups.iter().map(Group::mean_epochs).collect();
        let runs = overview_runs(&groups, &means);
        let styles: Vec<(usize, bool)> = runs.iter().map(|r| (r.color, r.dashed)).collect();
        assert_eq!(styles, [(0, false), (1, false), (1, true)]);
    }

    #[test]
    fn study_table_matches_variant_order() {
        let ids: Vec<&str> = STUDY.iter().map(|r| r.id).collect();
        assert_eq!(ids, VARIANT_ORDER);
        assert_eq!(study_row("cnn3a").map(|r| r.model), Some("CNN (2 layers)"));
        assert_eq!(study_row("cnn4b-do").map(|r| r.val_accuracy), Some(0.8384));
        assert!(study_row("mlp").is_none());
    }

    #[test]
    fn sorts_by_study_order_then_name() {
        let mut results: Vec<RunResult> = ["zeta", "cnn3a-do", "alpha", "cnn4b", "dnn1"]
            .map(run)
            .into();
        sort_results(&mut results);
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["dnn1", "cnn4b", "cnn3a-do", "alpha", "zeta"]);
    }

    #[test]
    fn empty_history_prints_dashes() {
        let table = markdown_table(&[run("dnn1")]);
        assert!(
            table.contains("| `dnn1` | – | – | – | – | 1.0 | 0.50 | 0.8000 | 3,985 |"),
            "{table}"
        );
        let csv = csv_table(&[run("dnn1")]);
        assert!(csv.ends_with("dnn1,,3985,0,,,,,1,0.5,0.5,0.8\n"), "{csv}");
    }

    #[test]
    fn figure_names_stay_in_the_folder() {
        assert_eq!(figure_name("cnn3a-do"), "cnn3a-do");
        assert_eq!(figure_name("../etc/passwd"), "___etc_passwd");
        assert_eq!(figure_name(""), "_");
    }

    #[test]
    fn csv_quotes_commas() {
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
