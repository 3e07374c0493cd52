//! notify-debouncer-full, running only while there is something to debounce.
//!
//! The debouncer gives what a watcher needs (the rescan flag kept, the two ends of a rename
//! stitched into one event, repeated events on a path merged), but its thread wakes every
//! tick whatever happens, and an idle watcher must use no CPU. So notify's own watcher stays
//! up all the time (its thread blocks in the kernel), and a debouncer is made only when a raw
//! event comes: [`Lazy::feed`] hands it the raw events, through [`Relay`], a
//! `notify::Watcher` that watches nothing and only gives the debouncer's event handler back.
//! Once no raw event has come for [`Lazy::idle`], the worker stops the debouncer
//! ([`Lazy::stop`]), and it costs nothing until the next event.
//!
//! Stopping loses nothing: the debouncer's thread ticks once more after the stop flag is set,
//! and by then every event it holds is older than its timeout (`idle` is far longer), so that
//! last tick hands them all over before the thread ends; `stop` waits for it.

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use notify::{Event, EventHandler, RecursiveMode, WatcherKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, new_debouncer_opt};

/// The debouncer's event handler, as [`Relay::new`] received it.
type Feed = Box<dyn FnMut(notify::Result<Event>) + Send>;

/// What a debouncer calls with what it debounced.
pub(crate) type Handler = Box<dyn FnMut(DebounceEventResult) + Send>;

thread_local! {
    /// Where [`Relay::new`] leaves the handler for [`Lazy::start`], on the same thread.
    static CAUGHT: RefCell<Option<Feed>> = const { RefCell::new(None) };
}

/// A `notify::Watcher` that watches nothing: the debouncer is fed by hand.
#[derive(Debug)]
pub(crate) struct Relay;

impl notify::Watcher for Relay {
    fn new<F: EventHandler>(mut event_handler: F, _config: notify::Config) -> notify::Result<Self> {
        let feed: Feed = Box::new(move |event| event_handler.handle_event(event));
        CAUGHT.with(|caught| *caught.borrow_mut() = Some(feed));
        Ok(Relay)
    }

    fn watch(&mut self, _path: &Path, _recursive_mode: RecursiveMode) -> notify::Result<()> {
        Ok(())
    }

    fn unwatch(&mut self, _path: &Path) -> notify::Result<()> {
        Ok(())
    }

    fn kind() -> WatcherKind {
        WatcherKind::NullWatcher
    }
}

/// A debouncer that exists only between the first raw event of a burst and [`Lazy::idle`]
/// after its last.
pub(crate) struct Lazy {
    timeout: Duration,
    tick: Duration,
    idle: Duration,
    /// Makes the handler each new debouncer calls with what it debounced.
    handler: Box<dyn FnMut() -> Handler + Send>,
    active: Option<Active>,
}

struct Active {
    debouncer: Debouncer<Relay, NoCache>,
    feed: Feed,
    last: Instant,
}

impl Lazy {
    /// A debouncer of `timeout` (an event is handed over once its path has been quiet that
    /// long), looking every `tick` while it runs, stopped after `idle` without events; each
    /// debouncer made calls a handler made by `handler`.
    pub(crate) fn new(
        timeout: Duration,
        tick: Duration,
        idle: Duration,
        handler: impl FnMut() -> Handler + Send + 'static,
    ) -> Lazy {
        let tick = tick.min(timeout).max(Duration::from_millis(1));
        Lazy {
            timeout,
            tick,
            // However short it is set, stopping must find every event expired.
            idle: idle.max(timeout + tick),
            handler: Box::new(handler),
            active: None,
        }
    }

    /// Hands a raw event to the debouncer, making one first if none runs.
    ///
    /// # Errors
    /// The debouncer cannot be made (its thread cannot be spawned).
    pub(crate) fn feed(&mut self, event: Event) -> notify::Result<()> {
        if self.active.is_none() {
            self.active = Some(self.start()?);
        }
        let Some(active) = &mut self.active else {
            return Ok(());
        };
        active.last = Instant::now();
        (active.feed)(Ok(event));
        Ok(())
    }

    fn start(&mut self) -> notify::Result<Active> {
        CAUGHT.with(|caught| caught.borrow_mut().take());
        let debouncer = new_debouncer_opt::<_, Relay, NoCache>(
            self.timeout,
            Some(self.tick),
            (self.handler)(),
            NoCache,
            notify::Config::default(),
        )?;
        let feed = CAUGHT
            .with(|caught| caught.borrow_mut().take())
            .ok_or_else(|| notify::Error::generic("the debouncer made no watcher"))?;
        Ok(Active {
            debouncer,
            feed,
            last: Instant::now(),
        })
    }

    /// When the running debouncer has been idle long enough to stop; `None` when none runs.
    pub(crate) fn idle_at(&self) -> Option<Instant> {
        self.active.as_ref().map(|a| a.last + self.idle)
    }

    /// By when what was fed last has been handed over, if the debouncer's thread keeps time;
    /// `None` when none runs.
    pub(crate) fn settled_at(&self) -> Option<Instant> {
        self.active
            .as_ref()
            .map(|a| a.last + self.timeout + self.tick + self.tick)
    }

    /// Whether a debouncer (and its thread) runs.
    #[cfg(test)]
    pub(crate) fn is_running(&self) -> bool {
        self.active.is_some()
    }

    /// Stops the debouncer, if one runs, once its thread has handed over what it held. Call
    /// it only at [`idle_at`](Self::idle_at) or later: events younger than the timeout would
    /// be dropped.
    pub(crate) fn stop(&mut self) {
        if let Some(active) = self.active.take() {
            active.debouncer.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc::{Receiver, channel};

    use notify::event::{CreateKind, EventKind, ModifyKind, RenameMode};
    use notify_debouncer_full::DebouncedEvent;

    use super::*;

    fn lazy(timeout: Duration, idle: Duration) -> (Lazy, Receiver<DebounceEventResult>) {
        let (tx, rx) = channel();
        let handler = move || -> Handler {
            let tx = tx.clone();
            Box::new(move |result| {
                let _ = tx.send(result);
            })
        };
        (Lazy::new(timeout, timeout, idle, handler), rx)
    }

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    fn received(rx: &Receiver<DebounceEventResult>) -> Vec<DebouncedEvent> {
        rx.try_iter().flat_map(Result::unwrap_or_default).collect()
    }

    #[test]
    fn nothing_runs_until_an_event_comes_and_after_a_stop() {
        let (mut lazy, rx) = lazy(Duration::from_millis(5), Duration::from_millis(50));
        assert!(!lazy.is_running());
        assert_eq!(lazy.idle_at(), None);
        lazy.feed(event(EventKind::Create(CreateKind::File), "/t/a.spry"))
            .unwrap();
        assert!(lazy.is_running());
        let idle_at = lazy.idle_at().unwrap();
        std::thread::sleep(idle_at.saturating_duration_since(Instant::now()));
        lazy.stop();
        assert!(!lazy.is_running());
        let events = received(&rx);
        assert_eq!(events.len(), 1, "{events:?}");
        // A new burst makes a new debouncer.
        lazy.feed(event(EventKind::Create(CreateKind::File), "/t/b.spry"))
            .unwrap();
        assert!(lazy.is_running());
    }

    #[test]
    fn a_stop_at_idle_hands_over_everything_fed() {
        // A timeout long enough that no regular tick hands anything over before the stop:
        // what arrives, the last tick gave.
        let timeout = Duration::from_millis(200);
        let (mut lazy, rx) = lazy(timeout, Duration::ZERO);
        for n in 0..20 {
            let path = format!("/t/{n}.spry");
            lazy.feed(event(EventKind::Create(CreateKind::File), &path))
                .unwrap();
            lazy.feed(event(EventKind::Modify(ModifyKind::Any), &path))
                .unwrap();
        }
        let idle_at = lazy.idle_at().unwrap();
        assert!(idle_at >= Instant::now() + timeout - Duration::from_millis(50));
        std::thread::sleep(idle_at.saturating_duration_since(Instant::now()));
        lazy.stop();
        let mut paths: Vec<PathBuf> = received(&rx)
            .into_iter()
            .flat_map(|e| e.event.paths)
            .collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 20, "{paths:?}");
    }

    #[test]
    fn the_ends_of_a_rename_come_out_as_one_event() {
        let (mut lazy, rx) = lazy(Duration::from_millis(5), Duration::ZERO);
        let end =
            |mode, path| event(EventKind::Modify(ModifyKind::Name(mode)), path).set_tracker(9);
        lazy.feed(end(RenameMode::From, "/t/old.spry")).unwrap();
        lazy.feed(end(RenameMode::To, "/t/new.spry")).unwrap();
        std::thread::sleep(
            lazy.idle_at()
                .unwrap()
                .saturating_duration_since(Instant::now()),
        );
        lazy.stop();
        let events = received(&rx);
        let both: Vec<&DebouncedEvent> = events
            .iter()
            .filter(|e| e.kind == EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .collect();
        assert_eq!(both.len(), 1, "{events:?}");
        assert_eq!(
            both[0].paths,
            [PathBuf::from("/t/old.spry"), PathBuf::from("/t/new.spry")]
        );
    }
}
