//! The NOOP job: sleeps through its units. Operators use it to check the queue end to end; the
//! tests use it to exercise cancel, retries, crashes and long polling.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Runner;
use super::context::{JobContext, JobFailure};

/// Parameters of a NOOP job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopParams {
    /// How many units to run (at most 1,000,000).
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub units: u32,
    /// How long each unit sleeps, in milliseconds (at most 60,000).
    #[serde(default)]
    #[schema(maximum = 60_000)]
    pub unit_millis: u64,
    /// Fail this many attempts before succeeding (to exercise retries; at most 100).
    #[serde(default)]
    #[schema(maximum = 100)]
    pub fail_attempts: u32,
}

impl NoopParams {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.units > 1_000_000 {
            return Err(format!("units must be at most 1000000, got {}", self.units));
        }
        if self.unit_millis > 60_000 {
            return Err(format!("unit_millis must be at most 60000, got {}", self.unit_millis));
        }
        if self.fail_attempts > 100 {
            return Err(format!("fail_attempts must be at most 100, got {}", self.fail_attempts));
        }
        Ok(())
    }
}

/// Runs NOOP jobs.
pub struct NoopRunner;

impl Runner for NoopRunner {
    fn run<'a>(&'a self, ctx: &'a mut JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(async move {
            let params: NoopParams = ctx.params()?;
            let attempt = ctx.job().attempts;
            ctx.add_pending(i64::from(params.units));
            for done in 0..params.units {
                ctx.checkpoint().await?;
                tokio::time::sleep(Duration::from_millis(params.unit_millis)).await;
                ctx.done(1);
                ctx.set_result(
                    serde_json::json!({ "units_slept": done + 1, "attempt": attempt, "pid": std::process::id() }),
                );
            }
            if attempt <= i64::from(params.fail_attempts) {
                return Err(JobFailure::Retryable(format!(
                    "failing attempt {attempt} on purpose (fail_attempts = {})",
                    params.fail_attempts
                )));
            }
            Ok(serde_json::json!({ "units_slept": params.units, "attempt": attempt, "pid": std::process::id() }))
        })
    }
}
