//! Results over seeds: runs that differ only in their seed form a group
//! ([`group`]), summarised per metric by mean, standard deviation, n and a
//! 95% interval ([`crate::stats`]), next to the study's value and whether it
//! lies inside the interval.
//!
//! ```text
//! group key   the run's identity with the seed left out (variant, network, batch, limit,
//!             epochs, optimizer, augmentation, overrides, data); for a result written
//!             before identities, its id and settings
//! name        <id>, or <id>@<overrides> for a sweep point
//! ```
//!
//! `study report` writes, when some group has two or more seeds or some run
//! has overrides: a table of every group in `results.md` ([`markdown_table`]),
//! `seeds.csv` ([`csv_table`]) and `bands/<name>.svg` (learning curves as a
//! mean line inside its 95% band).

use std::fmt::Write as _;

use netdsl_runtime::metrics::EpochMetrics;

use crate::overrides::Overrides;
use crate::report::{order_key, study_row, StudyRow};
use crate::results::RunResult;
use crate::stats::Summary;

/// Runs that differ only in their seed.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// The variant id.
    pub id: &'a str,
    /// The sweep point (empty: the variant as declared).
    pub overrides: Overrides,
    /// `<id>` or `<id>@<overrides>`.
    pub name: String,
    /// The runs, by seed.
    pub runs: Vec<&'a RunResult>,
    key: String,
}

/// The name of a result: `<id>`, or `<id>@<overrides>` for a sweep point.
pub fn name_of(r: &RunResult) -> String {
    match r.identity.as_ref().map(|i| &i.overrides) {
        Some(o) if !o.is_empty() => format!("{}@{}", r.id, o.tag()),
        _ => r.id.clone(),
    }
}

/// The seed of a result.
pub fn seed_of(r: &RunResult) -> u64 {
    r.identity.as_ref().map_or(r.settings.seed, |i| i.seed)
}

/// What a result shares with the other seeds of its group: its identity
/// without the seed, or (written before identities) its id and settings.
pub fn group_key(r: &RunResult) -> String {
    match &r.identity {
        Some(identity) => {
            let mut identity = identity.clone();
            identity.seed = 0;
            serde_json::to_string(&identity).unwrap_or_else(|e| format!("<{e}>"))
        }
        None => {
            let s = &r.settings;
            format!(
                "{} epochs={} batch={} limit={:?} lr={} augment={}",
                r.id, s.epochs, s.batch, s.limit, s.learning_rate, s.augment
            )
        }
    }
}

/// Groups `results` by [`group_key`]: in the study's order of ids, then by
/// name, then as first seen; each group's runs by seed.
pub fn group(results: &[RunResult]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for r in results {
        let key = group_key(r);
        match groups.iter_mut().find(|g| g.key == key) {
            Some(g) => g.runs.push(r),
            None => groups.push(Group {
                id: &r.id,
                overrides: r
                    .identity
                    .as_ref()
                    .map(|i| i.overrides.clone())
                    .unwrap_or_default(),
                name: name_of(r),
                runs: vec![r],
                key,
            }),
        }
    }
    for g in &mut groups {
        g.runs.sort_by_key(|r| seed_of(r));
    }
    groups.sort_by(|a, b| (order_key(a.id), &a.name).cmp(&(order_key(b.id), &b.name)));
    groups
}

/// A final-epoch metric of a run.
pub type Metric = fn(&RunResult) -> Option<f64>;

/// The study's value of a metric.
pub type StudyValue = fn(&StudyRow) -> f64;

/// The final-epoch metrics of the study's table, with their names.
pub const STUDY_METRICS: [(&str, Metric, StudyValue); 4] = [
    ("loss", |r| Some(r.epochs.last()?.loss), |s| s.loss),
    (
        "accuracy",
        |r| Some(r.epochs.last()?.accuracy),
        |s| s.accuracy,
    ),
    ("val_loss", |r| r.epochs.last()?.val_loss, |s| s.val_loss),
    (
        "val_accuracy",
        |r| r.epochs.last()?.val_accuracy,
        |s| s.val_accuracy,
    ),
];

/// The other metrics of `seeds.csv`.
const OTHER_METRICS: [(&str, Metric); 4] = [
    ("test_loss", |r| Some(r.test_loss)),
    ("test_accuracy", |r| Some(r.test_accuracy)),
    ("train_seconds", |r| Some(r.train_seconds)),
    ("test_seconds", |r| Some(r.test_seconds)),
];

impl Group<'_> {
    pub fn n(&self) -> usize {
        self.runs.len()
    }

    pub fn seeds(&self) -> Vec<u64> {
        self.runs.iter().map(|r| seed_of(r)).collect()
    }

    /// The epochs target of the group's runs.
    pub fn epochs(&self) -> usize {
        let r = self.runs[0];
        r.identity.as_ref().map_or(r.settings.epochs, |i| i.epochs)
    }

    /// Whether the runs trained on all the training images (no `--limit`).
    pub fn full_data(&self) -> bool {
        self.runs[0].settings.limit.is_none()
    }

    /// `metric` over the group's runs.
    pub fn summary(&self, metric: Metric) -> Option<Summary> {
        let values: Vec<f64> = self.runs.iter().filter_map(|r| metric(r)).collect();
        Summary::of(&values)
    }

    /// Per epoch (1-based, in order), `metric` of that epoch over the runs
    /// that have it.
    pub fn series(&self, metric: fn(&EpochMetrics) -> Option<f64>) -> Vec<Option<Summary>> {
        let epochs = self.runs.iter().map(|r| r.epochs.len()).max().unwrap_or(0);
        (0..epochs)
            .map(|e| {
                let values: Vec<f64> = self
                    .runs
                    .iter()
                    .filter_map(|r| metric(r.epochs.get(e)?))
                    .collect();
                Summary::of(&values)
            })
            .collect()
    }

    /// The mean of every epoch's metrics (for the overview figure).
    pub fn mean_epochs(&self) -> Vec<EpochMetrics> {
        let mean = |m: fn(&EpochMetrics) -> Option<f64>| -> Vec<Option<f64>> {
            self.series(m).iter().map(|s| s.map(|s| s.mean)).collect()
        };
        let (loss, acc) = (mean(|e| Some(e.loss)), mean(|e| Some(e.accuracy)));
        let (val_loss, val_acc) = (mean(|e| e.val_loss), mean(|e| e.val_accuracy));
        (0..loss.len())
            .map(|e| EpochMetrics {
                epoch: e + 1,
                loss: loss[e].unwrap_or(f64::NAN),
                accuracy: acc[e].unwrap_or(f64::NAN),
                val_loss: val_loss[e],
                val_accuracy: val_acc[e],
                seconds: 0.0,
            })
            .collect()
    }

    /// The test confusion matrices of the runs, summed (empty when they differ in size).
    pub fn pooled_confusion(&self) -> Vec<Vec<u64>> {
        let first = &self.runs[0].confusion;
        let same = self.runs.iter().all(|r| {
            r.confusion.len() == first.len()
                && r.confusion
                    .iter()
                    .zip(first)
                    .all(|(a, b)| a.len() == b.len())
        });
        if !same {
            return Vec::new();
        }
        let mut sum = first.clone();
        for r in &self.runs[1..] {
            for (row, other) in sum.iter_mut().zip(&r.confusion) {
                for (x, y) in row.iter_mut().zip(other) {
                    *x += y;
                }
            }
        }
        sum
    }
}

/// `0.1234 ± 0.0056` (mean ± half the 95% interval), `0.1234` for one run, `–` for none.
pub fn mean_cell(s: Option<Summary>, decimals: usize) -> String {
    match s {
        Some(s) => match s.half_width() {
            Some(h) => format!("{:.decimals$} ± {h:.decimals$}", s.mean),
            None => format!("{:.decimals$}", s.mean),
        },
        None => "–".to_string(),
    }
}

/// The study's value and whether it lies in our interval: `0.8482 (in)`,
/// `**0.8482** (out)`, `0.8482` without an interval.
fn study_cell(study: f64, ours: Option<Summary>) -> String {
    match ours.and_then(|s| s.contains(study)) {
        Some(true) => format!("{study:.4} (in)"),
        Some(false) => format!("**{study:.4}** (out)"),
        None => format!("{study:.4}"),
    }
}

/// Every group next to the study: n, the mean ± 95% half-width of each of
/// the study's four columns with the study's value beside it, marked `in`
/// or `out` of our interval, then test accuracy and training time.
pub fn markdown_table(groups: &[Group<'_>]) -> String {
    let mut out = String::from(
        "| variant | n | epochs | loss | study | accuracy | study | val_loss | study | \
         val_accuracy | study | test accuracy | training (s) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for g in groups {
        let study = study_row(g.id);
        let mut cells = vec![
            format!("`{}`", g.name),
            g.n().to_string(),
            g.epochs().to_string(),
        ];
        for (_, metric, theirs) in STUDY_METRICS {
            let ours = g.summary(metric);
            cells.push(mean_cell(ours, 4));
            cells.push(study.map_or_else(|| "–".to_string(), |s| study_cell(theirs(s), ours)));
        }
        cells.push(mean_cell(g.summary(|r| Some(r.test_accuracy)), 4));
        cells.push(mean_cell(g.summary(|r| Some(r.train_seconds)), 1));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// One row per group: name, id, overrides, n, seeds, epochs, limit, then per
/// metric its mean, standard deviation and 95% interval, and for the study's
/// four columns the study's value and whether it lies inside (`true`,
/// `false`, empty without an interval).
pub fn csv_table(groups: &[Group<'_>]) -> String {
    let mut header = vec!["name", "id", "overrides", "n", "seeds", "epochs", "limit"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let names: Vec<&str> = STUDY_METRICS
        .iter()
        .map(|m| m.0)
        .chain(OTHER_METRICS.iter().map(|m| m.0))
        .collect();
    for m in &names {
        for part in ["mean", "sd", "low", "high"] {
            header.push(format!("{m}_{part}"));
        }
    }
    for (m, _, _) in STUDY_METRICS {
        header.push(format!("{m}_study"));
        header.push(format!("{m}_study_inside"));
    }
    let mut out = header.join(",");
    out.push('\n');
    let opt = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    for g in groups {
        let seeds: Vec<String> = g.seeds().iter().map(u64::to_string).collect();
        let mut cells = vec![
            csv_field(&g.name),
            csv_field(g.id),
            csv_field(&g.overrides.tag()),
            g.n().to_string(),
            seeds.join(" "),
            g.epochs().to_string(),
            g.runs[0]
                .settings
                .limit
                .map(|l| l.to_string())
                .unwrap_or_default(),
        ];
        let metrics: Vec<Metric> = STUDY_METRICS
            .iter()
            .map(|m| m.1)
            .chain(OTHER_METRICS.iter().map(|m| m.1))
            .collect();
        for metric in metrics {
            let s = g.summary(metric);
            cells.push(opt(s.map(|s| s.mean)));
            cells.push(opt(s.and_then(|s| s.sd)));
            cells.push(opt(s.and_then(|s| s.interval).map(|i| i.0)));
            cells.push(opt(s.and_then(|s| s.interval).map(|i| i.1)));
        }
        let study = study_row(g.id);
        for (_, metric, theirs) in STUDY_METRICS {
            let value = study.map(theirs);
            cells.push(opt(value));
            let inside = value.and_then(|v| g.summary(metric)?.contains(v));
            cells.push(inside.map(|b| b.to_string()).unwrap_or_default());
        }
        out.push_str(&cells.join(","));
        out.push('\n');
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DataIdentity, Identity};
    use crate::overrides::Key;
    use crate::results::Settings;
    use crate::variants::study_fit;
    use netdsl_runtime::data::Dataset;

    fn run(id: &str, seed: u64, val_accuracy: f64, overrides: &[(&str, &str)]) -> RunResult {
        let data = Dataset::new(vec![0u8; 4], vec![0], (1, 2, 2), 2).unwrap();
        let mut o = Overrides::default();
        for (k, v) in overrides {
            o.set(Key::parse(k).unwrap(), v).unwrap();
        }
        let identity = Identity::new(
            id,
            "Net",
            10,
            &study_fit(1, 100, seed, None),
            None,
            DataIdentity::of(&data, &data, &data),
        )
        .with_overrides(o);
        RunResult {
            id: id.to_string(),
            description: String::new(),
            params: 10,
            settings: Settings {
                epochs: 1,
                batch: 100,
                seed,
                limit: None,
                learning_rate: 1e-3,
                augment: false,
                threads: 2,
            },
            identity: Some(identity),
            epochs: vec![EpochMetrics {
                epoch: 1,
                loss: 0.5,
                accuracy: 0.8,
                val_loss: Some(0.45),
                val_accuracy: Some(val_accuracy),
                seconds: 1.0,
            }],
            train_seconds: 1.0,
            test_seconds: 0.1,
            test_loss: 0.5,
            test_accuracy: 0.8,
            confusion: vec![vec![1, 0], vec![0, 1]],
        }
    }

    #[test]
    fn runs_group_by_everything_but_the_seed() {
        let results = vec![
            run("dnn1", 2, 0.84, &[]),
            run("dnn1-do", 0, 0.80, &[("dropout", "0.2")]),
            run("dnn1", 0, 0.85, &[]),
            run("dnn1-do", 1, 0.82, &[("dropout", "0.2")]),
            run("dnn1", 1, 0.86, &[]),
            run("dnn1-do", 0, 0.60, &[]),
        ];
        let groups = group(&results);
        let names: Vec<(&str, usize)> = groups.iter().map(|g| (g.name.as_str(), g.n())).collect();
        assert_eq!(
            names,
            [("dnn1", 3), ("dnn1-do", 1), ("dnn1-do@dropout=0.2", 2)]
        );
        assert_eq!(groups[0].seeds(), [0, 1, 2]);
        let val = groups[0].summary(STUDY_METRICS[3].1).unwrap();
        assert!((val.mean - 0.85).abs() < 1e-12);
        assert_eq!(groups[0].pooled_confusion(), [[3, 0], [0, 3]]);

        let md = markdown_table(&groups);
        // dnn1's study val_accuracy 0.8482 lies in 0.85 ± 0.0248.
        assert!(
            md.contains("| `dnn1` | 3 | 1 | 0.5000 ± 0.0000 | **0.4452** (out) |"),
            "{md}"
        );
        assert!(md.contains("0.8500 ± 0.0248 | 0.8482 (in) |"), "{md}");
        assert!(
            md.contains("| `dnn1-do` | 1 | 1 | 0.5000 | 1.0398 |"),
            "{md}"
        );
        let csv = csv_table(&groups);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv
            .lines()
            .nth(3)
            .unwrap()
            .starts_with("dnn1-do@dropout=0.2,dnn1-do,dropout=0.2,2,0 1,1,,"));
    }

    #[test]
    fn series_and_means_per_epoch() {
        let results = vec![run("cnn3a", 0, 0.9, &[]), run("cnn3a", 1, 0.92, &[])];
        let groups = group(&results);
        let series = groups[0].series(|e| e.val_accuracy);
        assert_eq!(series.len(), 1);
        assert!((series[0].unwrap().mean - 0.91).abs() < 1e-12);
        let mean = groups[0].mean_epochs();
        assert!((mean[0].val_accuracy.unwrap() - 0.91).abs() < 1e-12);
    }
}
