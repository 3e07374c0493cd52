//! Paths inside a target tree: where a new module's file goes, and whether a path may be
//! written at all.
//!
//! Everything the image writes goes through [`resolve`]: a relative path, `/`-separated, with
//! no `..`, no absolute part, and no symbolic link on the way that leads out of the tree.

use std::path::{Component, Path, PathBuf};

use heck::ToSnakeCase;

use crate::error::{Error, Result};

/// The file a module made in the image gets, relative to the tree's root: its name in snake
/// case with `.spry`; a `.` in the name makes a directory (`JsonLexer` → `json_lexer.spry`,
/// `Net.HttpClient` → `net/http_client.spry`).
///
/// # Examples
/// ```
/// use spry_image::tree_path::module_path;
/// assert_eq!(module_path("JsonLexer").unwrap(), "json_lexer.spry");
/// assert_eq!(module_path("Net.HttpClient").unwrap(), "net/http_client.spry");
/// assert!(module_path("../../x").is_err());
/// ```
///
/// # Errors
/// [`Error::Invalid`] for a name that cannot safely become a path: empty parts, `..`, path
/// separators, or characters other than letters, digits, `_` and `-`.
pub fn module_path(name: &str) -> Result<String> {
    module_path_with(name, SourceExtension::Spry)
}

/// The extensions of Spry source files: `.spry`, and `.sy` (the language's own repositories
/// use it). The one place that says which files are Spry source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceExtension {
    /// `.spry`
    Spry,
    /// `.sy`
    Sy,
}

impl SourceExtension {
    /// The extension with its dot: `.spry`, `.sy`.
    pub fn suffix(self) -> &'static str {
        match self {
            SourceExtension::Spry => ".spry",
            SourceExtension::Sy => ".sy",
        }
    }

    /// The extension of a source path, if it is one (see [`is_source_path`]).
    pub fn of(path: &str) -> Option<SourceExtension> {
        let name = path.rsplit('/').next().unwrap_or(path);
        [SourceExtension::Spry, SourceExtension::Sy]
            .into_iter()
            .find(|e| name.len() > e.suffix().len() && name.ends_with(e.suffix()))
    }

    /// Reads `spry`, `.spry`, `sy` or `.sy`.
    pub fn parse(text: &str) -> Option<SourceExtension> {
        match text.trim_start_matches('.') {
            "spry" => Some(SourceExtension::Spry),
            "sy" => Some(SourceExtension::Sy),
            _ => None,
        }
    }
}

/// Whether `path` (a file name or a `/`-separated path) names Spry source: it ends with
/// `.spry` or `.sy` after at least one other character.
///
/// # Examples
/// ```
/// use spry_image::tree_path::is_source_path;
/// assert!(is_source_path("lib/stack.spry"));
/// assert!(is_source_path("examples/hello.sy"));
/// assert!(!is_source_path("notes.txt"));
/// assert!(!is_source_path("lib/.sy"));
/// assert!(!is_source_path("easy"));
/// ```
pub fn is_source_path(path: &str) -> bool {
    SourceExtension::of(path).is_some()
}

/// A source path without its extension (`.spry` or `.sy`): the name of the script it holds.
/// Other paths are returned whole.
///
/// # Examples
/// ```
/// use spry_image::tree_path::script_name;
/// assert_eq!(script_name("tools/build.sy"), "tools/build");
/// assert_eq!(script_name("lib/stack.spry"), "lib/stack");
/// assert_eq!(script_name("README"), "README");
/// ```
pub fn script_name(path: &str) -> &str {
    SourceExtension::of(path)
        .and_then(|e| path.strip_suffix(e.suffix()))
        .unwrap_or(path)
}

/// [`module_path`] with the given extension: `Net.HttpClient` → `net/http_client.sy`.
///
/// # Errors
/// As [`module_path`].
pub fn module_path_with(name: &str, extension: SourceExtension) -> Result<String> {
    let refuse = || {
        Error::invalid(format!(
            "module name `{name}` cannot become a file name: use letters, digits, `_`, `-`, and `.` between parts"
        ))
    };
    let mut parts = Vec::new();
    for part in name.split('.') {
        if part.is_empty()
            || !part
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(refuse());
        }
        parts.push(snake_case(part));
    }
    Ok(format!("{}{}", parts.join("/"), extension.suffix()))
}

/// A name part in snake case, as heck cuts words (`HTTPServer` → `http_server`); a `-` stays
/// a `-`, as it was in the name.
fn snake_case(part: &str) -> String {
    part.split('-')
        .map(ToSnakeCase::to_snake_case)
        .collect::<Vec<_>>()
        .join("-")
}

/// Checks that `relative` is a plain relative path: not empty, not absolute, no `.`/`..`
/// parts, no backslash or NUL.
///
/// # Errors
/// [`Error::Invalid`] naming the path and what is wrong with it.
pub fn check_relative(relative: &str) -> Result<()> {
    let refuse = |why: &str| Error::invalid(format!("refusing to write `{relative}`: {why}"));
    if relative.is_empty() {
        return Err(refuse("an empty path"));
    }
    if relative.contains('\0') || relative.contains('\\') {
        return Err(refuse("a path with a NUL or a backslash"));
    }
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(_) => {}
            Component::ParentDir => return Err(refuse("a path with `..` leads out of the tree")),
            Component::CurDir => return Err(refuse("a path with `.` in it")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("an absolute path"));
            }
        }
    }
    if relative.split('/').any(str::is_empty) {
        return Err(refuse("a path with an empty part"));
    }
    Ok(())
}

/// The full path of `relative` under `root`, once it is known that writing there stays in
/// the tree: [`check_relative`], and every part of it that exists is a directory (or, for
/// the last, a regular file), reached through no symbolic link that leads out of `root`.
/// A symbolic link in the last place is refused too: replacing it would not write where it
/// points, and writing where it points could leave the tree.
///
/// # Errors
/// [`Error::Invalid`] naming the path and the reason; [`Error::Io`] when a part cannot be
/// examined.
pub fn resolve(root: &Path, relative: &str) -> Result<PathBuf> {
    check_relative(relative)?;
    let refuse = |why: String| Error::invalid(format!("refusing to write `{relative}`: {why}"));
    // The root's real path only matters to a symbolic link met on the way, which is rare:
    // found then, not for every path (it costs a `readlink` per part of the root).
    let mut real_root = None;
    let parts: Vec<&str> = relative.split('/').collect();
    let mut path = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let last = i + 1 == parts.len();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(&path, e)),
        };
        if meta.file_type().is_symlink() {
            if last {
                return Err(refuse(format!("{} is a symbolic link", path.display())));
            }
            let target = std::fs::canonicalize(&path).map_err(|e| Error::io(&path, e))?;
            if real_root.is_none() {
                real_root = Some(std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?);
            }
            if !real_root
                .as_ref()
                .is_some_and(|real| target.starts_with(real))
            {
                return Err(refuse(format!(
                    "{} is a symbolic link leading out of the tree (to {})",
                    path.display(),
                    target.display()
                )));
            }
            if !target.is_dir() {
                return Err(refuse(format!("{} is not a directory", path.display())));
            }
        } else if !last && !meta.is_dir() {
            return Err(refuse(format!("{} is not a directory", path.display())));
        } else if last && !meta.is_file() {
            return Err(refuse(format!("{} is not a regular file", path.display())));
        }
    }
    Ok(root.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_paths_are_spry_and_sy_files_with_a_name() {
        for path in [
            "a.spry",
            "a.sy",
            "lib/x.y.sy",
            "dir.sy/a.spry",
            ".hidden.sy",
        ] {
            assert!(is_source_path(path), "{path}");
        }
        for path in [
            ".sy", ".spry", "lib/.sy", "a.sy/", "a.SY", "a.spy", "easy", "a.sy.bak",
        ] {
            assert!(!is_source_path(path), "{path}");
        }
        assert_eq!(script_name("lib/x.y.sy"), "lib/x.y");
        assert_eq!(script_name("a.sy.bak"), "a.sy.bak");
        assert_eq!(script_name("lib/.sy"), "lib/.sy");
        assert_eq!(
            module_path_with("Net.HttpClient", SourceExtension::Sy).unwrap(),
            "net/http_client.sy"
        );
        assert_eq!(SourceExtension::parse(".sy"), Some(SourceExtension::Sy));
        assert_eq!(SourceExtension::parse("spry"), Some(SourceExtension::Spry));
        assert_eq!(SourceExtension::parse("txt"), None);
    }

    #[test]
    fn names_become_snake_case_paths() {
        for (name, path) in [
            ("Tiny", "tiny.spry"),
            ("JsonLexer", "json_lexer.spry"),
            ("HTTPServer", "http_server.spry"),
            ("Utf8Codec", "utf8_codec.spry"),
            ("Net.HttpClient", "net/http_client.spry"),
            ("already_snake", "already_snake.spry"),
            ("Kebab-Case", "kebab-case.spry"),
            ("ÄpfelBirnen", "äpfel_birnen.spry"),
            ("XMLHttpRequest2", "xml_http_request2.spry"),
        ] {
            assert_eq!(module_path(name).unwrap(), path, "{name}");
        }
    }

    #[test]
    fn unsafe_names_are_refused() {
        for name in [
            "", "../../x", "a/b", "a..b", ".hidden", "a.", "x\0y", "a b", "C:x",
        ] {
            assert!(module_path(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn relative_paths_are_checked() {
        assert!(check_relative("a/b.spry").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x.spry",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }
}
