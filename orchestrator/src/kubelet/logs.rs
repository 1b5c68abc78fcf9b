//! `pods/log`: a container's log file (its current or previous instance)
//! read back in Kubernetes' options, and followed as it grows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;
use wasmkube_runtime::logs::{LogRecord, parse_line, read_log};

use super::Kubelet;
use crate::api::PodLogs;
use crate::api::objects::{LogOptions, LogStream};
use crate::registry::{Error, Result};

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The instance numbers with a log file, ascending.
fn instances(dir: &Path) -> Vec<u32> {
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.strip_suffix(".log")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    numbers.sort();
    numbers
}

/// The instance `--previous` shows, of those whose logs are kept: the one
/// before the newest, once the container has restarted. The status read
/// may lag a restart that has already begun (and pruned the instance its
/// count points before).
fn previous_instance(numbers: &[u32], restarts: u32) -> Option<u32> {
    (restarts > 0)
        .then(|| numbers.iter().rev().nth(1).copied())
        .flatten()
}

fn render(record: &LogRecord, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(record.timestamp.to_string().as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(record.content.as_bytes());
    if record.complete {
        out.push(b'\n');
    }
}

fn container_state<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c.get("state"))
}

impl PodLogs for Kubelet {
    fn logs(&self, pod: &Value, options: LogOptions) -> Result<LogStream> {
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let dir = self
            .pods_dir
            .join(uid)
            .join("logs")
            .join(&options.container);
        let numbers = instances(&dir);
        let path: PathBuf = if options.previous {
            let restarts = pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["name"] == options.container.as_str()))
                .and_then(|c| c["restartCount"].as_u64())
                .unwrap_or(0) as u32;
            match previous_instance(&numbers, restarts) {
                Some(n) => dir.join(format!("{n}.log")),
                None => {
                    return Err(Error::BadRequest(format!(
                        "previous terminated container {:?} in pod {name:?} not found",
                        options.container
                    )));
                }
            }
        } else {
            match numbers.last() {
                Some(n) => dir.join(format!("{n}.log")),
                None => {
                    if let Some(waiting) =
                        container_state(pod, &options.container).and_then(|s| s.get("waiting"))
                    {
                        let reason = waiting
                            .get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or("ContainerCreating");
                        return Err(Error::BadRequest(format!(
                            "container {:?} in pod {name:?} is waiting to start: {}",
                            options.container,
                            match reason {
                                "ErrImagePull" | "ImagePullBackOff" =>
                                    "trying and failing to pull image".to_string(),
                                other => other.to_string(),
                            }
                        )));
                    }
                    dir.join("0.log")
                }
            }
        };
        let mut records = read_log(&path)
            .map_err(|e| Error::Internal(format!("reading {}: {e}", path.display())))?;
        if let Some(since) = options.since_seconds {
            let cutoff = jiff::Timestamp::now().as_second() - since;
            records.retain(|r| r.timestamp.as_second() >= cutoff);
        }
        if let Some(tail) = options.tail_lines {
            let skip = records.len().saturating_sub(tail);
            records.drain(..skip);
        }
        let mut first = Vec::new();
        for record in &records {
            render(record, options.timestamps, &mut first);
        }
        if let Some(limit) = options.limit_bytes {
            first.truncate(limit);
        }
        if !options.follow || options.previous {
            return Ok(Box::pin(futures::stream::once(async move {
                Bytes::from(first)
            })));
        }
        // Follow: the file from where the first read ended, until the
        // container is no longer running and nothing more was written.
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let registry = self.registry.clone();
        let namespace = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
        let container = options.container.clone();
        let timestamps = options.timestamps;
        tokio::spawn(async move {
            if !first.is_empty() && sender.send(Bytes::from(first)).await.is_err() {
                return;
            }
            let mut offset = offset;
            let mut partial = String::new();
            let pods = registry.resource("", "Pod");
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = sender.closed() => return,
                }
                let grown = read_from(&path, &mut offset, &mut partial);
                let mut out = Vec::new();
                for record in &grown {
                    render(record, timestamps, &mut out);
                }
                if !out.is_empty() {
                    if sender.send(Bytes::from(out)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let running = registry
                    .find(&pods, namespace.as_deref(), &name)
                    .ok()
                    .flatten()
                    .and_then(|p| {
                        container_state(&p, &container).map(|s| s.get("running").is_some())
                    })
                    .unwrap_or(false);
                if !running {
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }
}

/// Records appended to `path` since `offset` (advanced past them).
fn read_from(path: &Path, offset: &mut u64, partial: &mut String) -> Vec<LogRecord> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < *offset {
        // Rotated: start over on the new file.
        *offset = 0;
    }
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    *offset += text.len() as u64;
    partial.push_str(&text);
    let mut records = Vec::new();
    while let Some(end) = partial.find('\n') {
        let line: String = partial.drain(..=end).collect();
        if let Some(record) = parse_line(line.trim_end_matches('\n')) {
            records.push(record);
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::previous_instance;

    #[test]
    fn previous_is_the_instance_before_the_newest_kept() {
        // Status says 3 restarts, logs 2 and 3 are kept.
        assert_eq!(previous_instance(&[2, 3], 3), Some(2));
        // A restart begun before the status caught up: 2 is pruned, 3 is
        // the one that just ended, 4 runs.
        assert_eq!(previous_instance(&[3, 4], 3), Some(3));
        assert_eq!(previous_instance(&[0], 0), None);
        assert_eq!(previous_instance(&[0, 1], 0), None);
    }
}
