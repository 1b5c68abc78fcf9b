//! Running under a service manager: systemd's readiness protocol
//! (`Type=notify`). The state (`READY=1`, `STOPPING=1`, `STATUS=…`) goes
//! as one datagram to the socket `$NOTIFY_SOCKET` names: a path, or an
//! abstract name written with a leading `@`.

use std::os::unix::net::UnixDatagram;

/// Tells the service manager `state`; `Ok(false)` when none is listening
/// (`$NOTIFY_SOCKET` unset).
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    match target.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            socket.send_to(state.as_bytes(), &target)?;
        }
    }
    Ok(true)
}
