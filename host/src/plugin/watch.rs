//! Hot reload: on SIGHUP (wired by the binary) or, opt-in, when a plugin file changes on disk.
//! The watcher polls the files' size and modification time; a change reloads the whole set
//! (each plugin compiles off to the side and swaps in; a broken file keeps the old plugin).

use super::set::PluginSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Stops the watcher when dropped.
#[derive(Debug)]
pub struct WatchGuard {
    running: Arc<AtomicBool>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

fn fingerprint(files: &[PathBuf]) -> Vec<Option<(u64, SystemTime)>> {
    files.iter().map(|file| std::fs::metadata(file).ok().and_then(|m| Some((m.len(), m.modified().ok()?)))).collect()
}

/// Reloads `set` whenever one of its files changes, checking every `every`.
pub fn watch(set: PluginSet, every: Duration) -> std::io::Result<WatchGuard> {
    let running = Arc::new(AtomicBool::new(true));
    let files = set.sources();
    // Taken before returning, so a change made right after `watch` returns is seen.
    let mut last = fingerprint(&files);
    let flag = Arc::clone(&running);
    std::thread::Builder::new().name("mafalda-plugin-watch".into()).spawn(move || {
        while flag.load(Ordering::Relaxed) {
            std::thread::sleep(every);
            let now = fingerprint(&files);
            if now != last {
                tracing::info!("plugin file changed; reloading");
                set.reload();
                last = now;
            }
        }
    })?;
    Ok(WatchGuard { running })
}
