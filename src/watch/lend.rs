//! Lending the image: while a watcher holds an image, other commands borrow it through a Unix
//! socket in the image directory ([`SOCKET_FILE`]) instead of failing on the lock.
//!
//! The protocol is one line each way. The client sends `borrow <pid> <command>\n`; the
//! watcher, between batches, releases the image (every handle dropped, so the lock is free)
//! and answers `granted\n`; the client opens the image, works, and closes the connection
//! (its process exits, or [`Borrowed`] is dropped); the watcher then takes the image back,
//! builds the events that queued meanwhile, and exports what the client changed. Clients are
//! served one after another. Only the same user may connect: the socket is made with mode
//! 0600, and each side checks the other's user id (`SO_PEERCRED`).
//!
//! A stale socket file (a watcher that was killed) harms nothing: a client that cannot
//! connect reports the lock as usual, and the next watcher replaces the file.

use std::io::{ErrorKind, Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::image::Image;

use super::Message;

/// The socket a running watcher listens on, in the image directory.
pub const SOCKET_FILE: &str = "watch.sock";

/// How long a client waits for `granted` (the watcher may be building a batch).
pub const GRANT_WAIT: Duration = Duration::from_secs(10);

/// How long an open is retried after `granted` (or after a watcher that is stopping closed the
/// connection unanswered): the lock may take a moment to be free.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// How long the watcher waits for a client's request line once it has connected.
const REQUEST_WAIT: Duration = Duration::from_secs(1);

/// The longest request line read.
const REQUEST_MAX: usize = 4096;

/// A client's request, handed from the listener to the worker.
pub(crate) struct Request {
    pub(crate) stream: UnixStream,
    pub(crate) pid: u32,
    pub(crate) command: String,
}

/// Whether the process at the other end of `stream` runs as this process's user. Linux and
/// Android say who connected (`SO_PEERCRED`); elsewhere the socket's mode (0600) is the check.
fn same_user(stream: &UnixStream) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        match rustix::net::sockopt::socket_peercred(stream) {
            Ok(cred) => cred.uid == rustix::process::geteuid(),
            Err(_) => false,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = stream;
        true
    }
}

/// Reads one line (without its `\n`) of at most [`REQUEST_MAX`] bytes, byte by byte so that
/// nothing after it is consumed. `None` on end of stream, a time-out, or a line too long.
fn read_line(stream: &mut UnixStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) if byte[0] == b'\n' => return String::from_utf8(line).ok(),
            Ok(_) if line.len() >= REQUEST_MAX => return None,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Parses `borrow <pid> <command>`.
pub(crate) fn parse_request(line: &str) -> Option<(u32, String)> {
    let rest = line.strip_prefix("borrow ")?;
    let (pid, command) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((pid.parse().ok()?, command.trim().to_string()))
}

/// The watcher's side: a thread that accepts connections on the socket, checks who
/// connected, reads the request and hands it to the worker. Dropping it stops the thread and
/// removes the socket file.
pub(crate) struct Listener {
    path: PathBuf,
    /// The listening socket (the thread has another handle of it): shut down to wake the
    /// thread from `accept`, which works even when the socket file is gone.
    socket: UnixListener,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on [`SOCKET_FILE`] in the image directory `dir`. The caller holds the image, so
    /// a socket file already there is a stale one (its watcher was killed): it is replaced.
    pub(crate) fn start(dir: &Path, tx: Sender<Message>) -> Result<Listener> {
        let path = dir.join(SOCKET_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let listener = UnixListener::bind(&path).map_err(|e| Error::io(&path, e))?;
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            let _ = std::fs::remove_file(&path);
            return Err(Error::io(&path, e));
        }
        let socket = match listener.try_clone() {
            Ok(socket) => socket,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(Error::io(&path, e));
            }
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("spry-image lend".into())
                .spawn(move || accept(&listener, &tx, &stopping))
                .map_err(|e| Error::io(&path, e))?
        };
        Ok(Listener {
            path,
            socket,
            stopping,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop: it blocks in `accept`, which fails once the socket is shut
        // down (Linux), or returns a connection (elsewhere), and then sees the flag.
        if rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Both).is_err() {
            let _ = UnixStream::connect(&self.path);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The accept loop: blocks in `accept` (an idle watcher does nothing here).
fn accept(listener: &UnixListener, tx: &Sender<Message>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else {
            // Out of descriptors, say: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if !same_user(&stream) {
            let _ = stream.write_all(b"refused: not the same user\n");
            continue;
        }
        let _ = stream.set_read_timeout(Some(REQUEST_WAIT));
        let Some((pid, command)) = read_line(&mut stream).as_deref().and_then(parse_request) else {
            let _ = stream.write_all(b"refused: expected `borrow <pid> <command>`\n");
            continue;
        };
        let _ = stream.set_read_timeout(None);
        let request = Request {
            stream,
            pid,
            command,
        };
        if tx.send(Message::Borrow(request)).is_err() {
            return;
        }
    }
}

/// Lends the image to `request`'s client: answers `granted` and waits until the client is
/// done (it shuts its side of the connection down, or closes it). The caller has released
/// the image. Returns `None` when `stopping` was set meanwhile (the client keeps the image;
/// the watcher gives up waiting); else the connection, if the client still waits on it for
/// [`done`] (it returns once what it changed is written to the tree).
pub(crate) fn grant(request: Request, stopping: &AtomicBool) -> Option<Option<UnixStream>> {
    let mut stream = request.stream;
    if stream.write_all(b"granted\n").is_err() {
        return Some(None); // the client is gone already
    }
    // Checks for a stop a few times a second; only while a client holds the image.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => {
                let _ = stream.set_read_timeout(None);
                return Some(Some(stream));
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stopping.load(Ordering::SeqCst) {
                    return None;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(None),
        }
    }
}

/// Tells a borrower that what it changed is in the tree now (the export after its loan is
/// done): it may return. A borrower already gone is no matter.
pub(crate) fn done(reply: Option<UnixStream>) {
    if let Some(mut stream) = reply {
        let _ = stream.write_all(b"done\n");
    }
}

/// How long a borrower waits, once done with the image, for the watcher to write what it
/// changed to the tree (the watcher's export) before returning anyway.
const DONE_WAIT: Duration = Duration::from_secs(30);

/// A borrower's connection: dropped (after the image), it hands the image back and waits for
/// the watcher's export of what it changed, so that a `put` returns once the file is
/// written.
struct Loan(UnixStream);

impl Drop for Loan {
    fn drop(&mut self) {
        if self.0.shutdown(std::net::Shutdown::Write).is_err() {
            return;
        }
        let _ = self.0.set_read_timeout(Some(DONE_WAIT));
        // "done", or the watcher gone (end of file), or the wait over.
        let _ = read_line(&mut self.0);
    }
}

/// Opens the image with `open`, retrying while it is locked, for at most `wait`.
pub(crate) fn retry_open(wait: Duration, open: impl Fn() -> Result<Image>) -> Result<Image> {
    let started = Instant::now();
    loop {
        match open() {
            Err(Error::Locked { .. }) if started.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// An image opened by this process, directly or borrowed from the watcher that holds it
/// ([`open_or_borrow`]). It dereferences to the [`Image`]; dropping it closes the image
/// first, then the connection, which hands the image back to the watcher.
pub struct Borrowed {
    // Declared first: dropped before the loan.
    image: Image,
    loan: Option<Loan>,
}

impl std::fmt::Debug for Borrowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Borrowed")
            .field("image", &self.image)
            .field("borrowed", &self.loan.is_some())
            .finish()
    }
}

impl Borrowed {
    /// Whether the image was borrowed from a watcher (rather than opened directly).
    pub fn is_borrowed(&self) -> bool {
        self.loan.is_some()
    }
}

impl Deref for Borrowed {
    type Target = Image;
    fn deref(&self) -> &Image {
        &self.image
    }
}

impl DerefMut for Borrowed {
    fn deref_mut(&mut self) -> &mut Image {
        &mut self.image
    }
}

/// What a watcher answered.
enum Answer {
    /// No watcher listens (no socket, a stale one, or another user's).
    None,
    /// The image is free for us until the connection closes.
    Granted(UnixStream),
    /// A watcher listens but did not lend (it is stopping, refused, or did not answer in
    /// time).
    NotLent,
}

/// Asks the watcher of the image in `dir` to lend it, waiting at most `wait` for `granted`.
fn ask(dir: &Path, wait: Duration) -> Answer {
    let Ok(mut stream) = UnixStream::connect(dir.join(SOCKET_FILE)) else {
        return Answer::None;
    };
    if !same_user(&stream) {
        return Answer::None;
    }
    let command: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, arg)| match i {
            0 => Path::new(&arg)
                .file_name()
                .map_or(arg.clone(), |n| n.to_string_lossy().into_owned()),
            _ => arg,
        })
        .collect();
    let mut command = command.join(" ").replace(['\n', '\r'], " ");
    // The request line has a bound: a long command line is named by its start.
    if command.len() > REQUEST_MAX / 2 {
        let mut end = REQUEST_MAX / 2;
        while !command.is_char_boundary(end) {
            end -= 1;
        }
        command.truncate(end);
        command.push_str(" ...");
    }
    let line = format!("borrow {} {command}\n", std::process::id());
    if stream.write_all(line.as_bytes()).is_err() {
        return Answer::NotLent;
    }
    let _ = stream.set_read_timeout(Some(wait));
    match read_line(&mut stream).as_deref() {
        Some("granted") => {
            let _ = stream.set_read_timeout(None);
            Answer::Granted(stream)
        }
        _ => Answer::NotLent,
    }
}

/// Opens the image in `dir` with `open` (`Image::open` or `Image::create`); when a running
/// watcher holds it, borrows it through the watcher's socket: waits (at most
/// ten seconds) for the watcher to release it, then opens it. The watcher takes it back
/// when the returned [`Borrowed`] is dropped (or the process exits).
///
/// # Errors
/// What `open` says; [`Error::Locked`] when the holder is not a watcher that lends it (or it
/// did not in time).
pub fn open_or_borrow(dir: &Path, open: impl Fn() -> Result<Image>) -> Result<Borrowed> {
    let locked = match open() {
        Ok(image) => return Ok(Borrowed { image, loan: None }),
        Err(e @ Error::Locked { .. }) => e,
        Err(e) => return Err(e),
    };
    match ask(dir, GRANT_WAIT) {
        Answer::None => Err(locked),
        Answer::Granted(stream) => {
            let image = retry_open(REOPEN_WAIT, open)?;
            Ok(Borrowed {
                image,
                loan: Some(Loan(stream)),
            })
        }
        // A watcher that is stopping closes the connection unanswered and frees the image.
        Answer::NotLent => match retry_open(Duration::from_secs(1), open) {
            Ok(image) => Ok(Borrowed { image, loan: None }),
            Err(Error::Locked { .. }) => Err(locked),
            Err(e) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse_request("borrow 42 spry-image put A::x"),
            Some((42, "spry-image put A::x".to_string()))
        );
        assert_eq!(parse_request("borrow 7"), Some((7, String::new())));
        assert_eq!(parse_request("borrow x put"), None);
        assert_eq!(parse_request("lend 1 x"), None);
        assert_eq!(parse_request(""), None);
    }

    #[test]
    fn a_missing_or_stale_socket_is_no_watcher() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(ask(dir.path(), GRANT_WAIT), Answer::None));
        // A socket file nobody listens on (its watcher was killed).
        drop(UnixListener::bind(dir.path().join(SOCKET_FILE)).unwrap());
        assert!(dir.path().join(SOCKET_FILE).exists());
        assert!(matches!(ask(dir.path(), GRANT_WAIT), Answer::None));
    }

    #[test]
    fn a_listener_replaces_a_stale_socket_reads_requests_and_removes_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        drop(UnixListener::bind(dir.path().join(SOCKET_FILE)).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let listener = Listener::start(dir.path(), tx).unwrap();
        let path = listener.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A client that asks, answered by hand here as the worker would.
        let client = std::thread::spawn({
            let dir = dir.path().to_path_buf();
            move || matches!(ask(&dir, GRANT_WAIT), Answer::Granted(_))
        });
        let Ok(Message::Borrow(request)) = rx.recv_timeout(GRANT_WAIT) else {
            panic!("no request");
        };
        assert_eq!(request.pid, std::process::id());
        assert!(!request.command.is_empty());
        let stopping = AtomicBool::new(false);
        let waiter = std::thread::spawn(move || grant(request, &stopping));
        assert!(client.join().unwrap(), "granted");
        assert!(waiter.join().unwrap().is_some(), "the connection closed");
        // Garbage is refused, and the listener goes on.
        let mut bad = UnixStream::connect(&path).unwrap();
        bad.write_all(b"hello\n").unwrap();
        let mut answer = String::new();
        bad.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("refused"), "{answer}");
        drop(listener);
        assert!(!path.exists());
    }

    #[test]
    fn a_stop_ends_the_wait_for_a_client_that_keeps_the_image() {
        let (server, client) = UnixStream::pair().unwrap();
        let stopping = Arc::new(AtomicBool::new(false));
        let waiter = std::thread::spawn({
            let stopping = Arc::clone(&stopping);
            move || {
                grant(
                    Request {
                        stream: server,
                        pid: 1,
                        command: String::new(),
                    },
                    &stopping,
                )
            }
        });
        let mut client = client;
        assert_eq!(read_line(&mut client).as_deref(), Some("granted"));
        stopping.store(true, Ordering::SeqCst);
        assert!(waiter.join().unwrap().is_none());
    }
}
