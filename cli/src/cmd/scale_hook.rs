//! `--scale-hook CMD`: each node action of the autoscale plugin goes to `CMD` (run by `sh -c`)
//! as JSON on its stdin, for a script that calls a cloud API. A hook runs beside the autoscale
//! loop, never holding it up, and is killed after [`HOOK_LIMIT`].

use mafalda_host::autoscale::ScaleAdvice;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// How long a scale hook may run before it is killed.
pub const HOOK_LIMIT: Duration = Duration::from_secs(30);

/// What the hook reads on its stdin.
pub fn json(advice: &ScaleAdvice) -> String {
    serde_json::to_string(advice).unwrap_or_else(|_| "{}".into())
}

/// Starts `command` for `advice` in a task of its own on `runtime`; the task returns whether it
/// succeeded.
pub fn spawn(runtime: &tokio::runtime::Handle, command: &str, advice: &ScaleAdvice) -> tokio::task::JoinHandle<bool> {
    runtime.spawn(run(command.to_owned(), json(advice)))
}

/// Runs `command` with `input` on its stdin; logs how it ended.
async fn run(command: String, input: String) -> bool {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            warn!(%error, command, "scale hook could not start");
            return false;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(error) = stdin.write_all(input.as_bytes()).await {
            warn!(%error, command, "scale hook did not take its input");
        }
    }
    match tokio::time::timeout(HOOK_LIMIT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            info!(command, "scale hook ran");
            true
        }
        Ok(Ok(status)) => {
            warn!(command, %status, "scale hook failed");
            false
        }
        Ok(Err(error)) => {
            warn!(%error, command, "scale hook failed");
            false
        }
        Err(_) => {
            warn!(command, "scale hook still running after {HOOK_LIMIT:?}; killed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mafalda_plugin_sdk::types::{Action, NodeAdvice};

    fn advice() -> ScaleAdvice {
        ScaleAdvice {
            action: Action::AddNode(NodeAdvice { region: "eu".into(), reason: "pool is full".into() }),
            from_node: "media1".into(),
            workers: 2,
            max_workers: 2,
            cpu: 0.9,
        }
    }

    #[test]
    fn the_hook_reads_the_advice_as_json() {
        let value: serde_json::Value = serde_json::from_str(&json(&advice())).expect("JSON");
        assert_eq!(value["action"], "add-node", "{value}");
        assert_eq!(value["region"], "eu");
        assert_eq!(value["from_node"], "media1");
        assert_eq!(value["workers"], 2);
        assert_eq!(value["cpu"], 0.9);
    }

    #[tokio::test]
    async fn a_slow_hook_runs_beside_its_caller_and_gets_the_json() {
        let dir = std::env::temp_dir().join(format!("mafalda-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let received = dir.join("advice.json");
        // The hook takes a second: spawning it must return at once.
        let runtime = tokio::runtime::Handle::current();
        let running = spawn(&runtime, &format!("sleep 1; cat > '{}'", received.display()), &advice());
        assert!(!received.exists(), "spawn returned before the hook finished");
        let success = tokio::time::timeout(HOOK_LIMIT, running).await.expect("bounded").expect("task");
        assert!(success);
        let written = std::fs::read_to_string(&received).expect("the hook wrote its stdin");
        assert_eq!(written, json(&advice()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failing_hook_is_reported() {
        assert!(!spawn(&tokio::runtime::Handle::current(), "exit 3", &advice()).await.expect("task"));
    }
}
