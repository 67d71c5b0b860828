//! Prometheus metrics of one process, rendered at `GET /metrics`.
//!
//! The rule: labels are route patterns, methods and statuses, never raw paths (which could
//! carry ids) and never anything personal. Each application owns its registry (no globals), so
//! tests can run several side by side.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    /// Calls logged through the API by this process.
    pub calls_logged: prometheus::IntCounter,
    /// Delivery attempts by this process's outbox worker, by result (sent, retry, failed).
    pub notification_deliveries: IntCounterVec,
    /// Notifications in the database by status, read at each scrape.
    pub notifications: IntGaugeVec,
    pub oldest_queued_age: prometheus::Gauge,
    /// Refused requests by reason (`audit::Refusal`): unknown tokens, forbidden, the anonymous
    /// limit, the disclosure limit (`disclosure_limit`)…
    pub refusals: IntCounterVec,
    /// Callbacks open (claimed ones included), read at each scrape.
    pub callbacks_open: prometheus::IntGauge,
    pub callbacks_oldest_open_age: prometheus::Gauge,
    /// Median seconds from the first missed call to the patient reached (last 7 days).
    pub callbacks_reached_median: prometheus::Gauge,
    /// The database writer threads' work, copied from `Db::writer_figures` at each scrape.
    writer: WriterMetrics,
}

/// The writer threads' totals (`db::WriterFigures`) as counters.
#[derive(Clone)]
struct WriterMetrics {
    threads: prometheus::IntGauge,
    batches: prometheus::IntCounter,
    jobs: prometheus::IntCounter,
    busy: prometheus::Counter,
    commit: prometheus::Counter,
    /// Two scrapes at once must not both add the same difference.
    updating: std::sync::Arc<std::sync::Mutex<()>>,
}

impl WriterMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let this = Self {
            threads: prometheus::IntGauge::new(
                "db_writer_threads",
                "Database writer threads: 1 on SQLite (every write), 2 on PostgreSQL (calls)",
            )?,
            batches: prometheus::IntCounter::new(
                "db_writer_batches_total",
                "Transactions of the writer threads, each holding the writes waiting when it began",
            )?,
            jobs: prometheus::IntCounter::new(
                "db_writer_jobs_total",
                "Writes done by the writer threads",
            )?,
            busy: prometheus::Counter::new(
                "db_writer_busy_seconds_total",
                "Time the writer threads spent on batches, added up over the threads",
            )?,
            commit: prometheus::Counter::new(
                "db_writer_commit_seconds_total",
                "The part of the writer threads' busy time spent committing",
            )?,
            updating: Default::default(),
        };
        registry.register(Box::new(this.threads.clone()))?;
        registry.register(Box::new(this.batches.clone()))?;
        registry.register(Box::new(this.jobs.clone()))?;
        registry.register(Box::new(this.busy.clone()))?;
        registry.register(Box::new(this.commit.clone()))?;
        Ok(this)
    }

    /// Brings the counters up to `f`, totals that only grow.
    fn set(&self, f: crate::db::WriterFigures) {
        let _one_at_a_time = self
            .updating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.threads
            .set(i64::try_from(f.threads).unwrap_or(i64::MAX));
        self.batches
            .inc_by(f.batches.saturating_sub(self.batches.get()));
        self.jobs.inc_by(f.jobs.saturating_sub(self.jobs.get()));
        self.busy
            .inc_by((f.busy_seconds - self.busy.get()).max(0.0));
        self.commit
            .inc_by((f.commit_seconds - self.commit.get()).max(0.0));
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("reprise".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route pattern",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route"],
        )?;
        let calls_logged = prometheus::IntCounter::new(
            "calls_logged_total",
            "Calls logged through the API by this process (replays not counted)",
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(calls_logged.clone()))?;
        let notification_deliveries = IntCounterVec::new(
            Opts::new(
                "notification_deliveries_total",
                "Email delivery attempts by this process, by result",
            ),
            &["result"],
        )?;
        let notifications = IntGaugeVec::new(
            Opts::new("notifications", "Notifications in the outbox by status"),
            &["status"],
        )?;
        let oldest_queued_age = prometheus::Gauge::new(
            "notifications_oldest_queued_age_seconds",
            "Age of the oldest notification still queued (0 when none is)",
        )?;
        registry.register(Box::new(notification_deliveries.clone()))?;
        registry.register(Box::new(notifications.clone()))?;
        registry.register(Box::new(oldest_queued_age.clone()))?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "refusals_total",
                "Requests refused by this process, by reason (disclosure_limit: the account \
                 was shown its patients per hour)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(refusals.clone()))?;
        let callbacks_open =
            prometheus::IntGauge::new("callbacks_open", "Callbacks open, claimed ones included")?;
        let callbacks_oldest_open_age = prometheus::Gauge::new(
            "callbacks_oldest_open_age_seconds",
            "Age of the oldest open callback since it was opened (0 when none is)",
        )?;
        let callbacks_reached_median = prometheus::Gauge::new(
            "callbacks_missed_to_reached_median_seconds",
            "Median seconds from the first missed call to the patient reached, over the \
             callbacks reached in the last 7 days (0 when none was)",
        )?;
        registry.register(Box::new(callbacks_open.clone()))?;
        registry.register(Box::new(callbacks_oldest_open_age.clone()))?;
        registry.register(Box::new(callbacks_reached_median.clone()))?;
        let writer = WriterMetrics::new(&registry)?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            calls_logged,
            notification_deliveries,
            notifications,
            oldest_queued_age,
            refusals,
            callbacks_open,
            callbacks_oldest_open_age,
            callbacks_reached_median,
            writer,
        })
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_latency
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// Sets the outbox gauges from a census of the notifications table.
    pub fn set_outbox(
        &self,
        by_status: &[(String, i64)],
        oldest_queued: Option<chrono::NaiveDateTime>,
        now: chrono::NaiveDateTime,
    ) {
        for status in ["queued", "sent", "failed"] {
            let count = by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.notifications.with_label_values(&[status]).set(count);
        }
        let age =
            oldest_queued.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        self.oldest_queued_age.set(age);
    }

    /// Sets the callback gauges: open, the oldest open's age, the median time to reach.
    pub fn set_callbacks(&self, open: i64, oldest_open_seconds: f64, median: Option<f64>) {
        self.callbacks_open.set(open);
        self.callbacks_oldest_open_age.set(oldest_open_seconds);
        self.callbacks_reached_median.set(median.unwrap_or(0.0));
    }

    /// Sets the writer threads' counters from their totals.
    pub fn set_writer(&self, figures: crate::db::WriterFigures) {
        self.writer.set(figures);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
