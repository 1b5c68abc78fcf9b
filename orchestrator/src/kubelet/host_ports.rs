//! `hostPort`: a container port published on the host. Each connection to
//! the host port is carried into the pod's network, as the kubelet's port
//! mapping does.

use k8s_openapi::api::core::v1::Pod;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wasmkube_runtime::Sandbox;

/// A host port that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("pod {pod:?}: hostPort {addr} for containerPort {container_port}: {source}")]
pub struct Error {
    /// The pod.
    pub pod: String,
    /// The host address.
    pub addr: SocketAddr,
    /// The pod port it maps to.
    pub container_port: u16,
    /// Why it could not be opened.
    #[source]
    pub source: std::io::Error,
}

/// The open host ports of a pod; closed when dropped.
#[derive(Debug, Default)]
pub struct HostPorts {
    /// The accept loops; aborted when this is dropped.
    tasks: JoinSet<()>,
}

/// The (host address, container port) pairs a Pod asks for (TCP only).
pub fn requested(pod: &Pod) -> Vec<(SocketAddr, u16)> {
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    containers
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p != 0)?;
            let ip: IpAddr = p
                .host_ip
                .as_deref()
                .and_then(|ip| ip.parse().ok())
                .unwrap_or(IpAddr::from([0, 0, 0, 0]));
            Some((
                SocketAddr::new(ip, host_port),
                u16::try_from(p.container_port).ok()?,
            ))
        })
        .collect()
}

/// Opens the host ports of a pod whose sandbox is `sandbox`.
pub async fn publish(
    pod_name: &str,
    sandbox: &Sandbox,
    ports: &[(SocketAddr, u16)],
) -> Result<HostPorts, Error> {
    let mut open = HostPorts::default();
    for &(addr, container_port) in ports {
        let listener = TcpListener::bind(addr).await.map_err(|source| Error {
            pod: pod_name.to_string(),
            addr,
            container_port,
            source,
        })?;
        let net = std::sync::Arc::clone(sandbox.net());
        open.tasks.spawn(async move {
            loop {
                let (mut client, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, most likely: breathe, retry.
                        tracing::warn!("hostPort {container_port}: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Nothing listening in the pod, or the pod's network
                // policy drops the client: the connection is closed.
                let Ok(mut conn) = net.dial_for(peer.ip(), container_port) else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut conn).await;
                });
            }
        });
    }
    Ok(open)
}
