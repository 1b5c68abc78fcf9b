//! The toolbox guest as a user's `sh -c` sees it: each case is a script
//! run in a real container, with the output and exit code it must give.

mod common;

use common::*;

/// (script, expected stdout lines joined by '\n', expected exit code)
const CASES: &[(&str, &str, i32)] = &[
    // Lists, and-or, negation, exit codes.
    ("echo a; echo b", "a\nb", 0),
    ("true && echo yes || echo no", "yes", 0),
    ("false && echo yes || echo no", "no", 0),
    ("! false && echo negated", "negated", 0),
    ("exit 7", "", 7),
    ("false", "", 1),
    ("(exit 3); echo $?", "3", 0),
    ("nosuchcommand 2>/dev/null; echo $?", "127", 0),
    // Quoting, variables, expansions.
    ("x='a  b'; echo \"$x\"; echo $x", "a  b\na b", 0),
    (
        "echo '$HOME' \"${UNSET:-dflt}\" ${#HOSTNAME}",
        "$HOME dflt 7",
        0,
    ),
    (
        "f=archive.tar.gz; echo ${f%.*} ${f%%.*} ${f#*.} ${f/tar/zip}",
        "archive.tar archive tar.gz archive.zip.gz",
        0,
    ),
    (
        "echo $((3 * (4 + 1))) $((7 % 3)) $((2 ** 10))",
        "15 1 1024",
        0,
    ),
    (
        "i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; echo $i",
        "3",
        0,
    ),
    ("echo \"$(echo nested $(echo deep))\"", "nested deep", 0),
    ("echo `echo back`ticks", "backticks", 0),
    (
        "set -- one two three; echo $# $2; for a in \"$@\"; do echo [$a]; done",
        "3 two\n[one]\n[two]\n[three]",
        0,
    ),
    ("echo a\\ b \"c\\\"d\"", "a b c\"d", 0),
    // Control flow.
    (
        "for i in 1 2 3; do if [ $i = 2 ]; then continue; fi; echo $i; done",
        "1\n3",
        0,
    ),
    (
        "for i in 1 2 3; do [ $i = 2 ] && break; echo $i; done",
        "1",
        0,
    ),
    (
        "case foo.txt in *.md) echo md;; *.txt) echo text;; esac",
        "text",
        0,
    ),
    (
        "greet() { echo hello $1; return 4; }; greet world; echo $?",
        "hello world\n4",
        0,
    ),
    (
        "if false; then echo a; elif true; then echo b; else echo c; fi",
        "b",
        0,
    ),
    (
        "n=0; until [ $n -ge 2 ]; do n=$((n+1)); done; echo $n",
        "2",
        0,
    ),
    // Pipes and redirections.
    ("printf 'b\\na\\nc\\n' | sort | head -2", "a\nb", 0),
    ("echo hello | tr a-z A-Z", "HELLO", 0),
    (
        "echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f | wc -l",
        "2",
        0,
    ),
    ("echo err 2>/dev/null >&2; echo out", "out", 0),
    ("cat <<EOF\nline $((1+1))\nEOF", "line 2", 0),
    ("x=1; echo x | read x; echo $x", "1", 0),
    // Globbing.
    (
        "mkdir -p /tmp/g && touch /tmp/g/b.txt /tmp/g/a.txt /tmp/g/c.md && echo /tmp/g/*.txt",
        "/tmp/g/a.txt /tmp/g/b.txt",
        0,
    ),
    ("echo /tmp/nomatch*", "/tmp/nomatch*", 0),
    ("echo '/tmp/g/*.txt'", "/tmp/g/*.txt", 0),
    // Applets the guide's snippets use.
    ("echo 'Mem: 1234K used' | grep -o -E '\\d+\\w'", "1234K", 0),
    ("echo 'CPU:  7% usr' | grep -o -E '\\d+%'", "7%", 0),
    (
        "printf 'a\\nB\\nc\\n' | grep -c -i b; printf 'x\\n' | grep -q y; echo $?",
        "1\n1",
        0,
    ),
    ("printf 'a\\nb\\n' | grep -v a", "b", 0),
    ("seq 5 | tail -2; seq 3 | head -1", "4\n5\n1", 0),
    (
        "n=$(shuf -i 1-6 -n 1); [ $n -ge 1 ] && [ $n -le 6 ] && echo in-range",
        "in-range",
        0,
    ),
    ("sleep 0.05; echo slept", "slept", 0),
    ("hostname; echo $HOSTNAME", "testpod\ntestpod", 0),
    ("date +%Y | grep -c -E '^[0-9]{4}$'", "1", 0),
    ("echo a,b,c | cut -d, -f2,3", "b,c", 0),
    ("printf '%s=%03d\\n' x 7", "x=007", 0),
    ("env | grep -c '^HOSTNAME=testpod$'", "1", 0),
    (
        "mkdir /tmp/d && touch /tmp/d/x && rm -r /tmp/d && ls /tmp/d 2>/dev/null || echo gone",
        "gone",
        0,
    ),
    (
        "[ -d /tmp ] && [ ! -f /tmp ] && [ -z '' ] && [ abc != abd ] && echo tests",
        "tests",
        0,
    ),
    // The container is its namespace's first process; the shell's
    // applets run inside the shell.
    (
        "ps; echo $$",
        "PID   USER     TIME  COMMAND\n    1 root      0:00 /bin/sh -c ps; echo $$\n1",
        0,
    ),
    (
        "ps -o pid=ID,comm,tty; ps -o bogus 2>&1",
        "ID    COMMAND  TT\n    1 sh       ?\nps: bad -o argument 'bogus', supported arguments: \
         pid,user,time,args,comm,rss,vsz,etime,tty",
        1,
    ),
    (
        "pgrep -l sh; pidof sh; pgrep -x s; echo $?",
        "1 sh\n1\n1",
        0,
    ),
    // What WASI cannot do fails clearly rather than pretending.
    (
        "kill 1 2>&1; echo $?",
        "kill: not supported: a WASI guest cannot signal or schedule processes\n127",
        0,
    ),
    ("top -n 1 2>/dev/null || echo no-top", "no-top", 0),
];

#[tokio::test(flavor = "multi_thread")]
async fn shell_cases() {
    let sb = sandbox(&[]);
    let mut failures = Vec::new();
    for (script, want_out, want_code) in CASES {
        let (exit, lines) = run(&sb, &sh("c", script)).await;
        let got = lines.join("\n");
        if got != *want_out || exit.exit_code != *want_code {
            failures.push(format!(
                "{script:?}\n  want ({want_code}) {want_out:?}\n  got  ({}) {got:?}",
                exit.exit_code
            ));
        }
    }
    sb.remove().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guides_dice_job_exits_0_or_1() {
    let sb = sandbox(&[]);
    let script = "if [ \"$(shuf -i 1-6 -n 1)\" = \"6\" ]; then exit 0; else exit 1; fi";
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (exit, _) = run(&sb, &sh("dice", script)).await;
        seen.insert(exit.exit_code);
    }
    // 40 rolls without a six happen with probability (5/6)^40 < 0.07%.
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0, 1]);
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn applets_run_directly_as_the_command() {
    let sb = sandbox(&[]);
    let mut spec = sh("c", "");
    spec.command = vec!["/bin/echo".into(), "direct".into()];
    assert_eq!(run(&sb, &spec).await.1, ["direct"]);
    spec.command = vec!["toolbox".into(), "seq".into(), "2".into()];
    assert_eq!(run(&sb, &spec).await.1, ["1", "2"]);
    spec.command = vec!["python".into()];
    let (exit, lines) = run(&sb, &spec).await;
    assert_eq!(
        (exit.exit_code, lines),
        (127, vec!["toolbox: applet not found: python".to_string()])
    );
    sb.remove().unwrap();
}
