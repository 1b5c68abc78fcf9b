//! Containers whose image is a `wasi:http/proxy` component (it exports
//! `wasi:http/incoming-handler` instead of `wasi:cli/run`): the container
//! serves HTTP/1.1 on its declared ports (8080 when it declares none, as
//! `wasmtime serve` does) inside the pod's network, so Services, probes
//! and pod mates reach it like any other pod port.
//!
//! Each request gets an instance of its own from the pre-instantiated
//! component, allocated from the handlers' pool (see `engine`), in a store with the container's memory limit, its share of
//! the container's CPU quota and its kill switch; what the guest prints
//! goes to the container's log. The container runs until it is stopped.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::container::{Accounts, ContainerSpec, GuestState, Launched, StartError};
use crate::exit::exit_status;
use crate::images::Image;
use crate::limits::CpuMetered;
use crate::logs::{LogOutput, LogSink, Stream};
use crate::net::PodConnection;
use crate::sandbox::Sandbox;

/// The port served when the container declares none.
pub const DEFAULT_PORT: u16 = 8080;

/// What a serving container is made of.
pub(crate) struct Setup {
    pub(crate) spec: ContainerSpec,
    pub(crate) image: Image,
    pub(crate) argv: Vec<String>,
    pub(crate) rootfs: PathBuf,
    pub(crate) sink: Arc<LogSink>,
}

/// One serving container: everything a request needs.
struct Server {
    sandbox: Sandbox,
    setup: Setup,
    pre: ProxyPre<GuestState>,
    accounts: Accounts,
    /// Turns true when the container stops: open connections close.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl Sandbox {
    /// Starts serving `pre` on the container's ports.
    pub(crate) fn serve(
        &self,
        setup: Setup,
        pre: ProxyPre<GuestState>,
    ) -> Result<Launched, StartError> {
        let spec = &setup.spec;
        let ports = if spec.ports.is_empty() {
            vec![DEFAULT_PORT]
        } else {
            spec.ports.clone()
        };
        let mut listeners = Vec::new();
        for &port in &ports {
            if !self.net.claim(port) {
                for &(claimed, _) in &listeners {
                    self.net.release(claimed);
                }
                return Err(StartError::Invalid {
                    container: spec.name.clone(),
                    message: format!("port {port} is already in use in the pod"),
                });
            }
            listeners.push((port, self.net.listen(port)));
        }
        let accounts = self.accounts(spec);
        let usage = Arc::clone(&accounts.usage);
        // The handlers are instances of one process, as the server's
        // worker threads are of one on Linux.
        let process = self.enter_process(spec, &setup.argv, false, &usage);
        let kill = Arc::clone(&accounts.kill);
        let memory_limit = spec.limits.memory_bytes;
        let server = Arc::new(Server {
            sandbox: self.clone(),
            setup,
            pre,
            accounts,
            stopped: tokio::sync::watch::Sender::new(false),
        });
        let started_at = jiff::Timestamp::now();
        let running = self.runtime.engine().guest_running();
        let net = Arc::clone(&self.net);
        let task = self.runtime.spawn_guest(async move {
            let _running = (running, process);
            let mut accepting = tokio::task::JoinSet::new();
            for (_, mut incoming) in listeners {
                let server = Arc::clone(&server);
                accepting.spawn(async move {
                    while let Some((end, _peer)) = incoming.recv().await {
                        let server = Arc::clone(&server);
                        tokio::spawn(
                            async move { server.connection(PodConnection::new(end)).await },
                        );
                    }
                });
            }
            server.accounts.kill.killed().await;
            accepting.abort_all();
            server.stopped.send_replace(true);
            for port in ports {
                net.release(port);
            }
            server.setup.sink.finish();
            exit_status(
                Err(wasmtime::Error::msg("container stopped")),
                &server.accounts.usage,
                true,
                memory_limit,
                started_at,
            )
        });
        Ok(Launched {
            started_at,
            usage,
            kill,
            task,
        })
    }
}

impl Server {
    /// Serves the requests of one connection, one after another.
    async fn connection(self: Arc<Self>, stream: PodConnection) {
        let server = Arc::clone(&self);
        let service = hyper::service::service_fn(move |request| {
            let server = Arc::clone(&server);
            async move { server.request(request).await }
        });
        let serving = http1::Builder::new()
            .keep_alive(true)
            // A client that shuts its sending side after the request (as
            // `nc` does) still gets the answer.
            .half_close(true)
            .serve_connection(TokioIo::new(stream), service);
        let mut stopped = self.stopped.subscribe();
        tokio::select! {
            _ = serving => {}
            _ = stopped.wait_for(|stopped| *stopped) => {}
        }
    }

    /// Runs one request in an instance of its own.
    async fn request(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
        match self.handle(request).await {
            Ok(response) => Ok(response),
            Err(e) => Ok(failure(&format!("{e:#}"))),
        }
    }

    async fn handle(
        &self,
        mut request: hyper::Request<hyper::body::Incoming>,
    ) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        // An HTTP/1.0 request may come without a Host; the handler is
        // given one, as the request reached this host.
        if request.uri().authority().is_none()
            && !request.headers().contains_key(hyper::header::HOST)
        {
            request.headers_mut().insert(
                hyper::header::HOST,
                hyper::header::HeaderValue::from_static("localhost"),
            );
        }
        let setup = &self.setup;
        let (mut wasi, mounts) =
            self.sandbox
                .context(&setup.spec, &setup.image, &setup.argv, &setup.rootfs)?;
        wasi.stdout(LogOutput::new(Arc::clone(&setup.sink), Stream::Stdout));
        wasi.stderr(LogOutput::new(Arc::clone(&setup.sink), Stream::Stderr));
        // Wait for a slot in the pool before taking one.
        let slot = self.sandbox.runtime.handler_slot().await;
        let mut store = self.sandbox.guest_store(
            self.pre.instance_pre().engine(),
            &setup.spec,
            wasi.build(),
            mounts,
            &self.accounts,
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store.data_mut().http().new_incoming_request(
            wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http,
            request,
        )?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let run = async move {
            let handled = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
            }
            .await;
            // The instance goes back to the pool before its slot is freed.
            drop(store);
            drop(slot);
            handled
        };
        // The guest may go on writing the body after it has sent the
        // head: it runs on its own.
        let task = tokio::spawn(CpuMetered::new(run, Arc::clone(&self.accounts.cpu)));
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Ok(failure(&format!("the handler failed: {code:?}"))),
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(())) => "the handler returned without setting a response".to_string(),
                    Ok(Err(e)) => format!("the handler failed: {e:#}"),
                    Err(e) => format!("the handler failed: {e}"),
                };
                Ok(failure(&why))
            }
        }
    }
}

/// A 500 answer saying what went wrong.
fn failure(why: &str) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(bytes::Bytes::from(format!("{why}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response
}
