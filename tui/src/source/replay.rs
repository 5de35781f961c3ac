//! A recorded run played back: a position in time moves over the records at a speed, or
//! stands still. Moving forward delivers the records passed; moving back starts over
//! ([`Feed::Reset`], then every record up to the position), so a position always shows the
//! same screens however it was reached.

use std::time::Duration;

use tokio::time::Instant;

use super::{Control, FaultAction, Feed, ReplayStatus, Source, SourceStatus};
use crate::recording::Recording;

/// Speeds `+` and `-` step through.
const SPEEDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Where a replay starts.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Offset from the first record; `None`: the start.
    pub at: Option<Duration>,
    pub paused: bool,
    pub speed: f64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            at: None,
            paused: false,
            speed: 1.0,
        }
    }
}

pub struct ReplaySource {
    recording: Recording,
    start_ms: u64,
    end_ms: u64,
    position_ms: u64,
    /// `recording.feeds[..delivered]` have been handed out since the last reset.
    delivered: usize,
    playing: bool,
    speed: f64,
    /// Wall time of the last poll, to move the position while playing.
    last_poll: Instant,
}

impl ReplaySource {
    pub fn new(recording: Recording, options: &ReplayOptions) -> Self {
        let (start_ms, end_ms) = recording.span_ms();
        let offset = options.at.map_or(0, |d| d.as_millis() as u64);
        ReplaySource {
            recording,
            start_ms,
            end_ms,
            position_ms: (start_ms + offset).min(end_ms),
            delivered: 0,
            playing: !options.paused,
            speed: options.speed,
            last_poll: Instant::now(),
        }
    }

    pub fn status(&self) -> ReplayStatus {
        ReplayStatus {
            name: self.recording.name.clone(),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            position_ms: self.position_ms,
            playing: self.playing,
            speed: self.speed,
        }
    }

    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    /// The feeds that bring a model from the last delivered position to the current one.
    fn deliver(&mut self) -> Vec<Feed> {
        let mut out = Vec::new();
        let upto = self
            .recording
            .feeds
            .partition_point(|f| f.at_ms().is_some_and(|t| t <= self.position_ms));
        if upto < self.delivered {
            out.push(Feed::Reset);
            self.delivered = 0;
        }
        out.extend(self.recording.feeds[self.delivered..upto].iter().cloned());
        self.delivered = upto;
        out.push(Feed::Clock {
            now_ms: self.position_ms,
            status: SourceStatus::Replay(self.status()),
        });
        out
    }

    fn seek_to(&mut self, position_ms: u64) {
        self.position_ms = position_ms.clamp(self.start_ms, self.end_ms);
    }
}

impl Source for ReplaySource {
    fn poll(&mut self) -> Vec<Feed> {
        let now = Instant::now();
        if self.playing {
            let moved = now.duration_since(self.last_poll).as_secs_f64() * self.speed * 1000.0;
            self.seek_to(self.position_ms + moved as u64);
            if self.position_ms >= self.end_ms {
                self.playing = false;
            }
        }
        self.last_poll = now;
        self.deliver()
    }

    fn control(&mut self, control: Control) -> Result<(), String> {
        match control {
            Control::TogglePlay => {
                // Play at the end starts over, like a media player.
                if !self.playing && self.position_ms >= self.end_ms {
                    self.position_ms = self.start_ms;
                }
                self.playing = !self.playing;
                self.last_poll = Instant::now();
            }
            Control::Faster | Control::Slower => {
                let i = SPEEDS.iter().position(|s| *s >= self.speed).unwrap_or(SPEEDS.len() - 1);
                let i = if control == Control::Faster {
                    (i + 1).min(SPEEDS.len() - 1)
                } else {
                    i.saturating_sub(1)
                };
                self.speed = SPEEDS[i];
            }
            Control::Seek(delta) => self.seek_to(self.position_ms.saturating_add_signed(delta)),
            Control::ToStart => self.seek_to(self.start_ms),
            Control::ToEnd => self.seek_to(self.end_ms),
        }
        Ok(())
    }

    fn fault(&mut self, _: FaultAction) -> Result<(), String> {
        Err(REFUSED.into())
    }
}

/// Why a replay cannot change faults.
pub const REFUSED: &str = "a replay shows the faults as recorded: adding or clearing needs a live sidecar";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ballast_model::StatsSnapshot;

    use super::*;

    fn recording(times: &[u64]) -> Recording {
        Recording {
            name: "r".into(),
            slos: Vec::new(),
            sidecars: vec!["a".into()],
            feeds: times
                .iter()
                .map(|&t| Feed::Stats {
                    at_ms: t,
                    sidecar: "a".into(),
                    snapshot: Arc::new(StatsSnapshot::default()),
                })
                .collect(),
            skipped_events: 0,
        }
    }

    fn times(feeds: &[Feed]) -> Vec<Option<u64>> {
        feeds
            .iter()
            .filter(|f| !matches!(f, Feed::Clock { .. }))
            .map(Feed::at_ms)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn playing_moves_with_time_and_speed_and_stops_at_the_end() {
        let mut r = ReplaySource::new(recording(&[1_000, 2_000, 3_000, 9_000]), &ReplayOptions::default());
        assert_eq!(times(&r.poll()), [Some(1_000)]);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(times(&r.poll()), [Some(2_000)]);
        r.control(Control::Faster).unwrap();
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert_eq!(times(&r.poll()), [Some(3_000)], "2x: 2 s of the run in 1 s");
        assert_eq!(r.status().position_ms, 4_500);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(times(&r.poll()), [Some(9_000)]);
        assert!(
            !r.status().playing && r.status().position_ms == 9_000,
            "stops at the end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn going_back_starts_over_and_paused_stays_put() {
        let options = ReplayOptions {
            at: Some(Duration::from_secs(2)),
            paused: true,
            speed: 1.0,
        };
        let mut r = ReplaySource::new(recording(&[1_000, 2_000, 3_000, 4_000]), &options);
        assert_eq!(times(&r.poll()), [Some(1_000), Some(2_000), Some(3_000)]);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(times(&r.poll()), [], "paused");
        r.control(Control::Seek(-1_500)).unwrap();
        assert_eq!(times(&r.poll()), [None, Some(1_000)], "a reset, then up to 1.5 s");
        r.control(Control::ToEnd).unwrap();
        assert_eq!(times(&r.poll()), [Some(2_000), Some(3_000), Some(4_000)]);
        r.control(Control::Seek(-60_000)).unwrap();
        assert_eq!(r.status().position_ms, 1_000, "clamped to the start");
        assert!(r.fault(FaultAction::Clear { sidecars: vec![] }).is_err());
    }
}
