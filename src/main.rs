//! The `spry-image` command line.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cli;

// A first build allocates and frees millions of small texts and records from both cores;
// glibc's allocator spent a fifth of its CPU on that (arena locks, consolidation). Built
// without transparent huge pages (`no_thp`): with them every command touched 2 MiB pages
// (33 MB resident for a `status` that needs 11), and one that finds nothing changed took a
// third longer than with glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
