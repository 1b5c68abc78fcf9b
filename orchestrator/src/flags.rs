//! Parsers for command-line flag values shared by the `wasmkube` commands:
//! durations (`10s`, `500ms`, `5m`) and byte sizes (Kubernetes quantities,
//! `2Gi`, `500M`).

use std::time::Duration;

/// A duration as the flags write them: a number with `ms`, `s` (the
/// default), `m` or `h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (use e.g. 10s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// A size in bytes, written as a Kubernetes quantity (`2Gi`, `500M`, `1024`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let quantity = crate::quantity::Quantity::parse(s).map_err(|e| e.to_string())?;
    u64::try_from(quantity.ceil_units()).map_err(|_| format!("{s:?} is not a size in bytes"))
}

/// A log file's size limit: a quantity (`10Mi`) of at least 4 KiB.
pub fn parse_log_size(s: &str) -> Result<u64, String> {
    let bytes = parse_bytes(s)?;
    if bytes < 4096 {
        return Err(format!("{s:?} is below the least log file size, 4Ki"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3d").is_err());
        assert_eq!(parse_bytes("2Gi"), Ok(2 << 30));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert!(parse_bytes("-1").is_err());
        assert_eq!(parse_log_size("1Mi"), Ok(1 << 20));
        assert!(parse_log_size("100").is_err());
    }
}
