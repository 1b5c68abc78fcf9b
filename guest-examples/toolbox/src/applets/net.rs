//! Network applets over wasi:sockets: `wget`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::Ctx;

/// A parsed `http://host[:port][/path]`.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err("TLS is not supported: use http://".into());
    } else if url.contains("://") {
        return Err(format!("unsupported URL scheme in '{url}'"));
    } else {
        url
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port.parse().map_err(|_| format!("bad port in '{url}'"))?;
            (host, port)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("bad address '{url}'"));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// The body of an HTTP/1.1 response: chunked or as sent.
fn decode_chunked(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// `wget [-q] [-O FILE|-] [-T SECONDS] URL`: HTTP GET, the body to FILE
/// (default: the last path segment, else `index.html`), `-` for stdout.
pub fn wget(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut quiet = false;
    let mut output: Option<String> = None;
    let mut timeout = Duration::from_secs(900);
    let mut url = None;
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() > 1 && arg.starts_with('-') && arg != "--" {
            let flags: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < flags.len() {
                match flags[j] {
                    'q' => quiet = true,
                    'O' | 'T' => {
                        let value: String = flags[j + 1..].iter().collect();
                        let value = if value.is_empty() {
                            i += 1;
                            match args.get(i) {
                                Some(v) => v.clone(),
                                None => {
                                    ctx.error(
                                        "wget",
                                        &format!("option requires an argument -- '{}'", flags[j]),
                                    );
                                    return 1;
                                }
                            }
                        } else {
                            value
                        };
                        if flags[j] == 'O' {
                            output = Some(value);
                        } else {
                            match value.parse::<u64>() {
                                Ok(secs) => timeout = Duration::from_secs(secs),
                                Err(_) => {
                                    ctx.error("wget", &format!("invalid number '{value}'"));
                                    return 1;
                                }
                            }
                        }
                        j = flags.len();
                        continue;
                    }
                    other => {
                        ctx.error("wget", &format!("unrecognized option '-{other}'"));
                        return 1;
                    }
                }
                j += 1;
            }
        } else {
            url = Some(arg.clone());
        }
        i += 1;
    }
    let Some(url) = url else {
        ctx.error("wget", "missing URL");
        return 1;
    };
    let target = match parse_url(&url) {
        Ok(t) => t,
        Err(e) => {
            ctx.error("wget", &e);
            return 1;
        }
    };
    let addresses: Vec<_> = match (target.host.as_str(), target.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => {
            ctx.error("wget", &format!("bad address '{}'", target.host));
            return 1;
        }
    };
    let Some(address) = addresses.first().copied() else {
        ctx.error("wget", &format!("bad address '{}'", target.host));
        return 1;
    };
    if !quiet {
        let _ = writeln!(
            ctx.io.stderr,
            "Connecting to {}:{} ({address})",
            target.host, target.port
        );
    }
    let mut stream = match TcpStream::connect_timeout(&address, timeout) {
        Ok(s) => s,
        Err(e) => {
            ctx.error(
                "wget",
                &format!(
                    "can't connect to remote host ({}): {}",
                    address.ip(),
                    describe(&e)
                ),
            );
            return 1;
        }
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let host_header = if target.port == 80 {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: Wget\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    let mut response = Vec::new();
    if let Err(e) = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_end(&mut response))
    {
        ctx.error("wget", &describe(&e));
        return 1;
    }
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        ctx.error("wget", "error getting response");
        return 1;
    };
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if !(200..300).contains(&code) {
        ctx.error("wget", &format!("server returned error: {status_line}"));
        return 1;
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &response[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        match decode_chunked(raw) {
            Some(b) => b,
            None => {
                ctx.error("wget", "malformed chunked response");
                return 1;
            }
        }
    } else {
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match length {
            Some(n) => raw[..n.min(raw.len())].to_vec(),
            None => raw.to_vec(),
        }
    };
    let file = output.unwrap_or_else(|| {
        let last = target.path.rsplit('/').next().unwrap_or("");
        let last = last.split('?').next().unwrap_or("");
        if last.is_empty() {
            "index.html".into()
        } else {
            last.to_string()
        }
    });
    if file == "-" {
        let _ = ctx.out().write_all(&body);
        return 0;
    }
    if !quiet {
        let _ = writeln!(ctx.io.stderr, "saving to '{file}'");
    }
    match std::fs::write(&file, &body) {
        Ok(()) => {
            if !quiet {
                let _ = writeln!(ctx.io.stderr, "'{file}' saved");
            }
            0
        }
        Err(e) => {
            ctx.error("wget", &format!("can't open '{file}': {}", describe(&e)));
            1
        }
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            "Connection timed out".into()
        }
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://10.244.0.3:8080/a/b?x=1").unwrap(),
            Url {
                host: "10.244.0.3".into(),
                port: 8080,
                path: "/a/b?x=1".into()
            }
        );
        assert_eq!(
            parse_url("web").unwrap(),
            Url {
                host: "web".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http://:80/").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            decode_chunked(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").unwrap(),
            b"hello world"
        );
        assert!(decode_chunked(b"5\r\nhel").is_none());
    }
}
