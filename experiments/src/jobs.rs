//! What one `study run` (or `study sweep`, `study calibrate`) trains: the
//! list of jobs, one per (variant, sweep point, seed), their file names,
//! and the share of them that one shard of a Slurm array runs.
//!
//! ```text
//! jobs       for each variant, for each grid point (--set), for each seed (--seeds)
//! files      <stem>.json, <stem>.safetensors with
//!            stem = <id>[@<overrides>][.s<seed>]
//!              @<overrides>   when the job changes settings: cnn3b@l2=0.05,l2_on=conv+dense
//!              .s<seed>       when --seeds names the seeds: cnn3a.s2
//!            so `study run cnn3a [--seed 3]` writes cnn3a.json, as it always has
//! shards     --shard I/N (or Slurm's SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT):
//!            job k of the list runs in shard k mod N, so every shard gets a mix of
//!            variants and all shards together run each job once
//! ```

use std::fmt;

use anyhow::{bail, ensure, Context, Result};

use crate::overrides::Overrides;
use crate::variants::Variant;

/// One run: a variant, at a sweep point, with a seed.
#[derive(Debug, Clone)]
pub struct Job {
    pub variant: &'static Variant,
    pub overrides: Overrides,
    pub seed: u64,
    /// Whether the seed is part of the file name (`--seeds`).
    pub seed_in_name: bool,
}

impl Job {
    /// The file name without extension: `<id>[@<overrides>][.s<seed>]`.
    pub fn stem(&self) -> String {
        let mut stem = self.variant.id.to_string();
        if !self.overrides.is_empty() {
            stem.push('@');
            stem.push_str(&self.overrides.tag());
        }
        if self.seed_in_name {
            stem.push_str(&format!(".s{}", self.seed));
        }
        stem
    }
}

/// Every job of `variants` x `points` x `seeds`, in that nesting order.
/// `seeds_named`: the seeds came from `--seeds`, so they name the files.
pub fn expand(
    variants: &[&'static Variant],
    points: &[Overrides],
    seeds: &[u64],
    seeds_named: bool,
) -> Vec<Job> {
    let mut jobs = Vec::with_capacity(variants.len() * points.len() * seeds.len());
    for &variant in variants {
        for point in points {
            for &seed in seeds {
                jobs.push(Job {
                    variant,
                    overrides: point.clone(),
                    seed,
                    seed_in_name: seeds_named,
                });
            }
        }
    }
    jobs
}

/// `--seeds`: `0,1,2`, `0..5` (0 to 4), `0..=4`, or a mix (`0..3,7`); no
/// seed twice.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| -> Result<u64> {
            s.trim()
                .parse()
                .with_context(|| format!("--seeds {text}: `{s}` is not a seed (0, 1, 2, ...)"))
        };
        let range = if let Some((a, b)) = part.split_once("..=") {
            number(a)?..number(b)?.saturating_add(1)
        } else if let Some((a, b)) = part.split_once("..") {
            number(a)?..number(b)?
        } else {
            let n = number(part)?;
            n..n + 1
        };
        ensure!(!range.is_empty(), "--seeds {text}: `{part}` is empty");
        ensure!(
            range.end - range.start <= 10_000,
            "--seeds {text}: `{part}` is more than 10,000 seeds"
        );
        for seed in range {
            ensure!(!seeds.contains(&seed), "--seeds {text}: seed {seed} twice");
            seeds.push(seed);
        }
    }
    Ok(seeds)
}

/// One part of a job list: part `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// `I/N`, `0 <= I < N`.
    fn from_str(text: &str) -> Result<Shard> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        let Some((index, count)) = parsed else {
            bail!("--shard {text}: expected I/N, e.g. 0/4");
        };
        // clap shows the error's own message only: the cause goes into it.
        Shard::new(index, count).map_err(|e| anyhow::anyhow!("--shard {text}: {e}"))
    }
}

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        ensure!(count >= 1, "there must be at least one shard");
        ensure!(
            index < count,
            "shard {index} of {count}: shards are numbered 0 to {}",
            count - 1
        );
        Ok(Shard { index, count })
    }

    /// The shard of a Slurm array task, when the environment (`var`) has one:
    /// `(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`
    /// of `SLURM_ARRAY_TASK_COUNT` (MIN 0 and STEP 1 where unset).
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>> {
        let Some(id) = var("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let number = |name: &str, default: Option<usize>| -> Result<usize> {
            match var(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .with_context(|| format!("{name}={v} is not a number")),
                None => default
                    .with_context(|| format!("SLURM_ARRAY_TASK_ID={id} is set but {name} is not")),
            }
        };
        let id = number("SLURM_ARRAY_TASK_ID", None)?;
        let count = number("SLURM_ARRAY_TASK_COUNT", None)?;
        let min = number("SLURM_ARRAY_TASK_MIN", Some(0))?;
        let step = number("SLURM_ARRAY_TASK_STEP", Some(1))?.max(1);
        ensure!(
            id >= min,
            "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
        );
        Shard::new((id - min) / step, count)
            .map(Some)
            .with_context(|| format!("Slurm array task {id}"))
    }

    /// The jobs of this shard: job k when `k % count == index`.
    pub fn select<T>(&self, jobs: Vec<T>) -> Vec<T> {
        jobs.into_iter()
            .enumerate()
            .filter(|(k, _)| k % self.count == self.index)
            .map(|(_, job)| job)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::{Key, Overrides};
    use crate::variants::find;
    use std::collections::HashMap;

    #[test]
    fn seeds_lists_and_ranges() {
        assert_eq!(parse_seeds("0,1,2").unwrap(), [0, 1, 2]);
        assert_eq!(parse_seeds("0..5").unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(parse_seeds("1..=3, 7").unwrap(), [1, 2, 3, 7]);
        assert_eq!(parse_seeds("4").unwrap(), [4]);
        let err = |s: &str| parse_seeds(s).unwrap_err().to_string();
        assert!(err("0..3,2").contains("seed 2 twice"));
        assert!(err("3..3").contains("`3..3` is empty"));
        assert!(err("a").contains("`a` is not a seed"));
        assert!(err("0..100000").contains("more than 10,000"));
    }

    #[test]
    fn one_seed_keeps_the_plain_name() {
        let cnn3a = find("cnn3a").unwrap();
        let plain = expand(&[cnn3a], &[Overrides::default()], &[3], false);
        assert_eq!(plain[0].stem(), "cnn3a");
        let mut l2 = Overrides::default();
        l2.set(Key::L2, "0.05").unwrap();
        let seeds = expand(&[cnn3a], &[Overrides::default(), l2], &[0, 1], true);
        let stems: Vec<String> = seeds.iter().map(Job::stem).collect();
        assert_eq!(
            stems,
            [
                "cnn3a.s0",
                "cnn3a.s1",
                "cnn3a@l2=0.05.s0",
                "cnn3a@l2=0.05.s1"
            ]
        );
    }

    #[test]
    fn shards_split_the_list_into_equal_parts() {
        let jobs: Vec<usize> = (0..10).collect();
        let parts: Vec<Vec<usize>> = (0..4)
            .map(|i| Shard::new(i, 4).unwrap().select(jobs.clone()))
            .collect();
        assert_eq!(parts[0], [0, 4, 8]);
        assert_eq!(parts[3], [3, 7]);
        let mut all: Vec<usize> = parts.concat();
        all.sort();
        assert_eq!(all, jobs);
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard::new(2, 4).unwrap());
        for bad in ["4/4", "1", "a/b", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn slurm_array_variables() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        assert_eq!(Shard::from_slurm(env(&[])).unwrap(), None);
        let task = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_slurm(task).unwrap(),
            Some(Shard::new(2, 4).unwrap())
        );
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(
            Shard::from_slurm(stepped).unwrap(),
            Some(Shard::new(2, 3).unwrap())
        );
        let e = Shard::from_slurm(env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap_err();
        assert!(
            e.to_string().contains("SLURM_ARRAY_TASK_COUNT is not"),
            "{e}"
        );
    }
}
