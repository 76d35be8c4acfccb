//! The study at scale (issue 14), on the real Fashion-MNIST files: several
//! seeds per variant, sweeps of settings without a rebuild, the report over
//! seeds, the calibration, and shards of one job list sharing a folder.
//! Runs are tiny (`--limit 500`, `--epochs 1`, mostly the dense networks).
//!
//! Run: `cargo test -p netdsl-experiments --test scale`.

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// `study <args> --out <dir>`, plus `--epochs 1 --limit 500` unless `args` set them.
fn study_in(dir: &Path, args: &[&str]) -> Output {
    let mut extra = Vec::new();
    if args[0] != "report" {
        if !args.contains(&"--epochs") {
            extra.extend(["--epochs", "1"]);
        }
        if !args.contains(&"--limit") {
            extra.extend(["--limit", "500"]);
        }
    }
    study()
        .args(args)
        .args(extra)
        .args(["--out", dir.to_str().unwrap()])
        .output()
        .unwrap()
}

fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn seeds_write_one_file_each_equal_to_single_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(study_in(d, &["run", "dnn1", "dnn2", "--seeds", "0..3"]));
    assert_eq!(
        json_files(d),
        [
            "dnn1.s0.json",
            "dnn1.s1.json",
            "dnn1.s2.json",
            "dnn2.s0.json",
            "dnn2.s1.json",
            "dnn2.s2.json"
        ]
    );
    for name in ["dnn1.s0", "dnn2.s2"] {
        assert!(d.join(format!("{name}.safetensors")).exists());
    }
    // The seed-1 job is the very run `--seed 1` makes (which keeps its plain name).
    let single = tempfile::tempdir().unwrap();
    ok(study_in(single.path(), &["run", "dnn1", "--seed", "1"]));
    assert_eq!(json_files(single.path()), ["dnn1.json"]);
    assert_eq!(
        without_clock(&single.path().join("dnn1.json")),
        without_clock(&d.join("dnn1.s1.json"))
    );
    assert_ne!(
        without_clock(&d.join("dnn1.s0.json"))["epochs"],
        without_clock(&d.join("dnn1.s1.json"))["epochs"]
    );

    // The report groups them: n = 3, a 95% interval, the study in or out.
    let out = study_in(d, &["report"]);
    ok(out.clone());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| `dnn1` | 3 | 1 | "), "{table}");
    assert!(table.contains(" ± ") && table.contains("(out)"), "{table}");
    let md = fs::read_to_string(d.join("results.md")).unwrap();
    assert!(
        md.contains("![dnn2 learning curves over seeds](bands/dnn2.svg)"),
        "{md}"
    );
    let csv = fs::read_to_string(d.join("seeds.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for column in [
        "n",
        "seeds",
        "val_accuracy_mean",
        "val_accuracy_sd",
        "val_accuracy_low",
        "val_accuracy_study_inside",
    ] {
        assert!(header.contains(&column), "{column}: {header:?}");
    }
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("dnn1,dnn1,,3,0 1 2,1,500,"),
        "{csv}"
    );
    let svg = fs::read_to_string(d.join("bands/dnn1.svg")).unwrap();
    assert!(svg.starts_with("<svg ") && svg.contains("<polygon") && svg.ends_with("</svg>\n"));
    assert!(d.join("confusion/dnn1.png").exists());
    assert!(
        !d.join("curves/dnn1.png").exists(),
        "single-run curves only"
    );

    // Two files of one run are refused.
    fs::copy(d.join("dnn1.s1.json"), d.join("dnn1-again.json")).unwrap();
    let e = one_line_error(study_in(d, &["report"]));
    assert!(e.contains("both hold results of `dnn1` (seed 1)"), "{e}");
}

#[test]
fn a_sweep_runs_every_point_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = ok(study_in(
        d,
        &[
            "sweep",
            "dnn2-do",
            "--set",
            "dropout=0.5,0.1",
            "--set",
            "lr=0.001,0.003",
        ],
    ));
    assert!(!err.contains("error"), "{err}");
    assert_eq!(
        json_files(d),
        [
            "dnn2-do@lr=0.001,dropout=0.1.json",
            "dnn2-do@lr=0.001,dropout=0.5.json",
            "dnn2-do@lr=0.003,dropout=0.1.json",
            "dnn2-do@lr=0.003,dropout=0.5.json"
        ]
    );
    let point = without_clock(&d.join("dnn2-do@lr=0.003,dropout=0.1.json"));
    let identity = &point["identity"];
    assert_eq!(
        identity["overrides"],
        serde_json::json!({"dropout": "0.1", "lr": "0.003"})
    );
    assert_eq!(identity["optimizer"]["Adam"]["lr"], 0.003);
    assert_eq!(point["settings"]["learning_rate"], 0.003);
    let checkpoint =
        netdsl_runtime::checkpoint::read_meta(&d.join("dnn2-do@lr=0.003,dropout=0.1.safetensors"))
            .unwrap();
    assert_eq!(&checkpoint.extra, identity);

    // The declared values, set explicitly, give the declared numbers.
    let plain = tempfile::tempdir().unwrap();
    ok(study_in(plain.path(), &["run", "dnn2-do"]));
    let declared = without_clock(&plain.path().join("dnn2-do.json"));
    let same = without_clock(&d.join("dnn2-do@lr=0.001,dropout=0.5.json"));
    assert_eq!(declared["epochs"], same["epochs"]);
    assert_eq!(declared["confusion"], same["confusion"]);
    let lower = without_clock(&d.join("dnn2-do@lr=0.001,dropout=0.1.json"));
    assert_ne!(declared["epochs"], lower["epochs"], "the rate took effect");

    // --resume finds them finished; the report lists the points.
    let err = ok(study_in(
        d,
        &[
            "sweep",
            "dnn2-do",
            "--set",
            "dropout=0.5,0.1",
            "--set",
            "lr=0.001,0.003",
            "--resume",
        ],
    ));
    assert_eq!(err.matches("finished already").count(), 4, "{err}");
    let out = study_in(d, &["report"]);
    ok(out.clone());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| `dnn2-do@lr=0.003,dropout=0.1` | 1 | 1 |"),
        "{table}"
    );
    // dnn2-do is a calibration row: its points are compared with the study.
    let calibration = fs::read_to_string(d.join("calibration.md")).unwrap();
    assert!(
        calibration.contains("## `dnn2-do`: DNN (3 layers DO)"),
        "{calibration}"
    );
    assert!(
        calibration.contains("| `lr=0.001,dropout=0.1` | 1 | 1 |"),
        "{calibration}"
    );
    assert!(calibration.contains("No point counts yet"), "{calibration}");
    assert!(d.join("calibration.svg").exists());
}

#[test]
fn overrides_that_do_not_fit_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&[&str], &str); 5] = [
        (
            &["sweep", "cnn3a", "--set", "aug=2"],
            "aug changes the augmentation, but cnn3a is not augmented",
        ),
        (
            &["sweep", "dnn1", "--set", "dropout=0.2"],
            "dnn1 has no dropout layer",
        ),
        (
            &["sweep", "dnn2-do", "--set", "dropout.2=0.2"],
            "dnn2-do has 2 dropout layers",
        ),
        (
            &["sweep", "cnn3a", "--set", "l2=0.01"],
            "cnn3a declares no L2; say where with l2_on",
        ),
        (&["run", "dnn1", "--seeds", "0,0"], "seed 0 twice"),
    ];
    for (args, expected) in cases {
        let e = one_line_error(study_in(d, args));
        assert!(e.contains(expected), "{args:?}: {e}");
    }
    // dnn1 fits, dnn1-do's point does not: nothing trains.
    let e = one_line_error(study_in(
        d,
        &["sweep", "dnn1-do", "cnn3a", "--set", "dropout=0.2"],
    ));
    assert!(e.contains("cnn3a has no dropout layer"), "{e}");
    assert!(json_files(d).is_empty(), "{:?}", json_files(d));
    // Usage errors are clap's (exit code 2).
    for (args, expected) in [
        (&["sweep", "dnn1"][..], "--set"),
        (
            &["sweep", "dnn1", "--set", "momentum=0.9"],
            "unknown setting `momentum`",
        ),
        (
            &["run", "dnn1", "--shard", "2/2"],
            "shards are numbered 0 to 1",
        ),
    ] {
        let out = study().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn shards_split_the_jobs_and_share_the_folder() {
    let args = ["run", "dnn1", "dnn2", "--seeds", "0,1"];
    let whole = tempfile::tempdir().unwrap();
    ok(study_in(whole.path(), &args));

    // Two shards at once into one folder, one by --shard, one by Slurm's variables.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let spawn = |shard: Option<&str>, env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("study"));
        cmd.args(args)
            .args(["--epochs", "1", "--limit", "500", "--out", d])
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(s) = shard {
            cmd.args(["--shard", s]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    };
    let a = spawn(Some("0/2"), &[]);
    let b = spawn(
        None,
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("of 4 jobs"), "{err}");
    }
    assert_eq!(json_files(dir.path()), json_files(whole.path()));
    for name in json_files(whole.path()) {
        assert_eq!(
            without_clock(&dir.path().join(&name)),
            without_clock(&whole.path().join(&name)),
            "{name}"
        );
    }
    assert!(dir.path().join(".locks/dnn2.s1.lock").exists());
}

#[test]
fn shards_lock_their_jobs_and_keep_out_unsharded_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.to_str().unwrap();
    // A shard that runs cnn3a for a while.
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("study"))
        .args([
            "run", "cnn3a", "--seeds", "0", "--epochs", "3", "--limit", "2000",
        ])
        .args(["--shard", "0/1", "--out", out])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.join(".locks/cnn3a.s0.lock");
    let start = Instant::now();
    while !fs::read_to_string(&lock).is_ok_and(|s| s.contains(&format!("pid {} on", first.id()))) {
        assert!(start.elapsed() < Duration::from_secs(120), "no job lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The same job in another shard: refused at once, naming the holder.
    let e = one_line_error(study_in(
        d,
        &[
            "run", "cnn3a", "--seeds", "0", "--epochs", "3", "--limit", "2000", "--shard", "0/1",
        ],
    ));
    assert!(
        e.contains(&format!(
            "cnn3a.s0 is being run by another `study run` (pid {} on",
            first.id()
        )),
        "{e}"
    );
    // Another job in another shard runs alongside.
    ok(study_in(
        d,
        &["run", "dnn1", "--seeds", "0", "--shard", "0/1"],
    ));
    // An unsharded run waits for the shards to finish.
    let e = one_line_error(study_in(d, &["run", "dnn2"]));
    assert!(
        e.contains("in use by the shards of a sharded `study run`"),
        "{e}"
    );
    assert!(first.wait().unwrap().success());
    ok(study_in(d, &["run", "dnn2"]));
    assert_eq!(
        json_files(d),
        ["cnn3a.s0.json", "dnn1.s0.json", "dnn2.json"]
    );
}

#[test]
fn calibrate_plans_and_runs_its_grids() {
    let out = study().args(["calibrate", "--dry-run"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(text.lines().count(), 9, "{text}");
    assert!(
        text.contains("dnn1-do   8 points x 3 seeds =  24 jobs"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("total     144 jobs, about "),
        "{text}"
    );
    let e = one_line_error(study().args(["calibrate", "cnn3a"]).output().unwrap());
    assert!(
        e.contains("`cnn3a` has no calibration grid; rows: cnn3b, cnn3c"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(study_in(d, &["calibrate", "dnn1-do", "--seeds", "0,1"]));
    assert_eq!(json_files(d).len(), 16);
    assert!(d.join("dnn1-do@dropout=0.05.s1.json").exists());
    ok(study_in(d, &["report"]));
    let md = fs::read_to_string(d.join("calibration.md")).unwrap();
    assert!(md.contains("| `dropout=0.3` | 2 | 1 |"), "{md}");
    assert!(
        md.contains("(not eligible)") && md.contains("No point counts yet"),
        "{md}"
    );
    let svg = fs::read_to_string(d.join("calibration.svg")).unwrap();
    assert!(svg.contains("dropout=0.05") && svg.ends_with("</svg>\n"));
}
