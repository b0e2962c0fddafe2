//! `--redact`'s plumbing: the child's stdout and stderr are pipes that vinit
//! reads on its event loop and writes on to its own stdout and stderr
//! through the [`redact`](crate::redact) matcher.
//!
//! [`OutputPipes::new`] does everything that can fail before the spawn
//! (pipes, registration with the event loop, vinit's own descriptors);
//! after the spawn, [`OutputPipes::start`] cannot fail ("after the spawn,
//! never bail"), and [`Pump::drain`] lets the last bytes out before exit.
//!
//! Reads are non-blocking on the event loop; writes go through tokio's
//! blocking pool, so a slow reader of vinit's output (a full `docker logs`
//! pipe) never stalls signal forwarding or reaping: it only holds the app
//! back once the pipe fills, as a direct write would. When vinit's own
//! output fails (closed), it stops reading that pipe, so the app sees the
//! same broken pipe it would have seen without `--redact`.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::redact::{Placed, SharedRedactor, StreamRedactor};
use crate::secrets::PlacedValue;

/// How long vinit waits, after the app and its leftovers ended, for the
/// last bytes of their output.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Makes `redactor` hide exactly `placed` (start-up; running life after
/// values change, passing every value in force): a warning names each
/// variable or template whose value is too short to redact. On error the
/// previous values stay hidden.
pub fn hide(redactor: &SharedRedactor, placed: &[PlacedValue]) -> Result<(), String> {
    let values = placed.iter().map(|p| Placed {
        source: &p.source,
        value: p.value.expose().as_bytes(),
    });
    for source in redactor.set_secrets(values)? {
        tracing::warn!(
            "{source}: a value shorter than {} bytes is not redacted",
            crate::redact::MIN_SECRET_LEN
        );
    }
    Ok(())
}

/// `--redact` prepared before the spawn: the pipes and the values to hide.
pub struct Redaction {
    pipes: OutputPipes,
    redactor: SharedRedactor,
}

impl Redaction {
    /// Builds the matcher from every value start-up placed (a warning names
    /// each variable or template whose value is too short to redact) and
    /// creates the pipes.
    pub fn prepare(placed: &[PlacedValue]) -> Result<Redaction, Error> {
        let redactor = SharedRedactor::default();
        hide(&redactor, placed).map_err(Error::config)?;
        let pipes =
            OutputPipes::new().map_err(|err| Error::system("cannot create the pipes for --redact", err))?;
        Ok(Redaction { pipes, redactor })
    }

    /// The descriptors the child gets as its stdout and stderr.
    pub fn child_ends(&self) -> [RawFd; 2] {
        self.pipes.child_ends()
    }

    /// The handle that replaces the values to hide (running life, when
    /// secrets rotate).
    pub fn redactor(&self) -> SharedRedactor {
        self.redactor.clone()
    }

    /// After the spawn: ready to copy (cannot fail); see
    /// [`OutputPipes::start`] for `for_restarts`.
    pub fn start(self, for_restarts: bool) -> Pump {
        self.pipes.start(self.redactor, for_restarts)
    }
}

/// How much is read from a pipe at once (the pipes hold 1 MiB when the
/// system allows, else 64 KiB).
const CHUNK: usize = 128 * 1024;

/// One of the child's two output streams.
struct Stream {
    name: &'static str,
    /// The child's end, until the spawn.
    child_end: OwnedFd,
    reader: AsyncFd<File>,
    /// vinit's own stdout or stderr (a duplicate); `None` when it is closed.
    writer: Option<File>,
}

/// The pipes that replace the child's stdout and stderr.
pub struct OutputPipes {
    streams: [Stream; 2],
}

impl OutputPipes {
    /// Creates both pipes and registers their read ends with the event
    /// loop (must run inside the runtime).
    pub fn new() -> io::Result<OutputPipes> {
        Ok(OutputPipes {
            streams: [
                Stream::new("stdout", io::stdout().as_fd().try_clone_to_owned())?,
                Stream::new("stderr", io::stderr().as_fd().try_clone_to_owned())?,
            ],
        })
    }

    /// The descriptors the child gets as its stdout and stderr.
    pub fn child_ends(&self) -> [RawFd; 2] {
        [
            self.streams[0].child_end.as_raw_fd(),
            self.streams[1].child_end.as_raw_fd(),
        ]
    }

    /// After the spawn: closes vinit's copies of the child's ends, so the
    /// streams end when the app and its descendants close theirs; with
    /// `for_restarts`, keeps them (for the next app) until supervision ends.
    pub fn start(self, redactor: SharedRedactor, for_restarts: bool) -> Pump {
        let mut child_ends = Vec::new();
        let [stdout, stderr] = self.streams.map(|stream| {
            if for_restarts {
                child_ends.push(stream.child_end);
            }
            Copier {
                name: stream.name,
                reader: stream.reader,
                writer: stream.writer,
            }
        });
        Pump {
            stdout,
            stderr,
            redactor,
            child_ends,
        }
    }
}

impl Stream {
    fn new(name: &'static str, own: io::Result<OwnedFd>) -> io::Result<Stream> {
        let (read_end, child_end) = crate::sys::output_pipe()?;
        let reader = crate::sys::watch_readable(File::from(read_end))?;
        // vinit started with it closed: the app's output is discarded.
        let writer = own.ok().map(File::from);
        Ok(Stream {
            name,
            child_end,
            reader,
            writer,
        })
    }
}

/// One stream's ends once the child holds its own.
struct Copier {
    name: &'static str,
    reader: AsyncFd<File>,
    writer: Option<File>,
}

/// Both streams, ready to be copied.
pub struct Pump {
    stdout: Copier,
    stderr: Copier,
    redactor: SharedRedactor,
    /// The child's ends, kept for restarts until supervision ends.
    child_ends: Vec<OwnedFd>,
}

impl Pump {
    /// Copies both streams while `supervised` (the PID-1 loop) runs, on the
    /// same task (no task of its own, so `supervise` needs no hook). When it
    /// is done, waits until both streams have ended (every holder of the
    /// child's ends closed them) and their last bytes are written, at most
    /// `limit` (a descendant that escaped may still hold a pipe, or vinit's
    /// own output may be stuck), then returns its result.
    pub async fn alongside<T>(self, supervised: impl Future<Output = T>, limit: Duration) -> T {
        let Pump {
            stdout,
            stderr,
            redactor,
            child_ends,
        } = self;
        let copying =
            async { tokio::join!(copy_redacted(stdout, &redactor), copy_redacted(stderr, &redactor)) };
        tokio::pin!(copying, supervised);
        let mut copied = false;
        let result = loop {
            tokio::select! {
                result = &mut supervised => break result,
                _ = &mut copying, if !copied => copied = true,
            }
        };
        drop(child_ends);
        if !copied && tokio::time::timeout(limit, copying).await.is_err() {
            tracing::debug!("the app's output was still open {limit:?} after it exited; not waiting longer");
        }
        result
    }
}

/// Copies one stream until it ends, redacted. On a failure the stream is
/// no longer copied; dropping the reader gives the app the broken pipe it
/// would have had writing to vinit's output itself.
async fn copy_redacted(copier: Copier, redactor: &SharedRedactor) {
    let Copier { name, reader, writer } = copier;
    if let Err(err) = copy_until_end(reader, writer, redactor).await {
        tracing::debug!("the app's {name} is no longer copied: {err}");
    }
}

async fn copy_until_end(
    reader: AsyncFd<File>,
    writer: Option<File>,
    redactor: &SharedRedactor,
) -> io::Result<()> {
    let mut state = StreamRedactor::default();
    let mut input = Zeroizing::new(vec![0u8; CHUNK]);
    let mut writer = writer;
    let mut out = Vec::with_capacity(CHUNK + 64);
    loop {
        let got = read_some(&reader, &mut input).await?;
        if got == 0 {
            break;
        }
        state.feed(&redactor.current(), &input[..got], &mut out);
        (writer, out) = write_out(writer, out).await?;
    }
    state.finish(&redactor.current(), &mut out);
    write_out(writer, out).await.map(drop)
}

async fn read_some(reader: &AsyncFd<File>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut ready = reader.readable().await?;
        match ready.try_io(|pipe| pipe.get_ref().read(buf)) {
            Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => {}
            Ok(result) => return result,
            Err(_would_block) => {}
        }
    }
}

/// Writes `out` (then empties it) on the blocking pool; hands the writer and
/// the buffer back for the next chunk.
async fn write_out(writer: Option<File>, mut out: Vec<u8>) -> io::Result<(Option<File>, Vec<u8>)> {
    if out.is_empty() {
        return Ok((writer, out));
    }
    let Some(mut file) = writer else {
        out.clear();
        return Ok((None, out));
    };
    let joined = tokio::task::spawn_blocking(move || {
        let result = file.write_all(&out);
        out.clear();
        result.map(|()| (Some(file), out))
    })
    .await;
    joined.unwrap_or_else(|err| Err(io::Error::other(err)))
}
