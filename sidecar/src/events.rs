//! The sidecar's event timeline: a ring of recent events for late subscribers, and a broadcast
//! channel for live ones (the admin API's `/events` stream).

use std::collections::VecDeque;
use std::sync::Mutex;

use ballast_model::{Event, EventKind};
use tokio::sync::broadcast;

/// Events kept for replay to a new subscriber.
const RECENT: usize = 256;

pub struct Events {
    recent: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            live: broadcast::channel(RECENT).0,
        }
    }
}

impl Events {
    pub fn publish(&self, kind: EventKind) {
        let event = Event::now("sidecar", kind);
        // Under the lock, so a subscriber sees each event exactly once: replayed or live.
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        let _ = self.live.send(event); // no subscribers is fine
    }

    /// The recent events, oldest first, and a receiver for every later one.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        (recent.iter().cloned().collect(), self.live.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reloaded(routes: usize) -> EventKind {
        EventKind::ConfigReloaded {
            trigger: "test".into(),
            routes,
            clusters: 1,
        }
    }

    #[tokio::test]
    async fn subscribers_get_recent_events_then_live_ones_exactly_once() {
        let events = Events::default();
        events.publish(reloaded(1));
        let (recent, mut live) = events.subscribe();
        events.publish(reloaded(2));
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].kind, reloaded(1));
        assert_eq!(live.recv().await.unwrap().kind, reloaded(2));
        assert!(live.try_recv().is_err());
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let events = Events::default();
        for i in 0..RECENT + 10 {
            events.publish(reloaded(i));
        }
        let (recent, _) = events.subscribe();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].kind, reloaded(10));
    }
}
