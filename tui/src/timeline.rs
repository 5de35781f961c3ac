//! The timeline: every event seen, in time order, described once as it arrives (so a frame
//! only formats the rows it shows), at most [`Timeline::CAPACITY`] of them. A sidecar replays
//! its recent events to each new `/events` connection; an event seen before (the same JSON) is
//! dropped. Events may arrive a little out of order (several sources); each goes in its place.

use std::collections::{HashSet, VecDeque};

use ballast_model::Event;

use crate::describe::{self, EventClass};

pub struct Entry {
    pub event: Event,
    /// The event as JSON: what tells a replayed event from a new one.
    json: String,
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
    /// The JSON of every event kept.
    seen: HashSet<String>,
}

impl Timeline {
    /// Events kept; older ones make room.
    pub const CAPACITY: usize = 10_000;

    /// Take an event in; false if it was seen before (a reconnect's replay).
    pub fn push(&mut self, event: Event) -> bool {
        let json = serde_json::to_string(&event).unwrap_or_default();
        if self.seen.contains(&json) {
            return false;
        }
        self.seen.insert(json.clone());
        let (kind, detail, class) = describe::event(&event);
        let search = format!("{} {kind} {detail}", event.source).to_lowercase();
        // Usually at the end; after the last entry that is not later.
        let at = self.entries.len()
            - self
                .entries
                .iter()
                .rev()
                .take_while(|e| e.event.at_ms > event.at_ms)
                .count();
        self.entries.insert(
            at,
            Entry {
                event,
                json,
                kind,
                detail,
                class,
                search,
            },
        );
        if self.entries.len() > Self::CAPACITY
            && let Some(oldest) = self.entries.pop_front()
        {
            self.seen.remove(&oldest.json);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Newest first.
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
        // Another source, a little behind: in its place.
        assert!(t.push(ev(2, "c", "f5")));
        let ids: Vec<(u64, &str)> = t.newest_first().map(|e| (e.event.at_ms, e.detail.as_str())).collect();
        assert_eq!(
            ids,
            [
                (3, "f4 expired"),
                (2, "f5 expired"),
                (2, "f3 expired"),
                (2, "f2 expired"),
                (1, "f1 expired"),
                (1, "f1 expired")
            ]
        );
        assert!(t.newest_first().next().unwrap().matches("fault_exp"));
    }
}
