//! NRI lifecycle events and the subscription mask a plugin answers `Configure` with.

use crate::api::Event;

/// A set of [`Event`]s; on the wire event `e` is bit `1 << (e - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(u32);

impl EventSet {
    /// No event.
    pub const EMPTY: EventSet = EventSet(0);

    /// The events `events`.
    #[must_use]
    pub fn of(events: &[Event]) -> Self {
        events.iter().fold(Self::EMPTY, |s, &e| s.with(e))
    }

    /// This set and `event`.
    #[must_use]
    pub fn with(self, event: Event) -> Self {
        match Self::bit(event) {
            Some(b) => EventSet(self.0 | b),
            None => self,
        }
    }

    /// Whether `event` is in the set.
    #[must_use]
    pub fn contains(self, event: Event) -> bool {
        Self::bit(event).is_some_and(|b| self.0 & b != 0)
    }

    /// The mask for `ConfigureResponse.events`.
    #[must_use]
    pub fn wire(self) -> i32 {
        // Events are 1..=11: the mask fits in the low 11 bits.
        i32::try_from(self.0).unwrap_or(0)
    }

    fn bit(event: Event) -> Option<u32> {
        let n = event as i32;
        (1..=31).contains(&n).then(|| 1u32 << (n - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_bits_follow_the_event_numbers() {
        assert_eq!(EventSet::of(&[Event::RUN_POD_SANDBOX]).wire(), 1);
        assert_eq!(EventSet::of(&[Event::START_CONTAINER]).wire(), 1 << 5);
        assert_eq!(EventSet::of(&[Event::REMOVE_CONTAINER]).wire(), 1 << 10);
        assert_eq!(EventSet::of(&[Event::UNKNOWN]).wire(), 0);
        let s = EventSet::of(&[Event::STOP_CONTAINER, Event::REMOVE_POD_SANDBOX]);
        assert!(s.contains(Event::STOP_CONTAINER) && !s.contains(Event::START_CONTAINER));
        assert_eq!(s.wire(), (1 << 9) | (1 << 2));
    }
}
