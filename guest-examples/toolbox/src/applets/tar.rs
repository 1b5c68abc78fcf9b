//! `tar`: create (`c`), extract (`x`) and list (`t`) ustar archives, on a
//! file or on stdin/stdout (`f -`), under `-C DIR`; what `kubectl cp`
//! runs (`tar cf - PATH`, `tar -xmf - -C DIR`). Reads the long names of GNU
//! (`L`) and PAX (`x`) archives, as Go's archive/tar and GNU tar write
//! them; writes a name longer than ustar holds as a GNU long name.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::{io_message, parse_flags, Ctx};

const BLOCK: usize = 512;

/// What one run of tar does.
struct Options {
    verbose: bool,
    keep_mtime: bool,
    /// `-C DIR`: where names are relative to.
    base: PathBuf,
}

pub fn tar(ctx: &mut Ctx, args: &[String]) -> i32 {
    // `tar cf - x` as well as `tar -cf - x`: the first word is flags.
    let mut args = args.to_vec();
    if args.len() > 1 && !args[1].starts_with('-') {
        args[1] = format!("-{}", args[1]);
    }
    let (flags, operands) = match parse_flags(&args[1..], "cxtvmpoh", "fC") {
        Ok(parsed) => parsed,
        Err(msg) => {
            ctx.error("tar", &msg);
            return 2;
        }
    };
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let value = |c: char| {
        flags
            .iter()
            .rev()
            .find(|(f, _)| *f == c)
            .and_then(|(_, v)| v.clone())
    };
    let file = value('f').unwrap_or_else(|| "-".into());
    let options = Options {
        verbose: has('v'),
        keep_mtime: !has('m'),
        base: PathBuf::from(value('C').unwrap_or_else(|| ".".into())),
    };
    let operands: Vec<String> = operands.into_iter().cloned().collect();
    let result = match (has('c'), has('x'), has('t')) {
        (true, false, false) => {
            if operands.is_empty() {
                ctx.error("tar", "empty archive: name the files to put in it");
                return 2;
            }
            create(ctx, &file, &operands, &options)
        }
        (false, true, false) => read_archive(ctx, &file, &options, true),
        (false, false, true) => read_archive(ctx, &file, &options, false),
        _ => {
            ctx.error("tar", "exactly one of -c, -x or -t is required");
            return 2;
        }
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            ctx.error("tar", &io_message(&e));
            2
        }
    }
}

// ---------------------------------------------------------------- create

fn create(ctx: &mut Ctx, file: &str, operands: &[String], options: &Options) -> io::Result<i32> {
    let mut out: Box<dyn Write> = if file == "-" {
        Box::new(ctx.io.stdout.clone())
    } else {
        Box::new(io::BufWriter::new(fs::File::create(
            options.base.join(file),
        )?))
    };
    let mut status = 0;
    let mut warned = false;
    for operand in operands {
        let name = operand.trim_start_matches('/');
        if name.len() != operand.len() && !warned {
            ctx.error("tar", "removing leading '/' from member names");
            warned = true;
        }
        let name = if name.is_empty() { "." } else { name };
        let path = options.base.join(operand);
        if let Err(e) = add(ctx, &mut out, &path, name, options) {
            ctx.error("tar", &format!("{operand}: {}", io_message(&e)));
            status = 2;
        }
    }
    // The end of the archive: two empty blocks.
    out.write_all(&[0u8; 2 * BLOCK])?;
    out.flush()?;
    Ok(status)
}

/// Adds `path` as `name`, and everything below it.
fn add(
    ctx: &mut Ctx,
    out: &mut dyn Write,
    path: &Path,
    name: &str,
    options: &Options,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    if options.verbose {
        // The archive may be stdout: names go to stderr.
        let _ = writeln!(ctx.io.stderr, "{name}");
    }
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path)?;
        let header = Header {
            name,
            kind: b'2',
            size: 0,
            mode: 0o777,
            mtime,
            link: &target.to_string_lossy(),
        };
        return header.write(out);
    }
    if meta.is_dir() {
        let dir_name = format!("{}/", name.trim_end_matches('/'));
        Header {
            name: &dir_name,
            kind: b'5',
            size: 0,
            mode: 0o755,
            mtime,
            link: "",
        }
        .write(out)?;
        let mut children: Vec<_> = fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        children.sort();
        for child in children {
            let child_name = format!("{}{}", dir_name, child.to_string_lossy());
            let child_name = child_name.trim_start_matches("./");
            add(ctx, out, &path.join(&child), child_name, options)?;
        }
        return Ok(());
    }
    let mut file = fs::File::open(path)?;
    let size = meta.len();
    Header {
        name,
        kind: b'0',
        size,
        mode: 0o644,
        mtime,
        link: "",
    }
    .write(out)?;
    // The file as it is read, padded to whole blocks.
    let mut left = size;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            // The file shrank while it was read: pad with zeros, as tar does.
            buf[..want].fill(0);
            out.write_all(&buf[..want])?;
            left -= want as u64;
            continue;
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.write_all(&vec![0u8; padding(size)])?;
    Ok(())
}

fn padding(size: u64) -> usize {
    (BLOCK - (size as usize % BLOCK)) % BLOCK
}

/// One member's header.
struct Header<'a> {
    name: &'a str,
    kind: u8,
    size: u64,
    mode: u32,
    mtime: u64,
    link: &'a str,
}

impl Header<'_> {
    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let (prefix, name) = match split_name(self.name) {
            Some(split) => split,
            None => {
                // Too long for ustar: a GNU long name first.
                let mut long = self.name.as_bytes().to_vec();
                long.push(0);
                let header = block("././@LongLink", "", b'L', long.len() as u64, 0, 0, "");
                out.write_all(&header)?;
                out.write_all(&long)?;
                out.write_all(&vec![0u8; padding(long.len() as u64)])?;
                ("", truncate(self.name, 100))
            }
        };
        out.write_all(&block(
            name, prefix, self.kind, self.size, self.mode, self.mtime, self.link,
        ))
    }
}

/// ustar's name and prefix fields for `name`, if it fits them.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    // Split at a slash so that the prefix holds at most 155 bytes and the
    // name at most 100.
    let cut = name[..name.len().min(156)].rfind('/')?;
    let (prefix, rest) = (&name[..cut], &name[cut + 1..]);
    (rest.len() <= 100 && !rest.is_empty()).then_some((prefix, rest))
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn block(
    name: &str,
    prefix: &str,
    kind: u8,
    size: u64,
    mode: u32,
    mtime: u64,
    link: &str,
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    put(&mut h[157..257], truncate(link, 100).as_bytes());
    put(&mut h[257..263], b"ustar\0");
    put(&mut h[263..265], b"00");
    put(&mut h[265..269], b"root");
    put(&mut h[297..301], b"root");
    put(&mut h[345..500], prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    put(field, &text.as_bytes()[text.len().saturating_sub(digits)..]);
}

// ---------------------------------------------------------------- read

/// Extracts (`extract`) or lists the archive.
fn read_archive(ctx: &mut Ctx, file: &str, options: &Options, extract: bool) -> io::Result<i32> {
    let mut input: Box<dyn Read> = if file == "-" {
        Box::new(ctx.io.stdin.clone())
    } else {
        Box::new(io::BufReader::new(fs::File::open(options.base.join(file))?))
    };
    let mut status = 0;
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    let mut header = [0u8; BLOCK];
    loop {
        if !read_block(&mut input, &mut header)? || header.iter().all(|&b| b == 0) {
            return Ok(status);
        }
        if !checksum_ok(&header) {
            ctx.error(
                "tar",
                "invalid tar header checksum: this is not a tar archive",
            );
            return Ok(2);
        }
        let size = parse_octal(&header[124..136]);
        let kind = header[156];
        match kind {
            b'L' | b'K' | b'x' => {
                let data = read_data(&mut input, size)?;
                if kind == b'x' {
                    for (key, value) in pax_records(&data) {
                        match key.as_str() {
                            "path" => long_name = Some(value),
                            "linkpath" => long_link = Some(value),
                            _ => {}
                        }
                    }
                } else {
                    let text = String::from_utf8_lossy(&data)
                        .trim_end_matches('\0')
                        .to_string();
                    if kind == b'L' {
                        long_name = Some(text);
                    } else {
                        long_link = Some(text);
                    }
                }
                continue;
            }
            b'g' => {
                read_data(&mut input, size)?;
                continue;
            }
            _ => {}
        }
        let name = long_name.take().unwrap_or_else(|| header_name(&header));
        let link = long_link
            .take()
            .unwrap_or_else(|| field_text(&header[157..257]));
        let mtime = parse_octal(&header[136..148]);
        if !extract {
            let _ = writeln!(ctx.out(), "{name}");
            skip(&mut input, size)?;
            continue;
        }
        if options.verbose {
            let _ = writeln!(ctx.out(), "{name}");
        }
        let Some(relative) = safe_path(&name) else {
            ctx.error(
                "tar",
                &format!("{name}: member name leaves the directory; skipped"),
            );
            skip(&mut input, size)?;
            status = 2;
            continue;
        };
        let target = options.base.join(relative);
        let result = match kind {
            b'5' => fs::create_dir_all(&target),
            b'0' | 0 | b'7' => write_file(
                &mut input,
                &target,
                size,
                options.keep_mtime.then_some(mtime),
            ),
            b'2' | b'1' => {
                ctx.error(
                    "tar",
                    &format!("{name}: links ({link}) are not extracted here"),
                );
                status = 2;
                skip(&mut input, size)
            }
            other => {
                ctx.error(
                    "tar",
                    &format!(
                        "{name}: unsupported member type {:?}; skipped",
                        other as char
                    ),
                );
                skip(&mut input, size)
            }
        };
        if let Err(e) = result {
            ctx.error("tar", &format!("{name}: {}", io_message(&e)));
            status = 2;
        }
    }
}

/// Reads a whole block; false at the end of input.
fn read_block(input: &mut dyn Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of archive",
                ))
            }
            n => filled += n,
        }
    }
    Ok(true)
}

/// A member's data and its padding: the data.
fn read_data(input: &mut dyn Read, size: u64) -> io::Result<Vec<u8>> {
    if size > 1 << 20 {
        return Err(io::Error::other("an extended header over 1 MiB"));
    }
    let mut data = vec![0u8; size as usize];
    input.read_exact(&mut data)?;
    io::copy(&mut input.take(padding(size) as u64), &mut io::sink())?;
    Ok(data)
}

/// Skips a member's data and its padding.
fn skip(input: &mut dyn Read, size: u64) -> io::Result<()> {
    io::copy(
        &mut input.take(size + padding(size) as u64),
        &mut io::sink(),
    )?;
    Ok(())
}

fn write_file(
    input: &mut dyn Read,
    target: &Path,
    size: u64,
    mtime: Option<u64>,
) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = fs::File::create(target)?;
    let copied = io::copy(&mut input.take(size), &mut file)?;
    if copied < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "unexpected end of archive",
        ));
    }
    io::copy(&mut input.take(padding(size) as u64), &mut io::sink())?;
    if let Some(mtime) = mtime {
        let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
    }
    Ok(())
}

/// `name` as a relative path that stays below the directory it is
/// extracted into.
fn safe_path(name: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path
    })
}

fn header_name(header: &[u8; BLOCK]) -> String {
    let name = field_text(&header[0..100]);
    let prefix = if &header[257..262] == b"ustar" {
        field_text(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn parse_octal(field: &[u8]) -> u64 {
    // Base-256 (a set high bit) for sizes past 8 GiB, as GNU and Go write.
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b));
    }
    field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .fold(0, |n, &b| n * 8 + u64::from(b - b'0'))
}

fn checksum_ok(header: &[u8; BLOCK]) -> bool {
    let stored = parse_octal(&header[148..156]);
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    stored == sum
}

/// PAX records: `LEN key=value\n`.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut records = Vec::new();
    let mut rest = data;
    while let Some(space) = rest.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space || len > rest.len() {
            break;
        }
        let record = String::from_utf8_lossy(&rest[space + 1..len])
            .trim_end_matches('\n')
            .to_string();
        if let Some((key, value)) = record.split_once('=') {
            records.push((key.to_string(), value.to_string()));
        }
        rest = &rest[len..];
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_names_short_and_long() {
        for name in [
            "a.txt",
            &format!("{}/{}", "d".repeat(120), "f".repeat(90)),
            &"x".repeat(300),
        ] {
            let header = Header {
                name,
                kind: b'0',
                size: 5,
                mode: 0o644,
                mtime: 7,
                link: "",
            };
            let mut out = Vec::new();
            header.write(&mut out).unwrap();
            let last: [u8; BLOCK] = out[out.len() - BLOCK..].try_into().unwrap();
            assert!(checksum_ok(&last));
            assert_eq!(parse_octal(&last[124..136]), 5);
            if out.len() == BLOCK {
                assert_eq!(header_name(&last), name);
            } else {
                // The GNU long name comes first.
                let long = String::from_utf8_lossy(&out[BLOCK..BLOCK + name.len()]).to_string();
                assert_eq!(long, name);
            }
        }
    }

    #[test]
    fn pax_paths_and_unsafe_names() {
        let records = pax_records(b"30 path=some/long/name/here.x\n20 mtime=1.234567890\n");
        assert_eq!(records[0], ("path".into(), "some/long/name/here.x".into()));
        assert_eq!(safe_path("/etc/passwd"), Some(PathBuf::from("etc/passwd")));
        assert_eq!(safe_path("a/../../b"), None);
        assert_eq!(safe_path("./"), Some(PathBuf::from(".")));
    }
}
