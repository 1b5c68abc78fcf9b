//! Network applets over wasi:sockets: `wget`, `curl`, `nc`, `nslookup`.

use std::cell::RefCell;
use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use super::Ctx;
use crate::http::{self, FetchError, Request, Trust, Url};
use crate::io::{Connection, Input, Io, Output};

/// Whom to trust for `https://`: no one to check (`insecure`), the CA
/// file a flag names, the one an environment variable in `variables`
/// names, else the system bundle if there is one.
fn trust(ctx: &Ctx, insecure: bool, named: Option<String>, variables: &[&str]) -> Trust {
    if insecure {
        return Trust::Anyone;
    }
    let file = named
        .or_else(|| {
            variables
                .iter()
                .find_map(|v| ctx.env_var(v).filter(|f| !f.is_empty()).map(str::to_string))
        })
        .or_else(|| {
            std::path::Path::new(http::SYSTEM_BUNDLE)
                .exists()
                .then(|| http::SYSTEM_BUNDLE.to_string())
        });
    Trust::Bundles(file.into_iter().collect())
}

/// `wget [-q] [-O FILE|-] [-T SECONDS] [--header 'NAME: VALUE']...
/// [--post-data DATA] [--ca-certificate FILE] [--no-check-certificate] URL`:
/// HTTP(S) GET (POST with `--post-data`), the body to FILE (default: the
/// last path segment, else `index.html`), `-` for stdout.
pub fn wget(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut quiet = false;
    let mut output: Option<String> = None;
    let mut timeout = Duration::from_secs(900);
    let mut headers = Vec::new();
    let mut post: Option<String> = None;
    let mut ca_file: Option<String> = None;
    let mut insecure = false;
    let mut url = None;
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        if let Some(long) = arg.strip_prefix("--").filter(|l| !l.is_empty()) {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            if name == "no-check-certificate" {
                insecure = true;
                i += 1;
                continue;
            }
            if name == "quiet" {
                quiet = true;
                i += 1;
                continue;
            }
            if ![
                "header",
                "post-data",
                "ca-certificate",
                "output-document",
                "timeout",
            ]
            .contains(&name)
            {
                ctx.error("wget", &format!("unrecognized option '--{name}'"));
                return 1;
            }
            let value = match inline {
                Some(value) => value,
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            ctx.error("wget", &format!("option '--{name}' requires an argument"));
                            return 1;
                        }
                    }
                }
            };
            match name {
                "header" => match http::header(&value) {
                    Some(h) => headers.push(h),
                    None => {
                        ctx.error("wget", &format!("invalid header '{value}'"));
                        return 1;
                    }
                },
                "post-data" => post = Some(value),
                "ca-certificate" => ca_file = Some(value),
                "output-document" => output = Some(value),
                _ => match value.parse::<u64>() {
                    Ok(secs) => timeout = Duration::from_secs(secs),
                    Err(_) => {
                        ctx.error("wget", &format!("invalid number '{value}'"));
                        return 1;
                    }
                },
            }
        } else if arg.len() > 1 && arg.starts_with('-') && arg != "--" {
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
    let target = match Url::parse(&url) {
        Ok(t) => t,
        Err(e) => {
            ctx.error("wget", &e);
            return 1;
        }
    };
    let trust = trust(ctx, insecure, ca_file, &["SSL_CERT_FILE"]);
    let request = Request {
        method: if post.is_some() { "POST" } else { "GET" },
        url: &target,
        headers: &headers,
        body: post.as_deref().map(str::as_bytes),
        timeout,
        trust: &trust,
    };
    let response = match http::fetch(&request, |address| {
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
                FetchError::Certificate(why) => format!(
                    "cannot verify {}'s certificate: {why}; \
                     to connect insecurely, use '--no-check-certificate'",
                    target.host
                ),
                FetchError::Bundle(why) => why,
                FetchError::Tls(why) => format!("TLS handshake failed: {why}"),
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

/// `curl [-sSfikL] [-o FILE] [-m SECONDS] [-H 'NAME: VALUE']... [-X METHOD]
/// [-d DATA|@FILE] [--cacert FILE] URL`: an HTTP(S) request (GET, or POST
/// with data), the body to stdout (or FILE). Exit codes as curl's: 6 the
/// host did not resolve, 7 no connection, 22 an HTTP error with `-f`, 28 a
/// timeout, 35 a failed TLS handshake, 60 an untrusted certificate, 77 an
/// unreadable CA file.
pub fn curl(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (mut silent, mut show_errors, mut fail, mut include) = (false, false, false, false);
    let mut insecure = false;
    let mut output: Option<String> = None;
    let mut timeout = Duration::from_secs(900);
    let mut headers = Vec::new();
    let mut method: Option<String> = None;
    let mut data: Option<Vec<u8>> = None;
    let mut ca_file: Option<String> = None;
    let mut url = None;
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "-o" | "--output" | "-m" | "--max-time" | "-H" | "--header" | "-X" | "--request"
            | "-d" | "--data" | "--data-raw" | "--data-binary" | "--cacert" => {
                i += 1;
                let Some(value) = args.get(i) else {
                    ctx.error("curl", &format!("option {arg}: requires parameter"));
                    return 2;
                };
                match arg {
                    "-o" | "--output" => output = Some(value.clone()),
                    "-H" | "--header" => match http::header(value) {
                        Some(h) => headers.push(h),
                        None => {
                            ctx.error("curl", &format!("option {arg}: bad header '{value}'"));
                            return 2;
                        }
                    },
                    "-X" | "--request" => method = Some(value.clone()),
                    "--cacert" => ca_file = Some(value.clone()),
                    "-d" | "--data" | "--data-binary" if value.starts_with('@') => {
                        match ctx.read_all(&value[1..]) {
                            Ok(bytes) => data = Some(bytes),
                            Err(e) => {
                                let _ = writeln!(
                                    ctx.io.stderr,
                                    "curl: option {arg}: error reading {}: {}",
                                    &value[1..],
                                    describe(&e)
                                );
                                return 26;
                            }
                        }
                    }
                    "-d" | "--data" | "--data-raw" | "--data-binary" => {
                        data = Some(value.clone().into_bytes())
                    }
                    _ => match value.parse::<f64>() {
                        Ok(secs) if secs > 0.0 => timeout = Duration::from_secs_f64(secs),
                        _ => {
                            ctx.error(
                                "curl",
                                &format!("option {arg}: expected a proper numerical parameter"),
                            );
                            return 2;
                        }
                    },
                }
            }
            "--silent" => silent = true,
            "--show-error" => show_errors = true,
            "--fail" => fail = true,
            "--include" => include = true,
            "--insecure" => insecure = true,
            _ if arg.starts_with('-') && arg.len() > 1 && !arg.starts_with("--") => {
                for flag in arg[1..].chars() {
                    match flag {
                        's' => silent = true,
                        'S' => show_errors = true,
                        'f' => fail = true,
                        'i' => include = true,
                        'k' => insecure = true,
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
    let target = match Url::parse(&url) {
        Ok(t) => t,
        Err(e) => return report(ctx, 3, &e),
    };
    let trust = trust(ctx, insecure, ca_file, &["CURL_CA_BUNDLE", "SSL_CERT_FILE"]);
    let method = method.unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.into());
    let request = Request {
        method: &method,
        url: &target,
        headers: &headers,
        body: data.as_deref(),
        timeout,
        trust: &trust,
    };
    let response = match http::fetch(&request, |_| {}) {
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
        Err(FetchError::Certificate(why)) => {
            return report(ctx, 60, &format!("SSL certificate problem: {why}"));
        }
        Err(FetchError::Bundle(why)) => return report(ctx, 77, &why),
        Err(FetchError::Tls(why)) => return report(ctx, 35, &format!("TLS connect error: {why}")),
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
