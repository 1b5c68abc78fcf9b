//! Host ports of Services (node ports and load balancer ports): a TCP
//! listener on the host per port, each connection carried to the Service
//! address inside the cluster network, where it is balanced over the
//! endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wasmkube_runtime::net::ClusterNet;

/// Each direction's copy buffer of a Service connection.
const COPY_BUFFER: usize = 32 * 1024;

/// One open host port.
struct Listener {
    /// The Service address (cluster IP and port) it forwards to; changed
    /// in place when the Service changes.
    target: Arc<RwLock<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The open host ports, by host address.
#[derive(Default)]
pub(super) struct Listeners {
    open: HashMap<SocketAddr, Listener>,
}

impl Listeners {
    /// Opens the ports of `wanted` not open yet, retargets those that are,
    /// and closes the rest. Returns the ports that could not be opened,
    /// with why.
    pub(super) async fn sync(
        &mut self,
        cluster: &Arc<ClusterNet>,
        wanted: &HashMap<SocketAddr, SocketAddr>,
    ) -> Vec<(SocketAddr, std::io::Error)> {
        self.open.retain(|host, _| wanted.contains_key(host));
        let mut failed = Vec::new();
        for (&host, &target) in wanted {
            if let Some(open) = self.open.get(&host) {
                *open.target.write().unwrap_or_else(|e| e.into_inner()) = target;
                continue;
            }
            match TcpListener::bind(host).await {
                Ok(listener) => {
                    let target = Arc::new(RwLock::new(target));
                    let task =
                        tokio::spawn(serve(listener, Arc::clone(cluster), Arc::clone(&target)));
                    self.open.insert(host, Listener { target, task });
                }
                Err(e) => failed.push((host, e)),
            }
        }
        failed
    }

    /// Whether `host` is open.
    pub(super) fn is_open(&self, host: &SocketAddr) -> bool {
        self.open.contains_key(host)
    }
}

async fn serve(listener: TcpListener, cluster: Arc<ClusterNet>, target: Arc<RwLock<SocketAddr>>) {
    loop {
        let (mut client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: breathe, retry.
                tracing::warn!("service port {:?}: accept: {e}", listener.local_addr());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let to = *target.read().unwrap_or_else(|e| e.into_inner());
        // No ready endpoint, or the endpoint's network policy drops the
        // client: the connection is closed.
        let Ok(mut conn) = cluster.dial_for(peer.ip(), to) else {
            continue;
        };
        tokio::spawn(async move {
            // Bulk transfers move in 32 KiB writes rather than tokio's
            // default 8 KiB: about 1.6x the throughput (bench `debugging`),
            // for 48 KiB more per connection.
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut conn,
                COPY_BUFFER,
                COPY_BUFFER,
            )
            .await;
        });
    }
}
