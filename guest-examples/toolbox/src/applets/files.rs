//! Applets that look at and change the filesystem: ls, touch, mkdir, rm,
//! rmdir, cp, mv, pwd.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{io_message, parse_flags, Ctx};

macro_rules! flags {
    ($ctx:expr, $name:expr, $args:expr, $known:expr) => {
        match parse_flags(&$args[1..], $known, "") {
            Ok(parsed) => parsed,
            Err(msg) => {
                $ctx.error($name, &msg);
                return 1;
            }
        }
    };
}

pub fn pwd(ctx: &mut Ctx, _args: &[String]) -> i32 {
    match std::env::current_dir() {
        Ok(p) => {
            let _ = writeln!(ctx.out(), "{}", p.display());
            0
        }
        Err(e) => {
            ctx.error("pwd", &io_message(&e));
            1
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    }
}

/// Collapses `.` and `..` without touching the filesystem.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.to_str().unwrap_or("/").split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

struct Entry {
    name: String,
    path: PathBuf,
    meta: Option<fs::Metadata>,
}

fn mode_string(meta: &fs::Metadata, bits: Option<u32>) -> String {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let perms = match bits {
        Some(m) => {
            let flags = ['r', 'w', 'x'];
            (0..9)
                .map(|i| {
                    if m & (0o400 >> i) != 0 {
                        flags[i % 3]
                    } else {
                        '-'
                    }
                })
                .collect()
        }
        // WASI does not carry permission bits; the host did not say either.
        None => "?????????".to_string(),
    };
    format!("{kind}{perms}")
}

fn time_string(meta: &fs::Metadata) -> String {
    let secs = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t = crate::time::civil(secs, 0);
    let (now, _) = crate::time::now();
    // Like ls: the time of day for recent files, the year for old ones.
    if (now - secs).abs() < 182 * 86_400 {
        crate::time::format(&t, "%b %e %H:%M")
    } else {
        crate::time::format(&t, "%b %e  %Y")
    }
}

fn long_line(entry: &Entry) -> String {
    let Some(meta) = &entry.meta else {
        return format!("?????????? ? ? ? ? ? {}", entry.name);
    };
    let owner = crate::host::ownership(&normalize(&absolute(&entry.path)));
    let (uid, gid, links) = match &owner {
        Some(o) => (o.uid.to_string(), o.gid.to_string(), o.links.to_string()),
        None => ("?".into(), "?".into(), "?".into()),
    };
    let mut line = format!(
        "{} {:>4} {:<8} {:<8} {:>8} {} {}",
        mode_string(meta, owner.as_ref().map(|o| o.mode)),
        links,
        uid,
        gid,
        meta.len(),
        time_string(meta),
        entry.name
    );
    if meta.file_type().is_symlink() {
        if let Ok(target) = fs::read_link(&entry.path) {
            line.push_str(&format!(" -> {}", target.display()));
        }
    }
    line
}

fn list_dir(dir: &Path, all: bool, almost_all: bool) -> std::io::Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.starts_with('.') && !all && !almost_all {
                return None;
            }
            let path = e.path();
            Some(Entry {
                meta: fs::symlink_metadata(&path).ok(),
                name,
                path,
            })
        })
        .collect();
    if all {
        for dot in [".", ".."] {
            // `..` of a mount root lies outside the mount's preopen: name it
            // by its absolute path instead, which another mount serves.
            let path = PathBuf::from(normalize(&absolute(&dir.join(dot))));
            entries.push(Entry {
                name: dot.into(),
                meta: fs::metadata(&path).ok(),
                path,
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

pub fn ls(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "ls", args, "laA1dFhR");
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let long = has('l');
    let ops: Vec<String> = if ops.is_empty() {
        vec![".".into()]
    } else {
        ops.into_iter().cloned().collect()
    };
    let mut status = 0;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for op in &ops {
        match fs::symlink_metadata(op) {
            Ok(meta) if meta.is_dir() && !has('d') => dirs.push(op.clone()),
            Ok(meta) => files.push(Entry {
                name: op.clone(),
                path: PathBuf::from(op),
                meta: Some(meta),
            }),
            Err(e) => {
                ctx.error("ls", &format!("{op}: {}", io_message(&e)));
                status = 2;
            }
        }
    }
    let print = |ctx: &mut Ctx, entries: &[Entry]| {
        for e in entries {
            let line = if long {
                long_line(e)
            } else if has('F') && e.meta.as_ref().is_some_and(|m| m.is_dir()) {
                format!("{}/", e.name)
            } else {
                e.name.clone()
            };
            let _ = writeln!(ctx.out(), "{line}");
        }
    };
    files.sort_by(|a, b| a.name.cmp(&b.name));
    print(ctx, &files);
    let headers = ops.len() > 1 || has('R');
    let mut queue: std::collections::VecDeque<String> = dirs.into();
    let mut first = files.is_empty();
    while let Some(dir) = queue.pop_front() {
        match list_dir(Path::new(&dir), has('a'), has('A')) {
            Ok(entries) => {
                if headers {
                    let _ = writeln!(ctx.out(), "{}{dir}:", if first { "" } else { "\n" });
                }
                first = false;
                if long {
                    let blocks: u64 = entries
                        .iter()
                        .filter_map(|e| e.meta.as_ref())
                        .map(|m| m.len().div_ceil(1024))
                        .sum();
                    let _ = writeln!(ctx.out(), "total {blocks}");
                }
                print(ctx, &entries);
                if has('R') {
                    for e in entries.iter().rev() {
                        if e.name != "."
                            && e.name != ".."
                            && e.meta.as_ref().is_some_and(|m| m.is_dir())
                        {
                            queue.push_front(e.path.to_string_lossy().into_owned());
                        }
                    }
                }
            }
            Err(e) => {
                ctx.error("ls", &format!("{dir}: {}", io_message(&e)));
                status = 2;
            }
        }
    }
    status
}

pub fn touch(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "touch", args, "cam");
    let no_create = flags.iter().any(|(c, _)| *c == 'c');
    let mut status = 0;
    for path in ops {
        let result = if Path::new(path).exists() {
            fs::File::options()
                .append(true)
                .open(path)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        } else if no_create {
            Ok(())
        } else {
            fs::File::create(path).map(|_| ())
        };
        if let Err(e) = result {
            ctx.error("touch", &format!("{path}: {}", io_message(&e)));
            status = 1;
        }
    }
    status
}

pub fn mkdir(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = match parse_flags(&args[1..], "pv", "m") {
        Ok(p) => p,
        Err(msg) => {
            ctx.error("mkdir", &msg);
            return 1;
        }
    };
    let parents = flags.iter().any(|(c, _)| *c == 'p');
    let mut status = 0;
    for path in ops {
        let result = if parents {
            fs::create_dir_all(path)
        } else {
            fs::create_dir(path)
        };
        if let Err(e) = result {
            ctx.error(
                "mkdir",
                &format!("can't create directory '{path}': {}", io_message(&e)),
            );
            status = 1;
        }
    }
    status
}

pub fn rm(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "rm", args, "rRfiv");
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let mut status = 0;
    for path in ops {
        let result = match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                if has('r') || has('R') {
                    fs::remove_dir_all(path)
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::IsADirectory,
                        "is a directory",
                    ))
                }
            }
            Ok(_) => fs::remove_file(path),
            Err(e) if has('f') && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            ctx.error("rm", &format!("can't remove '{path}': {}", io_message(&e)));
            status = 1;
        }
    }
    status
}

pub fn rmdir(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (_, ops) = flags!(ctx, "rmdir", args, "p");
    let mut status = 0;
    for path in ops {
        if let Err(e) = fs::remove_dir(path) {
            ctx.error("rmdir", &format!("'{path}': {}", io_message(&e)));
            status = 1;
        }
    }
    status
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if fs::metadata(from)?.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)?.flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(|_| ())
    }
}

/// Where `src` lands when copied or moved onto `dest`.
fn target_of(src: &str, dest: &str, many: bool) -> PathBuf {
    let d = Path::new(dest);
    if many || d.is_dir() {
        d.join(super::basename(src))
    } else {
        d.to_path_buf()
    }
}

pub fn cp(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "cp", args, "rRfpav");
    let recursive = flags.iter().any(|(c, _)| matches!(c, 'r' | 'R' | 'a'));
    let Some((dest, srcs)) = ops.split_last().filter(|(_, s)| !s.is_empty()) else {
        ctx.error("cp", "missing file operand");
        return 1;
    };
    let mut status = 0;
    for src in srcs {
        let to = target_of(src, dest, srcs.len() > 1);
        let result = if Path::new(src.as_str()).is_dir() && !recursive {
            Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "omitting directory",
            ))
        } else {
            copy_tree(Path::new(src.as_str()), &to)
        };
        if let Err(e) = result {
            ctx.error("cp", &format!("can't copy '{src}': {}", io_message(&e)));
            status = 1;
        }
    }
    status
}

pub fn mv(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (_, ops) = flags!(ctx, "mv", args, "fniv");
    let Some((dest, srcs)) = ops.split_last().filter(|(_, s)| !s.is_empty()) else {
        ctx.error("mv", "missing file operand");
        return 1;
    };
    let mut status = 0;
    for src in srcs {
        let to = target_of(src, dest, srcs.len() > 1);
        // A rename across mounts fails in WASI as across devices: copy, then remove.
        let result = fs::rename(src.as_str(), &to).or_else(|_| {
            copy_tree(Path::new(src.as_str()), &to)?;
            if Path::new(src.as_str()).is_dir() {
                fs::remove_dir_all(src.as_str())
            } else {
                fs::remove_file(src.as_str())
            }
        });
        if let Err(e) = result {
            ctx.error("mv", &format!("can't move '{src}': {}", io_message(&e)));
            status = 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), "/a/c");
        assert_eq!(normalize(Path::new("/..")), "/");
    }
}
