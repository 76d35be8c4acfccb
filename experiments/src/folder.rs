//! The output folder of `study run` and `study report`: one writer at a time
//! (an advisory lock), no temporary files left by writers that died, and
//! earlier results moved aside rather than mistaken for new ones.
//!
//! Two ways to hold a folder, so that the shards of a Slurm array share one:
//!
//! - a `study run` without `--shard` locks the whole folder, exclusively
//!   ([`lock`]): nothing else writes it meanwhile;
//! - a shard (`--shard I/N`, or a Slurm array task) takes the folder's lock
//!   shared ([`lock_shared`]), so shards run side by side while no
//!   unsharded run can, and locks each of its jobs exclusively
//!   ([`lock_job`]: `<out>/.locks/<stem>.lock`) before the first epoch, so
//!   two shards (or a requeued task and its ghost) never write one job's
//!   files at once. A shard removes the temporary files only of the jobs it
//!   has locked ([`remove_job_temps`]), whatever their pid: a pid names a
//!   process on one node only.
//!
//! ```text
//! <out>/.study.lock            flock(2)ed by the `study run` that writes the folder (exclusive; holds
//!                              its pid) or by the shards that write it (shared)
//! <out>/.locks/<stem>.lock     flock(2)ed by the shard that runs job <stem>; holds "pid P on HOST"
//! <out>/<name>.<pid>.<n>.tmp   a write in progress (checkpoint::write_atomic); removed on error,
//!                              and by the next run or report when process <pid> is gone
//! <out>/<id>.json.prev         the result a new run of <id> replaced (<id>.safetensors.prev: its checkpoint)
//! ```

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::errln;

/// The lock file's name in the output folder.
pub const LOCK_FILE: &str = ".study.lock";

/// The lock on an output folder; released when dropped or when the process
/// ends, however it ends (the kernel drops a dead process's flock).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Creates `dir` if needed and takes its lock, or fails at once, naming the
/// process that holds it.
///
/// The lock is `flock(2)` on `<dir>/.study.lock` (std's `File::try_lock`),
/// advisory: it keeps out other `study run`s, nothing else. A file system
/// without locks (some network mounts) gets a warning and no lock.
pub fn lock(dir: &Path) -> Result<FolderLock> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = open_lock_file(&path)
        .with_context(|| format!("output folder {} is not writable", dir.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) if file.try_lock_shared().is_ok() => {
            // Only shared holders: the shards of an array.
            bail!(
                "output folder {} is in use by the shards of a sharded `study run` \
                 (their job locks are in {}); wait for them to finish or use another --out",
                dir.display(),
                dir.join(JOB_LOCKS).display()
            );
        }
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&mut file);
            let holder = match holder.trim() {
                "" => "a process that has not written its pid yet".to_string(),
                pid => format!("pid {pid}"),
            };
            bail!(
                "output folder {} is in use by another `study run` ({holder}, see {}); \
                 wait for it to finish or use another --out",
                dir.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            errln!(
                "warning: {} cannot be locked on this file system; \
                 make sure no other `study run` writes to it",
                dir.display()
            )?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    write_holder(&mut file, &std::process::id().to_string())
        .with_context(|| format!("output folder {} is not writable", dir.display()))?;
    Ok(FolderLock { _file: file })
}

/// The folder of the job locks in an output folder.
pub const JOB_LOCKS: &str = ".locks";

/// Creates `dir` if needed and takes its lock shared, as a shard: other
/// shards may hold it too, an unsharded `study run` may not. Fails at once,
/// naming the holder's pid, while an unsharded run holds it.
pub fn lock_shared(dir: &Path) -> Result<FolderLock> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = open_lock_file(&path)
        .with_context(|| format!("output folder {} is not writable", dir.display()))?;
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&mut file);
            bail!(
                "output folder {} is in use by an unsharded `study run` (pid {}, see {}); \
                 wait for it to finish or use another --out",
                dir.display(),
                holder.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            errln!(
                "warning: {} cannot be locked on this file system; \
                 make sure no two `study run`s write one job's files",
                dir.display()
            )?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(FolderLock { _file: file })
}

/// The lock on one job's files (`<stem>.json`, `<stem>.safetensors`), held by a shard.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
}

/// Takes the lock of job `stem` in `dir` (`<dir>/.locks/<stem>.lock`), or
/// fails at once, naming the process that holds it and its host. The lock
/// files stay: removing one while another process has it open would let two
/// processes lock two different files of one name.
pub fn lock_job(dir: &Path, stem: &str) -> Result<JobLock> {
    let locks = dir.join(JOB_LOCKS);
    fs::create_dir_all(&locks).with_context(|| format!("creating {}", locks.display()))?;
    let path = locks.join(format!("{stem}.lock"));
    let mut file = open_lock_file(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&mut file);
            bail!(
                "{stem} is being run by another `study run` ({}, see {}); \
                 wait for it to finish, or leave {stem} to it",
                holder.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            return Ok(JobLock { _file: file }); // lock_shared warned
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    let holder = format!("pid {} on {}", std::process::id(), host_name());
    write_holder(&mut file, &holder).with_context(|| format!("writing {}", path.display()))?;
    Ok(JobLock { _file: file })
}

/// Opens a lock file for reading its holder and writing one's own, creating
/// it if needed and never truncating it: the holder's text stays readable
/// until the lock is ours.
fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// What the lock's holder wrote into it (empty if nothing yet or unreadable).
fn read_holder(file: &mut File) -> String {
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    holder
}

/// Replaces the lock file's text with `holder`, one line.
fn write_holder(file: &mut File, holder: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{holder}")?;
    file.flush()
}

/// This machine's name (Linux), or `unknown host`.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown host".to_string())
}

/// Removes the temporary files of job `stem`'s result and checkpoint in
/// `dir`, whatever process wrote them: the caller holds the job's lock, so
/// their writer is gone. Returns their paths.
pub fn remove_job_temps(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    let targets = [format!("{stem}.json"), format!("{stem}.safetensors")];
    remove_temps(dir, |target, _| targets.iter().any(|t| t == target))
}

/// Removes the temporary files in `dir` of the files named `targets` whose
/// writer is gone (on this machine); returns their paths.
pub fn remove_stale_temps_of(dir: &Path, targets: &[&str]) -> Result<Vec<PathBuf>> {
    remove_temps(dir, |target, pid| {
        targets.contains(&target) && !may_be_running(pid)
    })
}

/// The name of the file a temporary file `<name>.<pid>.<n>.tmp` is written
/// for, and the writer's pid; `None` for any other name.
fn temp_target(file_name: &str) -> Option<(&str, u32)> {
    let pid = temp_owner(file_name)?;
    let rest = file_name.strip_suffix(".tmp")?;
    let (rest, _) = rest.rsplit_once('.')?;
    let (target, _) = rest.rsplit_once('.')?;
    Some((target, pid))
}

/// Removes the temporary files in `dir` for which `remove(target, pid)` is true.
fn remove_temps(dir: &Path, remove: impl Fn(&str, u32) -> bool) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let Some((target, pid)) = name.to_str().and_then(temp_target) else {
            continue;
        };
        if remove(target, pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The pid of the writer of a temporary file named `<name>.<pid>.<n>.tmp`
/// (`checkpoint::write_atomic`'s names), or `None` for any other name.
pub fn temp_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_suffix(".tmp")?;
    let (rest, n) = rest.rsplit_once('.')?;
    let (stem, pid) = rest.rsplit_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if stem.is_empty() || !digits(n) || !digits(pid) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` may still be running (on other systems than Linux
/// every process is taken to be, so nothing is removed).
fn may_be_running(pid: u32) -> bool {
    if pid == std::process::id() || !cfg!(target_os = "linux") {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the temporary files in `dir` whose writer is gone (killed before
/// it could clean up, on this machine); returns their paths.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    remove_temps(dir, |_, pid| !may_be_running(pid))
}

/// `path` with `.prev` appended.
pub fn prev_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".prev");
    PathBuf::from(name)
}

/// Renames `path` to `<path>.prev` (replacing an older one) when it exists;
/// returns the new path.
pub fn move_aside(path: &Path) -> Result<Option<PathBuf>> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let prev = prev_path(path);
    fs::rename(path, &prev)
        .with_context(|| format!("moving {} aside to {}", path.display(), prev.display()))?;
    Ok(Some(prev))
}

/// `path` is absent or a regular file, so that an atomic write can replace
/// it (a directory of that name would fail the rename after training).
pub fn check_replaceable(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => bail!(
            "{} is {}, not a file; remove it",
            path.display(),
            if meta.is_dir() {
                "a directory"
            } else {
                "something else"
            }
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_those_write_atomic_makes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cnn3a.json");
        let mut seen = None;
        netdsl_runtime::checkpoint::write_atomic_with(&target, |tmp| {
            let name = tmp.file_name().unwrap().to_str().unwrap().to_string();
            seen = Some(temp_owner(&name));
            fs::write(tmp, b"{}").map_err(|source| netdsl_runtime::Error::Io {
                path: tmp.to_owned(),
                source,
            })
        })
        .unwrap();
        assert_eq!(seen, Some(Some(std::process::id())));
        assert_eq!(temp_owner("cnn3a.json"), None);
        assert_eq!(temp_owner("x.12.tmp"), None);
        assert_eq!(temp_owner("x.a.1.tmp"), None);
        assert_eq!(temp_owner("results.md.77.0.tmp"), Some(77));
    }

    #[test]
    fn stale_temps_of_dead_writers_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22 on Linux: this pid cannot run.
        let dead = dir.path().join("a.json.4294967.0.tmp");
        let live = dir
            .path()
            .join(format!("b.json.{}.0.tmp", std::process::id()));
        for p in [&dead, &live] {
            fs::write(p, b"x").unwrap();
        }
        let removed = remove_stale_temps(dir.path()).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(removed, [dead]);
        }
        assert!(live.exists());
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("is in use") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        lock(dir.path()).unwrap();
    }

    #[test]
    fn shards_share_the_folder_and_lock_their_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let a = lock_shared(dir.path()).unwrap();
        let b = lock_shared(dir.path()).unwrap();
        let e = lock(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use by the shards of a sharded"), "{e}");
        let job = lock_job(dir.path(), "cnn3a.s1").unwrap();
        let e = lock_job(dir.path(), "cnn3a.s1").unwrap_err().to_string();
        assert!(
            e.starts_with("cnn3a.s1 is being run by another `study run` (pid ")
                && e.contains(&format!("pid {} on ", std::process::id())),
            "{e}"
        );
        lock_job(dir.path(), "cnn3a.s2").unwrap();
        drop((a, b, job));
        let whole = lock(dir.path()).unwrap();
        let e = lock_shared(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("in use by an unsharded `study run` (pid "),
            "{e}"
        );
        drop(whole);
        lock_job(dir.path(), "cnn3a.s1").unwrap();
    }

    #[test]
    fn a_shard_removes_the_temps_of_its_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let names = [
            format!("cnn3a.s1.json.{me}.0.tmp"),
            format!("cnn3a.s1.safetensors.{me}.3.tmp"),
            format!("cnn3a.s10.json.{me}.0.tmp"),
            "results.md.4294967.0.tmp".to_string(),
        ];
        for n in &names {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        let mut removed = remove_job_temps(dir.path(), "cnn3a.s1").unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [dir.path().join(&names[0]), dir.path().join(&names[1])]
        );
        let removed = remove_stale_temps_of(dir.path(), &["results.csv"]).unwrap();
        assert!(removed.is_empty());
        let removed = remove_stale_temps_of(dir.path(), &["results.md"]).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(removed, [dir.path().join(&names[3])]);
        }
        assert!(dir.path().join(&names[2]).exists());
    }

    #[test]
    fn moving_aside_and_replaceable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("dnn1.json");
        assert_eq!(move_aside(&json).unwrap(), None);
        fs::write(&json, b"old").unwrap();
        let prev = move_aside(&json).unwrap().unwrap();
        assert_eq!(fs::read(&prev).unwrap(), b"old");
        assert!(!json.exists());
        check_replaceable(&json).unwrap();
        fs::create_dir(&json).unwrap();
        let err = check_replaceable(&json).unwrap_err().to_string();
        assert!(
            err.ends_with("is a directory, not a file; remove it"),
            "{err}"
        );
    }
}
