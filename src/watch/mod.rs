//! Keeping an image in step with its tree while a person edits (`spry-image watch`).
//!
//! In watchexec's manner the parts are apart: notify calls back on its own thread, and the
//! callback only drops what the image does not care about ([`convert`]) and forwards the raw
//! events through a channel. One worker thread debounces and builds: it blocks on the channel
//! with no timeout while nothing happens (an idle watcher never wakes), feeds the raw events
//! to notify-debouncer-full, which runs only while events come (`debounce.rs`: its thread
//! would otherwise wake every tick), takes what it hands over as a batch (the ends of a
//! rename joined), decides what to look at ([`plan`]), and runs a targeted build
//! ([`BuildOptions::paths`]): one transaction per batch. Everything between
//! the callback and the build is a plain function, tested with synthetic events.
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
//! - Other commands borrow the image through a socket in the image directory (the protocol
//!   is in `lend.rs`; [`open_or_borrow`]): between batches the watcher releases the image,
//!   waits until the borrower is done, takes it back, builds what changed meanwhile and
//!   exports what the borrower changed, so that tree and image stay one.

mod debounce;
mod events;
mod lend;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{ErrorKind, RecursiveMode, Watcher as _};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent};

use crate::build::{self, BuildOptions, BuildReport, NoProgress};
use crate::error::{Error, Result};
use crate::export::{self, ExportOptions, ExportReport};
use crate::image::Image;

use debounce::Lazy;
use lend::{Listener, Request};

use events::{Change, ChangeKind, Plan, awaits_more, convert, plan, probe_disk};
pub use lend::{Borrowed, SOCKET_FILE, open_or_borrow};

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How long a path must be quiet before its events are built (notify-debouncer-full's
    /// timeout).
    pub debounce: Duration,
    /// How often the debouncer looks for paths quiet long enough (at most `debounce`). It
    /// looks only while events come: see [`idle`](Self::idle).
    pub tick: Duration,
    /// How long after the last event the debouncer (and its thread) stops; the next event
    /// starts it again.
    pub idle: Duration,
    /// How long a batch that names a missing file waits for more events (see the module doc).
    pub settle: Duration,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            debounce: Duration::from_millis(5),
            tick: Duration::from_millis(5),
            idle: Duration::from_secs(1),
            settle: Duration::from_millis(40),
        }
    }
}

/// Why a batch was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The full build once the watch was set up.
    Start,
    /// File-system events.
    Events,
    /// A full build because the events could not be trusted (see [`BatchReport::reason`]).
    Rescan,
    /// The image was lent to another command and taken back (see [`BatchReport::lent`]).
    Lent,
}

/// A loan of the image to another command, once the watcher has it back.
#[derive(Clone, Debug)]
pub struct Lent {
    /// The borrower's process id.
    pub pid: u32,
    /// The borrower's command line, as it said.
    pub command: String,
    /// From releasing the image to having it back.
    pub held: Duration,
    /// The export that followed: what the borrower changed in the image, written to the tree.
    pub export: ExportReport,
    /// The image's generation after the export.
    pub generation: u64,
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
    /// From the first event of the batch (or the start of a full build) to its commit; for
    /// a loan, from taking the image back to the end of the export.
    pub latency: Duration,
    /// For [`Cause::Lent`]: the loan (the build is then empty: what changed on disk meanwhile
    /// was reported as a batch of its own just before).
    pub lent: Option<Lent>,
}

enum Message {
    /// A raw event, for the debouncer.
    Raw(notify::Event),
    /// What the debouncer handed over.
    Debounced(Vec<DebouncedEvent>),
    /// An error the watcher reported (the watch limit is fatal: see [`describe`]).
    Error(notify::Error),
    /// Stop after the batch in hand.
    Stop,
    /// A command asks to borrow the image.
    Borrow(Request),
}

/// Stops a [`Watcher`] from anywhere (a signal handler, another thread), between batches.
#[derive(Clone, Debug)]
pub struct Stopper {
    tx: Sender<Message>,
    /// Set on stop: read while the image is lent (the worker waits on the borrower, not on
    /// the channel, then).
    stopping: Arc<AtomicBool>,
}

impl Stopper {
    /// Asks the watcher to stop once the batch it is building (if any) is committed. While
    /// the image is lent, the watcher stops waiting for it at once and stops without it.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Message::Stop);
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Raw(e) => write!(f, "Raw({e:?})"),
            Message::Debounced(e) => write!(f, "Debounced({e:?})"),
            Message::Error(e) => write!(f, "Error({e:?})"),
            Message::Stop => write!(f, "Stop"),
            Message::Borrow(r) => write!(f, "Borrow({}, {:?})", r.pid, r.command),
        }
    }
}

/// A running watch: a notify watcher over the tree and a worker thread that debounces its
/// events and builds each batch into the image.
pub struct Watcher {
    root: PathBuf,
    image: Arc<Mutex<Slot>>,
    stopper: Stopper,
    worker: Option<JoinHandle<Result<()>>>,
    initial: BatchReport,
    lending: std::result::Result<PathBuf, String>,
}

/// The image, or who holds it while it is lent (and after a stop while it was).
enum Slot {
    Held(Image),
    Lent {
        dir: PathBuf,
        pid: u32,
        command: String,
    },
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
    /// changed nothing, with no generation) and after each loan of the image. It listens for
    /// borrowers on [`SOCKET_FILE`] in the image directory (see [`lending`](Self::lending)).
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
        // The callback only filters and forwards (reads, opens and metadata changes, which
        // the image does not care about, are not forwarded: they would wake the worker for
        // nothing, every file a build reads among them).
        let mut notifier =
            notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
                let message = match result {
                    Ok(event) => {
                        if convert(&event).kind == ChangeKind::Ignored {
                            return;
                        }
                        Message::Raw(event)
                    }
                    Err(error) => Message::Error(error),
                };
                let _ = forward.send(message);
            })
            .map_err(|e| watch_error(&root, e))?;
        notifier
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| watch_error(&root, e))?;

        // What changed while the watch was being set up (or while nobody watched).
        let started = Instant::now();
        let report = build::build(&mut image, &root, &BuildOptions::default(), &NoProgress)?;
        let initial = BatchReport {
            cause: Cause::Start,
            reason: None,
            paths: Vec::new(),
            build: report,
            latency: started.elapsed(),
            lent: None,
        };

        // Borrowers: not fatal when it cannot be (the watcher works; other commands find the
        // image locked, as without it).
        let (listener, lending) = match Listener::start(image.dir(), tx.clone()) {
            Ok(listener) => {
                let path = listener.path().to_path_buf();
                (Some(listener), Ok(path))
            }
            Err(e) => (None, Err(e.to_string())),
        };
        let stopper = Stopper {
            tx,
            stopping: Arc::new(AtomicBool::new(false)),
        };

        let image = Arc::new(Mutex::new(Slot::Held(image)));
        let worker = {
            let image = Arc::clone(&image);
            let worker_root = root.clone();
            let options = options.clone();
            let stopping = Arc::clone(&stopper.stopping);
            let tx = stopper.tx.clone();
            std::thread::Builder::new()
                .name("spry-image watch".into())
                .spawn(move || {
                    let debouncer =
                        Lazy::new(options.debounce, options.tick, options.idle, move || {
                            Box::new(debounced(tx.clone()))
                        });
                    let result = Worker {
                        root: &worker_root,
                        image: &image,
                        rx: &rx,
                        options: &options,
                        stopping: &stopping,
                    }
                    .run(debouncer, &mut on_batch);
                    // The socket goes before the image does.
                    drop(listener);
                    drop(notifier);
                    result
                })
                .map_err(|e| Error::io(&root, e))?
        };
        Ok(Watcher {
            root,
            image,
            stopper,
            worker: Some(worker),
            initial,
            lending,
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

    /// The socket borrowers connect to.
    ///
    /// # Errors
    /// Why the watcher could not listen (then other commands find the image locked while it
    /// runs).
    pub fn lending(&self) -> std::result::Result<&Path, &str> {
        match &self.lending {
            Ok(path) => Ok(path),
            Err(e) => Err(e),
        }
    }

    /// Reads the image between batches (the worker waits meanwhile, and a loan finishes
    /// first).
    ///
    /// # Errors
    /// The worker panicked while holding the image, or it stopped while the image was lent.
    pub fn with_image<R>(&self, f: impl FnOnce(&Image) -> R) -> Result<R> {
        match &*lock(&self.image)? {
            Slot::Held(image) => Ok(f(image)),
            lent => Err(lent_error(lent)),
        }
    }

    /// Waits until the watcher stops (through a [`Stopper`]) or fails, and gives the image
    /// back.
    ///
    /// # Errors
    /// What stopped the watcher: a build that failed (storage, the tree gone), or the watch
    /// limit reached; [`Error::Locked`] naming the borrower when it stopped while the image
    /// was lent (the borrower keeps it).
    pub fn wait(mut self) -> Result<Image> {
        let outcome = match self.worker.take() {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|p| Err(Error::panicked("the watch worker", &*p))),
            None => Ok(()),
        };
        outcome?;
        let image = Arc::clone(&self.image);
        drop(self);
        match Arc::try_unwrap(image)
            .map_err(|_| Error::Internal("the image is still in use".into()))?
            .into_inner()
            .map_err(|_| Error::panicked("the watch worker", &()))?
        {
            Slot::Held(image) => Ok(image),
            lent => Err(lent_error(&lent)),
        }
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

fn lock(image: &Mutex<Slot>) -> Result<MutexGuard<'_, Slot>> {
    image
        .lock()
        .map_err(|_| Error::panicked("the watch worker", &()))
}

/// The image is not here: lent to another process.
fn lent_error(slot: &Slot) -> Error {
    match slot {
        Slot::Lent { dir, pid, command } => Error::Locked {
            path: dir.clone(),
            pid: *pid,
            command: command.clone(),
        },
        Slot::Held(_) => Error::Internal("the image is here, not lent".into()),
    }
}

/// A notify error while setting up or keeping the watch, as a library error; the inotify
/// limits get a sentence that names the limit and how to raise it.
fn watch_error(root: &Path, error: notify::Error) -> Error {
    let (limit, message) = describe(&error);
    let message = if limit {
        message
    } else {
        match &error.kind {
            ErrorKind::Io(e) if e.raw_os_error() == Some(EMFILE) => format!(
                "cannot watch {}: too many inotify instances (fs.inotify.max_user_instances); \
                 raise the limit with `sudo sysctl fs.inotify.max_user_instances=1024` (add it \
                 to /etc/sysctl.conf to keep it)",
                root.display()
            ),
            _ => format!("cannot watch {}: {message}", root.display()),
        }
    };
    Error::Watch {
        message,
        source: error,
    }
}

/// The debouncer's handler: forwards what it hands over to the worker's channel.
fn debounced(tx: Sender<Message>) -> impl FnMut(DebounceEventResult) + Send + 'static {
    move |result| match result {
        Ok(events) => {
            let _ = tx.send(Message::Debounced(events));
        }
        Err(errors) => {
            for error in errors {
                let _ = tx.send(Message::Error(error));
            }
        }
    }
}

/// The watch limit reached while the watcher runs: it stops rather than leave part of the
/// tree unwatched, with notify's error as the cause.
fn limit_reached(error: notify::Error) -> Error {
    let (_, message) = describe(&error);
    Error::Watch {
        message,
        source: error,
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

/// The worker: takes batches from the channel and builds them, one transaction each, and
/// lends the image between batches.
struct Worker<'a> {
    root: &'a Path,
    image: &'a Mutex<Slot>,
    rx: &'a Receiver<Message>,
    options: &'a WatchOptions,
    stopping: &'a AtomicBool,
}

/// What the worker has taken from the channel for the next batch.
#[derive(Default)]
struct Pending {
    changes: Vec<Change>,
    errors: Vec<String>,
    /// The watch limit, reached: the watcher stops with it.
    limit: Option<notify::Error>,
    /// Borrowers, in the order they asked.
    borrowers: Vec<Request>,
    stop: bool,
    /// The channel is closed: nothing more will come.
    closed: bool,
}

impl Pending {
    /// Takes one message: a raw event goes to the debouncer (it is the debouncer's until it
    /// hands it over), the rest is kept for the batch.
    fn take(&mut self, message: Message, debouncer: &mut Lazy) {
        match message {
            Message::Raw(event) => {
                if let Err(e) = debouncer.feed(event) {
                    // An event that may never be handed over: reconcile instead.
                    self.errors.push(format!("cannot debounce: {e}"));
                }
            }
            Message::Debounced(events) => {
                let changes = events.iter().map(|debounced| Change {
                    time: debounced.time,
                    ..convert(&debounced.event)
                });
                self.changes
                    .extend(changes.filter(|c| c.kind != ChangeKind::Ignored));
            }
            Message::Error(error) => match describe(&error) {
                (true, _) => {
                    self.limit.get_or_insert(error);
                }
                (false, message) => self.errors.push(message),
            },
            Message::Stop => self.stop = true,
            Message::Borrow(request) => self.borrowers.push(request),
        }
    }

    /// Whether there is something to act on.
    fn ready(&self) -> bool {
        !self.changes.is_empty()
            || !self.errors.is_empty()
            || self.limit.is_some()
            || !self.borrowers.is_empty()
            || self.stop
            || self.closed
    }

    /// Takes whatever is waiting in the channel, without blocking.
    fn drain(&mut self, rx: &Receiver<Message>, debouncer: &mut Lazy) {
        loop {
            match rx.try_recv() {
                Ok(message) => self.take(message, debouncer),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Blocks until there is something to act on, then takes what else is waiting. While a
    /// debouncer runs, it is stopped once idle (what it held comes through the channel);
    /// with none running this blocks with no timeout: an idle watcher never wakes.
    fn wait(&mut self, rx: &Receiver<Message>, debouncer: &mut Lazy) {
        while !self.ready() {
            let received = match debouncer.idle_at() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match received {
                Ok(message) => self.take(message, debouncer),
                Err(RecvTimeoutError::Timeout) => debouncer.stop(),
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
        self.drain(rx, debouncer);
    }

    /// Takes what arrives until `deadline`.
    fn gather_until(&mut self, rx: &Receiver<Message>, debouncer: &mut Lazy, deadline: Instant) {
        while !self.stop && !self.closed {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(message) => self.take(message, debouncer),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }
}

impl Worker<'_> {
    fn run(&self, mut debouncer: Lazy, on_batch: &mut dyn FnMut(&BatchReport)) -> Result<()> {
        let mut borrowers: VecDeque<Request> = VecDeque::new();
        // The loan just ended, to be reported once what queued meanwhile is built.
        let mut returned: Option<Loan> = None;
        loop {
            let mut pending = Pending::default();
            if returned.is_some() || !borrowers.is_empty() {
                // Events queued during a loan (or while borrowers wait): build them now,
                // once the debouncer has had them.
                pending.drain(self.rx, &mut debouncer);
                if let Some(settled) = debouncer.settled_at() {
                    pending.gather_until(self.rx, &mut debouncer, settled);
                }
            } else {
                pending.wait(self.rx, &mut debouncer);
            }
            self.batch(&mut pending, &mut debouncer, on_batch)?;
            // After the batch: borrowers who asked while it waited for a save's second half
            // are kept too.
            borrowers.extend(pending.borrowers.drain(..));
            if let Some(loan) = returned.take() {
                on_batch(&self.take_back(loan)?);
            }
            if pending.stop || pending.closed {
                // Borrowers still waiting see their connection close unanswered; the image is
                // free as soon as the watcher is gone.
                return Ok(());
            }
            if let Some(request) = borrowers.pop_front() {
                match self.lend(request)? {
                    Some(loan) => returned = Some(loan),
                    None => return Ok(()), // stopped while the image was lent
                }
            }
        }
    }

    /// Plans and builds what `pending` holds, waiting a little more for a half-done save.
    fn batch(
        &self,
        pending: &mut Pending,
        debouncer: &mut Lazy,
        on_batch: &mut dyn FnMut(&BatchReport),
    ) -> Result<()> {
        if let Some(limit) = pending.limit.take() {
            return Err(limit_reached(limit));
        }
        self.check_image_there()?;
        let mut plan = self.plan(pending);
        if !pending.stop && awaits_more(self.root, &plan, &pending.changes, &probe_disk) {
            // Maybe half an atomic save: give its second half a moment.
            pending.gather_until(self.rx, debouncer, Instant::now() + self.options.settle);
            if let Some(limit) = pending.limit.take() {
                return Err(limit_reached(limit));
            }
            plan = self.plan(pending);
        }
        if let Some(report) = self.apply(plan, pending)? {
            on_batch(&report);
        }
        Ok(())
    }

    /// Stops the watcher when its image directory was deleted under it: what it would commit
    /// would be lost with the deleted files. The tree is the user's and untouched.
    fn check_image_there(&self) -> Result<()> {
        let slot = lock(self.image)?;
        if let Slot::Held(image) = &*slot
            && image.is_gone()
        {
            return Err(Error::invalid(format!(
                "the image {} was deleted while the watcher ran: stopping; your files are \
                 untouched, and `spry-image build` makes a new image of them",
                image.dir().display()
            )));
        }
        Ok(())
    }

    /// Releases the image, lets the borrower have it, and takes it back once the borrower
    /// closes its connection. `None` when a stop came meanwhile (the borrower keeps it).
    fn lend(&self, request: Request) -> Result<Option<Loan>> {
        let mut slot = lock(self.image)?;
        let (dir, before) = match &*slot {
            Slot::Held(image) => (image.dir().to_path_buf(), image.generation()?),
            lent => return Err(lent_error(lent)),
        };
        let started = Instant::now();
        let loan = Loan {
            pid: request.pid,
            command: request.command.clone(),
            held: Duration::ZERO,
            generations: (before, before),
            reply: None,
        };
        // Every handle dropped: the image's lock and the store's are free.
        *slot = Slot::Lent {
            dir: dir.clone(),
            pid: loan.pid,
            command: loan.command.clone(),
        };
        let Some(reply) = lend::grant(request, self.stopping) else {
            return Ok(None);
        };
        // Another command may have opened the image directly between the borrower's end and
        // now (it found it free): wait for it too, however long, as for a borrower.
        let image = loop {
            match Image::open(&dir) {
                Ok(image) => break image,
                Err(Error::Locked { .. }) if self.stopping.load(Ordering::SeqCst) => {
                    return Ok(None);
                }
                Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(e),
            }
        };
        let after = image.generation()?;
        *slot = Slot::Held(image);
        Ok(Some(Loan {
            held: started.elapsed(),
            generations: (before, after),
            reply,
            ..loan
        }))
    }

    /// After a loan, once what changed on disk meanwhile is built: exports what the borrower
    /// changed in the image (a `put` becomes the file's text), and reports the loan.
    fn take_back(&self, loan: Loan) -> Result<BatchReport> {
        let started = Instant::now();
        let slot = lock(self.image)?;
        let image = match &*slot {
            Slot::Held(image) => image,
            lent => return Err(lent_error(lent)),
        };
        let export = export_borrowed(image, loan.generations);
        // The borrower returns now: what it changed is in the tree (or the export failed).
        lend::done(loan.reply);
        let export = export?;
        let generation = image.generation()?;
        Ok(BatchReport {
            cause: Cause::Lent,
            reason: None,
            paths: Vec::new(),
            build: BuildReport::default(),
            latency: started.elapsed(),
            lent: Some(Lent {
                pid: loan.pid,
                command: loan.command,
                held: loan.held,
                export,
                generation,
            }),
        })
    }

    fn plan(&self, pending: &mut Pending) -> Plan {
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
            let mut slot = lock(self.image)?;
            match &mut *slot {
                Slot::Held(image) => build::build(image, self.root, &options, &NoProgress)?,
                lent => return Err(lent_error(lent)),
            }
        };
        Ok(Some(BatchReport {
            cause,
            reason,
            paths: paths.unwrap_or_default(),
            build,
            latency: started.elapsed(),
            lent: None,
        }))
    }
}

/// Exports what a borrower committed between generations `(before, after]`: only the modules
/// it changed (a `status` exports nothing, and an earlier live edit left unexported stays so).
fn export_borrowed(image: &Image, (before, after): (u64, u64)) -> Result<ExportReport> {
    if after == before {
        return Ok(ExportReport::default());
    }
    let mut changed: Vec<String> = image
        .log()?
        .into_iter()
        .filter(|e| e.generation > before && e.generation <= after)
        .flat_map(|e| e.modules.into_iter().map(|m| m.module))
        .collect();
    changed.sort();
    changed.dedup();
    let mut held = Vec::with_capacity(changed.len());
    for name in changed {
        if image.module(&name)?.is_some() {
            held.push(name);
        }
    }
    if held.is_empty() {
        // Only whole modules removed: the export of everything is what writes that.
        return export::export(image, &ExportOptions::default());
    }
    let options = ExportOptions {
        modules: held,
        ..ExportOptions::default()
    };
    export::export(image, &options)
}

/// A loan that ended: who had the image, and for how long.
struct Loan {
    pid: u32,
    command: String,
    held: Duration,
    /// The image's generation when it was lent, and when it was taken back: the borrower's
    /// commits are those between.
    generations: (u64, u64),
    /// The borrower's connection, to say when the export after the loan is done.
    reply: Option<std::os::unix::net::UnixStream>,
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
        let error = watch_error(Path::new("/tree"), error);
        assert!(error.to_string().contains("max_user_watches"), "{error}");
    }

    /// Issue 17: the limit reached while the watcher runs stops it with notify's error as the
    /// cause, not only its words.
    #[test]
    fn the_watch_limit_reached_at_run_time_keeps_notifys_error() {
        use std::error::Error as _;
        let mut pending = Pending::default();
        let (tx, _rx) = channel();
        let options = WatchOptions::default();
        let mut debouncer = Lazy::new(options.debounce, options.tick, options.idle, move || {
            Box::new(debounced(tx.clone()))
        });
        let error = notify::Error::new(ErrorKind::MaxFilesWatch).add_path("/tree/deep".into());
        pending.take(Message::Error(error), &mut debouncer);
        pending.take(
            Message::Error(notify::Error::generic("a passing error")),
            &mut debouncer,
        );
        assert_eq!(pending.errors.len(), 1);
        let error = limit_reached(pending.limit.take().expect("the limit"));
        assert!(matches!(error, Error::Watch { .. }));
        assert!(error.to_string().contains("max_user_watches"), "{error}");
        let cause = error
            .source()
            .and_then(|c| c.downcast_ref::<notify::Error>());
        assert!(cause.is_some_and(|c| matches!(c.kind, ErrorKind::MaxFilesWatch)));
    }

    #[test]
    fn a_rescan_flag_goes_through_the_debouncer_and_makes_a_full_build() {
        use notify::event::{EventKind, Flag};
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(
            root.join("a.spry"),
            "{\n  _meta = {name = 'A}\n  x = 1\n}\n",
        )
        .unwrap();
        let image = Image::create(&root.join(".spry-image"), &root).unwrap();
        let slot = Mutex::new(Slot::Held(image));
        let (tx, rx) = channel();
        let options = WatchOptions::default();
        let stopping = AtomicBool::new(false);
        let debouncer = {
            let tx = tx.clone();
            Lazy::new(options.debounce, options.tick, options.idle, move || {
                Box::new(debounced(tx.clone()))
            })
        };
        let (reports, batches) = channel();
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                Worker {
                    root: &root,
                    image: &slot,
                    rx: &rx,
                    options: &options,
                    stopping: &stopping,
                }
                .run(debouncer, &mut |batch| {
                    let _ = reports.send(batch.clone());
                })
            });
            // What inotify sends when its queue overflowed: no path, the rescan flag.
            let overflow = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
            tx.send(Message::Raw(overflow)).unwrap();
            let batch = batches.recv_timeout(Duration::from_secs(10)).unwrap();
            tx.send(Message::Stop).unwrap();
            worker.join().unwrap().unwrap();
            assert_eq!(batch.cause, Cause::Rescan, "{batch:?}");
            assert!(batch.reason.unwrap().contains("dropped events"));
            assert_eq!(
                batch
                    .build
                    .added
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>(),
                ["A"],
                "a full build: the module nobody named was found"
            );
        });
    }

    #[test]
    fn the_instance_limit_names_its_sysctl() {
        let io = std::io::Error::from_raw_os_error(EMFILE);
        let error = watch_error(Path::new("/tree"), notify::Error::io(io));
        assert!(
            error.to_string().contains("fs.inotify.max_user_instances"),
            "{error}"
        );
        let (limit, _) = describe(&notify::Error::generic("other"));
        assert!(!limit);
    }
}
