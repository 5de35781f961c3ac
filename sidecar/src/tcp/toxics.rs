//! One direction of a proxied connection: the toxic chain on it and the pump that reads from
//! one socket and writes to the other through that chain.
//!
//! A chunk read from the source is passed through the chain at once and comes out as pieces,
//! each with the instant it may be written ([`Chain::schedule`]: pure, so the pacing is tested
//! without sockets). The pump keeps reading while earlier pieces wait for their time, so a
//! latency toxic delays each chunk from when it was read without capping the throughput at one
//! chunk per latency (Toxiproxy: `sleep = delay - time_since(chunk.timestamp)`).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ballast_model::fault::{Action, Stream, Toxic};
use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::faults::{Installed, Toxics};

/// Read size per direction (and the plain relay's only buffer).
pub(crate) const CHUNK: usize = 32 * 1024;

/// Bytes a direction may hold waiting for their time (latency, bandwidth) before it stops
/// reading: the backpressure bound of a toxic direction.
const MAX_QUEUED: usize = 1024 * 1024;

/// How a direction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The source ended and the destination's write half was shut down (half-close passed on).
    Done,
    /// Close the whole connection: `timeout`, `limit_data`, `down`, an I/O error, shutdown.
    Close,
    /// Reset both sides: `reset_peer`, or a reset from one peer passed on to the other.
    Reset,
}

/// Decides a toxicity roll: `true` when the toxic applies (`p` is the toxicity, 0..=1).
pub(crate) type Roll = fn(f64) -> bool;

/// The production roll: uniform in [0, 1) against the toxicity, as Toxiproxy's
/// `rand.Float32() < toxicity` (so 1 always applies and 0 never does).
pub(crate) fn roll(toxicity: f64) -> bool {
    rand::random::<f64>() < toxicity
}

/// Bytes written at `at` or later.
#[derive(Debug)]
pub(crate) struct Piece {
    pub at: Instant,
    pub data: Bytes,
}

/// A toxic in a direction's chain, with its state on this connection.
struct Stage {
    installed: Arc<Installed>,
    toxic: Toxic,
    /// When this connection first had the toxic: `timeout` and `reset_peer` count from here.
    since: Instant,
    /// `bandwidth`, `slicer`: the earliest instant the next byte may go (the accumulated
    /// schedule, so the long-run rate is exact however the data is chunked).
    next: Option<Instant>,
    /// `limit_data`: bytes let through so far.
    passed: u64,
}

/// The toxics acting on one direction of one connection, in the order they were added.
pub(crate) struct Chain {
    stream: Stream,
    stages: Vec<Stage>,
    /// Every toxic for this direction in the current snapshot, with its roll: rolled once per
    /// connection and kept while the toxic is in place (a toxic removed is never back: the same
    /// id added again is a new `Installed`, rolled afresh).
    rolls: Vec<(Arc<Installed>, bool)>,
    /// A live `down` toxic is in place.
    pub down: bool,
    /// A `timeout` that acted on this connection was removed: data was dropped, so the
    /// connection is closed (Toxiproxy's `TimeoutToxic.Cleanup`), not resumed out of step.
    pub timed_out: bool,
    /// `down` counted for this connection already.
    down_counted: bool,
    /// When a toxic in the snapshot stops being live: the chain must be rebuilt then even if
    /// the reaper has not removed it yet.
    pub next_expiry: Option<Instant>,
}

impl Chain {
    pub fn new(stream: Stream) -> Self {
        Chain {
            stream,
            stages: Vec::new(),
            rolls: Vec::new(),
            down: false,
            timed_out: false,
            down_counted: false,
            next_expiry: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Follow a new snapshot of the listener's toxics: keep the state (and roll) of toxics still
    /// in place, roll new ones, drop removed or expired ones.
    pub fn rebuild(&mut self, toxics: &[Arc<Installed>], now: Instant, roll: Roll) {
        let mut old_stages = std::mem::take(&mut self.stages);
        let old_rolls = std::mem::take(&mut self.rolls);
        self.down = false;
        self.next_expiry = None;
        for installed in toxics {
            let Action::Tcp { target, toxic } = &installed.action else {
                continue;
            };
            if !installed.live(now) {
                continue;
            }
            if let Some((at, _)) = installed.expires {
                self.next_expiry = Some(self.next_expiry.map_or(at, |n| n.min(at)));
            }
            if *toxic == Toxic::Down {
                self.down = true;
                // Counted once per connection, by the client→server side (both sides see it).
                if self.stream == Stream::Upstream && !self.down_counted {
                    self.down_counted = true;
                    installed.counters.matched.fetch_add(1, Ordering::Relaxed);
                    installed.counters.injected.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if target.stream != self.stream {
                continue;
            }
            let applies = match old_rolls.iter().find(|(i, _)| Arc::ptr_eq(i, installed)) {
                Some(&(_, applies)) => applies,
                None => {
                    installed.counters.matched.fetch_add(1, Ordering::Relaxed);
                    let applies = roll(target.toxicity);
                    if applies {
                        installed.counters.injected.fetch_add(1, Ordering::Relaxed);
                    }
                    applies
                }
            };
            self.rolls.push((installed.clone(), applies));
            if !applies {
                continue;
            }
            let stage = match old_stages.iter().position(|s| Arc::ptr_eq(&s.installed, installed)) {
                Some(i) => old_stages.swap_remove(i),
                None => Stage {
                    installed: installed.clone(),
                    toxic: *toxic,
                    since: now,
                    next: None,
                    passed: 0,
                },
            };
            self.stages.push(stage);
        }
        self.timed_out |= old_stages.iter().any(|s| matches!(s.toxic, Toxic::Timeout { .. }));
    }

    /// The first `timeout` or `reset_peer` deadline, and what happens then.
    pub fn timer(&self) -> Option<(Instant, Outcome)> {
        self.stages
            .iter()
            .filter_map(|s| match s.toxic {
                Toxic::Timeout { timeout } if !timeout.is_zero() => Some((s.since + timeout, Outcome::Close)),
                Toxic::ResetPeer { timeout } => Some((s.since + timeout, Outcome::Reset)),
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
    }

    /// How long the close is held when the source ends (`slow_close`, summed along the chain).
    pub fn close_delay(&self) -> Duration {
        self.stages
            .iter()
            .map(|s| match s.toxic {
                Toxic::SlowClose { delay } => delay,
                _ => Duration::ZERO,
            })
            .sum()
    }

    /// Pass a chunk read at `read_at` through the chain, stage after stage, appending the pieces
    /// to write to `out`. Returns true when `limit_data` says the connection closes after them.
    pub fn schedule(&mut self, data: Bytes, read_at: Instant, rng: &mut impl Rng, out: &mut VecDeque<Piece>) -> bool {
        let mut pieces = vec![Piece { at: read_at, data }];
        let mut close = false;
        for stage in &mut self.stages {
            pieces = match stage.toxic {
                // Each stage adds its delay to when the piece left the previous one: chained
                // latencies add up (Toxiproxy measures each from the read, so they overlap).
                Toxic::Latency { latency, jitter } => {
                    for p in &mut pieces {
                        p.at += jittered(latency, jitter, rng);
                    }
                    pieces
                }
                Toxic::Bandwidth { bytes_per_second } => pace(&mut stage.next, pieces, bytes_per_second),
                Toxic::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    let mut sliced = Vec::new();
                    for p in pieces {
                        let mut at = stage.next.map_or(p.at, |n| n.max(p.at));
                        let mut offset = 0;
                        for size in slice_sizes(p.data.len(), average_size, size_variation, rng) {
                            sliced.push(Piece {
                                at,
                                data: p.data.slice(offset..offset + size),
                            });
                            offset += size;
                            // Toxiproxy sleeps after every slice, the last one included.
                            at += delay;
                        }
                        stage.next = Some(at);
                    }
                    sliced
                }
                Toxic::LimitData { bytes } => {
                    let mut kept = Vec::with_capacity(pieces.len());
                    for mut p in pieces {
                        let room = bytes.saturating_sub(stage.passed);
                        if (p.data.len() as u64) >= room {
                            p.data.truncate(room as usize);
                            stage.passed = bytes;
                            close = true;
                            if !p.data.is_empty() {
                                kept.push(p);
                            }
                            break;
                        }
                        stage.passed += p.data.len() as u64;
                        kept.push(p);
                    }
                    kept
                }
                // No data passes while a timeout is in place.
                Toxic::Timeout { .. } => Vec::new(),
                Toxic::SlowClose { .. } | Toxic::ResetPeer { .. } | Toxic::Down => pieces,
            };
            if close && pieces.is_empty() {
                break;
            }
        }
        out.extend(pieces);
        close
    }
}

/// `base` ± a uniform `jitter` (never below zero).
fn jittered(base: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let spread = jitter.as_nanos() as i128;
    let nanos = base.as_nanos() as i128 + rng.random_range(-spread..=spread);
    Duration::from_nanos(nanos.clamp(0, u64::MAX as i128) as u64)
}

/// The time `bytes` take at `rate` bytes per second.
fn transfer_time(bytes: usize, rate: u64) -> Duration {
    Duration::from_nanos((bytes as u128 * 1_000_000_000 / rate.max(1) as u128).min(u64::MAX as u128) as u64)
}

/// Bandwidth pacing: split pieces into slices of about 20 ms of traffic and give each the
/// instant its last byte would have gone at `rate`. `next` is the accumulated schedule; after
/// an idle spell it restarts from the data's own time (no credit is saved up while idle).
fn pace(next: &mut Option<Instant>, pieces: Vec<Piece>, rate: u64) -> Vec<Piece> {
    let slice = (rate / 50).clamp(1, CHUNK as u64) as usize;
    let mut paced = Vec::with_capacity(pieces.len());
    for p in pieces {
        let mut at = next.map_or(p.at, |n| n.max(p.at));
        let mut offset = 0;
        while offset < p.data.len() {
            let end = (offset + slice).min(p.data.len());
            at += transfer_time(end - offset, rate);
            paced.push(Piece {
                at,
                data: p.data.slice(offset..end),
            });
            offset = end;
        }
        *next = Some(at);
    }
    paced
}

/// Slice sizes for `len` bytes: each `average` ± a uniform `variation` (at least 1), the last
/// one whatever is left.
pub(crate) fn slice_sizes(len: usize, average: u64, variation: u64, rng: &mut impl Rng) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        let size = if variation == 0 {
            average
        } else {
            rng.random_range(average.saturating_sub(variation)..=average.saturating_add(variation))
        };
        let size = (size.max(1)).min(left as u64) as usize;
        sizes.push(size);
        left -= size;
    }
    sizes
}

fn io_outcome(e: &io::Error) -> Outcome {
    if e.kind() == io::ErrorKind::ConnectionReset {
        Outcome::Reset
    } else {
        Outcome::Close
    }
}

/// What a direction does once everything before it is written.
enum End {
    /// The source ended: shut down the destination's write half at this instant.
    Shutdown(Instant),
    /// `limit_data` reached: close the connection.
    Close,
}

/// Relay `src` to `dst` through the toxics for `stream`, following `toxics` as it changes,
/// until the source ends (then the destination's write half is shut down) or a toxic or an
/// error ends the connection.
pub(crate) async fn pump<R, W>(
    src: &mut R,
    dst: &mut W,
    stream: Stream,
    mut toxics: watch::Receiver<Toxics>,
    roll: Roll,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut chain = Chain::new(stream);
    chain.rebuild(&toxics.borrow_and_update(), Instant::now(), roll);
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut queue: VecDeque<Piece> = VecDeque::new();
    let mut queued = 0usize;
    let mut end: Option<End> = None;
    // The table lives as long as the sidecar; if it is gone, keep the last toxics.
    let mut watching = true;
    loop {
        if chain.down || chain.timed_out {
            return Outcome::Close;
        }
        let timer = chain.timer();
        let front = queue.front().map(|p| p.at);
        let end_at = match end {
            Some(End::Shutdown(at)) => Some(at),
            Some(End::Close) => Some(Instant::now()),
            None => None,
        };
        // Far enough never to fire; only used for branches that are disabled.
        let never = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            biased;
            changed = toxics.changed(), if watching => {
                match changed {
                    Ok(()) => chain.rebuild(&toxics.borrow_and_update(), Instant::now(), roll),
                    Err(_) => watching = false,
                }
            }
            _ = sleep_until(chain.next_expiry.unwrap_or(never)), if chain.next_expiry.is_some() => {
                chain.rebuild(&toxics.borrow(), Instant::now(), roll);
            }
            _ = sleep_until(timer.map_or(never, |t| t.0)), if timer.is_some() => {
                return timer.map_or(Outcome::Close, |t| t.1);
            }
            _ = sleep_until(front.unwrap_or(never)), if front.is_some() => {
                let Some(piece) = queue.pop_front() else { continue };
                queued -= piece.data.len();
                if let Err(e) = dst.write_all(&piece.data).await {
                    return io_outcome(&e);
                }
            }
            _ = sleep_until(end_at.unwrap_or(never)), if queue.is_empty() && end_at.is_some() => {
                return match end {
                    Some(End::Shutdown(_)) => match dst.shutdown().await {
                        Ok(()) => Outcome::Done,
                        Err(e) => io_outcome(&e),
                    },
                    _ => Outcome::Close,
                };
            }
            read = src.read_buf(&mut buf), if end.is_none() && queued < MAX_QUEUED => {
                match read {
                    Err(e) => return io_outcome(&e),
                    Ok(0) => end = Some(End::Shutdown(Instant::now() + chain.close_delay())),
                    Ok(_) if chain.is_empty() && queue.is_empty() => {
                        // The plain relay: one reused buffer, no allocation.
                        if let Err(e) = dst.write_all(&buf).await {
                            return io_outcome(&e);
                        }
                        buf.clear();
                    }
                    Ok(_) => {
                        let before = queue.len();
                        let close = chain.schedule(buf.split().freeze(), Instant::now(), &mut rng, &mut queue);
                        queued += queue.iter().skip(before).map(|p| p.data.len()).sum::<usize>();
                        if close {
                            end = Some(End::Close);
                        }
                    }
                }
                // Reclaims the buffer when no piece still holds part of it.
                buf.reserve(CHUNK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultLimits;
    use crate::events::Events;
    use crate::faults::FaultTable;
    use ballast_model::FaultSpec;
    use ballast_model::fault::Origin;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn table() -> FaultTable {
        FaultTable::new(FaultLimits::default(), ["t"])
    }

    fn add(table: &FaultTable, toml_text: &str) -> String {
        let spec: FaultSpec = toml::from_str(&format!("listener = \"t\"\n{toml_text}")).unwrap();
        let fault = spec.validate().unwrap();
        table.add(spec, fault, Origin::Api, &Events::default()).unwrap().id
    }

    fn chain_for(table: &FaultTable, stream: Stream) -> Chain {
        let mut chain = Chain::new(stream);
        chain.rebuild(&table.toxics("t").unwrap().borrow(), Instant::now(), roll);
        chain
    }

    #[test]
    fn slices_stay_within_the_variation_and_add_up() {
        let mut rng = SmallRng::seed_from_u64(1);
        for len in [0, 1, 63, 64, 1000, 32 * 1024] {
            let sizes = slice_sizes(len, 64, 16, &mut rng);
            assert_eq!(sizes.iter().sum::<usize>(), len);
            let (last, rest) = sizes.split_last().map_or((None, &[][..]), |(l, r)| (Some(l), r));
            assert!(rest.iter().all(|&s| (48..=80).contains(&s)), "{sizes:?}");
            assert!(last.is_none_or(|&l| (1..=80).contains(&l)));
        }
        let sizes = slice_sizes(100, 10, 0, &mut rng);
        assert_eq!(sizes, vec![10; 10]);
        // With variation, sizes do vary.
        let sizes = slice_sizes(10_000, 64, 32, &mut rng);
        assert!(sizes.iter().any(|&s| s != sizes[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn bandwidth_keeps_an_exact_schedule_across_chunks() {
        let table = table();
        add(&table, "kind = \"bandwidth\"\nrate = 100"); // 100 KB/s, downstream
        let mut chain = chain_for(&table, Stream::Downstream);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        // 300 000 bytes in uneven chunks, all read at once.
        for size in [32 * 1024, 1, 7, 100_000, 32 * 1024, 1000] {
            chain.schedule(Bytes::from(vec![0u8; size]), t0, &mut rng, &mut out);
        }
        let total: usize = out.iter().map(|p| p.data.len()).sum();
        let last = out.back().unwrap().at;
        let expected = transfer_time(total, 100_000);
        let error = (last - t0).abs_diff(expected);
        assert!(error < Duration::from_micros(10), "{:?} vs {expected:?}", last - t0);
        assert!(out.iter().all(|p| p.data.len() <= 2000), "slices of 20 ms at most");
        assert!(out.iter().zip(out.iter().skip(1)).all(|(a, b)| a.at < b.at));
        // After an idle spell the schedule restarts from the new data, without saved credit.
        let later = last + Duration::from_secs(10);
        out.clear();
        chain.schedule(Bytes::from(vec![0u8; 1000]), later, &mut rng, &mut out);
        assert_eq!(out.back().unwrap().at, later + Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn rolls_are_made_once_per_connection_and_counted() {
        let table = table();
        add(&table, "kind = \"latency\"\nlatency = 10\ntoxicity = 0.5");
        add(&table, "kind = \"slow_close\"\ndelay = 10\nstream = \"upstream\"");
        let toxics = table.toxics("t").unwrap();
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn counting(_: f64) -> bool {
            CALLS.fetch_add(1, Ordering::Relaxed) % 2 == 1
        }
        let mut chain = Chain::new(Stream::Downstream);
        chain.rebuild(&toxics.borrow(), Instant::now(), counting);
        assert!(chain.is_empty(), "the first roll says no");
        for _ in 0..3 {
            chain.rebuild(&toxics.borrow(), Instant::now(), counting);
        }
        assert!(chain.is_empty(), "and the answer is kept for the connection");
        assert_eq!(CALLS.load(Ordering::Relaxed), 1, "only the downstream toxic was rolled");
        // Another connection rolls again.
        let mut other = Chain::new(Stream::Downstream);
        other.rebuild(&toxics.borrow(), Instant::now(), counting);
        assert!(!other.is_empty());
        let latency = &toxics.borrow()[0];
        assert_eq!(latency.counters.matched.load(Ordering::Relaxed), 2);
        assert_eq!(latency.counters.injected.load(Ordering::Relaxed), 1);
        // The real roll: toxicity 1 always applies, 0 never.
        assert!((0..1000).all(|_| roll(1.0)) && (0..1000).all(|_| !roll(0.0)));
    }

    /// A pump from `client` (written by the test) to `server` (read by the test), downstream.
    fn piped(
        toxics: watch::Receiver<Toxics>,
    ) -> (
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<Outcome>,
    ) {
        let (client, mut src) = duplex(1 << 20);
        let (mut dst, server) = duplex(1 << 20);
        let task = tokio::spawn(async move { pump(&mut src, &mut dst, Stream::Downstream, toxics, roll).await });
        (client, server, task)
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_chunk_from_its_read_without_capping_throughput() {
        let table = table();
        add(&table, "kind = \"latency\"\nlatency = 100");
        let (mut client, mut server, _task) = piped(table.toxics("t").unwrap());
        let t0 = Instant::now();
        let mut got = Vec::new();
        for i in 0..10u8 {
            client.write_all(&[i; 100]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut buf = [0u8; 1000];
        while got.len() < 1000 {
            let n = server.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        // Ten chunks 10 ms apart, each 100 ms late: all through by ~190 ms, not 1 s.
        let elapsed = t0.elapsed();
        assert!(
            elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(250),
            "{elapsed:?}"
        );
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(got, expected, "order kept");
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_zero_drops_data_until_removed_then_closes_and_slow_close_holds_a_close() {
        let table = table();
        let id = add(&table, "kind = \"timeout\"\ntimeout = 0");
        let (mut client, mut server, task) = piped(table.toxics("t").unwrap());
        client.write_all(b"dropped").await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(60), server.read(&mut buf)).await;
        assert!(read.is_err(), "nothing passes while the timeout is in place");
        // Removed: the stream lost data, so it is closed rather than resumed (as Toxiproxy).
        assert!(table.remove(&id, &Events::default()));
        assert_eq!(task.await.unwrap(), Outcome::Close);

        add(&table, "kind = \"slow_close\"\ndelay = 500");
        let (mut client, mut server, task) = piped(table.toxics("t").unwrap());
        client.write_all(b"through").await.unwrap();
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"through");
        let closed_at = Instant::now();
        drop(client);
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(closed_at.elapsed(), Duration::from_millis(500));
        assert_eq!(task.await.unwrap(), Outcome::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_closes_and_reset_peer_resets_after_their_time() {
        let table = table();
        let id = add(&table, "kind = \"timeout\"\ntimeout = 300");
        let (_client, _server, task) = piped(table.toxics("t").unwrap());
        let t0 = Instant::now();
        assert_eq!(task.await.unwrap(), Outcome::Close);
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        table.remove(&id, &Events::default());
        add(&table, "kind = \"reset_peer\"\ntimeout = 200");
        let (_client, _server, task) = piped(table.toxics("t").unwrap());
        let t0 = Instant::now();
        assert_eq!(task.await.unwrap(), Outcome::Reset);
        assert_eq!(t0.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn limit_data_closes_after_its_bytes_and_slicer_chains_after_it() {
        let table = table();
        add(&table, "kind = \"limit_data\"\nbytes = 1000");
        add(&table, "kind = \"slicer\"\naverage_size = 100\ndelay = 1000"); // 1 ms between slices
        let (mut client, mut server, task) = piped(table.toxics("t").unwrap());
        let t0 = Instant::now();
        client.write_all(&[7u8; 600]).await.unwrap();
        client.write_all(&[8u8; 600]).await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 1000);
        assert_eq!(task.await.unwrap(), Outcome::Close);
        // Ten slices of 100 bytes, 1 ms apart; the close comes after the last one.
        assert!(t0.elapsed() >= Duration::from_millis(9), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn toxics_for_the_other_direction_and_expired_ones_do_not_apply() {
        let table = table();
        add(&table, "kind = \"timeout\"\ntimeout = 0\nstream = \"upstream\"");
        add(&table, "kind = \"latency\"\nlatency = 100000\nttl = \"1s\"");
        let (mut client, mut server, _task) = piped(table.toxics("t").unwrap());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[tokio::test(start_paused = true)]
    async fn down_closes_open_connections_and_counts_each_once() {
        let table = table();
        let (_client, _server, downstream) = piped(table.toxics("t").unwrap());
        let (_c, mut src) = duplex(64);
        let (mut dst, _s) = duplex(64);
        let toxics = table.toxics("t").unwrap();
        let upstream = tokio::spawn(async move { pump(&mut src, &mut dst, Stream::Upstream, toxics, roll).await });
        tokio::task::yield_now().await;
        assert!(!downstream.is_finished());
        add(&table, "kind = \"down\"");
        assert_eq!(downstream.await.unwrap(), Outcome::Close);
        assert_eq!(upstream.await.unwrap(), Outcome::Close);
        let down = table.toxics("t").unwrap().borrow()[0].clone();
        // Both directions of the connection saw it; it counts once.
        assert_eq!(down.counters.matched.load(Ordering::Relaxed), 1);
        assert_eq!(down.counters.injected.load(Ordering::Relaxed), 1);
    }
}
