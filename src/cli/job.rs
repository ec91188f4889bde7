//! `stowage job list|show|cancel|retry|delete|wait|noop`: one job by id, or (cancel, retry,
//! delete) every job a filter matches.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError};

/// How long one long-poll request waits, in seconds.
const POLL_SECONDS: u64 = 30;

/// Which jobs: every field given must match.
#[derive(Debug, Clone, Default, Args)]
pub struct JobFilterArgs {
    /// Only this kind (SYNC, IMPORT, REENCODE, EXPIRY, NOOP; any case).
    #[arg(long)]
    kind: Option<String>,
    /// Only this status (PENDING, RUNNING, DONE, ERROR, CANCELLED; any case).
    #[arg(long)]
    status: Option<String>,
    /// Only jobs on this folder id.
    #[arg(long)]
    folder_id: Option<String>,
    /// Only jobs submitted at or after this time (RFC 3339, e.g. 2030-01-01T00:00:00Z).
    #[arg(long)]
    submitted_after: Option<String>,
    /// Only jobs submitted before this time (RFC 3339).
    #[arg(long)]
    submitted_before: Option<String>,
}

impl JobFilterArgs {
    /// The fields given, by their API names.
    fn fields(self) -> Vec<(&'static str, String)> {
        // Kinds and statuses are upper case in the API; the CLI takes them in any case, as
        // `stowage queue pause sync` does.
        [
            ("kind", self.kind.map(|k| k.to_uppercase())),
            ("status", self.status.map(|s| s.to_uppercase())),
            ("folder_id", self.folder_id),
            ("submitted_after", self.submitted_after),
            ("submitted_before", self.submitted_before),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}

/// A job verb's target: one job by id, or every job a filter matches.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Job id; leave it out and give a filter to act on every job that matches it.
    id: Option<String>,
    /// Which jobs (without an id).
    #[command(flatten)]
    filter: JobFilterArgs,
    /// With a filter: count what would be done, and do nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Job verbs.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List jobs, newest first (every page).
    List {
        /// Which jobs.
        #[command(flatten)]
        filter: JobFilterArgs,
    },
    /// Show one job.
    Show {
        /// Job id.
        id: String,
    },
    /// Cancel a job, or every job a filter matches: a pending one never starts, a running one
    /// stops at its next unit.
    Cancel {
        /// Which.
        #[command(flatten)]
        target: Target,
    },
    /// Retry a job that did not fully succeed (a new job runs what did not succeed), or every
    /// such job a filter matches.
    Retry {
        /// Which.
        #[command(flatten)]
        target: Target,
        /// With an id: wait for the new job; exits 0 on DONE, 3 on ERROR, 4 on CANCELLED.
        #[arg(long)]
        wait: bool,
    },
    /// Delete the records of the finished jobs a filter matches (admins).
    Delete {
        /// Which jobs.
        #[command(flatten)]
        filter: JobFilterArgs,
        /// Count what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Wait for a job to finish, with a progress bar on a terminal. Exits 0 on DONE, 3 on ERROR,
    /// 4 on CANCELLED.
    Wait {
        /// Job id.
        id: String,
    },
    /// Submit a no-op job (admins): checks the queue end to end.
    Noop {
        /// Units to run.
        #[arg(long, default_value_t = 1)]
        units: u32,
        /// Milliseconds each unit sleeps.
        #[arg(long, default_value_t = 0)]
        unit_millis: u64,
        /// Wait for it to finish.
        #[arg(long)]
        wait: bool,
    },
}

/// One line describing a job, tab-separated: id, kind, status, its unit counts (`done=`,
/// `error=`, `pending=`, `cancelled=`), the plain fields of its result (`created=3`, `dry_run=false`…)
/// and the jobs it started (`video_jobs=ID,ID`), then its message, if any.
fn line(job: &Value) -> String {
    let p = &job["progress"];
    let mut fields = vec![
        job["id"].as_str().unwrap_or("?").to_owned(),
        job["kind"].as_str().unwrap_or("?").to_owned(),
        job["status"].as_str().unwrap_or("?").to_owned(),
        format!("done={}", p["units_done"]),
        format!("error={}", p["units_error"]),
        format!("pending={}", p["units_pending"]),
        format!("cancelled={}", p["units_cancelled"]),
    ];
    for (key, value) in job["result"].as_object().into_iter().flatten() {
        if value.is_number() || value.is_boolean() {
            fields.push(format!("{key}={value}"));
        } else if key.ends_with("_jobs")
            && let Some(ids) = value.as_array()
        {
            // The jobs it started (an import's `video_jobs`), to follow with `job wait`.
            let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
            fields.push(format!("{key}={}", ids.join(",")));
        }
    }
    if let Some(message) = job["message"].as_str().filter(|m| !m.is_empty()) {
        fields.push(message.replace('\n', "; "));
    }
    fields.join("\t")
}

/// Writes the unit errors of `job` to standard error, one line each: an import's by their place
/// in its spec with what to do about them, any other job's by the object they were about.
fn report_errors(job: &Value) {
    if let Some(unit_errors) = job["result"]["unit_errors"].as_array() {
        for error in unit_errors {
            eprintln!(
                "error: {}: {} ({})",
                error["path"].as_str().unwrap_or("?"),
                error["error"].as_str().unwrap_or("?"),
                error["action_description"].as_str().unwrap_or("")
            );
        }
        return;
    }
    for error in job["errors"].as_array().into_iter().flatten() {
        eprintln!(
            "error: {}: {}",
            error["object"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("?")
        );
    }
}

/// Long-polls job `id` until it finishes; returns the finished job.
pub async fn wait_for(client: &Client, id: &str) -> Result<Value, ClientError> {
    // A spinner until the job knows how many units it has (a bar of 0/0 would look full).
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let mut counted = false;
    let mut version: Option<i64> = None;
    loop {
        let mut query = vec![("wait_seconds", POLL_SECONDS.to_string())];
        if let Some(v) = version {
            query.push(("since_version", v.to_string()));
        }
        let job: Value = client
            .call(Method::GET, &format!("/v1/jobs/{id}"), &query, None::<&()>)
            .await?;
        version = job["version"].as_i64();
        if let Some(bar) = &bar {
            let p = &job["progress"];
            let finished = p["units_done"].as_u64().unwrap_or(0) + p["units_error"].as_u64().unwrap_or(0);
            let total = finished + p["units_pending"].as_u64().unwrap_or(0);
            if total > 0 && !counted {
                counted = true;
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} units ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            bar.set_length(total);
            bar.set_position(finished);
            bar.set_message(format!(
                "{} {}",
                job["kind"].as_str().unwrap_or(""),
                job["status"].as_str().unwrap_or("")
            ));
        }
        if matches!(job["status"].as_str(), Some("DONE" | "ERROR" | "CANCELLED")) {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let mut job = job;
            if let Some(message) = job["message"].as_str().map(super::in_cli_terms) {
                job["message"] = Value::String(message);
            }
            return Ok(job);
        }
    }
}

/// Prints a just-submitted `job` (its line, or its JSON with `raw_json`) and, with `wait`,
/// follows it to its end first, then also writes its unit errors to standard error; exits like
/// `job wait` (success without `wait`).
pub async fn follow(client: &Client, job: &Value, wait: bool, raw_json: bool) -> Result<ExitCode, ClientError> {
    if !wait {
        super::show(job, raw_json, line);
        return Ok(ExitCode::SUCCESS);
    }
    let finished = wait_for(client, job["id"].as_str().unwrap_or_default()).await?;
    show_finished(&finished, raw_json);
    Ok(exit_code(&finished))
}

/// Prints a finished job, and (without `raw_json`) its unit errors on standard error.
fn show_finished(job: &Value, raw_json: bool) {
    super::show(job, raw_json, line);
    if !raw_json {
        report_errors(job);
    }
}

/// The exit code for a finished job: 0 DONE, 3 ERROR, 4 CANCELLED.
pub fn exit_code(job: &Value) -> ExitCode {
    match job["status"].as_str() {
        Some("DONE") => ExitCode::SUCCESS,
        Some("CANCELLED") => ExitCode::from(4),
        _ => ExitCode::from(3),
    }
}

impl Target {
    /// The one job named, or `None` for a filter; refuses both, neither, and a dry run of one.
    fn one(&self) -> Result<Option<&str>, ClientError> {
        let filtered = !self.filter.clone().fields().is_empty();
        match (&self.id, filtered) {
            (Some(_), true) => Err(ClientError::Usage("give a job id or a filter, not both".into())),
            (Some(_), false) if self.dry_run => {
                Err(ClientError::Usage("--dry-run goes with a filter, not a job id".into()))
            }
            (Some(id), false) => Ok(Some(id)),
            (None, true) => Ok(None),
            (None, false) => Err(ClientError::Usage(
                "give a job id, or a filter (--kind, --status, --folder-id, --submitted-after, --submitted-before)"
                    .into(),
            )),
        }
    }
}

/// Runs bulk `action` over the jobs `filter` matches and prints what it did: a line of counts,
/// then one line per reason it left jobs alone.
async fn bulk(
    client: &Client,
    action: &str,
    filter: JobFilterArgs,
    dry_run: bool,
    raw_json: bool,
) -> Result<(), ClientError> {
    let filter: serde_json::Map<String, Value> = filter
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    let body = json!({ "action": action, "filter": filter, "dry_run": dry_run });
    let outcome: Value = client.call(Method::POST, "/v1/jobs/bulk", &[], Some(&body)).await?;
    super::show(&outcome, raw_json, |o| {
        let mut lines = vec![format!(
            "{}{}\tmatched={}\ttouched={}",
            action,
            if dry_run { " (dry run)" } else { "" },
            o["matched"],
            o["touched"]
        )];
        for skipped in o["skipped"].as_array().into_iter().flatten() {
            lines.push(format!(
                "skipped={}\t{}",
                skipped["jobs"],
                skipped["reason"].as_str().unwrap_or("?")
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

/// Runs a job verb and prints its result.
pub async fn run(client: &Client, command: JobCommand, raw_json: bool) -> Result<ExitCode, ClientError> {
    let print = |value: &Value| super::show(value, raw_json, line);
    match command {
        JobCommand::List { filter } => {
            let mut query = vec![("page_size", "1000".to_owned())];
            query.extend(filter.fields());
            client.each_item("/v1/jobs", query, print).await?;
        }
        JobCommand::Show { id } => {
            let job: Value = client
                .call(Method::GET, &format!("/v1/jobs/{id}"), &[], None::<&()>)
                .await?;
            print(&job);
        }
        JobCommand::Cancel { target } => match target.one()? {
            Some(id) => {
                let job: Value = client
                    .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), &[], Some(&json!({})))
                    .await?;
                print(&job);
            }
            None => bulk(client, "cancel", target.filter, target.dry_run, raw_json).await?,
        },
        JobCommand::Retry { target, wait } => match target.one()? {
            Some(id) => {
                let job: Value = client
                    .call(Method::POST, &format!("/v1/jobs/{id}/retry"), &[], Some(&json!({})))
                    .await?;
                return follow(client, &job, wait, raw_json).await;
            }
            None if wait => {
                return Err(ClientError::Usage("--wait goes with a job id, not a filter".into()));
            }
            None => bulk(client, "retry", target.filter, target.dry_run, raw_json).await?,
        },
        JobCommand::Delete { filter, dry_run } => bulk(client, "delete", filter, dry_run, raw_json).await?,
        JobCommand::Wait { id } => {
            let job = wait_for(client, &id).await?;
            show_finished(&job, raw_json);
            return Ok(exit_code(&job));
        }
        JobCommand::Noop {
            units,
            unit_millis,
            wait,
        } => {
            let body = json!({ "units": units, "unit_millis": unit_millis });
            let job: Value = client.call(Method::POST, "/v1/jobs/noop", &[], Some(&body)).await?;
            return follow(client, &job, wait, raw_json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
