//! The narrow door through which the evaluator reads code from an image: by key, one definition
//! at a time. The evaluator never sees the store.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::image::Image;
use crate::{Error, Result};

/// Where module definitions come from.
///
/// # Examples
/// ```
/// use spry_image::eval::{MapSource, Source};
/// let mut source = MapSource::default();
/// source.insert("Foo", "bar", "bar = 42");
/// assert!(source.has_module("Foo").unwrap());
/// assert_eq!(source.definition("Foo", "bar").unwrap().as_deref(), Some(&b"bar = 42"[..]));
/// assert_eq!(source.definition("Foo", "baz").unwrap(), None);
/// ```
pub trait Source {
    /// Whether the image holds a module of this name.
    ///
    /// # Errors
    /// The image cannot be read.
    fn has_module(&self, module: &str) -> Result<bool>;

    /// The text of one definition (`name = ...`), if the module defines it.
    ///
    /// # Errors
    /// The image cannot be read.
    fn definition(&self, module: &str, name: &str) -> Result<Option<Vec<u8>>>;

    /// Whether the image holds only part of its tree (`build --only`): then a module it lacks
    /// may exist elsewhere, and is named as missing rather than taken as unbound.
    fn is_partial(&self) -> bool {
        false
    }
}

impl Source for Image {
    fn has_module(&self, module: &str) -> Result<bool> {
        Ok(self.module(module)?.is_some())
    }

    fn definition(&self, module: &str, name: &str) -> Result<Option<Vec<u8>>> {
        match self.definition_text(module, name) {
            Ok(text) => Ok(Some(text)),
            Err(Error::NoDefinition { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_partial(&self) -> bool {
        !self.record().part.is_empty()
    }
}

/// Definitions held in memory (tests, embedding), counting the reads made.
#[derive(Debug, Default)]
pub struct MapSource {
    modules: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Holds part of a tree (see [`Source::is_partial`]).
    pub partial: bool,
    reads: Cell<usize>,
}

impl MapSource {
    /// Adds (or replaces) a definition.
    pub fn insert(&mut self, module: &str, name: &str, text: &str) {
        self.modules
            .entry(module.to_string())
            .or_default()
            .insert(name.to_string(), text.as_bytes().to_vec());
    }

    /// How many definitions have been read so far.
    pub fn reads(&self) -> usize {
        self.reads.get()
    }
}

impl Source for MapSource {
    fn has_module(&self, module: &str) -> Result<bool> {
        Ok(self.modules.contains_key(module))
    }

    fn definition(&self, module: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let found = self.modules.get(module).and_then(|m| m.get(name)).cloned();
        if found.is_some() {
            self.reads.set(self.reads.get() + 1);
        }
        Ok(found)
    }

    fn is_partial(&self) -> bool {
        self.partial
    }
}

impl<S: Source + ?Sized> Source for std::rc::Rc<S> {
    fn has_module(&self, module: &str) -> Result<bool> {
        (**self).has_module(module)
    }

    fn definition(&self, module: &str, name: &str) -> Result<Option<Vec<u8>>> {
        (**self).definition(module, name)
    }

    fn is_partial(&self) -> bool {
        (**self).is_partial()
    }
}

impl<S: Source + ?Sized> Source for &S {
    fn has_module(&self, module: &str) -> Result<bool> {
        (**self).has_module(module)
    }

    fn definition(&self, module: &str, name: &str) -> Result<Option<Vec<u8>>> {
        (**self).definition(module, name)
    }

    fn is_partial(&self) -> bool {
        (**self).is_partial()
    }
}
