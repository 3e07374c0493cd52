//! The watcher's plain part: notify's events converted to [`Change`]s, and a batch of changes
//! turned into what to build ([`plan`]). No threads, no watching: everything here is tested
//! with synthetic events. (The two ends of a rename come paired: notify-debouncer-full joins
//! them by their tracker.)

use std::path::{Path, PathBuf};
use std::time::Instant;

use notify::Event;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};

use crate::walk::{narrow, relative};

/// What happened to the paths of a [`Change`], as far as the image cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A file or directory appeared.
    Created,
    /// A file's bytes changed (a write, a truncation, or a kind the platform did not name).
    Modified,
    /// A file open for writing was closed.
    Written,
    /// A file or directory went away.
    Removed,
    /// A rename or move: the old path, the new one, or both (old first).
    Renamed,
    /// The platform dropped events (its queue overflowed): only a full scan can be trusted.
    Rescan,
    /// Nothing the image cares about: reads, opens, metadata.
    Ignored,
}

/// One file-system change, converted from a notify event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The paths involved (absolute, as the watcher reports them).
    pub paths: Vec<PathBuf>,
    /// When the event arrived.
    pub time: Instant,
}

impl Change {
    /// A change of `kind` to `paths` now (for tests).
    #[cfg(test)]
    pub fn new(kind: ChangeKind, paths: Vec<PathBuf>) -> Change {
        Change {
            kind,
            paths,
            time: Instant::now(),
        }
    }
}

/// Converts one notify event, stamped with the time it arrived (now). This is all the notify
/// callback does, besides forwarding the changes that are not [`ChangeKind::Ignored`].
pub fn convert(event: &Event) -> Change {
    let kind = if event.need_rescan() {
        ChangeKind::Rescan
    } else {
        match event.kind {
            EventKind::Create(_) => ChangeKind::Created,
            EventKind::Remove(_) => ChangeKind::Removed,
            EventKind::Modify(ModifyKind::Name(_)) => ChangeKind::Renamed,
            EventKind::Modify(ModifyKind::Metadata(_)) => ChangeKind::Ignored,
            EventKind::Modify(_) | EventKind::Any => ChangeKind::Modified,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => ChangeKind::Written,
            EventKind::Access(_) | EventKind::Other => ChangeKind::Ignored,
        }
    };
    Change {
        kind,
        paths: event.paths.clone(),
        time: Instant::now(),
    }
}

/// Whether a file name is an editor's temporary or backup file: vim's swap files and its
/// `4913` probe, `name~` backups, Emacs's `.#lock` and `#autosave#`, `*.tmp`, and JetBrains'
/// safe-write files (`___jb_tmp___`, `___jb_old___`).
pub fn is_editor_file(name: &str) -> bool {
    name == "4913"
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || [".swp", ".swo", ".swx", ".tmp"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || name.contains("___jb_tmp___")
        || name.contains("___jb_old___")
}

/// What a batch of changes asks of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing the image holds is touched.
    Nothing,
    /// Look at these paths (relative, narrowed): files, and directories to walk whole.
    Paths(Vec<String>),
    /// Only a full scan can be trusted; the reason, to be logged.
    Full(String),
}

/// What the planner may ask of the file system: whether a path is a directory (`Some(true)`),
/// something else (`Some(false)`) or not there (`None`). Links are not followed.
pub type Probe<'a> = &'a dyn Fn(&Path) -> Option<bool>;

/// The kind of a path on disk, as [`Probe`] wants it.
pub fn probe_disk(path: &Path) -> Option<bool> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| m.file_type().is_dir())
}

/// Turns a batch of changes under `root` into a [`Plan`]:
///
/// - a `.spry` file named by any change that may alter it is looked at (a rename names both
///   paths: an editor's temporary file renamed onto `x.spry` is a change of `x.spry`);
/// - a directory created or moved in is walked whole (files made in it before its watch
///   existed raise no event); a path removed or moved away that is not a `.spry` file may have
///   been a directory, and is looked at too (the files the image knows under it leave);
/// - hidden paths (the image directory, `.git`), editor temporary and backup files and other
///   files are left out;
/// - the platform's rescan flag, a `.gitignore` or `.spryignore` that changed (what is in the
///   tree changed), and
///   the root itself moved or removed ask for a full scan.
pub fn plan(root: &Path, changes: &[Change], probe: Probe) -> Plan {
    let mut paths: Vec<String> = Vec::new();
    for change in changes {
        let kind = change.kind;
        match kind {
            ChangeKind::Ignored => continue,
            ChangeKind::Rescan => {
                return Plan::Full("the watcher dropped events (its queue overflowed)".into());
            }
            _ => {}
        }
        for path in &change.paths {
            let Some(rel) = relative(root, path) else {
                continue; // outside the tree, or a name that is not UTF-8
            };
            if rel.is_empty() {
                if matches!(kind, ChangeKind::Removed | ChangeKind::Renamed) {
                    return Plan::Full("the watched directory was moved or removed".into());
                }
                continue;
            }
            let parts: Vec<&str> = rel.split('/').collect();
            let (name, dirs) = match parts.split_last() {
                Some((name, dirs)) => (*name, dirs),
                None => continue,
            };
            if dirs.iter().any(|d| d.starts_with('.')) {
                continue;
            }
            if crate::walk::IGNORE_FILES.contains(&name) {
                return Plan::Full(format!("{rel} changed"));
            }
            if name.starts_with('.') || is_editor_file(name) {
                continue;
            }
            let wanted = if crate::tree_path::is_source_path(name) {
                true
            } else {
                match kind {
                    // A directory that appeared, or a path that left: maybe a directory.
                    ChangeKind::Created => probe(path) == Some(true),
                    ChangeKind::Removed => true,
                    ChangeKind::Renamed => probe(path) != Some(false),
                    _ => false,
                }
            };
            if wanted {
                paths.push(rel);
            }
        }
    }
    if paths.is_empty() {
        Plan::Nothing
    } else {
        Plan::Paths(narrow(&paths))
    }
}

/// Whether the batch waits for more events: some listed path is not on disk, and did not
/// move to another path of the tree. A file removed, or half of an editor's atomic save (the
/// original renamed to a backup or removed, the new file not yet in its place).
pub fn awaits_more(root: &Path, plan: &Plan, changes: &[Change], probe: Probe) -> bool {
    let Plan::Paths(paths) = plan else {
        return false;
    };
    let moved_away: Vec<&Path> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Renamed && c.paths.len() == 2)
        .filter(|c| {
            let to = &c.paths[1];
            let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && !is_editor_file(name) && probe(to).is_some()
        })
        .map(|c| c.paths[0].as_path())
        .collect();
    paths.iter().any(|p| {
        let full = root.join(p);
        probe(&full).is_none() && !moved_away.contains(&full.as_path())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn root() -> PathBuf {
        PathBuf::from("/tree")
    }

    fn change(kind: ChangeKind, paths: &[&str]) -> Change {
        Change::new(kind, paths.iter().map(|p| root().join(p)).collect())
    }

    /// A disk that holds the directories `dirs` and the files `files`.
    fn disk(dirs: &[&str], files: &[&str]) -> impl Fn(&Path) -> Option<bool> + use<> {
        let dirs: HashSet<PathBuf> = dirs.iter().map(|d| root().join(d)).collect();
        let files: HashSet<PathBuf> = files.iter().map(|f| root().join(f)).collect();
        move |p: &Path| {
            if dirs.contains(p) {
                Some(true)
            } else if files.contains(p) {
                Some(false)
            } else {
                None
            }
        }
    }

    fn paths(list: &[&str]) -> Plan {
        Plan::Paths(list.iter().map(|s| s.to_string()).collect())
    }

    fn plan_on(changes: &[Change], dirs: &[&str], files: &[&str]) -> Plan {
        plan(&root(), changes, &disk(dirs, files))
    }

    #[test]
    fn a_save_in_place_is_a_change_of_the_file() {
        let changes = [
            change(ChangeKind::Modified, &["a.spry"]),
            change(ChangeKind::Written, &["a.spry"]),
        ];
        assert_eq!(plan_on(&changes, &[], &["a.spry"]), paths(&["a.spry"]));
    }

    #[test]
    fn sy_files_are_source_new_changed_renamed_and_removed() {
        let changes = [
            change(ChangeKind::Created, &["new.sy"]),
            change(ChangeKind::Modified, &["lib/a.sy"]),
            change(ChangeKind::Renamed, &["old.sy", "moved.sy"]),
            change(ChangeKind::Removed, &["gone.sy"]),
            change(ChangeKind::Modified, &["notes.txt", "easy", ".sy"]),
        ];
        assert_eq!(
            plan_on(&changes, &[], &["new.sy", "lib/a.sy", "moved.sy"]),
            paths(&["gone.sy", "lib/a.sy", "moved.sy", "new.sy", "old.sy"])
        );
        let spryignore = [change(ChangeKind::Created, &["lib/.spryignore"])];
        assert_eq!(
            plan_on(&spryignore, &[], &[]),
            Plan::Full("lib/.spryignore changed".into())
        );
    }

    #[test]
    fn reads_opens_and_metadata_are_ignored() {
        let changes = [
            change(ChangeKind::Ignored, &["a.spry"]),
            change(ChangeKind::Ignored, &["dir"]),
        ];
        assert_eq!(plan_on(&changes, &["dir"], &["a.spry"]), Plan::Nothing);
    }

    #[test]
    fn an_atomic_save_counts_as_a_change_of_the_target() {
        // VS Code / JetBrains: write a temporary file, move the original away, rename the
        // temporary file onto it, delete the old one.
        let jetbrains = [
            change(ChangeKind::Created, &["m/a.spry___jb_tmp___"]),
            change(ChangeKind::Renamed, &["m/a.spry", "m/a.spry___jb_old___"]),
            change(ChangeKind::Renamed, &["m/a.spry___jb_tmp___", "m/a.spry"]),
            change(ChangeKind::Removed, &["m/a.spry___jb_old___"]),
        ];
        assert_eq!(
            plan_on(&jetbrains, &["m"], &["m/a.spry"]),
            paths(&["m/a.spry"])
        );
        // vim: probe with 4913, back up to a~, write anew, remove the backup.
        let vim = [
            change(ChangeKind::Created, &["4913"]),
            change(ChangeKind::Removed, &["4913"]),
            change(ChangeKind::Renamed, &["a.spry", "a.spry~"]),
            change(ChangeKind::Created, &["a.spry"]),
            change(ChangeKind::Removed, &["a.spry~"]),
            change(ChangeKind::Removed, &[".a.spry.swp"]),
        ];
        assert_eq!(plan_on(&vim, &[], &["a.spry"]), paths(&["a.spry"]));
        // A temporary file renamed onto the target, the rename seen alone.
        let rename = [change(ChangeKind::Renamed, &["a.spry.tmp", "a.spry"])];
        assert_eq!(plan_on(&rename, &[], &["a.spry"]), paths(&["a.spry"]));
    }

    #[test]
    fn editor_files_are_recognised() {
        for name in [
            "4913",
            "a.spry~",
            ".#a.spry",
            "#a.spry#",
            "a.spry.swp",
            "a.spry.swx",
            "a.tmp",
            "a.spry___jb_tmp___",
            "a.spry___jb_old___",
        ] {
            assert!(is_editor_file(name), "{name}");
        }
        for name in ["a.spry", "#", "4914", "tmp", "swp"] {
            assert!(!is_editor_file(name), "{name}");
        }
        let changes = [
            change(ChangeKind::Created, &["a.spry~", "#a.spry#", "x.swp"]),
            change(
                ChangeKind::Removed,
                &["4913", "b.tmp", "c.spry___jb_old___"],
            ),
        ];
        assert_eq!(plan_on(&changes, &[], &[]), Plan::Nothing);
    }

    #[test]
    fn other_files_and_hidden_paths_are_left_out() {
        let changes = [
            change(ChangeKind::Created, &["notes.txt"]),
            change(ChangeKind::Modified, &["notes.txt", "dir"]),
            change(ChangeKind::Created, &[".spry-image/db/journal"]),
            change(ChangeKind::Modified, &[".git/index", ".hidden.spry"]),
            change(ChangeKind::Created, &["m/.cache/x.spry"]),
        ];
        assert_eq!(plan_on(&changes, &["dir"], &["notes.txt"]), Plan::Nothing);
    }

    #[test]
    fn new_and_moved_directories_are_walked_whole() {
        let changes = [
            change(ChangeKind::Created, &["new"]),
            change(ChangeKind::Created, &["new/a.spry"]),
            change(ChangeKind::Renamed, &["old", "moved"]),
            change(ChangeKind::Renamed, &["moved/b.spry"]),
        ];
        assert_eq!(
            plan_on(&changes, &["new", "moved"], &["new/a.spry", "moved/b.spry"]),
            paths(&["moved", "new", "old"])
        );
        // Moved in from outside the tree: only the new path is named.
        let moved_in = [change(ChangeKind::Renamed, &["lib"])];
        assert_eq!(plan_on(&moved_in, &["lib"], &[]), paths(&["lib"]));
        // A directory removed (or moved out) is looked at: what was known under it leaves.
        let removed = [change(ChangeKind::Removed, &["gone"])];
        assert_eq!(plan_on(&removed, &[], &[]), paths(&["gone"]));
    }

    #[test]
    fn rescans_gitignore_and_the_root_ask_for_a_full_scan() {
        let rescan = [
            change(ChangeKind::Modified, &["a.spry"]),
            Change::new(ChangeKind::Rescan, Vec::new()),
        ];
        assert!(matches!(plan_on(&rescan, &[], &[]), Plan::Full(_)));
        let gitignore = [change(ChangeKind::Written, &["lib/.gitignore"])];
        assert_eq!(
            plan_on(&gitignore, &[], &[]),
            Plan::Full("lib/.gitignore changed".into())
        );
        let root_gone = [Change::new(ChangeKind::Removed, vec![root()])];
        assert!(matches!(plan_on(&root_gone, &[], &[]), Plan::Full(_)));
        let hidden_gitignore = [change(ChangeKind::Written, &[".git/x/.gitignore"])];
        assert_eq!(plan_on(&hidden_gitignore, &[], &[]), Plan::Nothing);
    }

    #[test]
    fn paths_outside_the_tree_are_left_out() {
        let changes = [Change::new(
            ChangeKind::Modified,
            vec![PathBuf::from("/elsewhere/a.spry")],
        )];
        assert_eq!(plan_on(&changes, &[], &[]), Plan::Nothing);
    }

    #[test]
    fn a_batch_naming_a_missing_file_waits_unless_it_moved() {
        let probe = disk(&[], &["a.spry", "b.spry", "a.spry~"]);
        let batch = |changes: &[Change]| {
            let plan = plan(&root(), changes, &probe);
            awaits_more(&root(), &plan, changes, &probe)
        };
        assert!(!batch(&[change(ChangeKind::Modified, &["a.spry"])]));
        assert!(batch(&[change(ChangeKind::Removed, &["c.spry"])]));
        // Moved to another file of the tree: done.
        assert!(!batch(&[change(
            ChangeKind::Renamed,
            &["c.spry", "b.spry"]
        )]));
        // Renamed to a backup (vim's first step): the new file is still to come.
        assert!(batch(&[change(
            ChangeKind::Renamed,
            &["c.spry", "a.spry~"]
        )]));
        assert!(!awaits_more(
            &root(),
            &Plan::Full(String::new()),
            &[],
            &probe
        ));
    }

    #[test]
    fn notify_events_convert() {
        use notify::event::{CreateKind, DataChange, Flag, MetadataKind, RenameMode};
        let at = |kind: EventKind| {
            let event = Event::new(kind).add_path(root().join("a.spry"));
            convert(&event).kind
        };
        assert_eq!(at(EventKind::Create(CreateKind::File)), ChangeKind::Created);
        assert_eq!(
            at(EventKind::Modify(ModifyKind::Data(DataChange::Any))),
            ChangeKind::Modified
        );
        assert_eq!(
            at(EventKind::Modify(ModifyKind::Name(RenameMode::Both))),
            ChangeKind::Renamed
        );
        assert_eq!(
            at(EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any))),
            ChangeKind::Ignored
        );
        assert_eq!(
            at(EventKind::Access(AccessKind::Close(AccessMode::Write))),
            ChangeKind::Written
        );
        assert_eq!(
            at(EventKind::Access(AccessKind::Open(AccessMode::Any))),
            ChangeKind::Ignored
        );
        assert_eq!(
            at(EventKind::Access(AccessKind::Close(AccessMode::Read))),
            ChangeKind::Ignored
        );
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(convert(&overflow).kind, ChangeKind::Rescan);
    }
}
