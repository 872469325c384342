//! Which process owns a temporary file or build directory of the store, and whether that
//! process is still running, across PID reuse.
//!
//! A name of this process's own carries its *incarnation*, `<pid>.<token>`, the token drawn at
//! random once per process: a process that got the PID of an earlier one (a node agent that
//! restarts as PID 1 in its container) never takes the earlier one's names, and its
//! sequence numbers, which start again at 0, never collide with them. Every [`crate::Store`]
//! this process opens holds `locks/owners/<pid>.<token>.lock` shared (an `flock`, which the
//! kernel drops when the process dies): an owner whose lock can be taken exclusively is gone,
//! and what it left is removed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::FlockOperation;

use crate::{ctx, lock_path, Result};

/// Where the owners' lock files live, under the store's root.
pub(crate) const OWNERS_DIR: &str = "locks/owners";

/// This process's incarnation, `<pid>.<token>` (16 hex digits of the kernel's random bytes;
/// should those not be readable, of the clock and the PID).
pub(crate) fn incarnation() -> &'static str {
    static ME: OnceLock<String> = OnceLock::new();
    ME.get_or_init(|| {
        let mut b = [0u8; 8];
        let token = match File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
            }
        };
        format!("{}.{token:016x}", std::process::id())
    })
}

fn lock_file(root: &Path, owner: &str) -> PathBuf {
    root.join(OWNERS_DIR).join(format!("{owner}.lock"))
}

/// Takes this process's owner lock in the store at `root` (shared: every store of the process
/// holds it), kept while the returned file is open.
pub(crate) fn hold(root: &Path) -> Result<File> {
    let p = lock_file(root, incarnation());
    lock_path(&p, FlockOperation::LockShared)?.ok_or_else(|| {
        crate::Error::io(
            format!("lock {}", p.display()),
            io::ErrorKind::WouldBlock.into(),
        )
    })
}

/// The owner a name made by [`incarnation`] starts with (`<pid>.<token>.<rest>`), or a name
/// of the form before tokens (`<pid>.<n>`).
pub(crate) enum Owner<'a> {
    /// `<pid>.<token>`.
    Incarnation(&'a str),
    /// A PID alone.
    Pid(u32),
}

/// The owner of a name `<pid>.<token>.<n>` (or `<pid>.<n>`, as names were made before
/// tokens); `None` for a name of neither form.
pub(crate) fn owner_of(name: &str) -> Option<Owner<'_>> {
    let mut parts = name.split('.');
    let pid = parts.next()?;
    pid.parse::<u32>().ok()?;
    let second = parts.next()?;
    match parts.next() {
        None => Some(Owner::Pid(pid.parse().ok()?)),
        Some(_) => Some(Owner::Incarnation(&name[..pid.len() + 1 + second.len()])),
    }
}

/// Judges owners, each once: [`Owners::dead`] takes a gone owner's lock and keeps it until
/// [`Owners::release`], which removes the lock files of the owners found gone.
#[derive(Default)]
pub(crate) struct Owners {
    seen: HashMap<String, Option<File>>,
}

impl Owners {
    /// Whether `owner` is gone: another incarnation whose lock nobody holds, or (a name made
    /// before tokens) a PID that is not running or is this process's (which never makes such
    /// names).
    pub(crate) fn dead(&mut self, root: &Path, owner: &Owner<'_>) -> Result<bool> {
        let owner = match owner {
            Owner::Pid(pid) => {
                return Ok(
                    *pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists()
                )
            }
            Owner::Incarnation(o) => *o,
        };
        if owner == incarnation() {
            return Ok(false);
        }
        if let Some(held) = self.seen.get(owner) {
            return Ok(held.is_some());
        }
        let held = lock_path(
            &lock_file(root, owner),
            FlockOperation::NonBlockingLockExclusive,
        )?;
        let dead = held.is_some();
        self.seen.insert(owner.to_string(), held);
        Ok(dead)
    }

    /// Removes the lock files of every gone owner found in `root`'s owners directory (those
    /// judged already, and any other whose lock is free), each while its lock is held: a
    /// locker checks that the file it locked is still the one at the path.
    pub(crate) fn release(mut self, root: &Path) -> Result<()> {
        let dir = root.join(OWNERS_DIR);
        for e in ctx(fs::read_dir(&dir), || format!("list {}", dir.display()))? {
            let e = ctx(e, || format!("list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = name.strip_suffix(".lock").filter(|o| {
                o.split_once('.').is_some_and(|(pid, token)| {
                    pid.parse::<u32>().is_ok()
                        && !token.is_empty()
                        && token.bytes().all(|c| c.is_ascii_hexdigit())
                })
            });
            if let Some(owner) = owner {
                self.dead(root, &Owner::Incarnation(owner))?;
            }
        }
        for (owner, held) in self.seen {
            if held.is_some() {
                let _ = fs::remove_file(lock_file(root, &owner));
            }
        }
        Ok(())
    }
}
