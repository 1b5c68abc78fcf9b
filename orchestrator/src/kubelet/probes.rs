//! A container's probes in the runtime's terms: named ports resolved, the
//! API's seconds turned into durations, and what cannot run yet refused
//! with the field that asks for it.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, Probe as ApiProbe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use wasmkube_runtime::{HttpGet, Probe, ProbeAction, Probes};

/// (field, message) of a probe wasmkube cannot run.
pub(super) type Refusal = (String, String);

/// The probes of container `c`, whose spec is at `field`.
pub(super) fn translate(c: &Container, field: &str) -> Result<Probes, Refusal> {
    let one = |probe: &Option<ApiProbe>, name: &str| -> Result<Option<Probe>, Refusal> {
        probe
            .as_ref()
            .map(|p| translate_one(c, p, &format!("{field}.{name}")))
            .transpose()
    };
    Ok(Probes {
        startup: one(&c.startup_probe, "startupProbe")?,
        liveness: one(&c.liveness_probe, "livenessProbe")?,
        readiness: one(&c.readiness_probe, "readinessProbe")?,
    })
}

fn translate_one(c: &Container, probe: &ApiProbe, field: &str) -> Result<Probe, Refusal> {
    let action = if probe.grpc.is_some() {
        return Err((
            format!("{field}.grpc"),
            "gRPC probes are not supported yet; use httpGet, tcpSocket or exec".into(),
        ));
    } else {
        action(
            c,
            Handlers {
                http_get: probe.http_get.as_ref(),
                tcp_socket: probe.tcp_socket.as_ref(),
                exec: probe.exec.as_ref(),
            },
            field,
        )?
        .ok_or_else(|| {
            (
                field.to_string(),
                "a probe needs one of httpGet, tcpSocket or exec".into(),
            )
        })?
    };
    let seconds = |value: Option<i32>, default: u64| {
        Duration::from_secs(value.map_or(default, |v| v.max(0) as u64))
    };
    Ok(Probe {
        action,
        initial_delay: seconds(probe.initial_delay_seconds, 0),
        period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: probe.success_threshold.map_or(1, |v| v.max(1) as u32),
        failure_threshold: probe.failure_threshold.map_or(3, |v| v.max(1) as u32),
    })
}

/// The handlers a probe or lifecycle hook may have.
pub(super) struct Handlers<'a> {
    pub(super) http_get: Option<&'a HTTPGetAction>,
    pub(super) tcp_socket: Option<&'a TCPSocketAction>,
    pub(super) exec: Option<&'a ExecAction>,
}

/// The action of the first handler given, if any.
pub(super) fn action(
    c: &Container,
    handlers: Handlers<'_>,
    field: &str,
) -> Result<Option<ProbeAction>, Refusal> {
    if let Some(get) = handlers.http_get {
        if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
            return Err((
                format!("{field}.httpGet.scheme"),
                "only HTTP is supported; HTTPS is not yet".into(),
            ));
        }
        return Ok(Some(ProbeAction::HttpGet(HttpGet {
            port: port(c, &get.port, &format!("{field}.httpGet.port"))?,
            path: get.path.clone().unwrap_or_default(),
            host: get.host.clone().filter(|h| !h.is_empty()),
            headers: get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        })));
    }
    if let Some(tcp) = handlers.tcp_socket {
        return Ok(Some(ProbeAction::TcpSocket {
            port: port(c, &tcp.port, &format!("{field}.tcpSocket.port"))?,
        }));
    }
    if let Some(exec) = handlers.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err((
                format!("{field}.exec.command"),
                "Required value: must specify a command".into(),
            ));
        }
        return Ok(Some(ProbeAction::Exec { command }));
    }
    Ok(None)
}

/// A port by number, or by the name of one of the container's ports.
fn port(c: &Container, port: &IntOrString, field: &str) -> Result<u16, Refusal> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| (field.to_string(), format!("invalid port {n}"))),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                (
                    field.to_string(),
                    format!("the container has no port named {name:?}"),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn probes_keep_kubernetes_defaults_and_resolve_named_ports() {
        let c = container(
            r#"
name: web
ports: [{name: http, containerPort: 8080}]
readinessProbe: {httpGet: {path: /ready, port: http, httpHeaders: [{name: X, value: "1"}]}, initialDelaySeconds: 5, failureThreshold: 1}
livenessProbe: {tcpSocket: {port: 8080}}
"#,
        );
        let probes = translate(&c, "spec.containers[0]").unwrap();
        let readiness = probes.readiness.unwrap();
        assert_eq!(
            readiness.action,
            ProbeAction::HttpGet(HttpGet {
                port: 8080,
                path: "/ready".into(),
                host: None,
                headers: vec![("X".into(), "1".into())],
            })
        );
        assert_eq!(readiness.initial_delay, Duration::from_secs(5));
        assert_eq!(readiness.failure_threshold, 1);
        let liveness = probes.liveness.unwrap();
        assert_eq!(liveness.action, ProbeAction::TcpSocket { port: 8080 });
        assert_eq!(liveness.period, Duration::from_secs(10));
        assert_eq!(liveness.timeout, Duration::from_secs(1));
        assert_eq!(
            (liveness.success_threshold, liveness.failure_threshold),
            (1, 3)
        );
        assert!(probes.startup.is_none());
    }

    #[test]
    fn what_cannot_run_names_its_field() {
        let c = container("name: web\nlivenessProbe: {httpGet: {port: web}}");
        assert_eq!(
            translate(&c, "spec.containers[0]").unwrap_err(),
            (
                "spec.containers[0].livenessProbe.httpGet.port".into(),
                "the container has no port named \"web\"".into()
            )
        );
        let c = container("name: web\nlivenessProbe: {grpc: {port: 9000}}");
        assert_eq!(
            translate(&c, "spec.containers[0]").unwrap_err().0,
            "spec.containers[0].livenessProbe.grpc"
        );
        let c = container("name: web\nlivenessProbe: {exec: {command: [ls, index.html]}}");
        assert_eq!(
            translate(&c, "spec.containers[0]")
                .unwrap()
                .liveness
                .unwrap()
                .action,
            ProbeAction::Exec {
                command: vec!["ls".into(), "index.html".into()]
            }
        );
    }
}
