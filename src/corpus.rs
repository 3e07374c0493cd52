//! A deterministic generator of realistic Spry source, for benchmarks and tests.
//!
//! The generator writes module files (one curly with a `_meta` binding and 5–30 definitions)
//! and scripts (top-level statements, no `_meta`) that look like hand-written Spry: comments
//! above most definitions, trailing comments, `method [...]` and `func [...]` bodies with keyword
//! messages, infix arithmetic, `=` locals and `:=` re-assignments, every kind of word
//! (`:x`, `$x`, `@x`, `$@x`, `'x`, `Mod00007::helper`, `$Mod00007::at:put:`), integers, floats,
//! strings with escapes, and blocks nested several levels deep.
//!
//! Everything is a pure function of its inputs: the same arguments give byte-identical output on
//! every platform. The pseudo-random numbers come from a small built-in splitmix64 generator.
//!
//! # What the output guarantees
//!
//! - UTF-8 (in fact ASCII), LF line endings, two-space indentation, a final newline.
//! - Brackets are balanced and matched; every string is terminated and is preceded by whitespace.
//! - No line starts with a keyword part, except a keyword-shaped definition name (`at:put: = ...`)
//!   at a module's top level, and a definition value is never a bare keyword message, so keyword
//!   messages never merge across lines.
//! - Every keyword part has exactly one argument node; a multi-node expression used as an argument
//!   is parenthesized.
//! - No lone `'`, `@`, `:`, `:$` or `$@` token.
//! - Definition names are unique within a module and module names are unique within a tree
//!   (`Mod00000`, `Mod00001`, ...). A module word `ModNNNNN::name` in a tree names a module of
//!   that tree, and (when `name` is not keyword-shaped) a definition of that module.
//!
//! # Examples
//!
//! ```
//! use spry_image::corpus::{generate_tree, CorpusOptions};
//!
//! let files = generate_tree(3, &CorpusOptions::default());
//! assert_eq!(files.iter().filter(|f| f.text.contains("_meta = {")).count(), 3);
//! assert!(files.iter().all(|f| f.path.ends_with(".spry")));
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// One generated source file.
///
/// # Examples
///
/// ```
/// use spry_image::corpus::{generate_tree, CorpusOptions};
///
/// let files = generate_tree(1, &CorpusOptions::default());
/// assert_eq!(files[0].path, "pkg00/sub0/module_00000.spry");
/// assert!(files[0].text.starts_with("# Module Mod00000"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The path relative to the tree's root: `/`-separated, ending in `.spry`.
    pub path: String,
    /// The file's text: ASCII, LF line endings, with a final newline.
    pub text: String,
}

/// Options for the generator.
///
/// Out-of-range values are clamped rather than rejected: a `min_definitions` above
/// `max_definitions` is lowered to it, `max_block_depth` is at least 1, and
/// `modules_per_folder` is at least 1.
///
/// # Examples
///
/// ```
/// use spry_image::corpus::CorpusOptions;
///
/// let options = CorpusOptions { seed: 7, max_definitions: 10, ..CorpusOptions::default() };
/// assert_eq!(options.min_definitions, 5);
/// assert_eq!(CorpusOptions::with_seed(7).seed, 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusOptions {
    /// The seed: the same seed (and other options) gives the same output.
    pub seed: u64,
    /// The fewest definitions in a module of a tree (default 5).
    pub min_definitions: usize,
    /// The most definitions in a module of a tree (default 30).
    pub max_definitions: usize,
    /// The deepest nesting of blocks inside a method or script, counting the method's own
    /// block as 1 (default 6).
    pub max_block_depth: usize,
    /// How many modules share a folder (default 196, so that with the default
    /// `modules_per_script` a folder holds at most 200 files).
    pub modules_per_folder: usize,
    /// One script per this many modules, rounded up (default 50); 0 means no scripts.
    pub modules_per_script: usize,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        CorpusOptions {
            seed: 0x5EED_5B27,
            min_definitions: 5,
            max_definitions: 30,
            max_block_depth: 6,
            modules_per_folder: 196,
            modules_per_script: 50,
        }
    }
}

impl CorpusOptions {
    /// The default options with the given seed.
    ///
    /// # Examples
    ///
    /// ```
    /// use spry_image::corpus::{generate_file, CorpusOptions};
    ///
    /// let a = generate_file(2_000, &CorpusOptions::with_seed(1));
    /// let b = generate_file(2_000, &CorpusOptions::with_seed(2));
    /// assert_ne!(a, b);
    /// ```
    pub fn with_seed(seed: u64) -> Self {
        CorpusOptions {
            seed,
            ..CorpusOptions::default()
        }
    }

    fn definitions_range(&self) -> (usize, usize) {
        (
            self.min_definitions.min(self.max_definitions),
            self.max_definitions,
        )
    }

    fn depth(&self) -> usize {
        self.max_block_depth.max(1)
    }

    fn per_folder(&self) -> usize {
        self.modules_per_folder.max(1)
    }
}

/// `modules` module files spread over nested folders, plus about one script per 50 modules.
///
/// Module `i` is named `ModNNNNN` (`i` with five digits or more) and lives at
/// `pkgPP/subS/module_NNNNN.spry`, with `modules_per_folder` modules to a folder and eight
/// `sub` folders to a `pkg` folder. Each module is one curly with
/// `_meta = {name = 'ModNNNNN ...}` and `min_definitions..=max_definitions` definitions.
/// Script `j` (no `_meta`, top-level statements that use the modules) is
/// `script_NNNNN.spry` in the folder of module `j * modules_per_script`. Modules come first in
/// index order, then scripts.
///
/// # Examples
///
/// ```
/// use spry_image::corpus::{generate_tree, CorpusOptions};
///
/// let files = generate_tree(120, &CorpusOptions::default());
/// assert_eq!(files.len(), 120 + 3);
/// assert_eq!(files[119].path, "pkg00/sub0/module_00119.spry");
/// assert_eq!(files[121].path, "pkg00/sub0/script_00001.spry");
/// assert!(files[42].text.contains("name = 'Mod00042\n"));
/// ```
pub fn generate_tree(modules: usize, options: &CorpusOptions) -> Vec<GeneratedFile> {
    let mut files = Vec::with_capacity(modules + script_count(modules, options));
    let done: Result<(), std::convert::Infallible> = for_each_file(modules, options, |file| {
        files.push(file);
        Ok(())
    });
    match done {
        Ok(()) => files,
        Err(never) => match never {},
    }
}

/// One module file of at least `bytes` bytes: a single curly with `_meta` and as many
/// definitions as needed, stopping as soon as the size is reached.
///
/// The result is at least `bytes` long and exceeds it by less than its last definition. The
/// module is named `Mod00000`; its module words refer to the modules `Mod00001` to `Mod00099`
/// of `generate_tree(100, options)`.
///
/// # Examples
///
/// ```
/// use spry_image::corpus::{generate_file, CorpusOptions};
///
/// let text = generate_file(10_000, &CorpusOptions::default());
/// assert!(text.len() >= 10_000 && text.len() < 20_000);
/// assert!(text.contains("_meta = {") && text.ends_with("}\n"));
/// ```
pub fn generate_file(bytes: usize, options: &CorpusOptions) -> String {
    let refs: Vec<ModulePlan> = (0..FILE_REF_MODULES)
        .map(|i| ModulePlan::new(i, options))
        .collect();
    let mut names = NameGen::new(mix(options.seed, STREAM_NAMES, 0));
    let mut generator = Generator::new(options, &refs, Some(0), mix(options.seed, STREAM_BODY, 0));
    generator.out.reserve(bytes.saturating_add(4096));
    generator.module_header(0);
    while generator.out.len() + MODULE_END.len() < bytes {
        let name = names.next_name();
        generator.definition(&name);
    }
    generator.out.push_str(MODULE_END);
    generator.out
}

/// Writes `generate_tree(modules, options)` into `dir`, creating folders as needed.
///
/// Files are generated and written one at a time, so memory stays small however large the
/// tree. Returns the number of bytes written.
///
/// # Errors
///
/// Any error from creating a folder or writing a file.
///
/// # Examples
///
/// ```
/// use spry_image::corpus::{generate_tree, write_tree, CorpusOptions};
///
/// let dir = std::env::temp_dir().join(format!("spry-corpus-doc-{}", std::process::id()));
/// let options = CorpusOptions::default();
/// let written = write_tree(&dir, 4, &options)?;
/// let expected: usize = generate_tree(4, &options).iter().map(|f| f.text.len()).sum();
/// assert_eq!(written, expected as u64);
/// assert!(dir.join("pkg00/sub0/module_00003.spry").is_file());
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_tree(dir: &Path, modules: usize, options: &CorpusOptions) -> std::io::Result<u64> {
    let mut written = 0u64;
    let mut made: HashSet<String> = HashSet::new();
    std::fs::create_dir_all(dir)?;
    for_each_file(modules, options, |file| {
        if let Some((folder, _)) = file.path.rsplit_once('/')
            && made.insert(folder.to_string())
        {
            std::fs::create_dir_all(dir.join(folder))?;
        }
        std::fs::write(dir.join(&file.path), file.text.as_bytes())?;
        written += file.text.len() as u64;
        Ok::<(), std::io::Error>(())
    })?;
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Tree layout.

/// Sub-folders per package folder.
const SUBS_PER_PKG: usize = 8;
/// How many modules `generate_file` refers to (itself being the first).
const FILE_REF_MODULES: usize = 100;
/// What closes a module file.
const MODULE_END: &str = "}\n";

const STREAM_NAMES: u64 = 1;
const STREAM_BODY: u64 = 2;
const STREAM_SCRIPT: u64 = 3;

fn script_count(modules: usize, options: &CorpusOptions) -> usize {
    match options.modules_per_script {
        0 => 0,
        every => modules.div_ceil(every),
    }
}

fn folder_of(module: usize, options: &CorpusOptions) -> String {
    let folder = module / options.per_folder();
    format!(
        "pkg{:02}/sub{}",
        folder / SUBS_PER_PKG,
        folder % SUBS_PER_PKG
    )
}

/// Generates the tree's files in order and hands each to `sink`, stopping at its first error.
fn for_each_file<F, E>(modules: usize, options: &CorpusOptions, mut sink: F) -> Result<(), E>
where
    F: FnMut(GeneratedFile) -> Result<(), E>,
{
    let plans: Vec<ModulePlan> = (0..modules).map(|i| ModulePlan::new(i, options)).collect();
    for (index, plan) in plans.iter().enumerate() {
        let mut generator = Generator::new(
            options,
            &plans,
            Some(index),
            mix(options.seed, STREAM_BODY, index as u64),
        );
        generator.module_header(index);
        for name in &plan.defs {
            generator.definition(name);
        }
        generator.out.push_str(MODULE_END);
        sink(GeneratedFile {
            path: format!("{}/module_{index:05}.spry", folder_of(index, options)),
            text: generator.out,
        })?;
    }
    for script in 0..script_count(modules, options) {
        let anchor = script * options.modules_per_script;
        let mut generator = Generator::new(
            options,
            &plans,
            None,
            mix(options.seed, STREAM_SCRIPT, script as u64),
        );
        generator.script(script);
        sink(GeneratedFile {
            path: format!("{}/script_{script:05}.spry", folder_of(anchor, options)),
            text: generator.out,
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pseudo-random numbers.

/// splitmix64: tiny, fast, and the same on every platform.
#[derive(Clone, Debug)]
struct Rng {
    state: u64,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A seed for one stream (names, bodies, scripts) of one file.
fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    let mut rng = Rng::new(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let base = rng.next_u64();
    let mut rng = Rng::new(base ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
    rng.next_u64()
}

// ---------------------------------------------------------------------------------------------
// Vocabulary.

const VERBS: &[&str] = &[
    "sum", "count", "find", "load", "save", "render", "parse", "reset", "collect", "select",
    "print", "format", "merge", "split", "join", "sort", "compact", "flush", "open", "close",
    "build", "check", "apply", "update", "remove", "insert", "emit", "visit", "map", "reduce",
    "scan", "read", "write", "copy", "encode", "decode",
];
const NOUNS_CAP: &[&str] = &[
    "Items", "Keys", "Values", "Nodes", "Lines", "Tokens", "Words", "Pairs", "Rows", "Names",
    "Bytes", "Chunks", "Blocks", "Fields", "Entries", "Args", "Slots", "Refs", "Paths", "Modules",
    "Buffer", "Cache", "Index", "Table", "State",
];
const UNARY_NAMES: &[&str] = &[
    "size",
    "isEmpty",
    "notEmpty",
    "first",
    "last",
    "reverse",
    "copy",
    "hash",
    "asString",
    "printString",
    "value",
    "clear",
    "total",
    "average",
    "max",
    "min",
    "keys",
    "values",
    "reset",
    "next",
    "peek",
    "close",
    "flush",
    "length",
    "asList",
    "asMap",
    "describe",
    "validate",
    "depth",
    "parent",
    "root",
    "isNil",
    "notNil",
    "shallowCopy",
    "deepCopy",
    "normalize",
    "trim",
];
const KEYWORD_NAMES: &[&str] = &[
    "at:",
    "at:put:",
    "add:",
    "remove:",
    "indexOf:",
    "includes:",
    "copyFrom:to:",
    "inject:into:",
    "detect:ifNone:",
    "ti:di:",
    "with:with:",
    "replace:with:",
    "between:and:",
    "collect:",
    "select:",
    "reject:",
    "do:separatedBy:",
    "removeKey:",
    "at:ifAbsent:",
    "startsWith:",
    "endsWith:",
    "max:",
    "min:",
    "timesRepeat:",
    "to:do:",
    "addAll:",
    "keysAndValuesDo:",
    "join:",
    "split:",
    "format:with:",
    "allSatisfy:",
    "anySatisfy:",
    "count:",
    "groupBy:",
    "sortBy:",
];
const SECOND_KEYS: &[&str] = &[
    "with:",
    "into:",
    "from:",
    "to:",
    "at:",
    "ifAbsent:",
    "using:",
];
const LOCALS: &[&str] = &[
    "total", "count", "result", "acc", "sum", "buffer", "node", "left", "right", "size", "limit",
    "step", "name", "text", "line", "token", "offset", "width", "height", "list", "map", "found",
    "index", "cursor", "queue", "stack", "best", "tmp", "pos", "chunk", "depth", "parts", "key",
    "value", "copy", "extra", "head", "tail", "delta", "score",
];
const PARAMS: &[&str] = &[
    "items", "block", "key", "value", "x", "y", "n", "other", "aString", "index", "start", "stop",
    "default", "fn", "list", "dict", "node", "amount", "name", "text", "from", "to",
];
const BLOCK_ARGS: &[&str] = &[
    "each", "item", "elem", "entry", "pair", "node", "child", "word", "x", "a", "b", "it",
];
const FIELDS: &[&str] = &[
    "store", "count", "items", "name", "parent", "children", "cache", "size", "limit", "width",
    "height", "mode", "buffer", "state", "index", "flags", "label", "owner", "timeout", "depth",
];
const SYMBOLS: &[&str] = &[
    "fast", "slow", "none", "ok", "error", "pending", "done", "left", "right", "key", "at:put:",
    "value", "default", "strict", "lazy", "Mod", "name", "add:",
];
const NOUNS: &[&str] = &[
    "item",
    "key",
    "value",
    "node",
    "line",
    "token",
    "word",
    "pair",
    "row",
    "name",
    "byte",
    "chunk",
    "block",
    "field",
    "record",
    "argument",
    "slot",
    "reference",
    "path",
    "module",
    "buffer",
    "cursor",
    "index",
    "total",
    "count",
    "limit",
    "offset",
    "width",
    "string",
    "list",
];
const UNARY_SENDS: &[&str] = &[
    "size",
    "first",
    "last",
    "isEmpty",
    "notEmpty",
    "copy",
    "reverse",
    "asString",
    "keys",
    "values",
    "isNil",
    "notNil",
    "printString",
    "hash",
    "max",
    "min",
    "trim",
    "length",
];
const INFIX_OPS: &[&str] = &[
    "+", "-", "*", "/", "+", "-", "*", "<", ">", "<=", ">=", "==", "!=", "%", "//", ",",
];
const COMPARE_OPS: &[&str] = &["<", ">", "<=", ">=", "==", "!="];
const TRAILING: &[&str] = &[
    "trailing comment",
    "fast path",
    "TODO: check for nil",
    "see issue #12",
    "may be nil",
    "keeps order",
    "not thread safe",
    "FIXME",
    "cached",
    "one-based",
    "O(n)",
    "rare",
    "hot loop",
    "defaults to zero",
    "compare by identity",
];

/// How a keyword message's argument is generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// Any single node.
    Any,
    /// An integer.
    Int,
    /// A string.
    Str,
    /// A block with this many arguments.
    Block(usize),
}

/// Keyword messages used in bodies: `(key, argument)` lists.
const SENDS: &[&[(&str, Arg)]] = &[
    &[("at:", Arg::Any)],
    &[("at:", Arg::Any), ("put:", Arg::Any)],
    &[("add:", Arg::Any)],
    &[("remove:", Arg::Any)],
    &[("includes:", Arg::Any)],
    &[("indexOf:", Arg::Any)],
    &[("copyFrom:", Arg::Int), ("to:", Arg::Int)],
    &[("at:", Arg::Any), ("ifAbsent:", Arg::Block(0))],
    &[("detect:", Arg::Block(1)), ("ifNone:", Arg::Block(0))],
    &[("collect:", Arg::Block(1))],
    &[("select:", Arg::Block(1))],
    &[("reject:", Arg::Block(1))],
    &[("inject:", Arg::Int), ("into:", Arg::Block(2))],
    &[("do:", Arg::Block(1))],
    &[("do:", Arg::Block(1)), ("separatedBy:", Arg::Block(0))],
    &[("replace:", Arg::Str), ("with:", Arg::Str)],
    &[("join:", Arg::Str)],
    &[("startsWith:", Arg::Str)],
    &[("max:", Arg::Any)],
    &[("between:", Arg::Int), ("and:", Arg::Int)],
    &[("removeKey:", Arg::Any)],
    &[("ifNotNil:", Arg::Block(1))],
    &[("ifTrue:", Arg::Block(0)), ("ifFalse:", Arg::Block(0))],
    &[
        ("with:", Arg::Any),
        ("with:", Arg::Any),
        ("with:", Arg::Any),
    ],
    &[("format:", Arg::Str), ("with:", Arg::Any)],
    &[("keysAndValuesDo:", Arg::Block(2))],
    &[("print:", Arg::Any)],
    &[("sortBy:", Arg::Block(2))],
];

// ---------------------------------------------------------------------------------------------
// Names.

/// The module name and definition names of one module of a tree.
struct ModulePlan {
    name: String,
    defs: Vec<String>,
}

impl ModulePlan {
    fn new(index: usize, options: &CorpusOptions) -> Self {
        let mut names = NameGen::new(mix(options.seed, STREAM_NAMES, index as u64));
        let (lo, hi) = options.definitions_range();
        let count = names.rng.range(lo, hi);
        let defs = (0..count).map(|_| names.next_name()).collect();
        ModulePlan {
            name: module_name(index),
            defs,
        }
    }
}

fn module_name(index: usize) -> String {
    format!("Mod{index:05}")
}

/// Unique definition names: plain words (`sumItems`, `size`) and keyword-shaped words
/// (`at:put:`, `loadItems:with:`); a repeated name gets a number (`size2`, `at3:put:`).
struct NameGen {
    rng: Rng,
    used: HashMap<String, u32>,
}

impl NameGen {
    fn new(seed: u64) -> Self {
        NameGen {
            rng: Rng::new(seed),
            used: HashMap::new(),
        }
    }

    fn next_name(&mut self) -> String {
        let base = match self.rng.below(100) {
            0..=21 => self.rng.pick(UNARY_NAMES).to_string(),
            22..=59 => format!("{}{}", self.rng.pick(VERBS), self.rng.pick(NOUNS_CAP)),
            60..=79 => self.rng.pick(KEYWORD_NAMES).to_string(),
            _ => {
                let mut name = format!("{}{}:", self.rng.pick(VERBS), self.rng.pick(NOUNS_CAP));
                if self.rng.percent(40) {
                    name.push_str(self.rng.pick(SECOND_KEYS));
                }
                name
            }
        };
        let seen = self.used.entry(base.clone()).or_insert(0);
        *seen += 1;
        if *seen == 1 {
            return base;
        }
        // No base name ends in a digit, so `base` + number never meets another base.
        match base.find(':') {
            Some(at) => format!("{}{}{}", &base[..at], seen, &base[at..]),
            None => format!("{base}{seen}"),
        }
    }
}

fn key_count(name: &str) -> usize {
    name.bytes().filter(|&b| b == b':').count()
}

// ---------------------------------------------------------------------------------------------
// The text generator.

/// Where an expression goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// The right-hand side of `=`, `:=` or `^`, or a statement: several nodes are fine.
    Rhs,
    /// A single node: a keyword argument, an infix operand, a receiver.
    Node,
    /// The start of a statement line, where a keyword part must not come first.
    Line,
}

struct Generator<'a> {
    rng: Rng,
    out: String,
    max_depth: usize,
    /// The modules that module words may name.
    refs: &'a [ModulePlan],
    /// This file's own module, never named by its module words.
    own: Option<usize>,
}

impl<'a> Generator<'a> {
    fn new(options: &CorpusOptions, refs: &'a [ModulePlan], own: Option<usize>, seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            out: String::new(),
            max_depth: options.depth(),
            refs,
            own,
        }
    }

    fn push(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }

    /// Ends a line, sometimes after a trailing comment.
    fn end_line(&mut self) {
        if self.rng.percent(4) {
            let gap = self.rng.range(1, 3);
            for _ in 0..gap {
                self.out.push(' ');
            }
            self.out.push_str("# ");
            let note = self.rng.pick(TRAILING);
            self.out.push_str(note);
        }
        self.out.push('\n');
    }

    // -- files ------------------------------------------------------------------------------

    fn module_header(&mut self, index: usize) {
        let name = module_name(index);
        let _ = writeln!(self.out, "# Module {name}: generated.");
        if self.rng.percent(40) {
            let noun = self.rng.pick(NOUNS);
            let _ = writeln!(
                self.out,
                "# Helpers for {noun}s and their {}s.",
                self.rng.pick(NOUNS)
            );
        }
        self.out.push_str("{\n  _meta = {\n");
        let _ = writeln!(self.out, "    name = '{name}");
        let _ = writeln!(
            self.out,
            "    version = \"{}.{}\"",
            self.rng.range(0, 3),
            self.rng.range(0, 9)
        );
        let _ = writeln!(self.out, "    description = \"Generated module {index}\"");
        self.out.push_str("  }\n");
    }

    fn script(&mut self, index: usize) {
        let _ = writeln!(self.out, "# Script {index}: generated.");
        let _ = writeln!(self.out, "# Exercises a few modules of the tree.");
        self.out.push('\n');
        let mut scope: Vec<&'static str> = Vec::new();
        let groups = self.rng.range(3, 8);
        for group in 0..groups {
            if group > 0 {
                self.out.push('\n');
                if self.rng.percent(60) {
                    self.comment_line(0);
                }
            }
            let statements = self.rng.range(2, 6);
            for _ in 0..statements {
                self.statement(0, 0, &mut scope, false);
            }
        }
    }

    // -- definitions ------------------------------------------------------------------------

    /// A blank line, comments, and `name = value` at the module's top level.
    fn definition(&mut self, name: &str) {
        self.out.push('\n');
        if self.rng.percent(65) {
            let lines = self.rng.pick(&[1, 1, 1, 1, 1, 2, 2, 3]);
            for _ in 0..lines {
                self.comment_line(1);
            }
        }
        self.push("  ");
        self.push(name);
        self.push(" = ");
        let keys = key_count(name);
        let roll = self.rng.below(100);
        if keys > 0 {
            let kind = if roll < 75 { "method" } else { "func" };
            self.callable(kind, keys);
            return;
        }
        match roll {
            0..=49 => {
                let params = self.rng.pick(&[0, 0, 1, 1, 1, 2]);
                self.callable("method", params);
            }
            50..=66 => {
                let params = self.rng.pick(&[0, 1, 1, 2, 2, 3]);
                self.callable("func", params);
            }
            67..=74 => self.one_liner(),
            75..=86 => {
                self.literal(false);
                self.end_line();
            }
            87..=92 => self.nested_curly(),
            93..=96 => {
                self.push("(");
                self.number();
                self.push(" ");
                let op = self.rng.pick(&["*", "+", "-", "*"]);
                self.push(op);
                self.push(" ");
                if self.rng.percent(50) {
                    self.number();
                } else {
                    self.module_word(false);
                }
                self.push(")");
                self.end_line();
            }
            _ => {
                self.data_block();
                self.end_line();
            }
        }
    }

    /// `method [:a :b` ... `]` or `func [...]` with a multi-line body.
    fn callable(&mut self, kind: &str, params: usize) {
        self.push(kind);
        self.push(" [");
        let mut scope: Vec<&'static str> = Vec::new();
        for i in 0..params {
            let param = self.fresh(PARAMS, &scope);
            if i > 0 {
                self.push(" ");
            }
            self.push(":");
            self.push(param);
            scope.push(param);
        }
        if kind == "method" {
            scope.push("self");
        }
        self.end_line();
        let statements = self.rng.range(3, 10);
        let ret = self.rng.percent(if kind == "method" { 70 } else { 50 });
        self.body(2, 1, &mut scope, statements, ret);
        self.push("  ]\n");
    }

    /// `func [:x (x * 2)]`, `method [(self size) == 0]`, `func [42]`.
    fn one_liner(&mut self) {
        let method = self.rng.percent(40);
        self.push(if method { "method [" } else { "func [" });
        let mut scope: Vec<&'static str> = Vec::new();
        if method {
            scope.push("self");
        }
        let params = self.rng.range(0, 2);
        for i in 0..params {
            let param = self.fresh(PARAMS, &scope);
            if i > 0 {
                self.push(" ");
            }
            self.push(":");
            self.push(param);
            scope.push(param);
        }
        if params > 0 {
            self.push(" ");
        }
        self.expr(&scope, 2, Place::Rhs, params == 0);
        self.push("]");
        self.end_line();
    }

    /// `{` fields `}` with literal values.
    fn nested_curly(&mut self) {
        self.push("{\n");
        let fields = self.rng.range(2, 6);
        let mut used: Vec<&'static str> = Vec::new();
        for _ in 0..fields {
            let field = self.fresh(FIELDS, &used);
            if used.contains(&field) {
                continue;
            }
            used.push(field);
            self.push("    ");
            self.push(field);
            self.push(" = ");
            if self.rng.percent(15) {
                self.data_block();
            } else {
                self.literal(false);
            }
            self.end_line();
        }
        self.push("  }\n");
    }

    /// `[1 2 3]` or `['fast 'slow]`.
    fn data_block(&mut self) {
        self.push("[");
        let count = self.rng.range(2, 7);
        let symbols = self.rng.percent(40);
        for i in 0..count {
            if i > 0 {
                self.push(" ");
            }
            if symbols {
                self.push("'");
                let symbol = self.rng.pick(SYMBOLS);
                self.push(symbol);
            } else {
                self.number();
            }
        }
        self.push("]");
    }

    // -- statements -------------------------------------------------------------------------

    /// `statements` statements at `indent`, inside blocks nested `depth` deep.
    fn body(
        &mut self,
        indent: usize,
        depth: usize,
        scope: &mut Vec<&'static str>,
        statements: usize,
        ret: bool,
    ) {
        let mark = scope.len();
        for i in 0..statements {
            let last = i + 1 == statements;
            if last && ret {
                self.indent(indent);
                self.push("^ ");
                self.expr(scope, 2, Place::Rhs, false);
                self.end_line();
            } else {
                self.statement(indent, depth, scope, last);
            }
        }
        scope.truncate(mark);
    }

    fn comment_line(&mut self, indent: usize) {
        self.indent(indent);
        let noun = self.rng.pick(NOUNS);
        let other = self.rng.pick(NOUNS);
        match self.rng.below(12) {
            0 => {
                let _ = writeln!(
                    self.out,
                    "# Returns the {noun} of the {other}s, skipping nils."
                );
            }
            1 => {
                let _ = writeln!(self.out, "# Answers true when the {noun} is empty.");
            }
            2 => {
                let _ = writeln!(self.out, "# Builds a new {noun} from the given {other}s.");
            }
            3 => {
                let _ = writeln!(self.out, "# TODO: handle a nil {noun} here.");
            }
            4 => {
                let _ = writeln!(self.out, "# Note: the {noun} must not be empty.");
            }
            5 => {
                let _ = writeln!(self.out, "# Walks every {noun} and updates the {other}.");
            }
            6 => {
                let _ = writeln!(self.out, "# Cached; call reset to clear the {noun}.");
            }
            7 => match self.pick_ref() {
                Some((module, def)) => {
                    let _ = writeln!(self.out, "# See {module}::{def} for the inverse.");
                }
                None => {
                    let _ = writeln!(self.out, "# See the {noun} module for the inverse.");
                }
            },
            8 => {
                let _ = writeln!(self.out, "# Keeps the {noun}s in insertion order.");
            }
            9 => {
                let _ = writeln!(self.out, "# Example: [1 2 3] answers a {noun}.");
            }
            10 => {
                let _ = writeln!(
                    self.out,
                    "# Raises an error when the {noun} is out of range."
                );
            }
            _ => {
                let _ = writeln!(self.out, "# Private: used by the {noun} {other}s.");
            }
        }
    }

    /// One statement (one line, or several when it holds a multi-line block).
    fn statement(
        &mut self,
        indent: usize,
        depth: usize,
        scope: &mut Vec<&'static str>,
        last: bool,
    ) {
        let nest_chance = if depth < self.max_depth {
            26usize.saturating_sub(6 * depth)
        } else {
            0
        };
        if self.rng.percent(nest_chance) {
            self.control(indent, depth, scope);
            return;
        }
        let roll = self.rng.below(100);
        if roll < 2 && !last {
            self.comment_line(indent);
            return;
        }
        self.indent(indent);
        match roll {
            0..=33 => {
                // A local: `x = expr`, or `x := expr` when `x` is already defined.
                let name = self.rng.pick(LOCALS);
                self.push(name);
                let defined = scope.contains(&name);
                self.push(if defined { " := " } else { " = " });
                self.expr(scope, 3, Place::Rhs, false);
                if !defined {
                    scope.push(name);
                }
            }
            34..=45 => {
                // `x := (x + 1)` and friends.
                let mut target = self.pick_word(scope);
                if target == "self" {
                    target = self.rng.pick(LOCALS);
                }
                self.push(target);
                self.push(" := ");
                if self.rng.percent(50) {
                    let op = self.rng.pick(&["+", "-", "*", "+"]);
                    let _ = write!(self.out, "({target} {op} ");
                    self.atom(scope, false);
                    self.push(")");
                } else {
                    self.expr(scope, 3, Place::Rhs, false);
                }
            }
            46..=70 => {
                self.receiver(scope);
                self.push(" ");
                self.send(scope, 3);
            }
            71..=80 => {
                // Self words.
                let field = self.rng.pick(FIELDS);
                match self.rng.below(3) {
                    0 => {
                        let _ = write!(self.out, "@{field} := ");
                        self.expr(scope, 2, Place::Rhs, false);
                    }
                    1 => {
                        let _ = write!(self.out, "@{field} := ($@{field} + ");
                        self.atom(scope, false);
                        self.push(")");
                    }
                    _ => {
                        let _ = write!(self.out, "@{field} ");
                        self.send(scope, 2);
                    }
                }
            }
            81..=87 => self.module_call(scope, Place::Line),
            _ => {
                let verb = self.rng.pick(&["echo", "print", "assert", "log", "echo"]);
                self.push(verb);
                self.push(" ");
                self.expr(scope, 2, Place::Node, false);
            }
        }
        self.end_line();
    }

    /// A statement that opens one or two multi-line blocks.
    fn control(&mut self, indent: usize, depth: usize, scope: &mut Vec<&'static str>) {
        self.indent(indent);
        let inner = (5usize.saturating_sub(depth / 2)).max(1);
        let count = self.rng.range(1, inner);
        match self.rng.below(9) {
            0 | 1 => {
                self.receiver(scope);
                let arg = self.fresh(BLOCK_ARGS, scope);
                let _ = write!(self.out, " do: [:{arg}");
                self.block_rest(indent, depth, scope, &[arg], count, false);
            }
            2 | 3 => {
                self.condition(scope);
                self.push(" ifTrue: [");
                self.block_rest(indent, depth, scope, &[], count, false);
                if self.rng.percent(40) {
                    self.out.pop();
                    self.push(" ifFalse: [");
                    let more = self.rng.range(1, inner);
                    self.block_rest(indent, depth, scope, &[], more, false);
                }
            }
            4 => {
                let name = self.pick_word(scope);
                let op = self.rng.pick(COMPARE_OPS);
                let _ = write!(self.out, "[{name} {op} ");
                self.atom(scope, false);
                self.push("] whileTrue: [");
                self.block_rest(indent, depth, scope, &[], count, false);
            }
            5 => {
                let arg = self.fresh(&["i", "j", "k", "n"], scope);
                self.push("1 to: ");
                if self.rng.percent(50) {
                    self.integer();
                } else {
                    self.push("(");
                    self.receiver(scope);
                    self.push(" size)");
                }
                let _ = write!(self.out, " do: [:{arg}");
                self.block_rest(indent, depth, scope, &[arg], count, false);
            }
            6 => {
                self.receiver(scope);
                let key = self.fresh(&["k", "key", "name"], scope);
                let value = self.fresh(&["v", "value", "entry"], scope);
                let _ = write!(self.out, " keysAndValuesDo: [:{key} :{value}");
                self.block_rest(indent, depth, scope, &[key, value], count, false);
            }
            7 => {
                self.receiver(scope);
                let arg = self.fresh(BLOCK_ARGS, scope);
                let _ = write!(self.out, " ifNotNil: [:{arg}");
                self.block_rest(indent, depth, scope, &[arg], count, false);
            }
            _ => {
                self.receiver(scope);
                let acc = self.fresh(&["acc", "sum", "memo"], scope);
                let each = self.fresh(BLOCK_ARGS, scope);
                self.push(" inject: ");
                self.integer();
                let _ = write!(self.out, " into: [:{acc} :{each}");
                self.block_rest(indent, depth, scope, &[acc, each], count, true);
            }
        }
    }

    /// After a block's opening line text: ends the line, writes the body one level deeper,
    /// and writes the closing `]` line. With `value`, the body's last statement is a bare
    /// expression (the block's answer).
    fn block_rest(
        &mut self,
        indent: usize,
        depth: usize,
        scope: &mut Vec<&'static str>,
        args: &[&'static str],
        statements: usize,
        value: bool,
    ) {
        self.end_line();
        let mark = scope.len();
        scope.extend_from_slice(args);
        let ret = !value && self.rng.percent(8);
        if value {
            self.body(
                indent + 1,
                depth + 1,
                scope,
                statements.saturating_sub(1),
                false,
            );
            self.indent(indent + 1);
            self.expr(scope, 2, Place::Node, false);
            self.end_line();
        } else {
            self.body(indent + 1, depth + 1, scope, statements, ret);
        }
        scope.truncate(mark);
        self.indent(indent);
        self.push("]\n");
    }

    /// `(x > 0)`, `x isNil`, `(a == b)`.
    fn condition(&mut self, scope: &[&'static str]) {
        if self.rng.percent(25) {
            let word = self.pick_word(scope);
            let test = self.rng.pick(&["isNil", "notNil", "isEmpty", "notEmpty"]);
            let _ = write!(self.out, "({word} {test})");
            return;
        }
        let word = self.pick_word(scope);
        let op = self.rng.pick(COMPARE_OPS);
        let _ = write!(self.out, "({word} {op} ");
        self.atom(scope, false);
        self.push(")");
    }

    /// A receiver: a word, a self word or a parenthesized expression.
    fn receiver(&mut self, scope: &[&'static str]) {
        match self.rng.below(10) {
            0..=5 => {
                let word = self.pick_word(scope);
                self.push(word);
            }
            6 => {
                let field = self.rng.pick(FIELDS);
                let _ = write!(self.out, "@{field}");
            }
            7 => {
                let field = self.rng.pick(FIELDS);
                let _ = write!(self.out, "$@{field}");
            }
            _ => {
                self.push("(");
                let word = self.pick_word(scope);
                let send = self.rng.pick(UNARY_SENDS);
                let _ = write!(self.out, "{word} {send})");
            }
        }
    }

    /// A keyword message after its receiver, all on one line: `at: 1 put: x`.
    fn send(&mut self, scope: &[&'static str], budget: usize) {
        let parts = self.rng.pick(SENDS);
        for (i, &(key, arg)) in parts.iter().enumerate() {
            if i > 0 {
                self.push(" ");
            }
            self.push(key);
            self.push(" ");
            self.argument(scope, arg, budget);
        }
    }

    fn argument(&mut self, scope: &[&'static str], arg: Arg, budget: usize) {
        match arg {
            Arg::Any => self.expr(scope, budget.saturating_sub(1), Place::Node, false),
            Arg::Int => self.integer(),
            Arg::Str => self.string(),
            Arg::Block(args) => self.inline_block(scope, args),
        }
    }

    /// `[:x (x * 2)]`, `[:a :b (a < b)]`, `[0]`.
    fn inline_block(&mut self, scope: &[&'static str], args: usize) {
        self.push("[");
        let mut inner: Vec<&'static str> = scope.to_vec();
        for i in 0..args {
            let arg = self.fresh(BLOCK_ARGS, &inner);
            if i > 0 {
                self.push(" ");
            }
            self.push(":");
            self.push(arg);
            inner.push(arg);
        }
        if args > 0 {
            self.push(" ");
            // Prefer using the block's own arguments.
            let first = inner[inner.len() - args];
            if self.rng.percent(60) {
                let op = self.rng.pick(INFIX_OPS);
                let _ = write!(self.out, "({first} {op} ");
                self.atom(&inner, false);
                self.push(")");
            } else if self.rng.percent(50) {
                let send = self.rng.pick(UNARY_SENDS);
                let _ = write!(self.out, "{first} {send}");
            } else {
                self.expr(&inner, 1, Place::Rhs, false);
            }
        } else {
            self.expr(&inner, 1, Place::Rhs, true);
        }
        self.push("]");
    }

    /// `Mod00007::helper x`, `Mod00007::at: 1 put: x`; parenthesized as a [`Place::Node`],
    /// and assigned or parenthesized when keyword-shaped at a [`Place::Line`].
    fn module_call(&mut self, scope: &[&'static str], place: Place) {
        let Some((module, def)) = self.pick_ref() else {
            let word = self.pick_word(scope);
            self.push(word);
            return;
        };
        let keys = key_count(def);
        let mut wrap = place == Place::Node;
        if place == Place::Line && keys > 0 {
            // `Mod::at: 1` first on a line would extend a keyword message of the line before.
            if self.rng.percent(50) {
                let name = self.rng.pick(LOCALS);
                let _ = write!(self.out, "{name} = ");
            } else {
                wrap = true;
            }
        }
        if wrap {
            self.push("(");
        }
        if keys == 0 {
            let _ = write!(self.out, "{module}::{def}");
            let args = self.rng.range(0, 2);
            for _ in 0..args {
                self.push(" ");
                self.expr(scope, 1, Place::Node, false);
            }
        } else {
            for (i, key) in def.split_inclusive(':').enumerate() {
                if i == 0 {
                    let _ = write!(self.out, "{module}::{key} ");
                } else {
                    let _ = write!(self.out, " {key} ");
                }
                self.expr(scope, 1, Place::Node, false);
            }
        }
        if wrap {
            self.push(")");
        }
    }

    // -- expressions ------------------------------------------------------------------------

    /// An expression. `lead` says it starts right after an opening bracket (so it must not
    /// start with a string).
    fn expr(&mut self, scope: &[&'static str], budget: usize, place: Place, lead: bool) {
        if budget == 0 {
            self.atom(scope, lead);
            return;
        }
        match self.rng.below(100) {
            0..=37 => self.atom(scope, lead),
            38..=57 => {
                let bare = place == Place::Rhs && self.rng.percent(25);
                if !bare {
                    self.push("(");
                }
                self.expr(scope, budget - 1, Place::Node, !bare || lead);
                let op = self.rng.pick(INFIX_OPS);
                let _ = write!(self.out, " {op} ");
                self.expr(scope, budget - 1, Place::Node, false);
                if !bare {
                    self.push(")");
                }
            }
            58..=67 => {
                let wrap = place == Place::Node;
                if wrap {
                    self.push("(");
                }
                let word = self.pick_word(scope);
                let send = self.rng.pick(UNARY_SENDS);
                let _ = write!(self.out, "{word} {send}");
                if wrap {
                    self.push(")");
                }
            }
            68..=81 => {
                let wrap = place == Place::Node;
                if wrap {
                    self.push("(");
                }
                self.receiver(scope);
                self.push(" ");
                self.send(scope, budget - 1);
                if wrap {
                    self.push(")");
                }
            }
            82..=94 => {
                let args = self.rng.pick(&[0, 1, 1, 2]);
                self.inline_block(scope, args);
            }
            _ => self.module_call(scope, place),
        }
    }

    /// One token: a word of any kind or a literal. With `lead`, not a string.
    fn atom(&mut self, scope: &[&'static str], lead: bool) {
        match self.rng.below(100) {
            0..=33 => {
                let word = self.pick_word(scope);
                self.push(word);
            }
            34..=48 => self.integer(),
            49..=54 => self.float(),
            55..=64 if !lead => self.string(),
            55..=64 => self.integer(),
            65..=70 => {
                let word = self.pick_word(scope);
                let _ = write!(self.out, "${word}");
            }
            71..=75 => {
                let field = self.rng.pick(FIELDS);
                let _ = write!(self.out, "@{field}");
            }
            76..=78 => {
                let field = self.rng.pick(FIELDS);
                let _ = write!(self.out, "$@{field}");
            }
            79..=83 => {
                let symbol = self.rng.pick(SYMBOLS);
                let _ = write!(self.out, "'{symbol}");
            }
            84..=94 => {
                let constant = self.rng.pick(&["nil", "true", "false"]);
                self.push(constant);
            }
            _ => self.module_word(true),
        }
    }

    /// A literal value for a top-level binding or a curly field.
    fn literal(&mut self, lead: bool) {
        match self.rng.below(10) {
            0..=2 => self.integer(),
            3 => self.float(),
            4..=6 if !lead => self.string(),
            4..=6 => self.integer(),
            7 => {
                let symbol = self.rng.pick(SYMBOLS);
                let _ = write!(self.out, "'{symbol}");
            }
            8 => {
                let constant = self.rng.pick(&["nil", "true", "false"]);
                self.push(constant);
            }
            _ => self.float(),
        }
    }

    /// `Mod00007::helper`, or `$Mod00007::at:put:` for a keyword-shaped name (a get-module
    /// word, which is not a keyword part). With `get`, sometimes `$Mod00007::helper` too.
    fn module_word(&mut self, get: bool) {
        let Some((module, def)) = self.pick_ref() else {
            let constant = self.rng.pick(&["nil", "true", "false"]);
            self.push(constant);
            return;
        };
        if key_count(def) > 0 || (get && self.rng.percent(30)) {
            self.push("$");
        }
        let _ = write!(self.out, "{module}::{def}");
    }

    fn number(&mut self) {
        if self.rng.percent(80) {
            self.integer();
        } else {
            self.float();
        }
    }

    fn integer(&mut self) {
        match self.rng.below(20) {
            0..=9 => {
                let value = self.rng.range(0, 100);
                let _ = write!(self.out, "{value}");
            }
            10..=11 => {
                let value = self.rng.range(1, 50);
                let _ = write!(self.out, "-{value}");
            }
            12..=13 => {
                let value =
                    self.rng
                        .pick(&["1_000", "10_000", "1_000_000", "65_536", "-1_000", "4_096"]);
                self.push(value);
            }
            14..=16 => {
                let value = self.rng.range(100, 99_999);
                let _ = write!(self.out, "{value}");
            }
            _ => {
                let value = self.rng.pick(&["0", "1", "2", "-1", "255", "1024"]);
                self.push(value);
            }
        }
    }

    fn float(&mut self) {
        match self.rng.below(10) {
            0..=5 => {
                let whole = self.rng.range(0, 99);
                let frac = self.rng.pick(&[0usize, 5, 25, 75, 125, 1, 333, 9]);
                let sign = if self.rng.percent(10) { "-" } else { "" };
                let _ = write!(self.out, "{sign}{whole}.{frac}");
            }
            6..=7 => {
                let mantissa = self.rng.range(1, 9);
                let exponent = self.rng.range(1, 12);
                let sign = if self.rng.percent(30) { "-" } else { "" };
                let _ = write!(self.out, "{mantissa}e{sign}{exponent}");
            }
            _ => {
                let value = self.rng.pick(&[
                    "3.25", "1e3", "-1.5e-3", "0.5", "2.75", "6.02e23", "1e-9", "100.0",
                ]);
                self.push(value);
            }
        }
    }

    /// A string literal. The caller sees to the whitespace before it.
    fn string(&mut self) {
        let noun = self.rng.pick(NOUNS);
        match self.rng.below(14) {
            0 => self.push("\"hello\""),
            1 => self.push("\"Hello, world\""),
            2 => {
                let _ = write!(self.out, "\"{noun} not found\"");
            }
            3 => {
                let number = self.rng.range(1, 999);
                let _ = write!(self.out, "\"issue #{number}\"");
            }
            4 => self.push("\"Total: \""),
            5 => self.push("\"\""),
            6 => {
                let _ = write!(self.out, "\"say \\\"{noun}\\\" twice\"");
            }
            7 => {
                let _ = write!(self.out, "\"{noun} # not a comment\"");
            }
            8 => {
                let _ = write!(self.out, "\"C:\\\\spry\\\\{noun}s\"");
            }
            9 => {
                let _ = write!(self.out, "\"{noun}\\n\"");
            }
            10 => {
                let number = self.rng.range(0, 99);
                let _ = write!(self.out, "\"{noun}: {number}\"");
            }
            11 => {
                let other = self.rng.pick(NOUNS);
                let _ = write!(self.out, "\"The {noun} holds no {other}s.\"");
            }
            12 => {
                let _ = write!(self.out, "\"{noun}\"");
            }
            _ => {
                let _ = write!(self.out, "\"<{noun}>\"");
            }
        }
    }

    // -- picking ----------------------------------------------------------------------------

    /// A word in scope (or a plausible local when nothing is).
    fn pick_word(&mut self, scope: &[&'static str]) -> &'static str {
        if scope.is_empty() || self.rng.percent(10) {
            self.rng.pick(LOCALS)
        } else {
            self.rng.pick(scope)
        }
    }

    /// A name from `pool` not in `taken`, if a few tries find one.
    fn fresh(&mut self, pool: &[&'static str], taken: &[&'static str]) -> &'static str {
        let mut name = self.rng.pick(pool);
        for _ in 0..4 {
            if !taken.contains(&name) {
                break;
            }
            name = self.rng.pick(pool);
        }
        name
    }

    /// Another module and one of its definitions.
    fn pick_ref(&mut self) -> Option<(&'a str, &'a str)> {
        let refs: &'a [ModulePlan] = self.refs;
        let mut index = self.rng.below(refs.len());
        if Some(index) == self.own {
            if refs.len() < 2 {
                return None;
            }
            index = (index + 1 + self.rng.below(refs.len() - 1)) % refs.len();
        }
        let plan = refs.get(index)?;
        if plan.defs.is_empty() {
            return None;
        }
        let def = plan.defs[self.rng.below(plan.defs.len())].as_str();
        Some((plan.name.as_str(), def))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of the checker: one open composite.
    struct Frame {
        open: u8,
        line: usize,
        /// A keyword part was read and waits for its argument.
        expecting: bool,
        /// A keyword message is in progress (a following keyword part would extend it).
        in_message: bool,
    }

    impl Frame {
        fn node(&mut self) {
            if self.expecting {
                self.expecting = false;
            } else {
                self.in_message = false;
            }
        }
    }

    fn is_space(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
    }

    fn is_special(b: u8) -> bool {
        matches!(b, b';' | b'\\' | b'^' | b'&' | b'%' | b'|' | b',' | b'~')
    }

    fn is_bracket(b: u8) -> bool {
        matches!(b, b'(' | b')' | b'[' | b']' | b'{' | b'}')
    }

    fn is_keyword_part(token: &str) -> bool {
        token.len() > 1
            && token.ends_with(':')
            && !token.starts_with(':')
            && !token.starts_with('$')
            && !token.starts_with('\'')
    }

    /// A strict check of generated text: balanced and matched brackets, terminated strings
    /// preceded by whitespace, no forbidden lone tokens, every keyword part with exactly one
    /// argument, and no line starting with a keyword part except a definition name
    /// (`name: = ...` in a curly, with no keyword message in progress).
    fn check(text: &str) -> Result<(), String> {
        let b = text.as_bytes();
        let mut stack = vec![Frame {
            open: 0,
            line: 0,
            expecting: false,
            in_message: false,
        }];
        let mut i = 0;
        let mut line = 1;
        let mut line_start = true;
        if !text.ends_with('\n') {
            return Err("no final newline".into());
        }
        while i < b.len() {
            let c = b[i];
            if c == b'\r' {
                return Err(format!("CR at line {line}"));
            }
            if is_space(c) {
                if c == b'\n' {
                    line += 1;
                    line_start = true;
                }
                i += 1;
                continue;
            }
            if c == b'#' {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if is_bracket(c) {
                match c {
                    b'(' | b'[' | b'{' => stack.push(Frame {
                        open: c,
                        line,
                        expecting: false,
                        in_message: false,
                    }),
                    _ => close(&mut stack, c, line)?,
                }
                line_start = false;
                i += 1;
                continue;
            }
            if c == b'"' {
                if i == 0 || !is_space(b[i - 1]) {
                    return Err(format!(
                        "string without whitespace before it at line {line}"
                    ));
                }
                i = string_end(b, i, line)?;
                if let Some(&next) = b.get(i)
                    && !is_space(next)
                    && !is_bracket(next)
                {
                    return Err(format!("string glued to the next token at line {line}"));
                }
                stack.last_mut().ok_or("empty stack")?.node();
                line_start = false;
                continue;
            }
            let start = i;
            i = token_end(b, i, line)?;
            let token = &text[start..i];
            if matches!(token, "'" | "@" | ":" | ":$" | "$@") {
                return Err(format!("lone {token} at line {line}"));
            }
            let frame = stack.last_mut().ok_or("empty stack")?;
            let before = line_start.then(|| &text[i..]);
            word(frame, token, before, line)?;
            line_start = false;
        }
        if stack.len() != 1 {
            let open = stack.last().map_or(0, |f| f.line);
            return Err(format!("bracket of line {open} never closed"));
        }
        if stack[0].expecting {
            return Err("keyword without argument at the end".into());
        }
        Ok(())
    }

    /// A closing bracket `c` at `line`: it must close the innermost open one.
    fn close(stack: &mut Vec<Frame>, c: u8, line: usize) -> Result<(), String> {
        if stack.len() == 1 {
            return Err(format!("unopened {} at line {line}", c as char));
        }
        let frame = stack.pop().ok_or("empty stack")?;
        let want = match frame.open {
            b'(' => b')',
            b'[' => b']',
            _ => b'}',
        };
        if want != c {
            return Err(format!(
                "{} at line {line} closes {} of line {}",
                c as char, frame.open as char, frame.line
            ));
        }
        if frame.expecting {
            return Err(format!("keyword without argument before line {line}"));
        }
        stack.last_mut().ok_or("empty stack")?.node();
        Ok(())
    }

    /// The offset after the string that opens at `i`: on one line, terminated.
    fn string_end(b: &[u8], mut i: usize, line: usize) -> Result<usize, String> {
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(format!("unterminated string from line {line}")),
                Some(b'\\') => i += 2,
                Some(b'"') => return Ok(i + 1),
                Some(b'\n') => return Err(format!("multi-line string at line {line}")),
                Some(_) => i += 1,
            }
        }
    }

    /// The offset after the word or special run that starts at `i`.
    fn token_end(b: &[u8], mut i: usize, line: usize) -> Result<usize, String> {
        if is_special(b[i]) {
            while i < b.len() && is_special(b[i]) {
                i += 1;
            }
            return Ok(i);
        }
        while i < b.len()
            && !is_space(b[i])
            && b[i] != b'#'
            && !is_bracket(b[i])
            && !is_special(b[i])
        {
            if b[i] == b'"' {
                return Err(format!("quote inside a token at line {line}"));
            }
            i += 1;
        }
        Ok(i)
    }

    /// A word in `frame`; `rest` is the text after it when it starts its line.
    fn word(frame: &mut Frame, token: &str, rest: Option<&str>, line: usize) -> Result<(), String> {
        if !is_keyword_part(token) {
            frame.node();
            return Ok(());
        }
        if let Some(rest) = rest {
            let definition = frame.open == b'{' && rest.starts_with(" = ");
            if !definition {
                return Err(format!("line {line} starts with keyword part {token}"));
            }
            if frame.in_message {
                return Err(format!(
                    "definition {token} at line {line} extends a keyword message"
                ));
            }
        }
        if frame.expecting {
            return Err(format!(
                "keyword {token} where an argument is expected at line {line}"
            ));
        }
        frame.expecting = true;
        frame.in_message = true;
        Ok(())
    }

    /// The top-level definition names of a module (lines indented exactly two spaces).
    fn definition_names(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .map(|l| &l[2..])
            .filter(|l| !l.starts_with('#') && !l.starts_with(']') && !l.starts_with('}'))
            .filter_map(|l| l.split_once(" = ").map(|(name, _)| name))
            .collect()
    }

    fn small() -> CorpusOptions {
        CorpusOptions::with_seed(42)
    }

    #[test]
    fn same_inputs_same_output_and_seeds_differ() {
        let a = generate_tree(60, &small());
        let b = generate_tree(60, &small());
        assert_eq!(a, b);
        let c = generate_tree(60, &CorpusOptions::with_seed(43));
        assert_ne!(a, c);
        assert_eq!(
            generate_file(30_000, &small()),
            generate_file(30_000, &small())
        );
        assert_ne!(
            generate_file(30_000, &small()),
            generate_file(30_000, &CorpusOptions::with_seed(1))
        );
    }

    /// FNV-1a, to pin output without storing it.
    fn fnv(text: &str) -> u64 {
        text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
        })
    }

    #[test]
    fn output_is_pinned() {
        // Benchmarks compare runs over time, so the output must not drift by accident (and must
        // be the same on every platform). Update the numbers when changing the generator on
        // purpose.
        let text = generate_file(2_000, &CorpusOptions::default());
        assert!(text.starts_with("# Module Mod00000: generated.\n"));
        assert!(text.contains("  _meta = {\n    name = 'Mod00000\n"));
        let tree = generate_tree(3, &CorpusOptions::default());
        let all: String = tree
            .iter()
            .map(|f| format!("{}\n{}", f.path, f.text))
            .collect();
        assert_eq!((text.len(), fnv(&text)), (2030, 9444923068109094380));
        assert_eq!((all.len(), fnv(&all)), (33716, 14766219874299720799));
    }

    #[test]
    fn file_size_is_reached_by_at_most_one_definition() {
        let bytes = 1_000_000;
        let text = generate_file(bytes, &small());
        assert!(text.len() >= bytes, "{} < {bytes}", text.len());
        // Definitions are separated by blank lines; without the last one it is too small.
        let cut = text.rfind("\n\n").unwrap_or(0);
        assert!(cut + 1 + MODULE_END.len() < bytes);
        assert!(
            text.len() - cut < 10_000,
            "last definition is {} bytes",
            text.len() - cut
        );
        check(&text).unwrap();
        let names = definition_names(&text);
        assert!(names.len() > 1000);
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(names[0], "_meta");
    }

    #[test]
    fn tiny_file_sizes() {
        for bytes in [0, 1, 100, 200, 1_000] {
            let text = generate_file(bytes, &small());
            assert!(text.len() >= bytes);
            check(&text).unwrap();
        }
    }

    #[test]
    fn tree_has_the_modules_and_scripts() {
        let options = small();
        let files = generate_tree(450, &options);
        let modules: Vec<&GeneratedFile> = files
            .iter()
            .filter(|f| f.path.contains("/module_"))
            .collect();
        let scripts: Vec<&GeneratedFile> = files
            .iter()
            .filter(|f| f.path.contains("/script_"))
            .collect();
        assert_eq!(modules.len(), 450);
        assert_eq!(scripts.len(), 9);
        assert_eq!(files.len(), 459);

        let paths: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths.len(), files.len());
        let mut per_folder: HashMap<&str, usize> = HashMap::new();
        for file in &files {
            assert!(file.path.ends_with(".spry") && !file.path.starts_with('/'));
            let (folder, _) = file.path.rsplit_once('/').unwrap();
            *per_folder.entry(folder).or_default() += 1;
        }
        assert!(per_folder.values().all(|&n| n <= 200), "{per_folder:?}");
        assert_eq!(per_folder.len(), 3);

        let mut names = HashSet::new();
        for (index, module) in modules.iter().enumerate() {
            let meta = format!("  _meta = {{\n    name = 'Mod{index:05}\n");
            assert!(module.text.contains(&meta), "{}", module.path);
            assert!(names.insert(format!("Mod{index:05}")));
            let defs = definition_names(&module.text);
            assert!(
                (6..=31).contains(&defs.len()),
                "{} has {}",
                module.path,
                defs.len()
            );
            let unique: HashSet<&str> = defs.iter().copied().collect();
            assert_eq!(unique.len(), defs.len(), "{}", module.path);
        }
        for script in &scripts {
            assert!(!script.text.contains("_meta"));
        }
    }

    #[test]
    fn all_output_passes_the_strict_check() {
        for seed in 0..4 {
            let options = CorpusOptions::with_seed(seed);
            for file in generate_tree(120, &options) {
                if let Err(error) = check(&file.text) {
                    panic!("seed {seed}, {}: {error}\n{}", file.path, file.text);
                }
            }
        }
        let deep = CorpusOptions {
            max_block_depth: 12,
            ..small()
        };
        check(&generate_file(200_000, &deep)).unwrap();
    }

    #[test]
    fn the_checker_catches_mistakes() {
        assert!(check("{\n  a = 1\n}\n").is_ok());
        assert!(check("{\n  at:put: = method [:k :v\n    @store at: k put: v\n  ]\n}\n").is_ok());
        assert!(check("[1 2\n").is_err());
        assert!(check("[1 2)\n").is_err());
        assert!(check("x = \"abc\n").is_err());
        assert!(check("x = [\"abc\"]\n").is_err());
        assert!(check("x at: 1\n  put: 2\n").is_err());
        assert!(check("x: y: 1\n").is_err());
        assert!(check("{\n  a = b foo: 1\n  at:put: = 2\n}\n").is_err());
        assert!(check("x = '\n").is_err());
        assert!(check("x = \"a # b\" # c ]\n").is_ok());
    }

    #[test]
    fn module_words_name_real_modules_and_definitions() {
        let files = generate_tree(80, &small());
        let mut defs: HashMap<String, HashSet<String>> = HashMap::new();
        for (index, file) in files.iter().take(80).enumerate() {
            let names = definition_names(&file.text)
                .into_iter()
                .map(str::to_string)
                .collect();
            defs.insert(format!("Mod{index:05}"), names);
        }
        let mut seen = 0;
        for file in &files {
            for token in file
                .text
                .split(|c: char| c.is_whitespace() || "()[]{}".contains(c))
            {
                let token = token.trim_start_matches('$');
                let Some((module, name)) = token.split_once("::") else {
                    continue;
                };
                if !module.starts_with("Mod") {
                    continue;
                }
                let known = defs
                    .get(module)
                    .unwrap_or_else(|| panic!("unknown module {module}"));
                // A keyword send shows only its first key; a plain name must be defined.
                if !name.contains(':') {
                    assert!(known.contains(name), "{module}::{name} in {}", file.path);
                }
                seen += 1;
            }
        }
        assert!(seen > 100);
    }

    #[test]
    fn text_looks_realistic() {
        let files = generate_tree(200, &small());
        let (mut total, mut code, mut lines) = (0usize, 0usize, 0usize);
        let mut max_depth = 0;
        for file in &files {
            total += file.text.len();
            lines += file.text.lines().count();
            let mut in_string = false;
            let mut in_comment = false;
            let mut escaped = false;
            let mut depth = 0usize;
            for c in file.text.bytes() {
                if in_comment {
                    in_comment = c != b'\n';
                    continue;
                }
                if in_string {
                    code += 1;
                    if escaped {
                        escaped = false;
                    } else if c == b'\\' {
                        escaped = true;
                    } else if c == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                match c {
                    b'#' => in_comment = true,
                    b'"' => {
                        in_string = true;
                        code += 1;
                    }
                    b'[' | b'(' | b'{' => {
                        depth += 1;
                        max_depth = max_depth.max(depth);
                        code += 1;
                    }
                    b']' | b')' | b'}' => {
                        depth -= 1;
                        code += 1;
                    }
                    c if is_space(c) => {}
                    _ => code += 1,
                }
            }
        }
        let ratio = code as f64 / total as f64;
        let average = total as f64 / lines as f64;
        assert!((0.6..=0.8).contains(&ratio), "code ratio {ratio:.3}");
        assert!(
            (25.0..=45.0).contains(&average),
            "average line {average:.1}"
        );
        assert!(max_depth >= 6, "deepest nesting {max_depth}");
        let text: String = files.iter().map(|f| f.text.as_str()).collect();
        for needle in [
            " := ",
            ":=",
            " = method [",
            " = func [",
            "$@",
            " @",
            " '",
            "::",
            "1_000",
            "\\\"",
            "e3",
            "^ ",
            "   # ",
            " -",
            " $",
        ] {
            assert!(text.contains(needle), "no {needle:?}");
        }
    }

    #[test]
    fn write_tree_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let options = small();
        let written = write_tree(dir.path(), 60, &options).unwrap();
        let files = generate_tree(60, &options);
        let expected: usize = files.iter().map(|f| f.text.len()).sum();
        assert_eq!(written, expected as u64);
        for file in &files {
            let on_disk = std::fs::read_to_string(dir.path().join(&file.path)).unwrap();
            assert_eq!(on_disk, file.text);
        }
    }

    #[test]
    fn odd_options_are_clamped() {
        let options = CorpusOptions {
            min_definitions: 40,
            max_definitions: 3,
            max_block_depth: 0,
            modules_per_folder: 0,
            modules_per_script: 0,
            ..small()
        };
        let files = generate_tree(5, &options);
        assert_eq!(files.len(), 5);
        for file in &files {
            check(&file.text).unwrap();
            assert!(definition_names(&file.text).len() <= 4);
        }
        assert!(generate_tree(0, &small()).is_empty());
        check(&generate_tree(1, &small())[0].text).unwrap();
    }
}
