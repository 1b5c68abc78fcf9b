//! Runs a pod's containers under its restart policy: each container gets a
//! loop that starts an instance, waits for it, and restarts it (Always,
//! OnFailure) after an exponential back-off, reporting every transition as
//! [`PodStatus`] on a watch channel.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::container::{ContainerSpec, ExitStatus, StartError};
use crate::heap::long_lived;
use crate::limits::{Usage, UsageSnapshot};
use crate::probe::{self, ProbeEvent, ProbeKind, Reporter};
use crate::runtime::Runtime;
use crate::sandbox::{self, Sandbox, SandboxSpec};

/// When a pod's containers are restarted after they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Always (Kubernetes' default).
    #[default]
    Always,
    /// Only after a non-zero exit.
    OnFailure,
    /// Never.
    Never,
}

/// Restart back-off: the first restart is immediate, later ones wait
/// `initial`, doubling up to `max`; a container that ran `reset_after`
/// without ending starts over at `initial`. Kubernetes' kubelet uses 10 s,
/// 5 min and 10 min, the defaults here; tests use milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Run time after which the delay resets.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay before restart number `restarts + 1`, given the delay used
    /// last time (`None` before the first restart).
    fn next(&self, last: Option<Duration>, ran_for: Duration) -> Duration {
        match last {
            _ if ran_for >= self.reset_after => Duration::ZERO,
            None => Duration::ZERO,
            Some(d) if d.is_zero() => self.initial,
            Some(d) => (d * 2).min(self.max),
        }
    }
}

/// A pod as the runtime runs it.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// Its sandbox (uid, name, volumes).
    pub sandbox: SandboxSpec,
    /// Init containers: run one after another, each to success (restarted
    /// on failure unless the policy is Never), before `containers` start.
    pub init_containers: Vec<ContainerSpec>,
    /// Its containers, started together.
    pub containers: Vec<ContainerSpec>,
    /// When containers are restarted.
    pub restart_policy: RestartPolicy,
    /// How restarts are spaced.
    pub backoff: Backoff,
}

/// Where one container is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running: being created, or backing off before a restart.
    Waiting {
        /// `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`,
        /// `ImagePullBackOff` or `CreateContainerError`.
        reason: String,
        /// Details for a person.
        message: Option<String>,
    },
    /// Running since then.
    Running {
        /// When the current instance started.
        started_at: jiff::Timestamp,
    },
    /// Ended and not going to be restarted (or not yet).
    Terminated(ExitStatus),
}

/// The status of one container of a pod.
#[derive(Clone)]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// Its current state.
    pub state: ContainerState,
    /// How the previous instance ended, once there was one.
    pub last_termination: Option<ExitStatus>,
    /// How many times it was restarted.
    pub restart_count: u32,
    /// The current (or last) instance's log file.
    pub log_path: Option<PathBuf>,
    /// Running and passing its readiness probe (or running without one,
    /// once started).
    pub ready: bool,
    /// Running and past its startup probe (or running without one).
    pub started: bool,
    usage: Option<Arc<Usage>>,
}

impl std::fmt::Debug for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerStatus")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("last_termination", &self.last_termination)
            .field("restart_count", &self.restart_count)
            .field("ready", &self.ready)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl ContainerStatus {
    /// CPU and memory of the current (or last) instance.
    pub fn usage(&self) -> Option<UsageSnapshot> {
        self.usage.as_ref().map(|u| u.snapshot())
    }

    /// The exit status the container ended with, if it has ended.
    pub fn terminated(&self) -> Option<&ExitStatus> {
        match &self.state {
            ContainerState::Terminated(exit) => Some(exit),
            _ => None,
        }
    }
}

/// The status of a pod's containers.
#[derive(Debug, Clone)]
pub struct PodStatus {
    /// One per init container, in spec order.
    pub init_containers: Vec<ContainerStatus>,
    /// One per container, in spec order.
    pub containers: Vec<ContainerStatus>,
    /// True once no container is running or going to run again.
    pub finished: bool,
}

/// A running pod.
pub struct PodRunner {
    sandbox: Sandbox,
    status: watch::Receiver<PodStatus>,
    probe_events: Option<mpsc::UnboundedReceiver<ProbeEvent>>,
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
}

impl std::fmt::Debug for PodRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRunner")
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

impl PodRunner {
    /// Creates the pod's sandbox and starts every container. Must be called
    /// within a tokio runtime (the supervising loops run there; the guests
    /// run on the runtime's own threads).
    pub fn start(runtime: &Runtime, spec: PodSpec) -> Result<PodRunner, sandbox::Error> {
        PodRunner::start_with(runtime, spec, |_| {})
    }

    /// Like [`PodRunner::start`], with `prepare` run on the sandbox (its
    /// volumes in place) before any container starts.
    ///
    /// What the pod holds while it runs (its sandbox, supervisors and
    /// instances) is allocated as long-lived (see [`crate::heap`]).
    pub fn start_with(
        runtime: &Runtime,
        spec: PodSpec,
        prepare: impl FnOnce(&Sandbox),
    ) -> Result<PodRunner, sandbox::Error> {
        crate::heap::long_lived_now(|| PodRunner::start_now(runtime, spec, prepare))
    }

    fn start_now(
        runtime: &Runtime,
        spec: PodSpec,
        prepare: impl FnOnce(&Sandbox),
    ) -> Result<PodRunner, sandbox::Error> {
        let sandbox = runtime.run_pod_sandbox(spec.sandbox.clone())?;
        prepare(&sandbox);
        let waiting = |containers: &[ContainerSpec], reason: &str| -> Vec<ContainerStatus> {
            containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    state: ContainerState::Waiting {
                        reason: reason.into(),
                        message: None,
                    },
                    last_termination: None,
                    restart_count: 0,
                    log_path: None,
                    ready: false,
                    started: false,
                    usage: None,
                })
                .collect()
        };
        let main_reason = if spec.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let initial = PodStatus {
            init_containers: waiting(&spec.init_containers, "PodInitializing"),
            containers: waiting(&spec.containers, main_reason),
            finished: spec.containers.is_empty(),
        };
        let (status_tx, status) = watch::channel(initial);
        let (probe_tx, probe_events) = mpsc::unbounded_channel();
        let status_tx = Arc::new(status_tx);
        let (stop, _) = watch::channel(false);
        let mut loops = JoinSet::new();
        let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(spec.containers.len()));
        let supervisor = |container: &ContainerSpec, index: usize, init: bool| Supervisor {
            sandbox: sandbox.clone(),
            spec: container.clone(),
            index,
            init,
            policy: match (init, spec.restart_policy) {
                // An init container must succeed: it is retried unless the
                // pod never restarts anything.
                (true, RestartPolicy::Never) => RestartPolicy::Never,
                (true, _) => RestartPolicy::OnFailure,
                (false, policy) => policy,
            },
            backoff: spec.backoff,
            status: Arc::clone(&status_tx),
            stop: stop.subscribe(),
            remaining: Arc::clone(&remaining),
            probe_events: probe_tx.clone(),
        };
        let main: Vec<Supervisor> = spec
            .containers
            .iter()
            .enumerate()
            .map(|(index, c)| supervisor(c, index, false))
            .collect();
        if spec.init_containers.is_empty() {
            for s in main {
                loops.spawn(long_lived(s.run()));
            }
        } else {
            let init: Vec<Supervisor> = spec
                .init_containers
                .iter()
                .enumerate()
                .map(|(index, c)| supervisor(c, index, true))
                .collect();
            let status = Arc::clone(&status_tx);
            let stopped = stop.subscribe();
            loops.spawn(long_lived(async move {
                for s in init {
                    let index = s.index;
                    s.run().await;
                    let succeeded = status.borrow().init_containers[index]
                        .terminated()
                        .is_some_and(ExitStatus::success);
                    if !succeeded || *stopped.borrow() {
                        status.send_modify(|s| s.finished = true);
                        return;
                    }
                }
                let mut set = JoinSet::new();
                for s in main {
                    set.spawn(long_lived(s.run()));
                }
                while set.join_next().await.is_some() {}
            }));
        }
        drop(probe_tx);
        Ok(PodRunner {
            sandbox,
            status,
            probe_events: Some(probe_events),
            stop,
            loops,
        })
    }

    /// The pod's sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The status now.
    pub fn status(&self) -> PodStatus {
        self.status.borrow().clone()
    }

    /// What the containers' probes report (once: later calls get `None`).
    pub fn probe_events(&mut self) -> Option<mpsc::UnboundedReceiver<ProbeEvent>> {
        self.probe_events.take()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<PodStatus> {
        self.status.clone()
    }

    /// Waits until no container is running or going to run again.
    pub async fn wait(&mut self) -> PodStatus {
        while self.loops.join_next().await.is_some() {}
        self.status()
    }

    /// Stops every container (no restarts) and waits for them.
    pub async fn stop(mut self) -> PodStatus {
        let _ = self.stop.send(true);
        self.wait().await
    }
}

struct Supervisor {
    sandbox: Sandbox,
    spec: ContainerSpec,
    index: usize,
    /// An init container (its status is in `init_containers`).
    init: bool,
    policy: RestartPolicy,
    backoff: Backoff,
    status: Arc<watch::Sender<PodStatus>>,
    stop: watch::Receiver<bool>,
    remaining: Arc<std::sync::atomic::AtomicUsize>,
    probe_events: mpsc::UnboundedSender<ProbeEvent>,
}

impl Supervisor {
    fn update(&self, f: impl FnOnce(&mut ContainerStatus)) {
        self.status.send_modify(|s| {
            let list = if self.init {
                &mut s.init_containers
            } else {
                &mut s.containers
            };
            f(&mut list[self.index])
        });
    }

    /// The probes of an instance started at `started`; resolves when one
    /// fails for good.
    fn probes(&self, started: tokio::time::Instant) -> impl Future<Output = ProbeKind> + use<> {
        let status = Arc::clone(&self.status);
        let index = self.index;
        let started_status = Arc::clone(&self.status);
        let reporter = Reporter {
            container: self.spec.name.clone(),
            events: Some(self.probe_events.clone()),
            set_ready: Box::new(move |ready| {
                status.send_if_modified(|s| {
                    let c = &mut s.containers[index];
                    let changed = c.ready != ready;
                    c.ready = ready;
                    changed
                });
            }),
            set_started: Box::new(move || {
                started_status.send_modify(|s| s.containers[index].started = true);
            }),
        };
        probe::run(
            probe::Target {
                sandbox: self.sandbox.clone(),
                spec: self.spec.clone(),
            },
            self.spec.probes.clone(),
            started,
            reporter,
        )
    }

    /// Sleeps for `delay` unless the pod is stopped first; true if stopped.
    async fn stopped_during(&mut self, delay: Duration) -> bool {
        if *self.stop.borrow() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            _ = self.stop.changed() => true,
        }
    }

    async fn run(mut self) {
        let mut restart_count = 0;
        let mut last_delay: Option<Duration> = None;
        let mut pull_delay: Option<Duration> = None;
        loop {
            if *self.stop.borrow() {
                break;
            }
            let running = match self
                .sandbox
                .start_container(&self.spec, restart_count)
                .await
            {
                Ok(running) => running,
                Err(err) => {
                    // Kubernetes keeps retrying a failed start whatever the
                    // restart policy: the container never ran.
                    let (first, later) = match err {
                        StartError::Image(_) => ("ErrImagePull", "ImagePullBackOff"),
                        _ => ("CreateContainerError", "CreateContainerError"),
                    };
                    let reason = if pull_delay.is_none() { first } else { later };
                    let message = err.to_string();
                    tracing::warn!(container = %self.spec.name, "{message}");
                    self.update(|c| {
                        c.state = ContainerState::Waiting {
                            reason: reason.into(),
                            message: Some(message),
                        }
                    });
                    let delay = self
                        .backoff
                        .next(pull_delay.or(Some(Duration::ZERO)), Duration::ZERO);
                    pull_delay = Some(delay);
                    if self.stopped_during(delay).await {
                        break;
                    }
                    continue;
                }
            };
            pull_delay = None;
            let started = Instant::now();
            let started_at = running.started_at();
            let log_path = running.log_path().to_path_buf();
            let usage = running.usage_handle();
            let probed = !self.init;
            // A container without probes is started and ready as it runs.
            let unprobed = probed && self.spec.probes.is_none();
            self.update(|c| {
                c.state = ContainerState::Running { started_at };
                c.log_path = Some(log_path);
                c.usage = Some(usage);
                c.restart_count = restart_count;
                // An init container is never "ready"; it runs to completion.
                c.started = !probed || unprobed;
                c.ready |= unprobed;
            });
            let stopper = running.stopper();
            let mut wait = Box::pin(running.wait());
            // Probing is 5.6 KB of state: held (boxed) only by a container
            // that has probes; for any other this never ends.
            let probes =
                (probed && !unprobed).then(|| Box::pin(self.probes(tokio::time::Instant::now())));
            let probes = async {
                match probes {
                    Some(probes) => probes.await,
                    None => std::future::pending().await,
                }
            };
            let (exit, stopped) = tokio::select! {
                exit = &mut wait => (exit, false),
                _ = self.stop.changed() => {
                    stopper.stop();
                    (wait.await, true)
                }
                _ = probes => {
                    // A startup or liveness probe failed for good: the
                    // instance is stopped and the restart policy decides.
                    stopper.stop();
                    (wait.await, false)
                }
            };
            self.update(|c| {
                c.ready = false;
                c.started = false;
            });
            let restart = !stopped
                && match self.policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => !exit.success(),
                    RestartPolicy::Never => false,
                };
            self.update(|c| c.state = ContainerState::Terminated(exit.clone()));
            if !restart {
                break;
            }
            let delay = self.backoff.next(last_delay, started.elapsed());
            last_delay = Some(delay);
            let name = self.spec.name.clone();
            let pod = self.sandbox.spec().name.clone();
            self.update(|c| {
                c.last_termination = Some(exit);
                if !delay.is_zero() {
                    c.state = ContainerState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {} restarting failed container={name} pod={pod}",
                            humanize(delay)
                        )),
                    };
                }
            });
            if self.stopped_during(delay).await {
                // Stopped while backing off: report the instance that ran last.
                self.update(|c| {
                    if let Some(exit) = c.last_termination.clone() {
                        c.state = ContainerState::Terminated(exit);
                    }
                });
                break;
            }
            restart_count += 1;
        }
        if !self.init
            && self
                .remaining
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
                == 1
        {
            self.status.send_modify(|s| s.finished = true);
        }
    }
}

/// "10s", "1m20s", "5m0s", as the kubelet writes back-off delays.
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_doubles_to_the_cap() {
        let b = Backoff::default();
        let run = Duration::from_secs(1);
        let mut last = None;
        let mut seen = Vec::new();
        for _ in 0..8 {
            let d = b.next(last, run);
            seen.push(d.as_secs());
            last = Some(d);
        }
        assert_eq!(seen, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            b.next(Some(Duration::from_secs(300)), Duration::from_secs(601)),
            Duration::ZERO
        );
    }

    #[test]
    fn delays_read_like_the_kubelet() {
        assert_eq!(humanize(Duration::from_secs(10)), "10s");
        assert_eq!(humanize(Duration::from_secs(80)), "1m20s");
        assert_eq!(humanize(Duration::from_millis(20)), "20ms");
    }
}
