//! `sh`: a POSIX shell subset. brush-parser turns text into a syntax tree;
//! [`exec`] walks it, [`expand`] expands words, [`arith`] evaluates
//! `$((...))`, [`builtins`] are the commands that change the shell itself.
//!
//! Pipelines run their stages one after another through in-memory buffers:
//! a WASI guest has no processes or threads to run them side by side, so a
//! stage that never ends (`yes | head`) never hands its output on.

mod arith;
mod builtins;
mod exec;
mod expand;
mod lineedit;

use std::collections::HashMap;
use std::rc::Rc;

use crate::io::{Input, Io};

/// A value of a shell variable.
#[derive(Clone, Debug)]
struct Var {
    value: String,
    exported: bool,
}

/// Control flow leaving a command early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `exit N` (or a fatal error): leave the shell, or the subshell.
    Exit(i32),
    /// `break N`.
    Break(u32),
    /// `continue N`.
    Continue(u32),
    /// `return N` from a function.
    Return(i32),
    /// Ctrl-C on the terminal: the command line stops (status 130).
    Interrupted,
}

/// The result of running a command: its status, or a jump.
pub type Exec = Result<i32, Flow>;

/// The shell's state: variables, positional parameters, options, functions.
#[derive(Clone)]
pub struct Shell {
    vars: HashMap<String, Var>,
    arg0: String,
    positional: Vec<String>,
    last_status: i32,
    functions: HashMap<String, Rc<brush_parser::ast::FunctionBody>>,
    errexit: bool,
    xtrace: bool,
    /// >0 while running a condition (`if`, `while`, left of `&&`), where a
    /// failure does not trigger `set -e`.
    condition_depth: u32,
    loop_depth: u32,
    /// Status of the last command substitution, which is the status of a
    /// command line made only of assignments (`x=$(false)` fails).
    last_substitution_status: Option<i32>,
}

fn parser_options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions {
        enable_extended_globbing: false,
        posix_mode: false,
        sh_mode: false,
        tilde_expansion_at_word_start: true,
        tilde_expansion_after_colon: false,
        ..Default::default()
    }
}

/// Parses shell source into a program, or a message for a syntax error.
pub fn parse(source: &str) -> Result<brush_parser::ast::Program, String> {
    let mut parser = brush_parser::Parser::new(
        std::io::BufReader::new(source.as_bytes()),
        &parser_options(),
    );
    parser
        .parse_program()
        .map_err(|e| format!("syntax error: {e}"))
}

impl Shell {
    pub fn new(arg0: &str, positional: Vec<String>) -> Shell {
        let vars = std::env::vars()
            .map(|(k, v)| {
                (
                    k,
                    Var {
                        value: v,
                        exported: true,
                    },
                )
            })
            .collect();
        let mut sh = Shell {
            vars,
            arg0: arg0.to_string(),
            positional,
            last_status: 0,
            functions: HashMap::new(),
            errexit: false,
            xtrace: false,
            condition_depth: 0,
            loop_depth: 0,
            last_substitution_status: None,
        };
        if !sh.vars.contains_key("IFS") {
            sh.set_var("IFS", " \t\n");
        }
        if let Ok(cwd) = std::env::current_dir() {
            sh.set_var("PWD", &cwd.to_string_lossy());
        }
        sh
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.value.as_str())
    }

    pub fn set_var(&mut self, name: &str, value: &str) {
        match self.vars.get_mut(name) {
            Some(v) => v.value = value.to_string(),
            None => {
                self.vars.insert(
                    name.to_string(),
                    Var {
                        value: value.to_string(),
                        exported: false,
                    },
                );
            }
        }
    }

    fn export(&mut self, name: &str) {
        self.vars
            .entry(name.to_string())
            .or_insert(Var {
                value: String::new(),
                exported: true,
            })
            .exported = true;
    }

    fn unset(&mut self, name: &str) {
        self.vars.remove(name);
    }

    /// The environment a command gets: exported variables plus the
    /// assignments written before it.
    pub fn exported_env(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .vars
            .iter()
            .filter(|(k, v)| v.exported && !extra.iter().any(|(e, _)| e == *k))
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        env.extend(extra.iter().cloned());
        env.sort();
        env
    }

    /// Parses and runs `source`; the status of the last command.
    pub fn run_source(&mut self, source: &str, io: &Io) -> Exec {
        match parse(source) {
            Ok(program) => self.run_program(&program, io),
            Err(message) => {
                crate::applets::complain(&mut io.stderr.clone(), "sh", &message);
                Err(Flow::Exit(2))
            }
        }
    }
}

const USAGE: &str = "usage: sh [-ex] [-c COMMAND [NAME [ARGS...]] | SCRIPT [ARGS...]]";

/// `sh` as a program: `sh -c CMD [NAME ARGS...]`, `sh SCRIPT ARGS...`, or
/// commands read from stdin.
pub fn main(args: &[String]) -> i32 {
    let mut i = 1;
    let mut command: Option<String> = None;
    let mut errexit = false;
    let mut xtrace = false;
    let mut interactive = false;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        let flag = &args[i];
        i += 1;
        if flag == "--" {
            break;
        }
        for c in flag[1..].chars() {
            match c {
                'c' => {
                    let Some(cmd) = args.get(i) else {
                        eprintln!("sh: -c requires an argument");
                        return 2;
                    };
                    command = Some(cmd.clone());
                    i += 1;
                }
                'e' => errexit = true,
                'x' => xtrace = true,
                'i' => interactive = true,
                's' => {}
                _ => {
                    eprintln!("sh: unknown option -{c}\n{USAGE}");
                    return 2;
                }
            }
        }
    }
    let rest = &args[i.min(args.len())..];
    let io = Io::standard();
    let (source, arg0, positional) = match command {
        Some(cmd) => {
            let arg0 = rest.first().cloned().unwrap_or_else(|| args[0].clone());
            (Some(cmd), arg0, rest.iter().skip(1).cloned().collect())
        }
        None if !rest.is_empty() => match std::fs::read_to_string(&rest[0]) {
            Ok(text) => (Some(text), rest[0].clone(), rest[1..].to_vec()),
            Err(e) => {
                eprintln!(
                    "sh: can't open '{}': {}",
                    rest[0],
                    crate::applets::io_message(&e)
                );
                return 127;
            }
        },
        None => (None, args[0].clone(), Vec::new()),
    };
    let mut sh = Shell::new(&arg0, positional);
    sh.errexit = errexit;
    sh.xtrace = xtrace;
    let result = match source {
        Some(text) => sh.run_source(&text, &io),
        None if crate::terminal::is_terminal() => sh.run_terminal(&io),
        None => sh.run_stdin(&io, interactive),
    };
    match result {
        Ok(status) | Err(Flow::Exit(status)) | Err(Flow::Return(status)) => status,
        Err(Flow::Break(_)) | Err(Flow::Continue(_)) => sh.last_status,
        Err(Flow::Interrupted) => 130,
    }
}

impl Shell {
    /// The interactive shell on a terminal: lines typed with the line
    /// editor, each command run as soon as it is complete; Ctrl-C stops the
    /// running command and comes back to the prompt.
    fn run_terminal(&mut self, io: &Io) -> Exec {
        use std::io::Write;
        crate::terminal::catch_interrupts();
        let mut editor = lineedit::Editor::new();
        let mut input = Input::Stdin;
        let mut pending = String::new();
        let mut err = io.stderr.clone();
        loop {
            crate::terminal::clear_interrupt();
            crate::terminal::set_raw(true);
            let ps = if pending.is_empty() { "/ # " } else { "> " };
            let line = editor.read(ps, &mut input, &mut err);
            crate::terminal::set_raw(false);
            let line = match line {
                lineedit::Line::Text(line) => line,
                lineedit::Line::Interrupted => {
                    pending.clear();
                    self.last_status = 130;
                    continue;
                }
                lineedit::Line::End => break,
            };
            pending.push_str(&line);
            pending.push('\n');
            let program = match parse(&pending) {
                Ok(program) => program,
                // An unfinished construct (`if` without `fi`): read on.
                Err(_) if !line.trim().is_empty() => continue,
                Err(message) => {
                    pending.clear();
                    crate::applets::complain(&mut err, "sh", &message);
                    self.last_status = 2;
                    continue;
                }
            };
            pending.clear();
            match self.run_program(&program, io) {
                Ok(status) => self.last_status = status,
                Err(Flow::Interrupted) => self.last_status = 130,
                Err(flow) => return Err(flow),
            }
            if crate::terminal::interrupted() {
                // The terminal echoed ^C; the prompt goes on the next line.
                let _ = writeln!(err);
                self.last_status = 130;
            }
        }
        Ok(self.last_status)
    }

    /// Reads commands from stdin, running each as soon as it is complete
    /// (so an interactive `kubectl exec -it ... sh` answers line by line).
    fn run_stdin(&mut self, io: &Io, prompt: bool) -> Exec {
        use std::io::Write;
        let mut input = Input::Stdin;
        let mut pending = String::new();
        let mut status = 0;
        loop {
            if prompt {
                let ps = if pending.is_empty() { "/ # " } else { "> " };
                let mut err = io.stderr.clone();
                let _ = write!(err, "{ps}");
                let _ = err.flush();
            }
            let Ok(Some(line)) = input.read_line() else {
                break;
            };
            pending.push_str(&line);
            pending.push('\n');
            match parse(&pending) {
                Ok(program) => {
                    pending.clear();
                    status = self.run_program(&program, io)?;
                }
                // An unfinished construct (`if` without `fi`): read on.
                Err(_) if !prompt || !line.trim().is_empty() => continue,
                Err(message) => {
                    pending.clear();
                    crate::applets::complain(&mut io.stderr.clone(), "sh", &message);
                    status = 2;
                }
            }
        }
        if !pending.trim().is_empty() {
            return self.run_source(&pending, io);
        }
        Ok(status)
    }
}
