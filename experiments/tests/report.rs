//! The report from fixed run results: `results.md` and `results.csv` as insta snapshots, and
//! every PNG written, decodable and of the documented size.
//!
//! Fixtures: `tests/fixtures/results/` holds three hand-written `<id>.json` run results plus an
//! unrelated `summary.json` and a `README.txt` that loading must skip.
//!
//! Run: `cargo test -p netdsl-experiments --test report` (update snapshots with `cargo insta review`
//! or `INSTA_UPDATE=always`).

use std::fs;
use std::path::{Path, PathBuf};

use netdsl_experiments::report::{load_results, markdown_table, write_report};
use netdsl_runtime::plot::{COMPARE_SIZE as OVERVIEW_SIZE, CONFUSION_SIZE, CURVES_SIZE};
use netdsl_runtime::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

/// A fresh, empty folder under the target dir for one test's output.
fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decode a PNG and return its size, checking that it holds the pixels it announces.
fn png_size(path: &Path) -> (u32, u32) {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    // Not a blank canvas: some pixels are not white.
    assert!(
        pixels[..info.buffer_size()].iter().any(|&b| b < 200),
        "{} is blank",
        path.display()
    );
    (info.width, info.height)
}

#[test]
fn loads_runs_in_study_order_and_skips_other_files() {
    let results = load_results(&fixtures()).unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["dnn1", "cnn3a", "cnn3a-do"]);
}

#[test]
fn markdown_and_csv_snapshots() {
    let results = load_results(&fixtures()).unwrap();
    let dir = out_dir("report-snapshots");
    let files = write_report(&dir, &results).unwrap();
    assert_eq!(files.markdown, dir.join("results.md"));
    insta::assert_snapshot!("results_md", fs::read_to_string(&files.markdown).unwrap());
    insta::assert_snapshot!("results_csv", fs::read_to_string(&files.csv).unwrap());
    assert!(fs::read_to_string(&files.markdown)
        .unwrap()
        .contains(&markdown_table(&results)));
}

#[test]
fn pngs_are_written_and_decode() {
    let results = load_results(&fixtures()).unwrap();
    let dir = out_dir("report-pngs");
    let files = write_report(&dir, &results).unwrap();
    assert_eq!(png_size(&dir.join("overview.png")), OVERVIEW_SIZE);
    for id in ["dnn1", "cnn3a", "cnn3a-do"] {
        assert_eq!(png_size(&dir.join(format!("curves/{id}.png"))), CURVES_SIZE);
        assert_eq!(
            png_size(&dir.join(format!("confusion/{id}.png"))),
            CONFUSION_SIZE
        );
    }
    assert_eq!(files.all().len(), 3 + 3 + 3);
    assert!(files.all().iter().all(|p| p.is_file()));
}

#[test]
fn single_epoch_and_empty_report_still_draw() {
    let mut results = load_results(&fixtures()).unwrap();
    results.truncate(1);
    results[0].epochs.truncate(1);
    results[0].confusion.clear();
    let dir = out_dir("report-one-epoch");
    let files = write_report(&dir, &results).unwrap();
    assert_eq!(png_size(&files.curves[0]), CURVES_SIZE);
    assert!(files.confusion.is_empty());

    let dir = out_dir("report-empty");
    let files = write_report(&dir, &[]).unwrap();
    assert_eq!(png_size(&files.overview), OVERVIEW_SIZE);
}

#[test]
fn odd_ids_keep_figures_inside_the_folder() {
    let mut results = load_results(&fixtures()).unwrap();
    results.truncate(1);
    results[0].id = "../escape".to_string();
    let dir = out_dir("report-odd-id");
    let files = write_report(&dir.join("report"), &results).unwrap();
    assert_eq!(files.curves[0], dir.join("report/curves/___escape.png"));
    assert!(files.curves[0].is_file());
    let md = fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("(curves/___escape.png)"), "{md}");
}

#[test]
fn malformed_run_json_is_an_error_naming_the_file() {
    let dir = out_dir("report-malformed");
    fs::copy(fixtures().join("dnn1.json"), dir.join("dnn1.json")).unwrap();
    // Named as a variant but missing fields.
    fs::write(dir.join("cnn4a.json"), r#"{"id": "cnn4a"}"#).unwrap();
    let err = load_results(&dir).unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(Error::Json { path, .. }) if path.ends_with("cnn4a.json")),
        "{err}"
    );
    assert!(err.to_string().contains("cnn4a.json"), "{err}");

    // Not JSON at all.
    fs::write(dir.join("cnn4a.json"), "{ truncated").unwrap();
    let err = load_results(&dir).unwrap_err();
    assert!(err.to_string().contains("cnn4a.json"), "{err}");
}

#[test]
fn missing_dir_is_an_io_error_naming_it() {
    let err = load_results(Path::new("/nonexistent/results")).unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(Error::Io { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/results"), "{err}");
}
