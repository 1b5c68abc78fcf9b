//! `http-hello`: a `wasi:http/proxy` component. Each request gets a fresh
//! instance and the answer "Hello from wasmkube!" with the request path,
//! as plain text. No sockets, no listener: the host serves it.
//!
//! A query parameter `delay=MS` makes it wait that long before answering,
//! to stand for a slow handler. With `fetch=http://HOST[:PORT]/PATH` it
//! sends that request itself (an outgoing `wasi:http` request) and answers
//! with the status and body it got, or 502 and the error.

use std::io::{Read as _, Write as _};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        if let Some(ms) = delay(&path) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let (status, text) = match param(&path, "fetch") {
            Some(url) => match fetch(url) {
                Ok((status, body)) => (
                    200,
                    format!(
                        "{url} answered {status}\n{}",
                        String::from_utf8_lossy(&body)
                    ),
                ),
                Err(e) => (502, format!("fetching {url}: {e}\n")),
            },
            None => (200, format!("Hello from wasmkube! You asked for {path}\n")),
        };
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = body.write().expect("the body stream opens once");
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}

/// Sends `GET url` (plain `http://` only) and returns the status and body.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs can be fetched")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("bad authority {authority:?}"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("bad path {path:?}"))?;
    let body = request.body().map_err(|()| "request body taken")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        if let Some(response) = future.get() {
            break response;
        }
        future.subscribe().block();
    };
    let response = response
        .map_err(|()| "response taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "response body taken")?;
    let mut bytes = Vec::new();
    {
        let mut stream = incoming.stream().map_err(|()| "body stream taken")?;
        stream.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    }
    drop(IncomingBody::finish(incoming));
    Ok((status, bytes))
}

/// The `delay=MS` query parameter, if the path has one.
fn delay(path: &str) -> Option<u64> {
    param(path, "delay").and_then(|ms| ms.parse().ok())
}

/// The value of query parameter `name`, as written.
fn param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}
