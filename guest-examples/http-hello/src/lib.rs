//! `http-hello`: a `wasi:http/proxy` component. Each request gets a fresh
//! instance and the answer "Hello from wasmkube!" with the request path,
//! as plain text. No sockets, no listener: the host serves it.
//!
//! A query parameter `delay=MS` makes it wait that long before answering,
//! to stand for a slow handler.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        if let Some(ms) = delay(&path) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = body.write().expect("the body stream opens once");
        let _ = write!(out, "Hello from wasmkube! You asked for {path}\n");
        let _ = out.flush();
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}

/// The `delay=MS` query parameter, if the path has one.
fn delay(path: &str) -> Option<u64> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("delay="))
        .and_then(|ms| ms.parse().ok())
}
