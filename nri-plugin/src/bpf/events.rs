//! Reading decisions from the ring buffer (async with tokio, or non-blocking).

use std::os::fd::AsRawFd;

use aya::maps::{MapData, RingBuf};
use d4c_common::{Event, MAP_EXEC_EVENTS};
use tokio::io::unix::AsyncFd;

use super::{error::BpfError, loader::Enforcer};

/// Decodes one ring-buffer record.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < std::mem::size_of::<Event>() {
        return None;
    }
    // SAFETY: Event is repr(C), made of integers and byte arrays: any bytes are a value;
    // the length was checked and read_unaligned needs no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// The target path bytes an event carries.
#[must_use]
pub fn path(ev: &Event) -> &[u8] {
    &ev.path[..usize::from(ev.path_len).min(ev.path.len())]
}

/// The executable bytes an event carries.
#[must_use]
pub fn exe(ev: &Event) -> &[u8] {
    &ev.exe[..usize::from(ev.exe_len).min(ev.exe.len())]
}

/// The process name an event carries.
#[must_use]
pub fn comm(ev: &Event) -> &[u8] {
    let n = ev
        .comm
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(ev.comm.len());
    &ev.comm[..n]
}

/// The consumer of `D4C_EVENTS` (there is one per enforcer).
pub struct EventReader {
    ring: RingBuf<MapData>,
}

/// The async form of [`EventReader`]; needs a tokio runtime with IO enabled.
pub struct AsyncEventReader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl EventReader {
    /// The next event already in the buffer, if any.
    pub fn try_next(&mut self) -> Option<Event> {
        loop {
            let item = self.ring.next()?;
            if let Some(ev) = decode(&item) {
                return Some(ev);
            }
        }
    }

    /// Turns this reader into one that waits for events.
    pub fn into_async(self) -> Result<AsyncEventReader, BpfError> {
        let raw = self.ring.as_raw_fd();
        // SAFETY: the ring buffer owns its fd and keeps it open while the AsyncFd holds it.
        let fd = unsafe { AsyncFd::register(self.ring) }.map_err(|source| BpfError::Io {
            what: "poll ring buffer fd",
            path: format!("fd {raw}").into(),
            source: source.into(),
        })?;
        Ok(AsyncEventReader { fd })
    }
}

impl AsyncEventReader {
    /// Waits for the next event.
    pub async fn next(&mut self) -> Result<Event, BpfError> {
        loop {
            let mut guard = self
                .fd
                .readable_mut()
                .await
                .map_err(|source| BpfError::Io {
                    what: "poll ring buffer",
                    path: "D4C_EVENTS".into(),
                    source,
                })?;
            while let Some(item) = guard.get_inner_mut().next() {
                if let Some(ev) = decode(&item) {
                    return Ok(ev);
                }
            }
            guard.clear_ready();
        }
    }
}

impl Enforcer {
    /// Takes the reader of the daemon's ring (once; `None` afterwards).
    pub fn take_events(&mut self) -> Option<EventReader> {
        self.events.take().map(|ring| EventReader { ring })
    }

    /// A reader of `d4c exec` ring `ring` (1..=`EXEC_RINGS`), opened from its pin; the
    /// caller holds the ring's lock (`lock::ring`).
    pub fn exec_events(&self, ring: u8) -> Result<EventReader, BpfError> {
        let name = usize::from(ring)
            .checked_sub(1)
            .and_then(|i| MAP_EXEC_EVENTS.get(i))
            .copied()
            .ok_or(BpfError::NoMap {
                map: "D4C_EXEC_EVENTS_<n>",
            })?;
        let err = |source| BpfError::Map {
            map: name,
            source: Box::new(source),
        };
        let md = MapData::from_pin(super::fs::maps_dir(&self.pin_dir).join(name)).map_err(err)?;
        let ring = RingBuf::try_from(aya::maps::Map::RingBuf(md)).map_err(err)?;
        Ok(EventReader { ring })
    }
}
