//! The reference figures `study bench` compares against: the same models
//! trained and evaluated by other frameworks on the project's machine (2
//! vCPUs of an AMD EPYC Zen 4, 2 threads, batch 100, Adam), recorded on
//! 2026-11-25 as the minimum of clean, idle-gated runs. Only the fastest
//! peer per figure is kept. Method and the peers' own timings are
//! summarised in `runtime/PERFORMANCE.md`; rerun them on your own machine
//! before comparing there. On the GPU (`--device cuda`) the study's own
//! epoch stands in for the peers ([`gpu_comparison`]).

/// A recorded peer figure: seconds and who measured them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peer {
    pub seconds: f64,
    pub by: &'static str,
}

/// The fastest recorded training epoch (55,000 images) and test evaluation
/// (10,000 images) of variant `id`, where one exists.
pub fn best(id: &str) -> Option<(Peer, Peer)> {
    const TORCH: &str = "PyTorch 2.15";
    const TORCH_CL: &str = "PyTorch 2.15 channels-last";
    const JAX: &str = "Keras 3.15 on JAX";
    let p = |seconds, by| Peer { seconds, by };
    Some(match id {
        "dnn1" => (p(0.30, TORCH), p(0.01, TORCH)),
        "dnn2" => (p(0.39, TORCH), p(0.01, TORCH)),
        "cnn3a" => (p(8.24, TORCH_CL), p(0.30, JAX)),
        "cnn4a" => (p(12.70, TORCH_CL), p(0.69, JAX)),
        _ => return None,
    })
}

/// `ours / peer` as the line `study bench` prints beside its figures.
pub fn comparison(id: &str, train_s: f64, eval_s: f64) -> Option<String> {
    let (train, eval) = best(id)?;
    Some(format!(
        "  {id}: epoch {:.2}x {}'s {:.2} s, test evaluation {:.2}x {}'s {:.2} s",
        train_s / train.seconds,
        train.by,
        train.seconds,
        eval_s / eval.seconds,
        eval.by,
        eval.seconds
    ))
}

/// The study's 20 epochs (its training times cover 20 epochs, validation included).
const STUDY_EPOCHS: f64 = 20.0;

/// The target for a CNN3a epoch on one H200 (issue 15), seconds.
pub const CNN3A_GPU_TARGET_S: f64 = 1.0;

/// `study bench --device cuda`'s line beside a GPU epoch: the ratio to the
/// study's own epoch (Keras on a Colab GPU: its training time / 20 epochs),
/// and for cnn3a the target of 1 s per epoch.
pub fn gpu_comparison(id: &str, train_s: f64) -> Option<String> {
    let row = crate::report::study_row(id)?;
    let theirs = row.train_seconds / STUDY_EPOCHS;
    let mut line = format!(
        "  {id}: epoch {:.2}x the study's Colab GPU epoch, {theirs:.2} s ({:.1} s / 20 epochs)",
        train_s / theirs,
        row.train_seconds
    );
    if id == "cnn3a" {
        let verdict = if train_s <= CNN3A_GPU_TARGET_S {
            "met"
        } else {
            "not met"
        };
        line.push_str(&format!(
            "; target {CNN3A_GPU_TARGET_S} s on an H200: {verdict}"
        ));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_divide_by_the_peer() {
        let line = comparison("cnn3a", 4.12, 0.15).unwrap();
        assert!(
            line.contains("epoch 0.50x PyTorch 2.15 channels-last's 8.24 s"),
            "{line}"
        );
        assert!(
            line.contains("test evaluation 0.50x Keras 3.15 on JAX's 0.30 s"),
            "{line}"
        );
        assert_eq!(comparison("cnn3c", 1.0, 1.0), None);
    }

    #[test]
    fn gpu_epochs_are_set_beside_the_study_and_the_target() {
        let line = gpu_comparison("cnn3a", 0.8).unwrap();
        assert!(
            line.contains("epoch 0.34x the study's Colab GPU epoch, 2.33 s (46.7 s / 20 epochs)"),
            "{line}"
        );
        assert!(line.ends_with("target 1 s on an H200: met"), "{line}");
        let line = gpu_comparison("cnn4a", 2.0).unwrap();
        assert!(!line.contains("target"), "{line}");
        assert_eq!(gpu_comparison("nope", 1.0), None);
    }
}
