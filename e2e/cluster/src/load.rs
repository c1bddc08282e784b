//! An acks=all, idempotent rdkafka producer writing unique values at a steady rate on its
//! own thread, recording every send's outcome into a [`History`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::error::{HarnessError, Result};
use crate::history::{value_for, History, Outcome, SendRecord};
use crate::wait::wait_until;

/// How the load generator produces.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Appears in every value (`p<producer>-<seq>`); unique per scenario.
    pub producer: u32,
    pub rate_per_sec: u32,
    /// Sends go round-robin to partitions `0..partitions`, explicitly chosen.
    pub partitions: i32,
    /// Extra librdkafka settings; they override the defaults below.
    pub client_config: Vec<(String, String)>,
}

impl LoadOptions {
    pub fn new(producer: u32, rate_per_sec: u32, partitions: i32) -> LoadOptions {
        LoadOptions {
            producer,
            rate_per_sec,
            partitions,
            client_config: Vec::new(),
        }
    }

    pub fn with_client_config(mut self, key: &str, value: &str) -> LoadOptions {
        self.client_config.push((key.into(), value.into()));
        self
    }

    /// Every pair of `settings`, after those already given.
    pub fn with_client_settings(
        mut self,
        settings: &crate::client_config::Settings,
    ) -> LoadOptions {
        self.client_config.extend_from_slice(settings);
        self
    }
}

#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

pub struct LoadGenerator {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<Result<History>>>,
}

/// Long enough to ride out a leader election, short enough that `stop` ends promptly.
const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "30000";
const TICK: Duration = Duration::from_millis(10);

impl LoadGenerator {
    pub fn start(bootstrap: &str, topic: &str, options: LoadOptions) -> Result<LoadGenerator> {
        let mut config = crate::security::client_config(bootstrap);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS)
            .set("client.id", format!("strom-e2e-load-p{}", options.producer));
        let producer: FutureProducer =
            crate::client_config::apply(&mut config, &options.client_config).create()?;
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let thread = {
            let stop = stop.clone();
            let progress = progress.clone();
            let topic = topic.to_string();
            std::thread::Builder::new()
                .name(format!("load-p{}", options.producer))
                .spawn(move || run(producer, &topic, &options, &stop, &progress))
                .map_err(|e| HarnessError::io("spawn load generator thread", e))?
        };
        Ok(LoadGenerator {
            stop,
            progress,
            thread: Some(thread),
        })
    }

    pub fn sent(&self) -> u64 {
        self.progress.sent.load(Ordering::Relaxed)
    }

    pub fn acked(&self) -> u64 {
        self.progress.acked.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.progress.failed.load(Ordering::Relaxed)
    }

    /// Waits until `more` acknowledgements beyond the current count arrived: proof that
    /// the cluster accepts acks=all writes at this point of a scenario.
    pub fn wait_more_acks(&self, more: u64, timeout: Duration) -> Result<()> {
        let target = self.acked() + more;
        wait_until(&format!("{target} acknowledged writes"), timeout, || {
            let acked = self.acked();
            if acked >= target {
                Ok(())
            } else {
                Err(format!(
                    "{acked} acked, {} failed, {} sent",
                    self.failed(),
                    self.sent()
                ))
            }
        })
    }

    /// Stops sending, waits for every outstanding delivery report, returns the history.
    pub fn stop(mut self) -> Result<History> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| HarnessError::Protocol("load generator thread panicked".into()))?,
            None => Ok(History::default()),
        }
    }
}

impl Drop for LoadGenerator {
    /// Only signals: joining could wait out message.timeout.ms while a test is unwinding.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(
    producer: FutureProducer,
    topic: &str,
    options: &LoadOptions,
    stop: &AtomicBool,
    progress: &Arc<Progress>,
) -> Result<History> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| HarnessError::io("load generator runtime", e))?;
    let records: Arc<Mutex<Vec<SendRecord>>> = Arc::default();
    runtime.block_on(async {
        let mut deliveries = tokio::task::JoinSet::new();
        let started = Instant::now();
        let mut seq: u64 = 0;
        let partitions = options.partitions.max(1) as u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * options.rate_per_sec as f64) as u64;
            while seq < due {
                let partition = (seq % partitions) as i32;
                let value = value_for(options.producer, seq);
                let record = FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(value.as_bytes());
                let mut send = SendRecord {
                    producer: options.producer,
                    seq,
                    partition,
                    value: value.clone(),
                    outcome: Outcome::Failed {
                        error: "no delivery report".into(),
                    },
                };
                progress.sent.fetch_add(1, Ordering::Relaxed);
                match producer.send_result(record) {
                    Ok(delivery) => {
                        let records = records.clone();
                        let progress = progress.clone();
                        deliveries.spawn(async move {
                            send.outcome = match delivery.await {
                                Ok(Ok(d)) => {
                                    progress.acked.fetch_add(1, Ordering::Relaxed);
                                    Outcome::Acked {
                                        offset: (d.offset >= 0).then_some(d.offset),
                                    }
                                }
                                Ok(Err((e, _))) => {
                                    progress.failed.fetch_add(1, Ordering::Relaxed);
                                    Outcome::Failed {
                                        error: e.to_string(),
                                    }
                                }
                                Err(_) => {
                                    progress.failed.fetch_add(1, Ordering::Relaxed);
                                    Outcome::Failed {
                                        error: "delivery report channel closed".into(),
                                    }
                                }
                            };
                            push(&records, send);
                        });
                    }
                    Err((e, _)) => {
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                        send.outcome = Outcome::Failed {
                            error: format!("not queued: {e}"),
                        };
                        push(&records, send);
                    }
                }
                seq += 1;
            }
            // Reap finished report tasks so the set stays small.
            while deliveries.try_join_next().is_some() {}
            tokio::time::sleep(TICK).await;
        }
        while deliveries.join_next().await.is_some() {}
    });
    let _ = producer.flush(Duration::from_secs(5));
    let mut sends = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    sends.sort_by_key(|s| s.seq);
    Ok(History::new(sends))
}

fn push(records: &Mutex<Vec<SendRecord>>, send: SendRecord) {
    records.lock().unwrap_or_else(|e| e.into_inner()).push(send);
}
