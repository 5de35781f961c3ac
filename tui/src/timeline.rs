//! The timeline: every event seen, described once as it arrives (so a frame only formats the
//! rows it shows), at most [`Timeline::CAPACITY`] of them. A sidecar replays its recent events
//! to each new `/events` connection; events seen before are dropped.

use std::collections::{HashMap, VecDeque};

use ballast_model::Event;

use crate::describe::{self, EventClass};

pub struct Entry {
    pub event: Event,
    /// The kind as written, e.g. `fault_added`.
    pub kind: String,
    pub detail: String,
    pub class: EventClass,
    /// Lower-case source, kind and detail, for the filter.
    search: String,
}

impl Entry {
    /// Whether a lower-case filter matches its source, kind or detail.
    pub fn matches(&self, filter: &str) -> bool {
        filter.is_empty() || self.search.contains(filter)
    }
}

#[derive(Default)]
pub struct Timeline {
    /// Oldest first.
    entries: VecDeque<Entry>,
    /// Per source: the newest time seen and the events at that millisecond.
    newest: HashMap<String, (u64, Vec<Event>)>,
}

impl Timeline {
    /// Events kept; older ones make room.
    pub const CAPACITY: usize = 10_000;

    /// Take an event in; false if it was seen before (a reconnect's replay).
    pub fn push(&mut self, event: Event) -> bool {
        let (at, seen) = self.newest.entry(event.source.clone()).or_insert((0, Vec::new()));
        if event.at_ms < *at || (event.at_ms == *at && seen.contains(&event)) {
            return false;
        }
        if event.at_ms > *at {
            (*at, *seen) = (event.at_ms, Vec::new());
        }
        seen.push(event.clone());
        let (kind, detail, class) = describe::event(&event);
        let search = format!("{} {kind} {detail}", event.source).to_lowercase();
        self.entries.push_back(Entry {
            event,
            kind,
            detail,
            class,
            search,
        });
        if self.entries.len() > Self::CAPACITY {
            self.entries.pop_front();
        }
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Newest first (by arrival; sources deliver in time order).
    pub fn newest_first(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use ballast_model::EventKind;

    use super::*;

    fn ev(at_ms: u64, source: &str, id: &str) -> Event {
        Event {
            at_ms,
            source: source.into(),
            kind: EventKind::FaultExpired { id: id.into() },
        }
    }

    #[test]
    fn replayed_events_are_dropped_and_new_ones_kept() {
        let mut t = Timeline::default();
        assert!(t.push(ev(1, "a", "f1")));
        assert!(t.push(ev(2, "a", "f2")));
        assert!(t.push(ev(2, "a", "f3")), "same millisecond, another event");
        assert!(t.push(ev(1, "b", "f1")), "another source");
        // A reconnect replays a's recent events.
        assert!(!t.push(ev(1, "a", "f1")));
        assert!(!t.push(ev(2, "a", "f3")));
        assert!(t.push(ev(3, "a", "f4")));
        let ids: Vec<&str> = t.newest_first().map(|e| e.detail.as_str()).collect();
        assert_eq!(
            ids,
            ["f4 expired", "f1 expired", "f3 expired", "f2 expired", "f1 expired"]
        );
        assert!(t.newest_first().next().unwrap().matches("fault_exp"));
    }
}
