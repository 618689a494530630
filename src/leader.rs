//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! reconciles. Updates use the Lease's resourceVersion: two candidates cannot both win.
//! A leader that cannot renew in time exits, so it never writes after losing the Lease.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api, name: name.into(), identity: identity.into(), duration }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) -> Result<(), kube::Error> {
        loop {
            if self.try_acquire().await? {
                tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                return Ok(());
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the Lease every third of its duration; returns when it could not be renewed
    /// before it expires (the caller must stop at once).
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => return tracing::error!(lease = %self.name, "the Lease was taken over"),
                Err(e) => tracing::warn!(error = %e, "could not renew the Lease"),
            }
            // Stop a safety margin before another candidate may take the Lease.
            if last_renewal.elapsed() > self.duration * 2 / 3 {
                return tracing::error!(lease = %self.name, "could not renew the Lease in time");
            }
        }
    }

    /// Takes or renews the Lease if it is free, expired or ours. `false`: someone else holds it.
    async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expires = spec.renew_time.as_ref().map(|t| t.0).unwrap_or_default()
            + SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
        if !ours && expires > now {
            return Ok(false);
        }
        let (acquired, transitions) = if ours {
            (spec.acquire_time.map(|t| t.0).unwrap_or(now), spec.lease_transitions.unwrap_or(0))
        } else {
            (now, spec.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        // The resourceVersion we read makes this a compare-and-swap.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}
