//! Leader election on a `coordination.k8s.io` Lease, so that of several replicas exactly one
//! reconciles, and another takes over when it dies.
//!
//! As in client-go, expiry is judged by when this replica last saw the lease change, not by the
//! timestamps in it, so clocks that disagree between nodes do not matter.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Who this replica is (its pod name, usually).
    pub identity: String,
    /// How long a leader that stops renewing keeps the lease.
    pub duration: Duration,
    /// How often the leader renews, and how often the others try to take over.
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(name: &str, namespace: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// What this replica last saw of the lease, and when.
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    at: Instant,
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Observed,
}

impl Elector {
    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs().max(1) as i32),
            acquire_time: acquired.or_else(|| Some(now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the lease. True when this replica holds it afterwards.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "cannot read the leader lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return self
                .api
                .create(&PostParams::default(), &lease)
                .await
                .is_ok();
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Some((spec.holder_identity.clone(), spec.renew_time.clone()));
        if record != self.observed.record {
            self.observed = Observed {
                record,
                at: Instant::now(),
            };
        }
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.config.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .map_or(self.config.duration, |s| {
                Duration::from_secs(s.max(0) as u64)
            });
        if !mine && holder.is_some() && self.observed.at.elapsed() < duration {
            return false;
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(transitions, acquired));
        // A replace carries the resourceVersion read: of two replicas racing, one gets a 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed.at = Instant::now();
                true
            }
            Err(_) => false,
        }
    }

    /// How long one try may take: a request that hangs counts as a failed renewal.
    fn attempt_limit(&self) -> Duration {
        self.config.retry.max(Duration::from_secs(1))
    }

    async fn attempt(&mut self) -> bool {
        let limit = self.attempt_limit();
        tokio::time::timeout(limit, self.try_acquire_or_renew())
            .await
            .unwrap_or(false)
    }

    /// Gives the lease up, so that another replica need not wait for it to expire. A renewal
    /// cut short may still land first and make the lease newer than read: read it again.
    async fn release(&self) {
        for _ in 0..3 {
            let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
                return;
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return;
            }
            spec.holder_identity = None;
            let released = self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await;
            if !matches!(released, Err(kube::Error::Api(ref status)) if status.code == 409) {
                return;
            }
        }
    }
}

/// Runs `work` while this replica holds the lease, starting it anew each time it becomes
/// leader. When renewing fails for longer than the lease lasts, `work` is dropped (stopping
/// everything it started) and this replica waits its turn again. Returns when `work` does or
/// `shutdown` completes, after giving the lease up so that a standby takes over at once.
pub async fn run_while_leading<F, Fut>(
    client: Client,
    config: LeaseConfig,
    mut work: F,
    shutdown: impl Future<Output = ()>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        observed: Observed {
            record: None,
            at: Instant::now(),
        },
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let acquire = async {
            while !elector.attempt().await {
                tokio::time::sleep(elector.config.retry).await;
            }
        };
        let stopping = tokio::select! {
            () = acquire => false,
            () = &mut shutdown => true,
        };
        if stopping {
            // Still named holder after losing the lease (renewals failing, e.g. under load):
            // let it go too. A no-op when another replica holds it.
            elector.release().await;
            return;
        }
        tracing::info!(identity = %elector.config.identity, lease = %elector.config.name, "leading");
        let holding = async {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(elector.config.retry).await;
                if elector.attempt().await {
                    renewed = Instant::now();
                } else if renewed.elapsed() + 2 * elector.config.retry + elector.attempt_limit()
                    >= elector.config.duration
                {
                    // Stop before the lease can expire: the next check comes at most a sleep
                    // and a bounded try later, so two leaders never overlap.
                    return;
                }
            }
        };
        let lost = tokio::select! {
            () = work() => false,
            () = &mut shutdown => false,
            () = holding => true,
        };
        if !lost {
            elector.release().await;
            return;
        }
        tracing::warn!(identity = %elector.config.identity, "lost the lease: stopped reconciling");
    }
}
