//! The multiplexed NRI socket: two ttrpc connections over one stream, in frames.
//!
//! Every frame is an 8-byte header (connection id, payload length: both u32 big-endian)
//! and the payload. Connection 1 carries the Plugin service (the plugin serves it),
//! connection 2 the Runtime service (the plugin calls it). The payload of consecutive
//! frames of one connection is a plain byte stream; ttrpc frames its messages inside it.
//!
//! [`Mux::new`] hands out each connection as a [`DuplexStream`] that ttrpc's `Server` and
//! `Client` run on unchanged. Frames are forwarded in pieces of at most 64 KiB, so memory
//! stays bounded whatever length a header announces. A frame for a connection other than 1
//! and 2, a payload over [`MAX_PAYLOAD`], a stream that ends inside a frame, or a local
//! end that closes its connection tears the whole socket down: both connections see end
//! of file and [`Mux::closed`] says why. (The Go implementation drops frames for unknown
//! connections; runtimes only ever use 1 and 2, so one here means a broken peer.)

use std::{io, sync::Arc};

use tokio::{
    io::{
        split, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf,
        WriteHalf,
    },
    sync::{watch, Mutex},
    task::{JoinHandle, JoinSet},
};

/// The connection the Plugin service runs on (the runtime calls, the plugin serves).
pub const PLUGIN_CONN: u32 = 1;
/// The connection the Runtime service runs on (the plugin calls, the runtime serves).
pub const RUNTIME_CONN: u32 = 2;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;
/// The largest payload accepted or sent: a ttrpc header (10 bytes) and its 4 MiB maximum.
pub const MAX_PAYLOAD: usize = 10 + (4 << 20);

/// Bytes forwarded per piece (also the largest frame this side writes).
const CHUNK: usize = 64 * 1024;
/// Buffer of each in-process pipe between the socket and ttrpc.
const PIPE_CAPACITY: usize = 256 * 1024;

/// Why a multiplexed socket stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MuxError {
    /// The peer closed the socket between frames.
    #[error("the peer closed the NRI socket")]
    Closed,
    /// The socket ended inside a frame.
    #[error("the NRI socket ended inside a frame")]
    Truncated,
    /// A header announced more than [`MAX_PAYLOAD`] bytes.
    #[error(
        "frame for connection {conn} announces {len} bytes, over the {MAX_PAYLOAD}-byte limit"
    )]
    Oversized { conn: u32, len: u32 },
    /// A frame for a connection other than [`PLUGIN_CONN`] and [`RUNTIME_CONN`].
    #[error("frame for unknown connection id {conn}")]
    UnknownConn { conn: u32 },
    /// This side closed one of the connections (its ttrpc server or client went away).
    #[error("connection {conn} was closed on this side")]
    LocalClosed { conn: u32 },
    /// Reading or writing the socket failed.
    #[error("NRI socket I/O failed")]
    Io(#[source] Arc<io::Error>),
}

impl From<io::Error> for MuxError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            MuxError::Truncated
        } else {
            MuxError::Io(Arc::new(e))
        }
    }
}

/// A running multiplexer over one socket. Dropping it closes the socket.
pub struct Mux {
    plugin: Option<DuplexStream>,
    runtime: Option<DuplexStream>,
    state: watch::Receiver<Option<MuxError>>,
    task: JoinHandle<()>,
}

type Writer<T> = Arc<Mutex<WriteHalf<T>>>;

impl Mux {
    /// Starts multiplexing `trunk` (must be called inside a tokio runtime).
    pub fn new<T>(trunk: T) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = split(trunk);
        let writer = Arc::new(Mutex::new(writer));
        let (plugin, plugin_inner) = tokio::io::duplex(PIPE_CAPACITY);
        let (runtime, runtime_inner) = tokio::io::duplex(PIPE_CAPACITY);
        let (plugin_r, plugin_w) = split(plugin_inner);
        let (runtime_r, runtime_w) = split(runtime_inner);
        let (tx, state) = watch::channel(None);

        let mut tasks = JoinSet::new();
        tasks.spawn(demux(reader, plugin_w, runtime_w));
        tasks.spawn(pump(PLUGIN_CONN, plugin_r, Arc::clone(&writer)));
        tasks.spawn(pump(RUNTIME_CONN, runtime_r, writer));
        let task = tokio::spawn(async move {
            // Every task ends only with an error; the first one decides.
            let reason = match tasks.join_next().await {
                Some(Ok(e)) => e,
                Some(Err(join)) => MuxError::Io(Arc::new(io::Error::other(join.to_string()))),
                None => MuxError::Closed,
            };
            tracing::debug!(%reason, "NRI socket closed");
            tx.send_replace(Some(reason));
            // Dropping `tasks` aborts the others: pipes and socket close.
        });
        Mux {
            plugin: Some(plugin),
            runtime: Some(runtime),
            state,
            task,
        }
    }

    /// The stream of connection `conn` ([`PLUGIN_CONN`] or [`RUNTIME_CONN`]), once.
    pub fn take(&mut self, conn: u32) -> Option<DuplexStream> {
        match conn {
            PLUGIN_CONN => self.plugin.take(),
            RUNTIME_CONN => self.runtime.take(),
            _ => None,
        }
    }

    /// Waits until the socket is torn down and says why.
    pub async fn closed(&self) -> MuxError {
        let mut state = self.state.clone();
        let reason = match state.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        reason.unwrap_or(MuxError::Closed)
    }

    /// Why the socket was torn down, if it was.
    #[must_use]
    pub fn error(&self) -> Option<MuxError> {
        self.state.borrow().clone()
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads frames from the socket and forwards each payload to its connection's pipe.
async fn demux<R: AsyncRead>(
    mut reader: ReadHalf<R>,
    mut plugin: WriteHalf<DuplexStream>,
    mut runtime: WriteHalf<DuplexStream>,
) -> MuxError {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let (conn, len) = match read_header(&mut reader).await {
            Ok(Some(h)) => h,
            Ok(None) => return MuxError::Closed,
            Err(e) => return e,
        };
        let pipe = match conn {
            PLUGIN_CONN => &mut plugin,
            RUNTIME_CONN => &mut runtime,
            _ => return MuxError::UnknownConn { conn },
        };
        let Ok(mut remaining) = usize::try_from(len) else {
            return MuxError::Oversized { conn, len };
        };
        if remaining > MAX_PAYLOAD {
            return MuxError::Oversized { conn, len };
        }
        while remaining > 0 {
            let want = remaining.min(CHUNK);
            let n = match reader.read(&mut chunk[..want]).await {
                Ok(0) => return MuxError::Truncated,
                Ok(n) => n,
                Err(e) => return e.into(),
            };
            if pipe.write_all(&chunk[..n]).await.is_err() {
                return MuxError::LocalClosed { conn };
            }
            remaining -= n;
        }
    }
}

/// Reads one frame header; `None` when the socket ends cleanly before it.
async fn read_header<R: AsyncRead>(
    reader: &mut ReadHalf<R>,
) -> Result<Option<(u32, u32)>, MuxError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match reader.read(&mut header[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(MuxError::Truncated),
            n => got += n,
        }
    }
    let (conn, len) = header.split_at(4);
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Ok(Some((word(conn), word(len))))
}

/// Reads what ttrpc writes on one connection and sends it to the socket as frames.
async fn pump<W: AsyncWrite>(
    conn: u32,
    mut pipe: ReadHalf<DuplexStream>,
    writer: Writer<W>,
) -> MuxError {
    let mut frame = vec![0u8; HEADER_LEN + CHUNK];
    frame[..4].copy_from_slice(&conn.to_be_bytes());
    loop {
        let n = match pipe.read(&mut frame[HEADER_LEN..]).await {
            Ok(0) | Err(_) => return MuxError::LocalClosed { conn },
            Ok(n) => n,
        };
        // n <= CHUNK, far below u32::MAX.
        let len = u32::try_from(n).unwrap_or(u32::MAX);
        frame[4..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        let mut w = writer.lock().await;
        if let Err(e) = w.write_all(&frame[..HEADER_LEN + n]).await {
            return e.into();
        }
        if let Err(e) = w.flush().await {
            return e.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(conn: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = conn.to_be_bytes().to_vec();
        f.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn frames_reach_their_connection_both_ways() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut mux = Mux::new(a);
        let mut plugin = mux.take(PLUGIN_CONN).unwrap();
        let mut runtime = mux.take(RUNTIME_CONN).unwrap();
        assert!(mux.take(PLUGIN_CONN).is_none());

        b.write_all(&frame(RUNTIME_CONN, b"to-runtime"))
            .await
            .unwrap();
        b.write_all(&frame(PLUGIN_CONN, b"to-")).await.unwrap();
        b.write_all(&frame(PLUGIN_CONN, b"")).await.unwrap();
        b.write_all(&frame(PLUGIN_CONN, b"plugin")).await.unwrap();
        let mut got = [0u8; 9];
        plugin.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"to-plugin");
        let mut got = [0u8; 10];
        runtime.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"to-runtime");

        runtime.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 13];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got.as_slice(), frame(RUNTIME_CONN, b"hello").as_slice());
    }

    #[tokio::test]
    async fn large_writes_are_split_into_bounded_frames() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut mux = Mux::new(a);
        let mut plugin = mux.take(PLUGIN_CONN).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move { plugin.write_all(&sent).await.unwrap() });
        let mut received = Vec::new();
        while received.len() < data.len() {
            let mut h = [0u8; HEADER_LEN];
            b.read_exact(&mut h).await.unwrap();
            assert_eq!(u32::from_be_bytes([h[0], h[1], h[2], h[3]]), PLUGIN_CONN);
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            assert!(len > 0 && len <= CHUNK);
            let mut p = vec![0u8; len];
            b.read_exact(&mut p).await.unwrap();
            received.extend_from_slice(&p);
        }
        writer.await.unwrap();
        assert_eq!(received, data);
    }

    async fn torn_down_by(bytes: &[u8]) -> (MuxError, Vec<u8>) {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut mux = Mux::new(a);
        let mut plugin = mux.take(PLUGIN_CONN).unwrap();
        b.write_all(bytes).await.unwrap();
        let err = mux.closed().await;
        let mut rest = Vec::new();
        plugin.read_to_end(&mut rest).await.unwrap();
        (err, rest)
    }

    #[tokio::test]
    async fn malformed_frames_tear_down_cleanly() {
        let (e, _) = torn_down_by(&frame(7, b"x")).await;
        assert!(matches!(e, MuxError::UnknownConn { conn: 7 }), "{e}");
        let (e, _) = torn_down_by(&frame(0, b"x")).await;
        assert!(matches!(e, MuxError::UnknownConn { conn: 0 }), "{e}");

        let mut huge = PLUGIN_CONN.to_be_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let (e, _) = torn_down_by(&huge).await;
        assert!(
            matches!(
                e,
                MuxError::Oversized {
                    conn: 1,
                    len: u32::MAX
                }
            ),
            "{e}"
        );

        // The payload before the bad frame is delivered; then end of file.
        let mut bytes = frame(PLUGIN_CONN, b"ok");
        bytes.extend_from_slice(&[0, 0, 0]);
        let (tx, rx) = tokio::io::duplex(64);
        let mut mux = Mux::new(tx);
        let mut plugin = mux.take(PLUGIN_CONN).unwrap();
        let mut rx = rx;
        rx.write_all(&bytes).await.unwrap();
        drop(rx);
        assert!(matches!(mux.closed().await, MuxError::Truncated));
        let mut rest = Vec::new();
        plugin.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"ok");
    }

    #[tokio::test]
    async fn peer_close_and_local_close_are_reported() {
        let (a, b) = tokio::io::duplex(64);
        let mux = Mux::new(a);
        drop(b);
        assert!(matches!(mux.closed().await, MuxError::Closed));

        let (a, _b) = tokio::io::duplex(64);
        let mut mux = Mux::new(a);
        drop(mux.take(RUNTIME_CONN));
        assert!(matches!(
            mux.closed().await,
            MuxError::LocalClosed { conn: RUNTIME_CONN }
        ));
    }
}
