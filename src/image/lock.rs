//! One process owns an image at a time: an advisory lock on a file in the image directory,
//! which also says who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Who holds an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Command line.
    pub command: String,
}

/// The held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

pub(crate) const LOCK_FILE: &str = "lock";

/// How long a busy lock is retried before its holder is named.
const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

impl Lock {
    /// Takes the lock of the image in `dir` at once, or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_path(&path)?;
        // A lock just released can linger for a moment in a child another thread of the
        // releasing process forked before it could exec (descriptors are shared until then):
        // retry briefly before naming a holder.
        let started = std::time::Instant::now();
        let mut attempt = file.try_lock();
        while matches!(attempt, Err(TryLockError::WouldBlock)) && started.elapsed() < LINGER {
            std::thread::sleep(std::time::Duration::from_millis(5));
            attempt = file.try_lock();
        }
        match attempt {
            Ok(()) => {
                let owner = Owner {
                    pid: std::process::id(),
                    command: std::env::args().collect::<Vec<_>>().join(" "),
                };
                let json = serde_json::to_vec(&owner).unwrap_or_default();
                file.set_len(0).with_path(&path)?;
                file.seek(SeekFrom::Start(0)).with_path(&path)?;
                file.write_all(&json).with_path(&path)?;
                Ok(Lock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let owner: Owner = serde_json::from_str(&text).unwrap_or(Owner {
                    pid: 0,
                    command: "unknown: it has not said yet".to_string(),
                });
                Err(Error::Locked {
                    path: dir.to_path_buf(),
                    pid: owner.pid,
                    command: owner.command,
                })
            }
            Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}

/// Who holds the image in `dir`, if anyone does.
pub fn owner(dir: &Path) -> Option<Owner> {
    let path = dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => {
            let text = std::fs::read_to_string(&path).ok()?;
            serde_json::from_str(&text).ok()
        }
    }
}
