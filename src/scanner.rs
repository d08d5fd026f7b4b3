//! The scan loop: reads the engine every interval and publishes what the server serves.
//!
//! A failed scan is recorded and retried on the next interval; it is never fatal. While the
//! engine is away the last good snapshot stays published, and
//! `docker_image_exporter_scan_success` says that it is stale.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use crate::engine::{Engine, EngineError};
use crate::render::{render, BuildInfo, EngineInfo, ScanStatus};
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
        }
    }

    /// Scans at once, then every interval, until `shutdown` turns true. A scan under way
    /// when shutdown comes is abandoned: it only reads.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.interval);
        // After a slow scan, wait a full interval rather than scanning back to back.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop_requested(&mut shutdown) => return,
            }
            tokio::select! {
                _ = self.scan_once() => {}
                _ = stop_requested(&mut shutdown) => return,
            }
        }
    }

    /// One scan, its accounting, and publication of the result.
    pub async fn scan_once(&mut self) {
        let span = tracing::debug_span!("scan");
        let started = Instant::now();
        let result = self.read_engine().instrument(span.clone()).await;
        let _entered = span.enter();
        self.status.duration_seconds = started.elapsed().as_secs_f64();

        match result {
            Ok(snapshot) => {
                self.status.success = true;
                self.status.successes += 1;
                self.status.last_success_timestamp = Some(unix_now());
                if let Some(since) = self.outage_since.take() {
                    tracing::info!(
                        down_seconds = since.elapsed().as_secs(),
                        "engine answers again; scans resumed"
                    );
                }
                tracing::debug!(
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
                // Negotiate again next time: the engine may come back as another version.
                self.engine.disconnect();
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
            retry_seconds = self.interval.as_secs_f64(),
            kept_last_good = self.snapshot.is_some(),
            "scan failed; serving the last good data and retrying every interval"
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

/// Resolves once `shutdown` turns true, or once its sender is gone.
pub async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is dropped here, before any other await.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Seconds since the epoch, as Prometheus timestamps are.
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
