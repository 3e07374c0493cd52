//! Keeping an image in step with its tree while a person edits (`spry-image watch`).
//!
//! In watchexec's manner the parts are apart: notify (through notify-debouncer-full, a few
//! milliseconds of debounce) calls back on its own thread, and the callback only converts the
//! events ([`convert`]) and forwards them through a channel. One worker thread takes them in
//! batches, decides what to look at ([`plan`]), and runs a targeted build
//! ([`BuildOptions::paths`]): one transaction per batch. Everything between the callback and
//! the build is a plain function, tested with synthetic events.
//!
//! - A directory created or moved in is walked whole by the build: files made in it before its
//!   watch existed raise no event.
//! - After the watch is set up, one full build catches what changed while it was starting.
//! - When the platform drops events (the rescan flag), reports an error, or a `.gitignore`
//!   changes, the batch is a full build (a reconcile of disk against image), with the reason.
//! - Its own writes (an export of a live edit) come back as events; the file stamps recognise
//!   them by hash ("same bytes") and nothing is changed.
//! - A batch naming a file that is not there waits a little for more events (an editor's
//!   atomic save, seen half done), so that a save is not taken for a removal.

mod events;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{ErrorKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use serde::Serialize;

use crate::build::{self, BuildOptions, BuildReport, NoProgress};
use crate::error::{Error, Result};
use crate::image::Image;

pub use events::{
    Change, ChangeKind, Plan, Probe, awaits_more, convert, is_editor_file, plan, probe_disk,
};

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How long an event waits for more on the same path before it is handed on.
    pub debounce: Duration,
    /// How often the debouncer looks for events that have waited long enough (at most
    /// `debounce`). notify-debouncer-full wakes this often even when nothing happens: an idle
    /// watcher costs one short wake-up per tick.
    pub tick: Duration,
    /// How long a batch that names a missing file waits for more events (see the module doc).
    pub settle: Duration,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            debounce: Duration::from_millis(5),
            tick: Duration::from_millis(5),
            settle: Duration::from_millis(40),
        }
    }
}

/// Why a batch was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The full build once the watch was set up.
    Start,
    /// File-system events.
    Events,
    /// A full build because the events could not be trusted (see [`BatchReport::reason`]).
    Rescan,
}

/// What one batch did: one transaction.
#[derive(Clone, Debug)]
pub struct BatchReport {
    /// Why it was built.
    pub cause: Cause,
    /// For a full build after [`Cause::Rescan`]: what could not be trusted.
    pub reason: Option<String>,
    /// The paths the events named (relative, narrowed; empty for a full build).
    pub paths: Vec<String>,
    /// The build: modules added, changed, removed, moved; files that failed; the generation
    /// committed (`None` when nothing changed, such as the watcher's own export coming back).
    pub build: BuildReport,
    /// From the first event of the batch (or the start of a full build) to its commit.
    pub latency: Duration,
}

enum Message {
    /// Converted events, in the order the debouncer gave them.
    Changes(Vec<Change>),
    /// Errors the watcher reported; `true` for the watch limit (fatal).
    Errors(Vec<(bool, String)>),
    /// Stop after the batch in hand.
    Stop,
}

/// Stops a [`Watcher`] from anywhere (a signal handler, another thread), between batches.
#[derive(Clone, Debug)]
pub struct Stopper(Sender<Message>);

impl Stopper {
    /// Asks the watcher to stop once the batch it is building (if any) is committed.
    pub fn stop(&self) {
        let _ = self.0.send(Message::Stop);
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Changes(c) => write!(f, "Changes({})", c.len()),
            Message::Errors(e) => write!(f, "Errors({e:?})"),
            Message::Stop => write!(f, "Stop"),
        }
    }
}

/// A running watch: a debounced notify watcher over the tree and a worker thread that builds
/// each batch into the image.
pub struct Watcher {
    root: PathBuf,
    image: Arc<Mutex<Image>>,
    stopper: Stopper,
    worker: Option<JoinHandle<Result<()>>>,
    initial: BatchReport,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Watches the tree at `root` and keeps `image` in step with it: sets up the watch, runs
    /// one full build (its report is [`initial`](Self::initial)), then builds every batch of
    /// events on a worker thread, calling `on_batch` after each commit (also for batches that
    /// changed nothing, with no generation).
    ///
    /// # Errors
    /// The watch cannot be set up (the inotify limits among them, with how to raise them), or
    /// the first build fails.
    pub fn start(
        mut image: Image,
        root: &Path,
        options: &WatchOptions,
        mut on_batch: impl FnMut(&BatchReport) + Send + 'static,
    ) -> Result<Watcher> {
        let root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let (tx, rx) = channel::<Message>();
        let forward = tx.clone();
        // The callback only converts and forwards.
        let mut debouncer = new_debouncer(
            options.debounce,
            Some(options.tick.min(options.debounce)),
            move |result: DebounceEventResult| {
                let message = match result {
                    Ok(events) => Message::Changes(events.iter().map(convert).collect()),
                    Err(errors) => Message::Errors(errors.iter().map(describe).collect()),
                };
                let _ = forward.send(message);
            },
        )
        .map_err(|e| watch_error(&root, &e))?;
        debouncer
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| watch_error(&root, &e))?;

        // What changed while the watch was being set up (or while nobody watched).
        let started = Instant::now();
        let report = build::build(&mut image, &root, &BuildOptions::default(), &NoProgress)?;
        let initial = BatchReport {
            cause: Cause::Start,
            reason: None,
            paths: Vec::new(),
            build: report,
            latency: started.elapsed(),
        };

        let image = Arc::new(Mutex::new(image));
        let worker = {
            let image = Arc::clone(&image);
            let worker_root = root.clone();
            let options = options.clone();
            std::thread::Builder::new()
                .name("spry-image watch".into())
                .spawn(move || {
                    let result = Worker {
                        root: &worker_root,
                        image: &image,
                        rx: &rx,
                        options: &options,
                    }
                    .run(&mut on_batch);
                    debouncer.stop();
                    result
                })
                .map_err(|e| Error::io(&root, e))?
        };
        Ok(Watcher {
            root,
            image,
            stopper: Stopper(tx),
            worker: Some(worker),
            initial,
        })
    }

    /// The tree watched (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The full build run once the watch was set up.
    pub fn initial(&self) -> &BatchReport {
        &self.initial
    }

    /// A handle that stops the watcher from elsewhere.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Reads the image between batches (the worker waits meanwhile).
    ///
    /// # Errors
    /// The worker panicked while holding the image.
    pub fn with_image<R>(&self, f: impl FnOnce(&Image) -> R) -> Result<R> {
        Ok(f(&*lock(&self.image)?))
    }

    /// Waits until the watcher stops (through a [`Stopper`]) or fails, and gives the image
    /// back.
    ///
    /// # Errors
    /// What stopped the watcher: a build that failed (storage, the tree gone), or the watch
    /// limit reached.
    pub fn wait(mut self) -> Result<Image> {
        let outcome = match self.worker.take() {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|_| Err(Error::Store("the watch worker panicked".into()))),
            None => Ok(()),
        };
        outcome?;
        let image = Arc::clone(&self.image);
        drop(self);
        Arc::try_unwrap(image)
            .map_err(|_| Error::Store("the image is still in use".into()))?
            .into_inner()
            .map_err(|_| Error::Store("the watch worker panicked".into()))
    }

    /// Stops the watcher between batches and gives the image back.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn stop(self) -> Result<Image> {
        self.stopper.stop();
        self.wait()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.stopper.stop();
            let _ = worker.join();
        }
    }
}

fn lock(image: &Mutex<Image>) -> Result<MutexGuard<'_, Image>> {
    image
        .lock()
        .map_err(|_| Error::Store("the watch worker panicked".into()))
}

/// A notify error while setting up or keeping the watch, as a library error; the inotify
/// limits get a sentence that names the limit and how to raise it.
fn watch_error(root: &Path, error: &notify::Error) -> Error {
    let (limit, message) = describe(error);
    if limit {
        return Error::Invalid(message);
    }
    match &error.kind {
        ErrorKind::Io(e) if e.raw_os_error() == Some(EMFILE) => Error::Invalid(format!(
            "cannot watch {}: too many inotify instances (fs.inotify.max_user_instances); raise \
             the limit with `sudo sysctl fs.inotify.max_user_instances=1024` (add it to \
             /etc/sysctl.conf to keep it)",
            root.display()
        )),
        _ => Error::Invalid(format!("cannot watch {}: {message}", root.display())),
    }
}

/// `EMFILE`, "too many open files": what `inotify_init` says at the instance limit.
const EMFILE: i32 = 24;

/// A notify error as (is it the watch limit, a sentence).
fn describe(error: &notify::Error) -> (bool, String) {
    let on = error
        .paths
        .first()
        .map(|p| format!(" (at {})", p.display()))
        .unwrap_or_default();
    match &error.kind {
        ErrorKind::MaxFilesWatch => (
            true,
            format!(
                "the inotify watch limit (fs.inotify.max_user_watches) is reached{on}: not every \
                 directory can be watched. Raise it with `sudo sysctl \
                 fs.inotify.max_user_watches=524288` (add `fs.inotify.max_user_watches=524288` \
                 to /etc/sysctl.conf to keep it)"
            ),
        ),
        _ => (false, format!("{error}{on}")),
    }
}

/// The worker: takes batches from the channel and builds them, one transaction each.
struct Worker<'a> {
    root: &'a Path,
    image: &'a Mutex<Image>,
    rx: &'a Receiver<Message>,
    options: &'a WatchOptions,
}

/// What the worker has taken from the channel for the next batch.
#[derive(Default)]
struct Pending {
    changes: Vec<Change>,
    errors: Vec<String>,
    limit: Option<String>,
    stop: bool,
    /// The channel is closed: nothing more will come.
    closed: bool,
}

impl Pending {
    fn take(&mut self, message: Message) {
        match message {
            Message::Changes(changes) => self.changes.extend(changes),
            Message::Errors(errors) => {
                for (limit, message) in errors {
                    if limit {
                        self.limit.get_or_insert(message);
                    } else {
                        self.errors.push(message);
                    }
                }
            }
            Message::Stop => self.stop = true,
        }
    }

    /// Takes whatever is waiting in the channel, without blocking.
    fn drain(&mut self, rx: &Receiver<Message>) {
        loop {
            match rx.try_recv() {
                Ok(message) => self.take(message),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Takes what arrives until `deadline`.
    fn gather_until(&mut self, rx: &Receiver<Message>, deadline: Instant) {
        while !self.stop && !self.closed {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(message) => self.take(message),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }
}

impl Worker<'_> {
    fn run(&self, on_batch: &mut dyn FnMut(&BatchReport)) -> Result<()> {
        loop {
            // Block until something comes: an idle watcher does nothing here.
            let mut pending = Pending::default();
            match self.rx.recv() {
                Ok(message) => pending.take(message),
                Err(_) => return Ok(()),
            }
            pending.drain(self.rx);
            if let Some(limit) = pending.limit {
                return Err(Error::Invalid(limit));
            }
            let mut plan = self.plan(&pending);
            if !pending.stop && awaits_more(self.root, &plan, &pending.changes, &probe_disk) {
                // Maybe half an atomic save: give its second half a moment.
                pending.gather_until(self.rx, Instant::now() + self.options.settle);
                if let Some(limit) = pending.limit {
                    return Err(Error::Invalid(limit));
                }
                plan = self.plan(&pending);
            }
            if let Some(report) = self.apply(plan, &pending)? {
                on_batch(&report);
            }
            if pending.stop || pending.closed {
                return Ok(());
            }
        }
    }

    fn plan(&self, pending: &Pending) -> Plan {
        if !pending.errors.is_empty() {
            return Plan::Full(format!(
                "the watcher reported: {}",
                pending.errors.join("; ")
            ));
        }
        plan(self.root, &pending.changes, &probe_disk)
    }

    /// Builds one batch; `None` when the batch touched nothing the image holds.
    fn apply(&self, plan: Plan, pending: &Pending) -> Result<Option<BatchReport>> {
        let started = pending
            .changes
            .iter()
            .map(|c| c.time)
            .min()
            .unwrap_or_else(Instant::now);
        let (cause, reason, paths) = match plan {
            Plan::Nothing => return Ok(None),
            Plan::Paths(paths) => (Cause::Events, None, Some(paths)),
            Plan::Full(reason) => (Cause::Rescan, Some(reason), None),
        };
        let options = BuildOptions {
            paths: paths.clone(),
            ..BuildOptions::default()
        };
        let build = {
            let mut image = lock(self.image)?;
            build::build(&mut image, self.root, &options, &NoProgress)?
        };
        Ok(Some(BatchReport {
            cause,
            reason,
            paths: paths.unwrap_or_default(),
            build,
            latency: started.elapsed(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_limit_names_the_sysctl_and_how_to_raise_it() {
        let error = notify::Error::new(ErrorKind::MaxFilesWatch).add_path("/tree/deep".into());
        let (limit, message) = describe(&error);
        assert!(limit);
        assert!(message.contains("fs.inotify.max_user_watches"), "{message}");
        assert!(
            message.contains("sudo sysctl fs.inotify.max_user_watches=524288"),
            "{message}"
        );
        assert!(message.contains("/tree/deep"), "{message}");
        let error = watch_error(Path::new("/tree"), &error);
        assert!(error.to_string().contains("max_user_watches"), "{error}");
    }

    #[test]
    fn the_instance_limit_names_its_sysctl() {
        let io = std::io::Error::from_raw_os_error(EMFILE);
        let error = watch_error(Path::new("/tree"), &notify::Error::io(io));
        assert!(
            error.to_string().contains("fs.inotify.max_user_instances"),
            "{error}"
        );
        let (limit, _) = describe(&notify::Error::generic("other"));
        assert!(!limit);
    }
}
