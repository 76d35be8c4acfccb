//! Settings a run may change without a rebuild: the learning rate, the
//! augmentation's ranges, and the network's dropout rates and L2 factors
//! (which `network!` declares, and the runtime lets a built model change).
//!
//! ```text
//! --set KEY=V1,V2,...      one value per grid point (study sweep, study run)
//!
//! lr=0.0005                Adam's learning rate (the study's: 0.001)
//! dropout=0.3              every dropout rate
//! dropout.K=0.3            the K-th dropout layer's rate (0-based, in layer order)
//! dropout_scale=0.5        every dropout rate times 0.5 (after dropout= and before dropout.K=)
//! l2=0.05                  the L2 factor of every kernel that carries L2
//! l2_on=conv|dense|conv+dense|none
//!                          which kernels carry it (default: those that declare l2)
//! aug=2                    every augmentation range (rotation, shift, zoom, noise) times 2
//! aug.rotation=30          the largest rotation in degrees   (cnn3c's: 10)
//! aug.shift=0.2            the largest shift, fraction of the size (0.1)
//! aug.zoom=0.2             the largest change of size (0.1)
//! aug.noise=0.1            the noise's standard deviation (0.05)
//! aug.flip=false           mirror left-right with probability 1/2 (true)
//! ```
//!
//! A run's [`Overrides`] are part of its identity (`identity.rs`) and of its
//! file names (`cnn3b@l2=0.05,l2_on=conv+dense.s1.json`, see `jobs.rs`); the
//! values are kept as canonical text (`0.10` is `0.1`), so the same point is
//! the same run whichever way it was written. Dropout rates and L2 factors
//! are not stored in a checkpoint's weights: a run sets them after building
//! its model and after loading a checkpoint ([`crate::regularize`]).

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, ensure, Context, Result};
use netdsl_runtime::data::Augment;
use netdsl_runtime::optim::Optimizer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which kernels carry L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2On {
    None,
    Conv,
    Dense,
    ConvDense,
}

impl L2On {
    fn parse(text: &str) -> Option<L2On> {
        Some(match text {
            "none" => L2On::None,
            "conv" => L2On::Conv,
            "dense" => L2On::Dense,
            "conv+dense" | "dense+conv" => L2On::ConvDense,
            _ => return None,
        })
    }

    fn text(self) -> &'static str {
        match self {
            L2On::None => "none",
            L2On::Conv => "conv",
            L2On::Dense => "dense",
            L2On::ConvDense => "conv+dense",
        }
    }

    /// Whether convolution kernels carry L2.
    pub fn conv(self) -> bool {
        matches!(self, L2On::Conv | L2On::ConvDense)
    }

    /// Whether dense kernels carry L2.
    pub fn dense(self) -> bool {
        matches!(self, L2On::Dense | L2On::ConvDense)
    }
}

/// A setting that `--set` can change; the order of the variants is the
/// order of keys in names and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Lr,
    Dropout,
    DropoutScale,
    DropoutAt(usize),
    L2,
    L2On,
    Aug,
    AugRotation,
    AugShift,
    AugZoom,
    AugNoise,
    AugFlip,
}

/// Every key's text, for error messages.
const KEYS: &str = "lr, dropout, dropout.K, dropout_scale, l2, l2_on, aug, \
                    aug.rotation, aug.shift, aug.zoom, aug.noise, aug.flip";

impl Key {
    pub fn parse(text: &str) -> Result<Key> {
        Ok(match text {
            "lr" => Key::Lr,
            "dropout" => Key::Dropout,
            "dropout_scale" => Key::DropoutScale,
            "l2" => Key::L2,
            "l2_on" => Key::L2On,
            "aug" => Key::Aug,
            "aug.rotation" => Key::AugRotation,
            "aug.shift" => Key::AugShift,
            "aug.zoom" => Key::AugZoom,
            "aug.noise" => Key::AugNoise,
            "aug.flip" => Key::AugFlip,
            other => match other.strip_prefix("dropout.").map(str::parse) {
                Some(Ok(k)) => Key::DropoutAt(k),
                _ => bail!("unknown setting `{other}`; known: {KEYS}"),
            },
        })
    }

    /// Whether the key changes the network's regularisers (dropout, L2).
    pub fn is_regularizer(self) -> bool {
        matches!(
            self,
            Key::Dropout | Key::DropoutScale | Key::DropoutAt(_) | Key::L2 | Key::L2On
        )
    }

    /// Whether the key changes the augmentation.
    pub fn is_augment(self) -> bool {
        matches!(
            self,
            Key::Aug
                | Key::AugRotation
                | Key::AugShift
                | Key::AugZoom
                | Key::AugNoise
                | Key::AugFlip
        )
    }

    /// Checks `text` as a value of this key and returns its canonical text.
    fn canonical(self, text: &str) -> Result<String> {
        let key = self;
        let number = || -> Result<f32> {
            let x: f32 = text
                .trim()
                .parse()
                .with_context(|| format!("{key}={text}: not a number"))?;
            ensure!(
                x.is_finite() && x >= 0.0,
                "{key}={text}: must be finite and >= 0"
            );
            Ok(x)
        };
        Ok(match self {
            Key::L2On => match L2On::parse(text.trim()) {
                Some(on) => on.text().to_string(),
                None => bail!("l2_on={text}: expected conv, dense, conv+dense or none"),
            },
            Key::AugFlip => match text.trim() {
                "true" | "1" | "yes" => "true".to_string(),
                "false" | "0" | "no" => "false".to_string(),
                _ => bail!("aug.flip={text}: expected true or false"),
            },
            Key::Lr => {
                let x = number()?;
                ensure!(x > 0.0, "lr={text}: must be above 0");
                x.to_string()
            }
            Key::Dropout | Key::DropoutAt(_) => {
                let x = number()?;
                ensure!(x < 1.0, "{key}={text}: a rate must be below 1");
                x.to_string()
            }
            Key::AugShift | Key::AugZoom => {
                let x = number()?;
                ensure!(x < 1.0, "{key}={text}: must be below 1");
                x.to_string()
            }
            _ => number()?.to_string(),
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Key::Lr => "lr",
            Key::Dropout => "dropout",
            Key::DropoutScale => "dropout_scale",
            Key::DropoutAt(k) => return write!(f, "dropout.{k}"),
            Key::L2 => "l2",
            Key::L2On => "l2_on",
            Key::Aug => "aug",
            Key::AugRotation => "aug.rotation",
            Key::AugShift => "aug.shift",
            Key::AugZoom => "aug.zoom",
            Key::AugNoise => "aug.noise",
            Key::AugFlip => "aug.flip",
        };
        f.write_str(text)
    }
}

/// One run's changed settings, key to canonical value; empty for the
/// variant as declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(BTreeMap<Key, String>);

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value` (checked, made canonical).
    pub fn set(&mut self, key: Key, value: &str) -> Result<()> {
        let value = key.canonical(value)?;
        self.0.insert(key, value);
        Ok(())
    }

    /// `key=value,key=value` in key order: the grid point's name.
    pub fn tag(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(",")
    }

    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.0.keys().copied()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: Key) -> Option<&str> {
        self.0.get(&key).map(String::as_str)
    }

    /// A number-valued key (canonical text parses).
    pub fn number(&self, key: Key) -> Option<f32> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// Which kernels carry L2, when set.
    pub fn l2_on(&self) -> Option<L2On> {
        self.get(Key::L2On).and_then(L2On::parse)
    }

    /// Whether any key changes the network's dropout rates or L2 factors.
    pub fn touches_regularizers(&self) -> bool {
        self.keys().any(Key::is_regularizer)
    }

    /// The optimizer with the learning rate set, when `lr` is.
    pub fn optimizer(&self, base: Optimizer) -> Optimizer {
        let Some(lr) = self.number(Key::Lr) else {
            return base;
        };
        match base {
            Optimizer::Adam(mut adam) => {
                adam.lr = lr;
                Optimizer::Adam(adam)
            }
            Optimizer::Sgd(mut sgd) => {
                sgd.lr = lr;
                Optimizer::Sgd(sgd)
            }
        }
    }

    /// The augmentation of a run whose variant augments with `base` (`None`:
    /// the variant does not augment): `aug` scales every range, then the
    /// single ranges are set. An `aug*` key on a variant that does not
    /// augment is an error.
    pub fn augment(&self, base: Option<Augment>, variant: &str) -> Result<Option<Augment>> {
        if !self.keys().any(Key::is_augment) {
            return Ok(base);
        }
        let Some(mut aug) = base else {
            let key = self.keys().find(|k| k.is_augment()).map(|k| k.to_string());
            bail!(
                "{} changes the augmentation, but {variant} is not augmented \
                 (augmented variants: cnn3c, cnn3c-do)",
                key.unwrap_or_default()
            );
        };
        if let Some(s) = self.number(Key::Aug) {
            aug.rotation_deg *= s;
            aug.shift *= s;
            aug.zoom *= s;
            aug.noise_std *= s;
            ensure!(
                aug.shift < 1.0 && aug.zoom < 1.0,
                "aug={s} makes the shift {} and the zoom {}; both must stay below 1",
                aug.shift,
                aug.zoom
            );
        }
        let set = |key, field: &mut f32| {
            if let Some(x) = self.number(key) {
                *field = x;
            }
        };
        set(Key::AugRotation, &mut aug.rotation_deg);
        set(Key::AugShift, &mut aug.shift);
        set(Key::AugZoom, &mut aug.zoom);
        set(Key::AugNoise, &mut aug.noise_std);
        if let Some(flip) = self.get(Key::AugFlip) {
            aug.flip = flip == "true";
        }
        Ok(Some(aug))
    }
}

impl fmt::Display for Overrides {
    /// The tag, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&self.tag())
        }
    }
}

/// Serialized as a JSON object of canonical text: `{"dropout": "0.3", "lr": "0.0005"}`.
impl Serialize for Overrides {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<String, &String> =
            self.0.iter().map(|(k, v)| (k.to_string(), v)).collect();
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Overrides {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut out = Overrides::default();
        for (k, v) in map {
            let key = Key::parse(&k).map_err(serde::de::Error::custom)?;
            out.set(key, &v).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

/// `--set KEY=V1,V2,...`: one key and its values, each checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetArg {
    pub key: Key,
    pub values: Vec<String>,
}

impl std::str::FromStr for SetArg {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<SetArg> {
        let Some((key, values)) = text.split_once('=') else {
            bail!("--set {text}: expected KEY=V1,V2,... (keys: {KEYS})");
        };
        let key = Key::parse(key.trim())?;
        let mut out = Vec::new();
        for v in values.split(',') {
            let v = key.canonical(v)?;
            ensure!(!out.contains(&v), "--set {text}: {key}={v} twice");
            out.push(v);
        }
        Ok(SetArg { key, values: out })
    }
}

/// The grid of `--set` arguments: every combination of their values, the
/// first key varying slowest. No `--set`: one point, the variant as declared.
pub fn grid(sets: &[SetArg]) -> Result<Vec<Overrides>> {
    for (i, s) in sets.iter().enumerate() {
        ensure!(
            !sets[..i].iter().any(|t| t.key == s.key),
            "--set {} is given twice",
            s.key
        );
    }
    let mut points = vec![Overrides::default()];
    for s in sets {
        let mut next = Vec::with_capacity(points.len() * s.values.len());
        for point in &points {
            for v in &s.values {
                let mut p = point.clone();
                p.set(s.key, v)?;
                next.push(p);
            }
        }
        points = next;
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variants::study_augment;

    fn point(pairs: &[(&str, &str)]) -> Overrides {
        let mut o = Overrides::default();
        for (k, v) in pairs {
            o.set(Key::parse(k).unwrap(), v).unwrap();
        }
        o
    }

    #[test]
    fn values_are_canonical_and_keys_ordered() {
        let o = point(&[
            ("l2_on", "dense+conv"),
            ("lr", "0.00050"),
            ("dropout.1", ".30"),
        ]);
        assert_eq!(o.tag(), "lr=0.0005,dropout.1=0.3,l2_on=conv+dense");
        assert_eq!(o.to_string(), o.tag());
        assert_eq!(Overrides::default().to_string(), "none");
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            json,
            r#"{"dropout.1":"0.3","l2_on":"conv+dense","lr":"0.0005"}"#
        );
        assert_eq!(serde_json::from_str::<Overrides>(&json).unwrap(), o);
    }

    #[test]
    fn bad_keys_and_values_are_errors() {
        let err = |s: &str| s.parse::<SetArg>().unwrap_err().to_string();
        assert!(err("momentum=0.9").contains("unknown setting `momentum`"));
        assert!(err("dropout=1").contains("a rate must be below 1"));
        assert!(err("lr=0").contains("must be above 0"));
        assert!(err("l2=-1").contains("must be finite and >= 0"));
        assert!(err("l2=x").contains("not a number"));
        assert!(err("l2_on=all").contains("expected conv, dense"));
        assert!(err("dropout=0.1,0.10").contains("dropout=0.1 twice"));
        assert!(err("lr").contains("expected KEY=V1,V2"));
    }

    #[test]
    fn the_grid_is_every_combination_first_key_slowest() {
        let sets: Vec<SetArg> = ["l2=0.01,0.05", "l2_on=conv,conv+dense"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let tags: Vec<String> = grid(&sets).unwrap().iter().map(Overrides::tag).collect();
        assert_eq!(
            tags,
            [
                "l2=0.01,l2_on=conv",
                "l2=0.01,l2_on=conv+dense",
                "l2=0.05,l2_on=conv",
                "l2=0.05,l2_on=conv+dense"
            ]
        );
        assert_eq!(grid(&[]).unwrap(), [Overrides::default()]);
        let twice = [sets[0].clone(), sets[0].clone()];
        assert!(grid(&twice).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn learning_rate_and_augmentation() {
        let o = point(&[("lr", "0.002"), ("aug", "2"), ("aug.flip", "false")]);
        assert_eq!(o.optimizer(Optimizer::adam(1e-3)), Optimizer::adam(0.002));
        let aug = o.augment(Some(study_augment()), "cnn3c").unwrap().unwrap();
        assert_eq!(
            (
                aug.rotation_deg,
                aug.shift,
                aug.zoom,
                aug.noise_std,
                aug.flip
            ),
            (20.0, 0.2, 0.2, 0.1, false)
        );
        let e = o.augment(None, "cnn3a").unwrap_err().to_string();
        assert!(e.contains("cnn3a is not augmented"), "{e}");
        let too_much = point(&[("aug", "10")]);
        let e = too_much
            .augment(Some(study_augment()), "cnn3c")
            .unwrap_err();
        assert!(e.to_string().contains("must stay below 1"), "{e}");
        assert_eq!(Overrides::default().augment(None, "cnn3a").unwrap(), None);
    }
}
