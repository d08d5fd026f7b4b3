//! The scan loop: reads the engine every interval and publishes what the server serves.
//!
//! Besides the interval, the engine's event stream triggers rescans, so that a container's
//! change of state shows within a second. A failed scan is recorded and retried with backoff;
//! it is never fatal. While the engine is away the last good snapshot stays published, and
//! `docker_image_exporter_scan_success` says that it is stale.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use crate::engine::{Engine, EngineError, Event, EventStream};
use crate::render::{render, BuildInfo, EngineInfo, ScanCause, ScanStatus, EVENT_TYPES};
use crate::snapshot::{LiveStates, Snapshot};

/// What the scanner publishes and the server reads.
pub struct Published {
    exposition: RwLock<Bytes>,
    ready: AtomicBool,
}

impl Published {
    /// Starts with the exposition of an exporter that has not scanned yet.
    pub fn new() -> Published {
        let exposition = render(None, None, &ScanStatus::default(), &BuildInfo::CURRENT);
        Published { exposition: RwLock::new(exposition), ready: AtomicBool::new(false) }
    }

    /// The exposition of the last scan; cheap to clone.
    pub fn exposition(&self) -> Bytes {
        // A poisoned lock still holds a complete value: it is only ever replaced whole.
        self.exposition.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether a scan has succeeded since the exporter started.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Replaces the exposition; `scanned` marks it as the result of a successful scan.
    pub fn publish(&self, exposition: Bytes, scanned: bool) {
        *self.exposition.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = exposition;
        if scanned {
            self.ready.store(true, Ordering::Release);
        }
    }
}

impl Default for Published {
    fn default() -> Self {
        Published::new()
    }
}

/// How long the stream must be quiet after an event before the rescan, so that a burst of
/// events (a `compose up` of many containers) costs a few scans rather than one per event.
const EVENT_QUIET: Duration = Duration::from_millis(100);

/// The longest an event waits for its rescan, however long the burst goes on.
const EVENT_MAX_DELAY: Duration = Duration::from_millis(400);

/// The first pause before retrying a failed scan or reopening the event stream; it doubles
/// with each failure in a row up to the caps below.
const BACKOFF_START: Duration = Duration::from_millis(250);

/// The longest pause between attempts to reopen the event stream.
const EVENT_STREAM_BACKOFF_CAP: Duration = Duration::from_secs(10);

/// The scan loop and everything it remembers between scans.
pub struct Scanner {
    engine: Engine,
    live: LiveStates,
    interval: Duration,
    published: Arc<Published>,
    status: ScanStatus,
    snapshot: Option<Snapshot>,
    /// What the engine said of itself at the last successful connect.
    engine_info: Option<EngineInfo>,
    /// When the current run of failed scans started, if the last scan failed.
    outage_since: Option<Instant>,
    /// Failed scans in a row.
    failures_in_row: u32,
    events: Option<EventStream>,
    /// Failed attempts in a row to open the event stream, and when to try again.
    event_stream_failures: u32,
    event_stream_retry_at: Instant,
}

/// What woke the scan loop.
enum Wake {
    Due,
    Event(Result<Option<Event>, EngineError>),
    OpenEventStream,
}

impl Scanner {
    pub fn new(
        engine: Engine,
        live: LiveStates,
        interval: Duration,
        published: Arc<Published>,
    ) -> Scanner {
        Scanner {
            engine,
            live,
            interval,
            published,
            status: ScanStatus::default(),
            snapshot: None,
            engine_info: None,
            outage_since: None,
            failures_in_row: 0,
            events: None,
            event_stream_failures: 0,
            event_stream_retry_at: Instant::now(),
        }
    }

    /// Scans at once, then every interval and soon after relevant events, until `shutdown`
    /// turns true. Scans run one at a time on this task, so they never overlap. A scan under
    /// way when shutdown comes is abandoned: it only reads.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut plan = Plan::new(Instant::now());
        loop {
            let wants_stream = self.events.is_none() && self.engine.is_connected();
            let wake = tokio::select! {
                _ = stop_requested(&mut shutdown) => return,
                event = next_event(&mut self.events) => Wake::Event(event),
                _ = sleep_until(self.event_stream_retry_at), if wants_stream => {
                    Wake::OpenEventStream
                }
                _ = sleep_until(plan.due()) => Wake::Due,
            };
            match wake {
                Wake::Event(event) => {
                    self.on_event(event, &mut plan);
                    continue;
                }
                Wake::OpenEventStream => {
                    self.open_event_stream(&mut plan).await;
                    continue;
                }
                Wake::Due => {}
            }

            let cause = plan.cause(Instant::now());
            let succeeded = tokio::select! {
                succeeded = self.scan_once(cause) => succeeded,
                _ = stop_requested(&mut shutdown) => return,
            };
            let pause = if succeeded { self.interval } else { self.retry_pause() };
            plan.scanned(Instant::now(), pause, succeeded);
        }
    }

    /// How long to wait before retrying after the failures so far: doubling, capped at the
    /// scan interval.
    fn retry_pause(&self) -> Duration {
        backoff(self.failures_in_row, self.interval)
    }

    /// Counts an event and plans a rescan if it can change anything; a broken stream is
    /// dropped, to be reopened with backoff, and triggers a rescan right away.
    fn on_event(&mut self, event: Result<Option<Event>, EngineError>, plan: &mut Plan) {
        let now = Instant::now();
        match event {
            Ok(Some(event)) => {
                // Types other than the named ones count under the last, "other".
                let other = EVENT_TYPES.len() - 1;
                let kind = EVENT_TYPES.iter().position(|t| *t == event.kind).unwrap_or(other);
                self.status.events[kind] += 1;
                self.status.last_event_timestamp = Some(unix_now());
                tracing::trace!(kind = %event.kind, action = %event.action, "engine event");
                if event.is_relevant() {
                    plan.changed(now, ScanCause::Event);
                }
            }
            ended => {
                match ended {
                    Err(error) => tracing::debug!(%error, "event stream broke"),
                    _ => tracing::debug!("event stream closed by the engine"),
                }
                self.events = None;
                self.status.event_stream_up = false;
                self.event_stream_failures += 1;
                self.event_stream_retry_at =
                    now + backoff(self.event_stream_failures, EVENT_STREAM_BACKOFF_CAP);
                plan.changed_now(now, ScanCause::EventStream);
            }
        }
    }

    /// Opens the event stream and rescans: changes made before it opened were not seen.
    async fn open_event_stream(&mut self, plan: &mut Plan) {
        let now = Instant::now();
        match self.engine.events().await {
            Ok(stream) => {
                tracing::debug!("event stream open");
                self.events = Some(stream);
                self.status.event_stream_up = true;
                self.event_stream_failures = 0;
                plan.changed_now(now, ScanCause::EventStream);
            }
            Err(error) => {
                self.event_stream_failures += 1;
                let pause = backoff(self.event_stream_failures, EVENT_STREAM_BACKOFF_CAP);
                self.event_stream_retry_at = now + pause;
                tracing::debug!(%error, retry_seconds = pause.as_secs_f64(), "no event stream");
            }
        }
    }

    /// One scan, its accounting, and publication of the result. Returns whether it
    /// succeeded.
    pub async fn scan_once(&mut self, cause: ScanCause) -> bool {
        let span = tracing::debug_span!("scan", cause = cause.as_str());
        self.status.causes[cause.index()] += 1;
        let started = Instant::now();
        let result = self.read_engine().instrument(span.clone()).await;
        let _entered = span.enter();
        self.status.duration_seconds = started.elapsed().as_secs_f64();

        match result {
            Ok(snapshot) => {
                self.status.success = true;
                self.status.successes += 1;
                self.status.last_success_timestamp = Some(unix_now());
                self.failures_in_row = 0;
                if let Some(since) = self.outage_since.take() {
                    tracing::info!(
                        down_seconds = since.elapsed().as_secs(),
                        "engine answers again; scans resumed"
                    );
                }
                tracing::debug!(
                    cause = cause.as_str(),
                    images = snapshot.images.len(),
                    containers = snapshot.containers_by_state.iter().sum::<u64>(),
                    duration_seconds = self.status.duration_seconds,
                    "scan finished"
                );
                self.snapshot = Some(snapshot);
            }
            Err(error) => {
                self.status.success = false;
                self.status.failures += 1;
                self.failures_in_row += 1;
                // Negotiate again next time: the engine may come back as another version.
                // The event stream goes too; it is reopened once a scan succeeds.
                self.engine.disconnect();
                self.events = None;
                self.status.event_stream_up = false;
                self.record_failure(&error);
            }
        }

        let exposition = render(
            self.snapshot.as_ref(),
            self.engine_info.as_ref(),
            &self.status,
            &BuildInfo::CURRENT,
        );
        self.published.publish(exposition, self.status.success);
        self.status.success
    }

    /// Logs the first failure of an outage at warn and the rest at debug: one line per
    /// outage, however long it lasts.
    fn record_failure(&mut self, error: &EngineError) {
        if self.outage_since.is_some() {
            tracing::debug!(%error, "scan failed again");
            return;
        }
        self.outage_since = Some(Instant::now());
        tracing::warn!(
            %error,
            kept_last_good = self.snapshot.is_some(),
            "scan failed; serving the last good data and retrying with backoff"
        );
    }

    /// Connects if needed and makes the two list calls of a scan.
    ///
    /// Containers are listed before images: an image cannot be removed (short of forcing)
    /// while a container uses it, so every image a container names is still in the image list
    /// that follows. The other order could show a just-created container's new image as
    /// missing.
    async fn read_engine(&mut self) -> Result<Snapshot, EngineError> {
        self.engine_info = Some(self.engine.connect().await?.clone());
        let containers = self.engine.list_containers().await?;
        let images = self.engine.list_images().await?;
        tracing::trace!(images = images.len(), containers = containers.len(), "engine listed");
        Ok(Snapshot::build(images, containers, &self.live))
    }
}

/// When the next scan is due, and why.
#[derive(Debug)]
struct Plan {
    /// The next scan by the clock: an interval scan, a retry, or the first scan.
    clock_due: Instant,
    clock_cause: ScanCause,
    /// The rescan that events asked for, if any.
    change_due: Option<Instant>,
    change_cause: ScanCause,
    /// When the current burst of events began.
    burst_start: Option<Instant>,
}

impl Plan {
    fn new(now: Instant) -> Plan {
        Plan {
            clock_due: now,
            clock_cause: ScanCause::Startup,
            change_due: None,
            change_cause: ScanCause::Event,
            burst_start: None,
        }
    }

    fn due(&self) -> Instant {
        self.change_due.map_or(self.clock_due, |due| due.min(self.clock_due))
    }

    /// Why a scan starting at `now` runs.
    fn cause(&self, now: Instant) -> ScanCause {
        match self.change_due {
            Some(due) if due <= now && due <= self.clock_due => self.change_cause,
            _ => self.clock_cause,
        }
    }

    /// An event arrived: scan once the stream has been quiet for a moment, but no later
    /// than a fixed delay after the burst began.
    fn changed(&mut self, now: Instant, cause: ScanCause) {
        let burst_start = *self.burst_start.get_or_insert(now);
        self.change_due = Some((now + EVENT_QUIET).min(burst_start + EVENT_MAX_DELAY));
        self.change_cause = cause;
    }

    /// Something happened that calls for a scan right away.
    fn changed_now(&mut self, now: Instant, cause: ScanCause) {
        self.change_due = Some(now);
        self.change_cause = cause;
    }

    /// A scan finished: the next one by the clock is `pause` away.
    fn scanned(&mut self, now: Instant, pause: Duration, succeeded: bool) {
        self.change_due = None;
        self.burst_start = None;
        self.clock_due = now + pause;
        self.clock_cause = if succeeded { ScanCause::Interval } else { ScanCause::Retry };
    }
}

/// A pause that starts at [`BACKOFF_START`] and doubles with each failure in a row, up to
/// `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_START.saturating_mul(1 << doublings).min(cap)
}

/// The next event of the stream, or never when there is no stream.
async fn next_event(events: &mut Option<EventStream>) -> Result<Option<Event>, EngineError> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves once `shutdown` turns true, or once its sender is gone.
pub async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is dropped here, before any other await.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Seconds since the epoch, as Prometheus timestamps are.
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
