//! The part of a tree an image holds: globs over relative paths, read as git reads them.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// The part of a tree an image holds.
#[derive(Clone, Debug)]
pub struct PartFilter {
    globs: Option<GlobSet>,
}

impl PartFilter {
    /// A filter for `part` (globs over relative paths; empty: everything).
    ///
    /// # Errors
    /// [`Error::Glob`] for a glob that does not parse.
    pub fn new(part: &[String]) -> Result<PartFilter> {
        if part.is_empty() {
            return Ok(PartFilter::everything());
        }
        let mut builder = GlobSetBuilder::new();
        for glob in part {
            builder.add(glob_of(glob)?);
        }
        let globs = builder
            .build()
            .map_err(|source| Error::Glob { glob: None, source })?;
        Ok(PartFilter { globs: Some(globs) })
    }

    /// The whole tree.
    pub fn everything() -> PartFilter {
        PartFilter { globs: None }
    }

    /// Whether the relative path lies in the part.
    pub fn contains(&self, path: &str) -> bool {
        self.globs.as_ref().is_none_or(|g| g.is_match(path))
    }
}

/// A glob as git reads one: `*` stays within a directory, `**` crosses them.
fn glob_of(glob: &str) -> Result<Glob> {
    globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|source| Error::Glob {
            glob: Some(glob.to_string()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_stays_within_a_directory() {
        let part = PartFilter::new(&["lib/*.spry".to_string()]).unwrap();
        assert!(part.contains("lib/a.spry"));
        assert!(!part.contains("lib/x/a.spry"));
        let deep = PartFilter::new(&["lib/**".to_string()]).unwrap();
        assert!(deep.contains("lib/x/a.spry"));
        assert!(PartFilter::everything().contains("anything.spry"));
    }

    #[test]
    fn a_bad_glob_names_itself() {
        let error = PartFilter::new(&["a/[".to_string()]).unwrap_err();
        assert!(error.to_string().starts_with("--only `a/[`: "), "{error}");
    }
}
