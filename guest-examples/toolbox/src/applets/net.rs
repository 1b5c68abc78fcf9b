//! Network applets over wasi:sockets: `wget`, `curl`, `nc`, `nslookup`.

use std::cell::RefCell;
use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use super::Ctx;
use crate::io::{Connection, Input, Io, Output};

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

/// An HTTP response as read.
struct Response {
    status_line: String,
    code: u16,
    head: String,
    body: Vec<u8>,
}

/// Why a fetch failed.
enum FetchError {
    /// The name did not resolve.
    Resolve,
    /// No connection to that address.
    Connect(std::net::IpAddr, std::io::Error),
    Io(std::io::Error),
    Malformed(String),
}

/// GETs `target` over HTTP/1.1 (`Connection: close`); `connecting` is told
/// the address first.
fn fetch(
    target: &Url,
    timeout: Duration,
    connecting: impl FnOnce(std::net::SocketAddr),
) -> Result<Response, FetchError> {
    let address = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|_| FetchError::Resolve)?
        .next()
        .ok_or(FetchError::Resolve)?;
    connecting(address);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| FetchError::Connect(address.ip(), e))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let host_header = if target.port == 80 {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: toolbox\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    let mut response = Vec::new();
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_end(&mut response))
        .map_err(FetchError::Io)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| FetchError::Malformed("error getting response".into()))?;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &response[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(raw)
            .ok_or_else(|| FetchError::Malformed("malformed chunked response".into()))?
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
    Ok(Response {
        status_line,
        code,
        head,
        body,
    })
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
    let response = match fetch(&target, timeout, |address| {
        if !quiet {
            let _ = writeln!(
                ctx.io.stderr,
                "Connecting to {}:{} ({address})",
                target.host, target.port
            );
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            let message = match e {
                FetchError::Resolve => format!("bad address '{}'", target.host),
                FetchError::Connect(ip, e) => {
                    format!("can't connect to remote host ({ip}): {}", describe(&e))
                }
                FetchError::Io(e) => describe(&e),
                FetchError::Malformed(why) => why,
            };
            ctx.error("wget", &message);
            return 1;
        }
    };
    if !(200..300).contains(&response.code) {
        ctx.error(
            "wget",
            &format!("server returned error: {}", response.status_line),
        );
        return 1;
    }
    let body = response.body;
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

/// `curl [-s] [-S] [-f] [-i] [-o FILE] [-m SECONDS] URL`: HTTP GET, the
/// body to stdout (or FILE). Exit codes as curl's: 6 the host did not
/// resolve, 7 no connection, 22 an HTTP error with `-f`, 28 a timeout.
pub fn curl(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (mut silent, mut show_errors, mut fail, mut include) = (false, false, false, false);
    let mut output: Option<String> = None;
    let mut timeout = Duration::from_secs(900);
    let mut url = None;
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "-o" | "--output" | "-m" | "--max-time" => {
                i += 1;
                let Some(value) = args.get(i) else {
                    ctx.error("curl", &format!("option {arg}: requires parameter"));
                    return 2;
                };
                if arg == "-o" || arg == "--output" {
                    output = Some(value.clone());
                } else {
                    match value.parse::<f64>() {
                        Ok(secs) if secs > 0.0 => timeout = Duration::from_secs_f64(secs),
                        _ => {
                            ctx.error(
                                "curl",
                                &format!("option {arg}: expected a proper numerical parameter"),
                            );
                            return 2;
                        }
                    }
                }
            }
            "--silent" => silent = true,
            "--show-error" => show_errors = true,
            "--fail" => fail = true,
            "--include" => include = true,
            _ if arg.starts_with('-') && arg.len() > 1 && !arg.starts_with("--") => {
                for flag in arg[1..].chars() {
                    match flag {
                        's' => silent = true,
                        'S' => show_errors = true,
                        'f' => fail = true,
                        'i' => include = true,
                        // Progress meters and redirects are not shown.
                        'L' | 'v' => {}
                        other => {
                            ctx.error("curl", &format!("option -{other}: is unknown"));
                            return 2;
                        }
                    }
                }
            }
            _ => url = Some(arg.to_string()),
        }
        i += 1;
    }
    let report = |ctx: &mut Ctx, code: i32, message: &str| {
        if !silent || show_errors {
            let _ = writeln!(ctx.io.stderr, "curl: ({code}) {message}");
        }
        code
    };
    let Some(url) = url else {
        let _ = writeln!(ctx.io.stderr, "curl: no URL specified");
        return 2;
    };
    let target = match parse_url(&url) {
        Ok(t) => t,
        Err(e) => return report(ctx, 3, &e),
    };
    let response = match fetch(&target, timeout, |_| {}) {
        Ok(r) => r,
        Err(FetchError::Resolve) => {
            return report(ctx, 6, &format!("Could not resolve host: {}", target.host));
        }
        Err(FetchError::Connect(_, e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            return report(ctx, 28, "Connection timed out");
        }
        Err(FetchError::Connect(_, e)) => {
            return report(
                ctx,
                7,
                &format!(
                    "Failed to connect to {} port {}: {}",
                    target.host,
                    target.port,
                    describe(&e)
                ),
            );
        }
        Err(FetchError::Io(e)) => {
            return report(ctx, 56, &format!("Recv failure: {}", describe(&e)))
        }
        Err(FetchError::Malformed(why)) => return report(ctx, 8, &why),
    };
    if fail && response.code >= 400 {
        return report(
            ctx,
            22,
            &format!("The requested URL returned error: {}", response.code),
        );
    }
    let mut bytes = Vec::new();
    if include {
        bytes.extend_from_slice(response.head.as_bytes());
        bytes.extend_from_slice(b"\r\n\r\n");
    }
    bytes.extend_from_slice(&response.body);
    match output {
        Some(file) if file != "-" => match std::fs::write(&file, &bytes) {
            Ok(()) => 0,
            Err(e) => report(
                ctx,
                23,
                &format!("Failure writing output to destination: {}", describe(&e)),
            ),
        },
        _ => {
            let _ = ctx.out().write_all(&bytes);
            0
        }
    }
}

/// `nslookup NAME`: the addresses NAME resolves to for this pod.
pub fn nslookup(ctx: &mut Ctx, args: &[String]) -> i32 {
    let Some(name) = args.iter().skip(1).find(|a| !a.starts_with('-')) else {
        let _ = writeln!(ctx.io.stderr, "usage: nslookup NAME");
        return 1;
    };
    match (name.as_str(), 0).to_socket_addrs() {
        Ok(addresses) => {
            let mut seen = Vec::new();
            for a in addresses {
                if !seen.contains(&a.ip()) {
                    seen.push(a.ip());
                }
            }
            if seen.is_empty() {
                let _ = writeln!(ctx.out(), "** server can't find {name}: NXDOMAIN");
                return 1;
            }
            let _ = writeln!(ctx.out(), "Name:\t{name}");
            for ip in seen {
                let _ = writeln!(ctx.out(), "Address: {ip}");
            }
            0
        }
        Err(_) => {
            let _ = writeln!(ctx.out(), "** server can't find {name}: NXDOMAIN");
            1
        }
    }
}

/// `nc -u`: one datagram each way. `nc -u HOST PORT` sends stdin as one
/// datagram and prints the first answer (waiting up to `-w` seconds);
/// `nc -u -l PORT` prints the first datagram it gets and answers it with
/// stdin.
fn nc_udp(ctx: &mut Ctx, listen: bool, operands: &[String], timeout: Option<Duration>) -> i32 {
    let mut input = Vec::new();
    if let Ok(mut stdin) = ctx.open("-") {
        let _ = stdin.read_to_end(&mut input);
    }
    let mut buf = vec![0u8; 65_536];
    if listen {
        let Some(port) = operands.last().and_then(|p| p.parse::<u16>().ok()) else {
            ctx.error("nc", "listen needs a port");
            return 1;
        };
        let socket = match std::net::UdpSocket::bind(("0.0.0.0", port)) {
            Ok(s) => s,
            Err(e) => {
                ctx.error("nc", &format!("bind: {}", describe(&e)));
                return 1;
            }
        };
        let _ = socket.set_read_timeout(timeout);
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) => {
                ctx.error("nc", &describe(&e));
                return 1;
            }
        };
        let _ = ctx.out().write_all(&buf[..n]);
        if !input.is_empty() {
            let _ = socket.send_to(&input, from);
        }
        return 0;
    }
    let [host, port] = operands else {
        ctx.error(
            "nc",
            "usage: nc -u [-w SECS] HOST PORT | nc -u -l [-p] PORT",
        );
        return 1;
    };
    let Some(address) = port
        .parse::<u16>()
        .ok()
        .and_then(|port| (host.as_str(), port).to_socket_addrs().ok()?.next())
    else {
        ctx.error("nc", &format!("bad address '{host}:{port}'"));
        return 1;
    };
    // A socket of the address's family: an IPv6 address is sent to from
    // an IPv6 socket.
    let any = if address.is_ipv6() { "::" } else { "0.0.0.0" };
    let socket = match std::net::UdpSocket::bind((any, 0)) {
        Ok(s) => s,
        Err(e) => {
            ctx.error("nc", &format!("bind: {}", describe(&e)));
            return 1;
        }
    };
    if let Err(e) = socket.send_to(&input, address) {
        ctx.error("nc", &describe(&e));
        return 1;
    }
    // A read timeout on a UDP socket is not honoured under WASI: the
    // answer is waited for by polling a non-blocking socket instead.
    let deadline = std::time::Instant::now() + timeout.unwrap_or(Duration::from_secs(5));
    let _ = socket.set_nonblocking(true);
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                let _ = ctx.out().write_all(&buf[..n]);
                return 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    ctx.error("nc", "no answer before the timeout");
                    return 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                ctx.error("nc", &describe(&e));
                return 1;
            }
        }
    }
}

/// `nc [-w SECS] [-z] HOST PORT` connects: sends stdin (to its end), then
/// shuts its side and copies what comes back to stdout. `-z` only checks
/// that the port answers. `nc -l [-p] PORT` listens for one connection:
/// sends stdin to it and copies what it sends to stdout. (A guest has no
/// threads: the two directions take turns, so this is for scripts, not
/// for typing.) `nc -l [-k] -p PORT -e PROG ARGS...` runs the applet PROG
/// on each connection with the connection as its stdin and stdout
/// (`-e cat` echoes); `-k` keeps listening for the next one.
pub fn nc(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (mut listen, mut scan, mut udp, mut keep) = (false, false, false, false);
    let mut program: Option<&[String]> = None;
    let mut timeout: Option<Duration> = None;
    let mut operands = Vec::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "-l" => listen = true,
            "-z" => scan = true,
            "-u" => udp = true,
            "-p" => {}
            "-w" => {
                i += 1;
                match args.get(i).and_then(|v| v.parse::<u64>().ok()) {
                    Some(secs) => timeout = Some(Duration::from_secs(secs)),
                    None => {
                        ctx.error("nc", "bad -w value");
                        return 1;
                    }
                }
            }
            "-lp" => listen = true,
            "-k" => keep = true,
            "-lk" | "-kl" => (listen, keep) = (true, true),
            "-e" => {
                program = Some(&args[i + 1..]).filter(|p| !p.is_empty());
                if program.is_none() {
                    ctx.error("nc", "option requires an argument -- 'e'");
                    return 1;
                }
                break;
            }
            other if other.starts_with('-') && other.len() > 1 => {
                ctx.error("nc", &format!("invalid option -- '{}'", &other[1..]));
                return 1;
            }
            other => operands.push(other.to_string()),
        }
        i += 1;
    }
    let read_stdin = |ctx: &mut Ctx| -> Vec<u8> {
        let mut input = Vec::new();
        if let Ok(mut stdin) = ctx.open("-") {
            let _ = stdin.read_to_end(&mut input);
        }
        input
    };
    if udp {
        return nc_udp(ctx, listen, &operands, timeout);
    }
    if listen {
        let Some(port) = operands.last().and_then(|p| p.parse::<u16>().ok()) else {
            ctx.error("nc", "listen needs a port");
            return 1;
        };
        let listener = match std::net::TcpListener::bind(("0.0.0.0", port)) {
            Ok(l) => l,
            Err(e) => {
                ctx.error("nc", &format!("bind: {}", describe(&e)));
                return 1;
            }
        };
        if let Some(program) = program {
            return serve(ctx, &listener, program, keep);
        }
        let (mut stream, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                ctx.error("nc", &describe(&e));
                return 1;
            }
        };
        let input = read_stdin(ctx);
        if !input.is_empty() {
            let _ = stream.write_all(&input);
        }
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        let _ = ctx.out().write_all(&received);
        return 0;
    }
    let [host, port] = operands.as_slice() else {
        ctx.error("nc", "usage: nc [-w SECS] [-z] HOST PORT | nc -l [-p] PORT");
        return 1;
    };
    let Ok(port) = port.parse::<u16>() else {
        ctx.error("nc", &format!("bad port '{port}'"));
        return 1;
    };
    let Some(address) = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        ctx.error("nc", &format!("bad address '{host}'"));
        return 1;
    };
    let connected = match timeout {
        Some(t) => TcpStream::connect_timeout(&address, t),
        None => TcpStream::connect(address),
    };
    let mut stream = match connected {
        Ok(s) => s,
        Err(e) => {
            ctx.error(
                "nc",
                &format!(
                    "can't connect to remote host ({}): {}",
                    address.ip(),
                    describe(&e)
                ),
            );
            return 1;
        }
    };
    if scan {
        return 0;
    }
    let _ = stream.set_read_timeout(timeout);
    let input = read_stdin(ctx);
    if stream.write_all(&input).is_err() {
        ctx.error("nc", "write failed");
        return 1;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    let _ = ctx.out().write_all(&received);
    0
}

/// Runs `program` on connections to `listener`: one, or each in turn with
/// `keep`; the status of the last run.
fn serve(ctx: &mut Ctx, listener: &std::net::TcpListener, program: &[String], keep: bool) -> i32 {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                ctx.error("nc", &describe(&e));
                return 1;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection(Rc::new(stream));
        let mut connected = Ctx {
            io: Io {
                stdin: Input::Socket(Rc::new(RefCell::new(BufReader::new(connection.clone())))),
                stdout: Output::Socket(connection),
                stderr: ctx.io.stderr.clone(),
            },
            env: ctx.env.clone(),
        };
        let name = super::basename(&program[0]);
        let status = match super::run(name, program, &mut connected) {
            Some(status) => status,
            None => {
                ctx.error(
                    "nc",
                    &format!("can't execute '{}': no such applet", program[0]),
                );
                return 127;
            }
        };
        if !keep {
            return status;
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
