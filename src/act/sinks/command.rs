//! The command sink: runs argv directly (no shell) with the action document on stdin and the
//! key facts in `SSFD_*` variables (beside only `PATH`, `HOME` and `LANG` from the daemon's
//! environment); exit status 0 means done (docs/actions.md#command-sink).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{printable, Outcome, SinkSettings, DETAIL_LIMIT};
use crate::act::attempt::{ActionDocument, ActionRow};
use crate::config::values;
use crate::outbound::HttpClient;
use crate::sanitize::env_value;

/// `type = "command"`: the program and its arguments, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// The program first; later elements may be empty strings.
    #[serde(deserialize_with = "read_argv")]
    pub argv: Vec<String>,
}

impl SinkSettings for CommandSettings {
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl CommandSettings {
    pub async fn attempt(
        &self,
        _client: &HttpClient,
        timeout: Duration,
        row: &ActionRow,
        doc: &ActionDocument,
    ) -> Outcome {
        run(&self.argv, timeout, row, doc).await
    }
}

fn read_argv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    values::string_list(d, |argv| match argv.first() {
        None => Err("must not be empty".to_string()),
        Some(program) if program.is_empty() => {
            Err("the program (first element) must not be empty".to_string())
        }
        Some(_) => Ok(()),
    })
}

/// How long output may keep arriving after the command exits: a background child that inherited
/// the pipes must not hold the attempt open.
const OUTPUT_GRACE: Duration = Duration::from_millis(250);

/// Variables passed through from the daemon's environment, with a default for those a command
/// cannot do without.
const PASSED_ENV: [(&str, Option<&str>); 3] = [
    (
        "PATH",
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ),
    ("HOME", None),
    ("LANG", None),
];

/// Reads a pipe to its end so the command never blocks writing, keeping the first bytes only.
async fn read_bounded<R: AsyncRead + Unpin>(mut pipe: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = DETAIL_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Kills the command's whole process group, so that whatever it started goes too. Only called
/// while the command is not yet reaped: until then its pid, which names the group, cannot have
/// been given to another process.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

pub async fn run(
    argv: &[String],
    timeout: Duration,
    row: &ActionRow,
    doc: &ActionDocument,
) -> Outcome {
    let Some((program, args)) = argv.split_first() else {
        return Outcome::failed("the command sink has an empty argv");
    };
    let mut cmd = Command::new(program);
    // Only what a command needs: the daemon's environment may hold values it has no business
    // seeing.
    cmd.env_clear();
    for (name, default) in PASSED_ENV {
        match std::env::var_os(name) {
            Some(v) => {
                cmd.env(name, v);
            }
            None => {
                if let Some(d) = default {
                    cmd.env(name, d);
                }
            }
        }
    }
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Values from a SET are one clean line each (the document on stdin has them as sent).
        .env("SSFD_SUBJECT", env_value(&doc.subject_key))
        .env(
            "SSFD_LOCAL_USER",
            env_value(doc.local_user.as_deref().unwrap_or("")),
        )
        .env("SSFD_EVENT_TYPE", env_value(&row.event_type))
        .env("SSFD_IDEMPOTENCY_KEY", env_value(&row.idempotency_key))
        .env("SSFD_STREAM_ID", &row.stream_id)
        .env("SSFD_JTI", env_value(&row.jti))
        .env("SSFD_ATTEMPT", row.attempt.to_string())
        // Its own process group, so that a timeout can end its children as well.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("cannot start {program}: {e}")),
    };
    let pid = child.id();
    let started = Instant::now();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().map(|p| tokio::spawn(read_bounded(p)));
    let stderr = child.stderr.take().map(|p| tokio::spawn(read_bounded(p)));
    let body = doc.body.clone();
    let feed = async move {
        if let Some(mut pipe) = stdin {
            // A command that does not read its input closes the pipe early; that is its right.
            let _ = pipe.write_all(&body).await;
            let _ = pipe.shutdown().await;
        }
    };
    let waited = tokio::time::timeout(timeout, async {
        let (_, status) = tokio::join!(feed, child.wait());
        status
    })
    .await;
    let status = match waited {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            kill_group(pid);
            return Outcome::failed(format!("waiting for {program} failed: {e}"));
        }
        Err(_) => {
            kill_group(pid);
            let _ = child.start_kill();
            let _ = tokio::time::timeout(OUTPUT_GRACE, child.wait()).await;
            None
        }
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    for (handle, into) in [(stdout, &mut out), (stderr, &mut err)] {
        if let Some(h) = handle {
            let abort = h.abort_handle();
            match tokio::time::timeout(OUTPUT_GRACE, h).await {
                Ok(Ok(bytes)) => *into = bytes,
                _ => abort.abort(),
            }
        }
    }
    let mut detail = match status {
        Some(s) => match s.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("ended by a signal ({s})"),
        },
        None => format!(
            "killed after the {}s timeout ({} ms)",
            timeout.as_secs_f64(),
            started.elapsed().as_millis()
        ),
    };
    for (name, bytes) in [("stdout", &out), ("stderr", &err)] {
        let text = printable(bytes);
        if !text.is_empty() {
            detail.push_str(&format!("; {name}: {text}"));
        }
    }
    match status {
        Some(s) if s.success() => Outcome::ok(detail),
        _ => Outcome::failed(detail),
    }
}
