//! End-to-end tests of the `study` binary on the real Fashion-MNIST files
//! (`apt-get install dataset-fashion-mnist`): a short run of two variants,
//! the report built from it, summaries, and clear errors for bad input.

use netdsl_experiments::results::RunResult;

mod common;
use common::*;

/// Runs `study` with `args`, expecting failure, and returns stderr.
fn fails(args: &[&str]) -> String {
    let out = study().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{args:?}: one-line error expected: {stderr}"
    );
    stderr
}

#[test]
fn run_two_variants_then_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let run = study()
        .args([
            "run", "dnn1", "cnn3a", "--epochs", "1", "--limit", "2000", "--out", out,
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("dnn1") && stdout.contains("cnn3a"),
        "{stdout}"
    );

    for (id, params, min_acc) in [("dnn1", 3_985, 0.25), ("cnn3a", 225_034, 0.60)] {
        let text = std::fs::read_to_string(dir.path().join(format!("{id}.json"))).unwrap();
        let r: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(r.id, id);
        assert_eq!(r.params, params);
        assert_eq!(r.epochs.len(), 1);
        assert_eq!(r.settings.limit, Some(2000));
        let e = &r.epochs[0];
        assert!(e.loss.is_finite() && e.loss > 0.0, "{id} loss {}", e.loss);
        assert!((0.0..=1.0).contains(&e.val_accuracy.unwrap()));
        assert!(
            r.test_accuracy >= min_acc,
            "{id} test accuracy {}",
            r.test_accuracy
        );
        let total: u64 = r.confusion.iter().flatten().sum();
        assert_eq!(total, 10_000);
        assert!(dir.path().join(format!("{id}.safetensors")).exists());
    }

    let report = study().args(["report", "--out", out]).output().unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains("225,034"), "{md}");
    assert!(dir.path().join("results.csv").exists());
    for png in ["curves/dnn1.png", "curves/cnn3a.png", "overview.png"] {
        let file = std::fs::File::open(dir.path().join(png)).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(file));
        let reader = decoder.read_info().unwrap();
        assert!(
            reader.info().width > 100 && reader.info().height > 100,
            "{png}"
        );
    }
}

#[test]
fn summary_json_of_all_variants() {
    let out = study().args(["summary", "--json"]).output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let params: Vec<(String, u64)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["params"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(params.len(), 14);
    for (id, p) in &params {
        let expected = match id.trim_end_matches("-do") {
            "dnn1" => 3_985,
            "dnn2" => 7_965,
            "cnn3a" | "cnn3b" | "cnn3c" => 225_034,
            "cnn4a" | "cnn4b" => 93_322,
            other => panic!("unexpected id {other}"),
        };
        assert_eq!(*p, expected, "{id}");
    }
    insta::assert_json_snapshot!("summary_all", json);
}

#[test]
fn list_shows_fourteen_variants() {
    let out = study().arg("list").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 14);
}

#[test]
fn bad_input_is_a_one_line_error() {
    let e = fails(&["run", "cnn9"]);
    assert!(
        e.contains("unknown variant `cnn9`") && e.contains("cnn3a"),
        "{e}"
    );
    let e = fails(&["run", "dnn1", "--epochs", "0"]);
    assert!(e.contains("epochs"), "{e}");
    let e = fails(&["run", "dnn1", "--batch", "0"]);
    assert!(e.contains("batch"), "{e}");
    let e = fails(&["run", "dnn1", "--limit", "100000"]);
    assert!(e.contains("--limit"), "{e}");
    let e = fails(&[
        "run", "dnn1", "--limit", "50", "--batch", "100", "--epochs", "1",
    ]);
    assert!(e.contains("batch size 100 is larger"), "{e}");
    let e = fails(&["run", "dnn1", "--data", "/nonexistent/fmnist"]);
    assert!(e.contains("/nonexistent/fmnist"), "{e}");
}

/// `--device cuda` in the default build (no `cuda` feature): one line saying
/// how to build with it, exit code 1, before any data is read or file written.
/// (A `cuda` build without a GPU is tested in tests/cuda.rs.)
#[cfg(not(feature = "cuda"))]
#[test]
fn device_cuda_without_the_feature_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let out = out.to_str().unwrap();
    for args in [
        format!("run dnn1 --device cuda --out {out}"),
        "run dnn1 --device cuda --data /nonexistent/fmnist".to_owned(),
        format!("sweep dnn1 --set lr=0.001,0.003 --device cuda --out {out}"),
        "bench dnn2 --device cuda --data /nonexistent/fmnist".to_owned(),
    ] {
        let args: Vec<&str> = args.split_whitespace().collect();
        let e = fails(&args);
        assert!(e.starts_with("error: --device cuda: "), "{args:?}: {e}");
        assert!(e.contains("built without CUDA"), "{e}");
        assert!(e.contains("--features cuda"), "{e}");
        let code = study().args(&args).output().unwrap().status.code();
        assert_eq!(code, Some(1), "{args:?}");
    }
    assert!(!dir.path().join("results").exists(), "nothing written");
    // clap's own usage error (several lines, exit code 2) names the choices.
    let tpu = study()
        .args(["run", "dnn1", "--device", "tpu"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&tpu.stderr);
    assert_eq!(tpu.status.code(), Some(2), "{e}");
    assert!(e.contains("possible values: cpu, cuda"), "{e}");
}

#[test]
fn same_seed_same_results_for_1_and_2_threads() {
    let mut runs = Vec::new();
    for threads in ["1", "2", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let out = study()
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "run", "cnn3c-do", "--epochs", "1", "--limit", "2000", "--seed", "3",
            ])
            .args(["--out", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        runs.push(without_clock(&dir.path().join("cnn3c-do.json")));
    }
    assert_eq!(runs[0], runs[1], "1 vs 2 threads");
    assert_eq!(runs[1], runs[2], "2 threads twice");
    // Bit-reproducible on this machine, so the metrics themselves are a snapshot.
    insta::assert_json_snapshot!("cnn3c_do_seed3_2000_epochs", runs[0]["epochs"]);
}

#[test]
fn killed_run_resumes_to_the_same_result() {
    let args = [
        "run", "cnn3a-do", "--epochs", "3", "--limit", "2000", "--seed", "5",
    ];
    let full = tempfile::tempdir().unwrap();
    let ok = study()
        .args(args)
        .args(["--out", full.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("study"))
        .args(args)
        .args(["--out", dir.path().to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = dir.path().join("cnn3a-do.safetensors");
    let start = std::time::Instant::now();
    while !ckpt.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ckpt.exists(), "no checkpoint after epoch 1");
    std::thread::sleep(std::time::Duration::from_millis(300)); // into epoch 2
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.path().join("cnn3a-do.json").exists(),
        "killed before the end"
    );

    let resumed = study()
        .args(args)
        .args(["--out", dir.path().to_str().unwrap(), "--resume"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming after epoch"));
    assert_eq!(
        without_clock(&full.path().join("cnn3a-do.json")),
        without_clock(&dir.path().join("cnn3a-do.json"))
    );
    // A second --resume skips the finished variant.
    let again = study()
        .args(args)
        .args(["--out", dir.path().to_str().unwrap(), "--resume"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("finished already"));
}

/// A copy of the real data set in a temporary directory, with `file` replaced by `bytes`.
fn data_with(file: &str, bytes: Vec<u8>) -> tempfile::TempDir {
    let src = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join(file), bytes).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The real test labels, decompressed.
fn test_labels() -> Vec<u8> {
    use std::io::Read;
    let f =
        std::fs::File::open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn bad_data_files_are_one_line_errors() {
    let labels = "t10k-labels-idx1-ubyte.gz";
    let mut wrong_magic = test_labels();
    wrong_magic[3] = 0x03; // 2051 instead of 2049
    let mut big_label = test_labels();
    big_label[8 + 17] = 10;
    let mut fewer = test_labels();
    fewer.truncate(8 + 9_000);
    fewer[4..8].copy_from_slice(&9_000u32.to_be_bytes());
    let mut truncated = test_labels();
    truncated.truncate(5_000);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (labels, b"not gzip at all".to_vec(), labels),
        (labels, gzip(&test_labels())[..300].to_vec(), labels),
        (labels, gzip(&truncated), labels),
        (labels, gzip(&wrong_magic), "magic"),
        (labels, gzip(&big_label), "label 10"),
        (labels, gzip(&fewer), labels),
    ];
    for (file, bytes, expected) in cases {
        let dir = data_with(file, bytes);
        let e = fails(&[
            "run",
            "dnn1",
            "--epochs",
            "1",
            "--data",
            dir.path().to_str().unwrap(),
        ]);
        assert!(e.contains(expected), "{e}");
    }
    let dir = data_with(labels, vec![]);
    std::fs::remove_file(dir.path().join(labels)).unwrap();
    let e = fails(&["run", "dnn1", "--data", dir.path().to_str().unwrap()]);
    assert!(
        e.contains(labels) && e.contains("apt-get install dataset-fashion-mnist"),
        "{e}"
    );
}

#[test]
fn unwritable_output_and_foreign_checkpoint_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("results");
    let e = fails(&[
        "run",
        "dnn1",
        "--epochs",
        "1",
        "--limit",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(e.contains("a-file"), "{e}");

    let out = dir.path().join("results");
    let ok = study()
        .args([
            "run",
            "dnn1",
            "--epochs",
            "1",
            "--limit",
            "1000",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    std::fs::copy(out.join("dnn1.safetensors"), out.join("dnn2.safetensors")).unwrap();
    let e = fails(&[
        "run",
        "dnn2",
        "--epochs",
        "1",
        "--resume",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        e.contains("is of another run: variant dnn1, this run asks for variant dnn2"),
        "{e}"
    );
}

/// `study summary | head -1`: a closed stdout ends the program with exit
/// code 1, quietly (the reader has gone), and no panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    // The reader goes away before the program starts: closing it after the
    // spawn raced with the program, whose 13 kB fit the pipe's buffer.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("study"))
        .arg("summary")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
