//! `echo-hostname`: answers every HTTP request with
//! `Hostname: <HOSTNAME>, date: <date>, version: <version>` (the guide's
//! nginx-hostname image). Built twice, as image tags `1.0.1` and `1.0.2`,
//! whose answers differ only by the version, so rollouts can be watched.
//! Listens on `PORT` (default 80).

use std::io::BufReader;
use std::net::TcpListener;

const VERSION: &str = if cfg!(feature = "v1_0_2") {
    "1.0.2"
} else {
    "1.0.1"
};

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-hostname: cannot listen on port {port}: {e}");
            guest_util::exit(1);
        }
    };
    println!("echo-hostname {VERSION} listening on port {port}");
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(&stream);
        let Ok(Some(request)) = guest_util::read_request(&mut reader) else {
            continue;
        };
        let body = format!(
            "Hostname: {hostname}, date: {}, version: {VERSION}\n",
            guest_util::http_date(guest_util::now_secs())
        );
        let mut out = &stream;
        let _ = guest_util::write_response(
            &mut out,
            200,
            "text/plain",
            body.as_bytes(),
            request.method == "HEAD",
        );
        println!("{} {} 200", request.method, request.target);
    }
}
