//! `http-server`: an nginx-like static file server. It listens on `PORT`
//! (default 80), serves `ROOT` (default `/usr/share/nginx/html`, or the
//! first argument), answers a welcome page for `/` when the directory has
//! no `index.html`, waits `START_DELAY` seconds before listening if set,
//! and writes one access-log line per request to stdout.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// The page `/` answers when the root has no `index.html`: the image's
/// own `index.html`.
const WELCOME: &str = include_str!("../html/index.html");

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html",
        "txt" | "log" => "text/plain",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Maps a request path into the document root, refusing `..`.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    Some(root.join(rel))
}

fn serve(root: &Path, stream: TcpStream) -> std::io::Result<()> {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "-".into());
    let mut reader = BufReader::new(&stream);
    let Some(request) = guest_util::read_request(&mut reader)? else {
        return Ok(());
    };
    let head = request.method == "HEAD";
    let (status, ctype, body): (u16, &str, Vec<u8>) = if request.method != "GET" && !head {
        (405, "text/plain", b"method not allowed\n".to_vec())
    } else {
        match resolve(root, request.path()) {
            None => (400, "text/plain", b"bad path\n".to_vec()),
            Some(mut file) => {
                if file.is_dir() {
                    file = file.join("index.html");
                }
                match std::fs::read(&file) {
                    Ok(bytes) => (200, content_type(&file), bytes),
                    Err(_) if request.path() == "/" => {
                        (200, "text/html", WELCOME.as_bytes().to_vec())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        (403, "text/plain", b"forbidden\n".to_vec())
                    }
                    Err(_) => (404, "text/plain", b"not found\n".to_vec()),
                }
            }
        }
    };
    let mut out = &stream;
    guest_util::write_response(&mut out, status, ctype, &body, head)?;
    println!(
        "{peer} - - [{}] \"{} {} {}\" {status} {} \"{}\" \"{}\"",
        guest_util::log_date(guest_util::now_secs()),
        request.method,
        request.target,
        request.version,
        body.len(),
        request.header("referer").unwrap_or("-"),
        request.header("user-agent").unwrap_or("-"),
    );
    Ok(())
}

fn main() {
    let port: u16 = match std::env::var("PORT")
        .unwrap_or_else(|_| "80".into())
        .parse()
    {
        Ok(p) => p,
        Err(_) => {
            eprintln!("http-server: PORT must be a port number");
            guest_util::exit(2);
        }
    };
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .or_else(|| std::env::var("ROOT").ok())
            .unwrap_or_else(|| "/usr/share/nginx/html".into()),
    );
    if let Ok(delay) = std::env::var("START_DELAY") {
        match delay.parse::<f64>() {
            Ok(secs) if secs >= 0.0 => {
                println!("http-server: waiting {secs} s before listening");
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            }
            _ => {
                eprintln!("http-server: START_DELAY must be a number of seconds");
                guest_util::exit(2);
            }
        }
    }
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("http-server: cannot listen on port {port}: {e}");
            guest_util::exit(1);
        }
    };
    println!("http-server: serving {} on port {port}", root.display());
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(e) = serve(&root, s) {
                    eprintln!("http-server: {e}");
                }
            }
            Err(e) => eprintln!("http-server: accept: {e}"),
        }
    }
}
