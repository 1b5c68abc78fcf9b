//! `stress`: a wasip1 *core module* (not a component) for exercising a
//! runtime: it allocates memory, burns CPU, sleeps, traps or exits with an
//! exact code, in that order, as its flags ask. Being a p1 module it also
//! shows the p1 -> component path of the runtime loading it.

use std::io::Write;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: stress [--print TEXT] [--stderr TEXT] [--alloc-mb N] [--spin-ms N] \
[--burn N] [--sleep-ms N] [--trap] [--exit N]";

#[derive(Default)]
struct Plan {
    print: Vec<String>,
    stderr: Vec<String>,
    alloc_mb: usize,
    spin_ms: Option<u64>,
    burn: u64,
    sleep_ms: u64,
    trap: bool,
    exit: Option<i32>,
}

fn parse(args: &[String]) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        match flag.as_str() {
            "--print" => plan.print.push(value()?.clone()),
            "--stderr" => plan.stderr.push(value()?.clone()),
            "--alloc-mb" => plan.alloc_mb = number(value()?)? as usize,
            "--spin-ms" => plan.spin_ms = Some(number(value()?)?),
            "--burn" => plan.burn = number(value()?)?,
            "--sleep-ms" => plan.sleep_ms = number(value()?)?,
            "--trap" => plan.trap = true,
            "--exit" => {
                let v = value()?;
                plan.exit = Some(
                    v.parse()
                        .map_err(|_| format!("--exit: not a number: {v:?}"))?,
                )
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
        }
    }
    Ok(plan)
}

/// One unit of `--burn` work: a million rounds of an xorshift the optimiser
/// cannot fold away.
fn burn(units: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..units * 1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match parse(&args) {
        Ok(plan) => plan,
        Err(msg) => {
            eprintln!("stress: {msg}");
            std::process::exit(2);
        }
    };
    for line in &plan.print {
        println!("{line}");
    }
    for line in &plan.stderr {
        eprintln!("{line}");
    }
    let mut held: Vec<Vec<u8>> = Vec::new();
    for _ in 0..plan.alloc_mb {
        // Touch every page so the memory is really in use, not just reserved.
        held.push(vec![1u8; 1 << 20]);
    }
    if plan.alloc_mb > 0 {
        println!("allocated {} MiB", plan.alloc_mb);
    }
    if let Some(ms) = plan.spin_ms {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    }
    if plan.burn > 0 {
        println!("burned {:x}", burn(plan.burn));
    }
    if plan.sleep_ms > 0 {
        std::thread::sleep(Duration::from_millis(plan.sleep_ms));
    }
    std::hint::black_box(&held);
    let _ = std::io::stdout().flush();
    if plan.trap {
        // `unreachable` in wasm: a trap, as a crashing native program would fault.
        std::process::abort();
    }
    std::process::exit(plan.exit.unwrap_or(0));
}
