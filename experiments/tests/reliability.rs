//! The `study` program when things go wrong (issue 12), on the real
//! Fashion-MNIST files: a run's identity and what `--resume` accepts, what
//! "finished" means, one writer per output folder, checked inputs, atomic
//! reports, closed and full streams, absurd numbers, and honest one-line
//! errors. Runs are short (`--limit`, `--epochs 1..3`, mostly dnn1).
//!
//! Two tests mount a small or read-only tmpfs and need root; elsewhere they
//! say so on stderr and pass.
//!
//! Run: `cargo test -p netdsl-experiments --test reliability`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use netdsl_experiments::results::RunResult;
use serde_json::Value;

mod common;
use common::*;

fn spawn(args: &[&str]) -> Child {
    study_std()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `study run <id> --out <dir>` and `args`, plus `--limit 500` unless they set it.
fn run(dir: &Path, id: &str, args: &[&str]) -> Output {
    let limit: &[&str] = if args.contains(&"--limit") {
        &[]
    } else {
        &["--limit", "500"]
    };
    study()
        .args(["run", id, "--out", dir.to_str().unwrap()])
        .args(args)
        .args(limit)
        .output()
        .unwrap()
}

/// File names in `dir` ending in `.tmp`, in every subfolder.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else if path.to_string_lossy().ends_with(".tmp") {
            found.push(path);
        }
    }
    found
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The safetensors header: where the data starts, and the tensors by name.
fn safetensors_header(bytes: &[u8]) -> (usize, serde_json::Map<String, Value>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (8 + n, header.as_object().unwrap().clone())
}

// ---- a run's identity and --resume ----

#[test]
fn resume_refuses_a_checkpoint_of_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(d, "dnn1", &["--epochs", "2", "--seed", "1"]));
    // Both files record the run's identity.
    let meta = netdsl_runtime::checkpoint::read_meta(&d.join("dnn1.safetensors")).unwrap();
    let json = read_json(&d.join("dnn1.json"));
    for identity in [&meta.extra, &json["identity"]] {
        assert_eq!(identity["variant"], "dnn1", "{identity}");
        assert_eq!(identity["network"], "Dnn1");
        assert_eq!(identity["params"], 3985);
        assert_eq!(
            (&identity["seed"], &identity["batch"]),
            (&1.into(), &100.into())
        );
        assert_eq!(
            (&identity["limit"], &identity["epochs"]),
            (&500.into(), &2.into())
        );
        assert_eq!(identity["optimizer"]["Adam"]["lr"], 0.001);
        assert_eq!(identity["augment"], Value::Null);
        assert_eq!(identity["data"]["train"]["count"], 500);
        assert_eq!(identity["data"]["test"]["count"], 10_000);
        assert_eq!(
            identity["data"]["val"]["fingerprint"]
                .as_str()
                .unwrap()
                .len(),
            16
        );
    }
    // As if killed after its last checkpoint.
    fs::remove_file(d.join("dnn1.json")).unwrap();
    // `--resume` with the checkpoint's settings, `flag` set to `value`.
    let resume = |flag: &str, value: &str| {
        let mut args = vec!["--resume", "--epochs", "2", "--seed", "1", "--batch", "100"];
        if let Some(i) = args.iter().position(|a| *a == flag) {
            args[i + 1] = value;
        } else if !flag.is_empty() {
            args.extend([flag, value]);
        }
        run(d, "dnn1", &args)
    };
    for (flag, value, expected) in [
        ("--seed", "0", "seed 1, this run asks for seed 0"),
        ("--batch", "50", "batch 100, this run asks for batch 50"),
        ("--limit", "2000", "limit 500, this run asks for limit 2000"),
        ("--epochs", "1", "holds 2 epochs, more than --epochs 1"),
    ] {
        let e = one_line_error(resume(flag, value));
        assert!(e.contains(expected), "{flag}: {e}");
        assert!(e.contains("dnn1.safetensors"), "{e}");
    }
    assert!(!d.join("dnn1.json").exists(), "nothing ran");
    // The same settings resume (nothing left to train: evaluate, write).
    let err = ok(resume("", ""));
    assert!(err.contains("resuming after epoch 2"), "{err}");

    // A checkpoint without an identity (weights only, or an older study's).
    let dev = netdsl_runtime::dfdx::prelude::Cpu::default();
    let model =
        netdsl_runtime::model::Model::<netdsl_experiments::variants::Dnn1>::new(&dev).unwrap();
    model.save(d.join("dnn1.safetensors")).unwrap();
    fs::remove_file(d.join("dnn1.json")).unwrap();
    let e = one_line_error(resume("", ""));
    assert!(e.contains("records no run identity"), "{e}");
}

/// cnn3c is cnn3a's network trained on augmented images: a cnn3a checkpoint
/// renamed to cnn3c's loads into the network, and the identity refuses it.
#[test]
fn resume_refuses_a_renamed_checkpoint_of_the_same_network() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(d, "cnn3a", &["--epochs", "1"]));
    fs::copy(d.join("cnn3a.safetensors"), d.join("cnn3c.safetensors")).unwrap();
    let e = one_line_error(run(d, "cnn3c", &["--epochs", "1", "--resume"]));
    assert!(
        e.contains(
            "cnn3c.safetensors is of another run: variant cnn3a, this run asks for variant cnn3c"
        ),
        "{e}"
    );
    assert!(!d.join("cnn3c.json").exists());
}

#[test]
fn raising_epochs_continues_the_same_run() {
    let straight = tempfile::tempdir().unwrap();
    ok(run(
        straight.path(),
        "dnn1",
        &["--epochs", "3", "--seed", "2"],
    ));
    let dir = tempfile::tempdir().unwrap();
    ok(run(dir.path(), "dnn1", &["--epochs", "2", "--seed", "2"]));
    let err = ok(run(
        dir.path(),
        "dnn1",
        &["--epochs", "3", "--seed", "2", "--resume"],
    ));
    assert!(
        err.contains("dnn1.json is of another run: epochs 2, this run asks for epochs 3"),
        "{err}"
    );
    assert!(err.contains("resuming after epoch 2"), "{err}");
    assert_eq!(
        without_clock(&straight.path().join("dnn1.json")),
        without_clock(&dir.path().join("dnn1.json"))
    );
    // The 2-epoch result was moved aside, not lost.
    let prev = read_json(&dir.path().join("dnn1.json.prev"));
    assert_eq!(prev["epochs"].as_array().unwrap().len(), 2);
}

// ---- what "finished" means ----

#[test]
fn finished_means_parsed_complete_and_of_this_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = d.join("dnn1.json");
    ok(run(d, "dnn1", &["--epochs", "1"]));
    let good = fs::read_to_string(&json).unwrap();
    let err = ok(run(d, "dnn1", &["--epochs", "1", "--resume"]));
    assert!(err.contains("finished already"), "{err}");

    let edited = |edit: fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&good).unwrap();
        edit(&mut v);
        v.to_string()
    };
    let cases = [
        (String::new(), "dnn1.json is empty"),
        (
            "{ trunc".to_string(),
            "dnn1.json is not a run result (key must be a string",
        ),
        (
            edited(|v| v["identity"]["seed"] = 7.into()),
            "dnn1.json is of another run: seed 7, this run asks for seed 0",
        ),
        (
            edited(|v| v["identity"]["data"]["test"]["fingerprint"] = "0000000000000000".into()),
            "dnn1.json is of another run: test data 10000 samples, fingerprint 0000000000000000",
        ),
        (
            edited(|v| {
                v["confusion"].as_array_mut().unwrap().pop();
            }),
            "dnn1.json is incomplete: its confusion matrix counts",
        ),
        (
            edited(|v| {
                v.as_object_mut().unwrap().remove("identity");
            }),
            "dnn1.json records no run identity",
        ),
    ];
    for (text, why) in cases {
        fs::write(&json, &text).unwrap();
        let err = ok(run(d, "dnn1", &["--epochs", "1", "--resume"]));
        assert!(
            err.contains(why) && err.contains("not finished"),
            "{why}: {err}"
        );
        assert!(err.contains("resuming after epoch 1"), "{err}");
        assert_eq!(fs::read_to_string(d.join("dnn1.json.prev")).unwrap(), text);
        assert_eq!(without_clock(&json), {
            let mut v: Value = serde_json::from_str(&good).unwrap();
            v["train_seconds"] = 0.into();
            v["test_seconds"] = 0.into();
            v["settings"]["threads"] = 0.into();
            v["epochs"][0]["seconds"] = 0.into();
            v
        });
    }

    // A directory of that name is no result, and could not be replaced.
    fs::remove_file(&json).unwrap();
    fs::create_dir(&json).unwrap();
    for args in [&["--epochs", "1", "--resume"][..], &["--epochs", "1"]] {
        let e = one_line_error(run(d, "dnn1", args));
        assert!(
            e.contains("dnn1.json is a directory, not a file; remove it"),
            "{e}"
        );
    }
}

/// A new run without --resume moves the old result aside at its start, so an
/// interrupted new run, resumed, is never taken for finished by the old JSON.
#[test]
fn a_new_run_moves_the_previous_result_aside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.to_str().unwrap();
    let args = [
        "run", "cnn3a", "--epochs", "2", "--limit", "1000", "--out", out,
    ];
    ok(study().args(args).args(["--seed", "1"]).output().unwrap());
    let mut child = spawn(&[&args[..], &["--seed", "0"]].concat());
    wait_for("the result moved aside", || {
        d.join("cnn3a.json.prev").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(read_json(&d.join("cnn3a.json.prev"))["identity"]["seed"], 1);
    assert_eq!(
        netdsl_runtime::checkpoint::read_meta(&d.join("cnn3a.safetensors.prev"))
            .unwrap()
            .extra["seed"],
        1
    );

    let err = ok(study()
        .args(args)
        .args(["--seed", "0", "--resume"])
        .output()
        .unwrap());
    assert!(!err.contains("finished already"), "{err}");
    let r: RunResult = serde_json::from_value(read_json(&d.join("cnn3a.json"))).unwrap();
    assert_eq!((r.settings.seed, r.identity.unwrap().seed), (0, 0));
    assert_eq!(r.epochs.len(), 2);
}

// ---- one writer per folder ----

#[test]
fn a_second_run_on_the_same_folder_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.to_str().unwrap();
    let lock = d.join(".study.lock");
    let holds_lock =
        |child: &Child| fs::read_to_string(&lock).is_ok_and(|s| s.trim() == child.id().to_string());
    let first = spawn(&[
        "run", "cnn3a", "--epochs", "3", "--limit", "1000", "--out", out,
    ]);
    wait_for("the first run's lock", || holds_lock(&first));
    let start = Instant::now();
    let e = one_line_error(run(d, "dnn1", &["--epochs", "1"]));
    assert!(start.elapsed() < Duration::from_secs(20), "not at once");
    assert!(
        e.contains(&format!(
            "is in use by another `study run` (pid {}",
            first.id()
        )),
        "{e}"
    );
    let done = first.wait_with_output().unwrap();
    assert!(done.status.success());
    assert!(temp_files(d).is_empty(), "{:?}", temp_files(d));
    ok(run(d, "dnn1", &["--epochs", "1"]));

    // A killed holder releases the lock.
    let mut killed = spawn(&[
        "run", "cnn3a", "--epochs", "2", "--limit", "1000", "--out", out,
    ]);
    wait_for("the second holder's lock", || holds_lock(&killed));
    killed.kill().unwrap();
    killed.wait().unwrap();
    ok(run(d, "dnn1", &["--epochs", "1"]));
}

// ---- study report ----

fn fixture(id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/results/{id}.json"))
}

fn report(dir: &Path) -> Output {
    study()
        .args(["report", "--out", dir.to_str().unwrap()])
        .output()
        .unwrap()
}

/// Every PNG under `dir` decodes whole.
fn pngs_decode(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            pngs_decode(&path);
        } else if path.extension().is_some_and(|e| e == "png") {
            let file = fs::File::open(&path).unwrap();
            let mut reader = png::Decoder::new(std::io::BufReader::new(file))
                .read_info()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
            reader
                .next_frame(&mut pixels)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn sigkill_during_report_leaves_each_file_old_or_new() {
    let ids = ["dnn1", "cnn3a", "cnn3a-do"];
    // The report of all three, made undisturbed.
    let reference = tempfile::tempdir().unwrap();
    for id in ids {
        fs::copy(fixture(id), reference.path().join(format!("{id}.json"))).unwrap();
    }
    let start = Instant::now();
    ok(report(reference.path()));
    let duration = start.elapsed();
    let read = |dir: &Path, f: &str| fs::read_to_string(dir.join(f)).unwrap();
    let new = (
        read(reference.path(), "results.md"),
        read(reference.path(), "results.csv"),
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::copy(fixture("dnn1"), d.join("dnn1.json")).unwrap();
    ok(report(d));
    let old = (read(d, "results.md"), read(d, "results.csv"));
    assert_ne!(old, new);
    for id in &ids[1..] {
        fs::copy(fixture(id), d.join(format!("{id}.json"))).unwrap();
    }
    for i in 0..12u32 {
        let mut child = spawn(&["report", "--out", d.to_str().unwrap()]);
        std::thread::sleep(duration * i / 10);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = (read(d, "results.md"), read(d, "results.csv"));
        assert!(
            now.0 == old.0 || now.0 == new.0,
            "results.md is neither: {}",
            now.0
        );
        assert!(
            now.1 == old.1 || now.1 == new.1,
            "results.csv is neither: {}",
            now.1
        );
        pngs_decode(d);
    }
    // The next report finishes the job and removes what killed ones left.
    ok(report(d));
    assert_eq!((read(d, "results.md"), read(d, "results.csv")), new);
    pngs_decode(d);
    assert!(temp_files(d).is_empty(), "{:?}", temp_files(d));
}

#[test]
fn report_refuses_two_results_of_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::copy(fixture("dnn1"), d.join("dnn1.json")).unwrap();
    fs::copy(fixture("dnn1"), d.join("dnn1-copy.json")).unwrap();
    let e = one_line_error(report(d));
    assert!(
        e.contains("dnn1-copy.json and") && e.contains("dnn1.json both hold results of `dnn1`"),
        "{e}"
    );
    assert!(!d.join("results.md").exists());
}

// ---- checked inputs ----

#[test]
fn a_corrupt_checkpoint_is_called_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(d, "dnn1", &["--epochs", "1"]));
    fs::remove_file(d.join("dnn1.json")).unwrap();
    let ckpt = d.join("dnn1.safetensors");
    let bytes = fs::read(&ckpt).unwrap();
    for broken in [&bytes[..100], &b"not a checkpoint at all"[..]] {
        fs::write(&ckpt, broken).unwrap();
        let e = one_line_error(run(d, "dnn1", &["--epochs", "1", "--resume"]));
        assert!(e.contains("checkpoint") && e.contains("corrupt"), "{e}");
        assert!(!e.contains("invalid setting"), "{e}");
    }
}

#[test]
fn non_finite_weights_or_optimizer_state_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(d, "dnn1", &["--epochs", "1"]));
    fs::remove_file(d.join("dnn1.json")).unwrap();
    let ckpt = d.join("dnn1.safetensors");
    let good = fs::read(&ckpt).unwrap();
    let (data_start, tensors) = safetensors_header(&good);
    let weight = tensors
        .keys()
        .find(|k| *k != "__metadata__" && !k.starts_with("optimizer."))
        .unwrap();
    let moment = tensors
        .keys()
        .find(|k| k.starts_with("optimizer.v."))
        .unwrap();
    for (name, value) in [(weight, f32::NAN), (moment, f32::INFINITY)] {
        let mut bytes = good.clone();
        let offset = data_start + tensors[name]["data_offsets"][0].as_u64().unwrap() as usize;
        bytes[offset + 4..offset + 8].copy_from_slice(&value.to_le_bytes());
        fs::write(&ckpt, bytes).unwrap();
        let e = one_line_error(run(d, "dnn1", &["--epochs", "1", "--resume"]));
        assert!(
            e.contains(&format!(
                "tensor {name} holds the non-finite value {value} at 1"
            )),
            "{e}"
        );
    }
}

/// Fashion-MNIST with a test set of no images (valid IDX files of count 0).
fn data_with_empty_test_set() -> tempfile::TempDir {
    let src = Path::new("/usr/share/datasets/fashion-mnist");
    let dir = tempfile::tempdir().unwrap();
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let be = |v: &[u32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    fs::write(
        dir.path().join("t10k-images-idx3-ubyte"),
        be(&[2051, 0, 28, 28]),
    )
    .unwrap();
    fs::write(dir.path().join("t10k-labels-idx1-ubyte"), be(&[2049, 0])).unwrap();
    dir
}

#[test]
fn an_empty_test_set_fails_before_training() {
    let data = data_with_empty_test_set();
    let dir = tempfile::tempdir().unwrap();
    let e = one_line_error(run(
        dir.path(),
        "dnn1",
        &["--epochs", "1", "--data", data.path().to_str().unwrap()],
    ));
    assert!(
        e.contains("the test set in") && e.contains("is empty"),
        "{e}"
    );
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

/// A tmpfs mounted for one test (root only), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `mount -t tmpfs -o <options>`, or `None` (with a note) where that is not allowed.
    fn mount(options: &str, test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("{test}: skipped, cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_is_an_error_and_leaves_no_temporary_file() {
    // 1 MiB: dnn1's checkpoint (49 KB) fits, cnn3a's (2.7 MB) does not.
    let Some(disk) = Tmpfs::mount("size=1m", "a_full_disk_is_an_error") else {
        return;
    };
    let d = disk.path();
    ok(run(d, "dnn1", &["--epochs", "1"]));
    let before = (
        fs::read(d.join("dnn1.json")).unwrap(),
        fs::read(d.join("dnn1.safetensors")).unwrap(),
    );
    let e = one_line_error(run(d, "cnn3a", &["--epochs", "1"]));
    assert!(
        e.contains("cnn3a.safetensors") && e.contains("No space left on device"),
        "{e}"
    );
    assert!(temp_files(d).is_empty(), "{:?}", temp_files(d));
    assert!(!d.join("cnn3a.json").exists() && !d.join("cnn3a.safetensors").exists());
    let after = (
        fs::read(d.join("dnn1.json")).unwrap(),
        fs::read(d.join("dnn1.safetensors")).unwrap(),
    );
    assert!(before == after, "dnn1's files changed");
}

#[test]
fn an_unwritable_output_folder_fails_before_training() {
    let Some(readonly) = Tmpfs::mount("ro,size=64k", "an_unwritable_output_folder") else {
        return;
    };
    let e = one_line_error(run(readonly.path(), "dnn1", &["--epochs", "1"]));
    assert!(
        e.contains("is not writable") && e.contains("Read-only file system"),
        "{e}"
    );
}

// ---- streams and numbers ----

/// The `study` binary as a std `Command`, for redirections assert_cmd lacks.
fn study_std() -> std::process::Command {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("study"))
}

fn dev_full() -> Stdio {
    Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

#[test]
fn full_stdout_or_stderr_is_exit_1_not_a_panic() {
    let out = study_std().arg("list").stdout(dev_full()).output().unwrap();
    let e = one_line_error(out);
    assert!(
        e.contains("writing to stdout: No space left on device"),
        "{e}"
    );
    let out = study_std()
        .arg("--help")
        .stdout(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // stderr full: nothing can be said, the exit code says it (was a panic, 101).
    let dir = tempfile::tempdir().unwrap();
    let status = study_std()
        .args(["run", "dnn1", "--epochs", "1", "--limit", "500", "--out"])
        .arg(dir.path())
        .stderr(dev_full())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    // The epoch's checkpoint came before its line: resuming finishes the run.
    ok(run(dir.path(), "dnn1", &["--epochs", "1", "--resume"]));
    assert!(dir.path().join("dnn1.json").exists());
}

#[test]
fn absurd_numbers_are_errors_or_clamped() {
    let e = one_line_error(
        study()
            .args(["bench", "dnn1", "--steps", "184467440737095527"])
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("--steps 184467440737095527 is more than the 550 batches"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err = ok(study()
        .env("RAYON_NUM_THREADS", "99999")
        .args(["run", "dnn1", "--epochs", "1", "--limit", "500", "--out"])
        .arg(dir.path())
        .output()
        .unwrap());
    assert!(start.elapsed() < Duration::from_secs(60));
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        err.contains(&format!("warning: RAYON_NUM_THREADS=99999 is more than 4 threads for each of the {cores} available cores; using {}", 4 * cores)),
        "{err}"
    );
    let r = read_json(&dir.path().join("dnn1.json"));
    assert_eq!(r["settings"]["threads"], 4 * cores);
}

#[test]
fn io_and_json_errors_say_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cnn4a.json"), "").unwrap();
    let e = one_line_error(report(dir.path()));
    assert!(e.contains("cnn4a.json: EOF while parsing a value"), "{e}");
    let e = one_line_error(
        study()
            .args(["report", "--out", "/nonexistent/results"])
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("/nonexistent/results: No such file or directory"),
        "{e}"
    );
}
