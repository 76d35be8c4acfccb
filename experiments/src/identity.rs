//! A run's identity: everything that determines its numbers, recorded in
//! every checkpoint (the `extra` metadata of `checkpoint::save_training`) and
//! in every `<id>.json`, so that `--resume` continues only the run that was
//! asked for and counts as finished only that run's result.
//!
//! ```text
//! variant, network, params         what is trained (cnn3a and cnn3c share a network)
//! seed, batch, limit, epochs       the command line
//! optimizer, schedule,             how it is trained (Adam's lr, betas, eps;
//! label_smoothing, augment          cnn3c's augmentation)
//! overrides                        the sweep point (--set): what it changed, as asked
//!                                  (absent when nothing was; see overrides.rs)
//! device                           --device: `cuda` (absent for the CPU, the default)
//! data.{train,val,test}            count and Dataset::fingerprint of the images used
//! ```
//!
//! What may differ on `--resume` (nothing here depends on it): the thread
//! count (results are the same for any), the `--data` folder (its content is
//! fingerprinted), and the epochs target, which may rise or fall as long as it
//! is not below the epochs the checkpoint holds and the schedule does not
//! depend on it (the study's learning rate is constant).
//!
//! What may not: the device. A CPU run's numbers are the same for any thread
//! count, so a resumed CPU run ends bit for bit where an uninterrupted one
//! would; a GPU run's are not reproducible at all (cuBLAS and atomic adds sum
//! in varying order), and a run continued on the other device would be
//! neither device's run. So `--resume --device cuda` starts a CPU run's job
//! over (and moves its result aside), and the other way round; a CUDA
//! checkpoint continues on CUDA, where the result is as good as any GPU
//! run's but not the bits an uninterrupted one would have had.

use netdsl_runtime::data::{Augment, Dataset};
use netdsl_runtime::optim::{Optimizer, Schedule};
use netdsl_runtime::train::Fit;
use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;
use crate::overrides::Overrides;

/// Everything that determines a run's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The variant id (`cnn3c`).
    pub variant: String,
    /// The network's declared name (`Cnn3a`) and its parameter count.
    pub network: String,
    pub params: usize,
    pub seed: u64,
    pub batch: usize,
    /// `--limit`: trained on the first `limit` training images.
    pub limit: Option<usize>,
    /// The epochs target (`--epochs`).
    pub epochs: usize,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub label_smoothing: f32,
    pub augment: Option<Augment>,
    /// What `--set` changed (the learning rate and augmentation it set are
    /// also in `optimizer` and `augment`; dropout rates and L2 factors only here).
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// Where it trains (`--device`); left out for the CPU, so that CPU runs'
    /// files read as before and older ones (without the field) as CPU runs.
    #[serde(default, skip_serializing_if = "DeviceKind::is_cpu")]
    pub device: DeviceKind,
    pub data: DataIdentity,
}

/// The data a run used: training (after `--limit`), validation and test set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    pub train: SetIdentity,
    pub val: SetIdentity,
    pub test: SetIdentity,
}

/// One data set: how many samples, and [`Dataset::fingerprint`] of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetIdentity {
    pub count: usize,
    /// 16 hex digits (FNV-1a of shape, classes, values and labels).
    pub fingerprint: String,
}

impl SetIdentity {
    pub fn of(data: &Dataset) -> SetIdentity {
        SetIdentity {
            count: data.len(),
            fingerprint: format!("{:016x}", data.fingerprint()),
        }
    }
}

impl DataIdentity {
    pub fn of(train: &Dataset, val: &Dataset, test: &Dataset) -> DataIdentity {
        DataIdentity {
            train: SetIdentity::of(train),
            val: SetIdentity::of(val),
            test: SetIdentity::of(test),
        }
    }
}

/// A setting in which two identities differ, with both values as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What differs, as the user knows it: `seed`, `variant`, `training data`.
    pub setting: &'static str,
    /// The recorded run's value.
    pub recorded: String,
    /// The requested run's value.
    pub requested: String,
}

impl std::fmt::Display for Difference {
    /// `seed 1, this run asks for seed 0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.setting;
        write!(
            f,
            "{s} {}, this run asks for {s} {}",
            self.recorded, self.requested
        )
    }
}

impl Identity {
    /// The identity of training `variant` (network `network` of `params`
    /// parameters) with `fit` on `data`.
    pub fn new(
        variant: &str,
        network: &str,
        params: usize,
        fit: &Fit,
        limit: Option<usize>,
        data: DataIdentity,
    ) -> Identity {
        Identity {
            variant: variant.to_string(),
            network: network.to_string(),
            params,
            seed: fit.seed,
            batch: fit.batch,
            limit,
            epochs: fit.epochs,
            optimizer: fit.optimizer,
            schedule: fit.schedule,
            label_smoothing: fit.label_smoothing,
            augment: fit.augment,
            overrides: Overrides::default(),
            device: DeviceKind::Cpu,
            data,
        }
    }

    /// The same identity at the sweep point `overrides`.
    pub fn with_overrides(self, overrides: Overrides) -> Identity {
        Identity { overrides, ..self }
    }

    /// The same identity trained on `device`.
    pub fn on_device(self, device: DeviceKind) -> Identity {
        Identity { device, ..self }
    }

    /// The first setting, in the order of the fields (what is trained first),
    /// in which `self` (recorded) differs from `requested`, the epochs target
    /// left out; `None` when they are the same run.
    pub fn difference(&self, requested: &Identity) -> Option<Difference> {
        self.differences(requested)
            .into_iter()
            .find(|d| d.setting != "epochs")
    }

    /// Every setting in which `self` (recorded) differs from `requested`, in
    /// the order of the fields, the epochs target included.
    pub fn differences(&self, requested: &Identity) -> Vec<Difference> {
        let (a, b) = (self, requested);
        let limit = |l: Option<usize>| l.map_or_else(|| "none".to_string(), |n| n.to_string());
        // Text, not `serde_json::Value`, which would widen an f32 0.001 to 0.0010000000474974513.
        fn json(v: &impl Serialize) -> String {
            match serde_json::to_string(v) {
                Ok(text) if text == "null" => "none".to_string(),
                Ok(text) => text,
                Err(e) => format!("<{e}>"),
            }
        }
        let set = |s: &SetIdentity| format!("{} samples, fingerprint {}", s.count, s.fingerprint);
        let pairs: [(&'static str, String, String); 15] = [
            ("variant", a.variant.clone(), b.variant.clone()),
            ("network", a.network.clone(), b.network.clone()),
            ("parameters", a.params.to_string(), b.params.to_string()),
            ("seed", a.seed.to_string(), b.seed.to_string()),
            ("batch", a.batch.to_string(), b.batch.to_string()),
            ("limit", limit(a.limit), limit(b.limit)),
            ("optimizer", json(&a.optimizer), json(&b.optimizer)),
            ("schedule", json(&a.schedule), json(&b.schedule)),
            (
                "label smoothing",
                a.label_smoothing.to_string(),
                b.label_smoothing.to_string(),
            ),
            ("augmentation", json(&a.augment), json(&b.augment)),
            (
                "overrides",
                a.overrides.to_string(),
                b.overrides.to_string(),
            ),
            ("device", a.device.to_string(), b.device.to_string()),
            ("training data", set(&a.data.train), set(&b.data.train)),
            ("validation data", set(&a.data.val), set(&b.data.val)),
            ("test data", set(&a.data.test), set(&b.data.test)),
        ];
        let mut out: Vec<Difference> = pairs
            .into_iter()
            .filter(|(_, x, y)| x != y)
            .map(|(setting, recorded, requested)| Difference {
                setting,
                recorded,
                requested,
            })
            .collect();
        if a.epochs != b.epochs {
            out.push(Difference {
                setting: "epochs",
                recorded: a.epochs.to_string(),
                requested: b.epochs.to_string(),
            });
        }
        out
    }

    /// The identity as the JSON of a checkpoint's `extra` metadata (through
    /// text, so that f32 settings keep their short form: `"lr": 0.001`).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(&serde_json::to_string(self)?)
    }

    /// Whether the learning rate of an epoch depends on the epochs target, so
    /// that a checkpoint cannot continue under another target.
    pub fn schedule_depends_on_epochs(&self) -> bool {
        matches!(self.schedule, Schedule::Cosine { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variants::{study_augment, study_fit};

    fn identity(variant: &str, augment: bool) -> Identity {
        let data = Dataset::new(vec![0u8; 8], vec![0, 1], (1, 2, 2), 2).unwrap();
        let augment = augment.then(study_augment);
        Identity::new(
            variant,
            "Cnn3a",
            225_034,
            &study_fit(3, 100, 0, augment),
            None,
            DataIdentity::of(&data, &data, &data),
        )
    }

    #[test]
    fn the_first_difference_names_the_variant_before_its_settings() {
        let (a, c) = (identity("cnn3a", false), identity("cnn3c", true));
        assert_eq!(a.difference(&a), None);
        let d = a.difference(&c).unwrap();
        assert_eq!(
            d.to_string(),
            "variant cnn3a, this run asks for variant cnn3c"
        );
        let all: Vec<&str> = a.differences(&c).iter().map(|d| d.setting).collect();
        assert_eq!(all, ["variant", "augmentation"]);
        assert!(a.differences(&c)[1].recorded == "none");
    }

    #[test]
    fn the_epochs_target_is_a_difference_only_when_asked_for() {
        let a = identity("dnn1", false);
        let more = Identity {
            epochs: 20,
            limit: Some(500),
            ..a.clone()
        };
        assert_eq!(
            a.difference(&more).unwrap().to_string(),
            "limit none, this run asks for limit 500"
        );
        let more = Identity {
            epochs: 20,
            ..a.clone()
        };
        assert_eq!(a.difference(&more), None);
        assert_eq!(a.differences(&more)[0].setting, "epochs");
        assert!(!a.schedule_depends_on_epochs());
    }

    #[test]
    fn round_trips_through_json() {
        let a = identity("cnn3c", true);
        let json = a.to_json().unwrap();
        assert_eq!(json["optimizer"]["Adam"]["lr"], 0.001);
        assert_eq!(json["data"]["train"]["count"], 2);
        assert_eq!(
            json["data"]["train"]["fingerprint"].as_str().unwrap().len(),
            16
        );
        assert!(json.get("overrides").is_none(), "no overrides, no field");
        let back: Identity = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn the_device_is_a_difference_and_cpu_is_left_out() {
        let cpu = identity("cnn3a", false);
        let json = cpu.to_json().unwrap();
        assert!(
            json.get("device").is_none(),
            "CPU runs' files read as before"
        );
        let cuda = cpu.clone().on_device(DeviceKind::Cuda);
        assert_eq!(
            cpu.difference(&cuda).unwrap().to_string(),
            "device cpu, this run asks for device cuda"
        );
        let json = cuda.to_json().unwrap();
        assert_eq!(json["device"], "cuda");
        assert_eq!(serde_json::from_value::<Identity>(json).unwrap(), cuda);
    }

    #[test]
    fn overrides_are_a_difference_and_round_trip() {
        use crate::overrides::Key;
        let a = identity("dnn1-do", false);
        let mut o = Overrides::default();
        o.set(Key::Dropout, "0.2").unwrap();
        let b = a.clone().with_overrides(o);
        assert_eq!(
            a.difference(&b).unwrap().to_string(),
            "overrides none, this run asks for overrides dropout=0.2"
        );
        let json = b.to_json().unwrap();
        assert_eq!(json["overrides"]["dropout"], "0.2");
        assert_eq!(serde_json::from_value::<Identity>(json).unwrap(), b);
    }
}
