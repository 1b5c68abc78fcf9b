//! Walking the syntax tree: lists, and-or chains, pipelines, compound
//! commands, simple commands and their redirections.

use brush_parser::ast::{
    self, AndOr, Command, CommandPrefixOrSuffixItem, CompoundCommand, CompoundList,
    IoFileRedirectKind, IoFileRedirectTarget, IoRedirect, Pipeline, Program, SeparatorOperator,
    SimpleCommand,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::rc::Rc;

use super::{builtins, Exec, Flow, Shell};
use crate::applets;
use crate::io::{Input, Io, Output};

impl Shell {
    pub fn run_program(&mut self, program: &Program, io: &Io) -> Exec {
        let mut status = 0;
        for list in &program.complete_commands {
            status = self.run_list(list, io)?;
        }
        Ok(status)
    }

    pub(super) fn run_list(&mut self, list: &CompoundList, io: &Io) -> Exec {
        let mut status = 0;
        for item in &list.0 {
            if crate::terminal::interrupted() {
                return Err(Flow::Interrupted);
            }
            if matches!(item.1, SeparatorOperator::Async) {
                applets::complain(
                    &mut io.stderr.clone(),
                    "sh",
                    "'&' (background jobs) is not supported: a WASI guest cannot run two commands at once",
                );
                status = 1;
                self.last_status = status;
                continue;
            }
            status = self.run_and_or(&item.0, io)?;
            if self.errexit && status != 0 && self.condition_depth == 0 {
                return Err(Flow::Exit(status));
            }
        }
        Ok(status)
    }

    fn run_and_or(&mut self, list: &ast::AndOrList, io: &Io) -> Exec {
        let last = list.additional.len();
        let guarded = |sh: &mut Shell, p: &Pipeline, is_last: bool| -> Exec {
            if is_last {
                return sh.run_pipeline(p, io);
            }
            sh.condition_depth += 1;
            let r = sh.run_pipeline(p, io);
            sh.condition_depth -= 1;
            r
        };
        let mut status = guarded(self, &list.first, last == 0)?;
        for (i, next) in list.additional.iter().enumerate() {
            let is_last = i + 1 == last;
            status = match next {
                AndOr::And(p) if status == 0 => guarded(self, p, is_last)?,
                AndOr::Or(p) if status != 0 => guarded(self, p, is_last)?,
                _ => status,
            };
        }
        Ok(status)
    }

    fn run_pipeline(&mut self, pipeline: &Pipeline, io: &Io) -> Exec {
        if pipeline.bang {
            self.condition_depth += 1;
        }
        let result = self.run_stages(&pipeline.seq, io);
        if pipeline.bang {
            self.condition_depth -= 1;
        }
        let mut status = result?;
        if pipeline.bang {
            status = i32::from(status == 0);
        }
        self.last_status = status;
        Ok(status)
    }

    /// Runs pipeline stages one after another, each one's output buffered
    /// as the next one's input; every stage of a real pipeline runs in a
    /// subshell, so its variable changes do not leak out.
    fn run_stages(&mut self, stages: &[Command], io: &Io) -> Exec {
        if stages.len() == 1 {
            return self.run_command(&stages[0], io);
        }
        let mut input = io.stdin.clone();
        let mut status = 0;
        for (i, stage) in stages.iter().enumerate() {
            let last = i + 1 == stages.len();
            let (stdout, buffer) = if last {
                (io.stdout.clone(), None)
            } else {
                let (out, buf) = Output::buffer();
                (out, Some(buf))
            };
            let stage_io = Io {
                stdin: input.clone(),
                stdout,
                stderr: io.stderr.clone(),
            };
            status = self.subshell(|sh| sh.run_command(stage, &stage_io));
            if let Some(buf) = buffer {
                input = Input::bytes(std::mem::take(&mut *buf.borrow_mut()));
            }
        }
        Ok(status)
    }

    /// Runs `f` on a copy of the shell; `exit` inside ends only the copy.
    pub(super) fn subshell(&mut self, f: impl FnOnce(&mut Shell) -> Exec) -> i32 {
        let mut child = self.clone();
        let cwd = std::env::current_dir().ok();
        let status = match f(&mut child) {
            Ok(s) | Err(Flow::Exit(s)) | Err(Flow::Return(s)) => s,
            Err(Flow::Break(_)) | Err(Flow::Continue(_)) => child.last_status,
            Err(Flow::Interrupted) => 130,
        };
        if let Some(cwd) = cwd {
            let _ = std::env::set_current_dir(cwd);
        }
        self.last_status = status;
        status
    }

    fn run_command(&mut self, command: &Command, io: &Io) -> Exec {
        let status = match command {
            Command::Simple(simple) => self.run_simple(simple, io)?,
            Command::Compound(compound, redirects) => {
                let io = match redirects {
                    Some(list) => match self.redirect(&list.0, io) {
                        Ok(io) => io,
                        Err(message) => return self.expansion_failed(io, &message),
                    },
                    None => io.clone(),
                };
                self.run_compound(compound, &io)?
            }
            Command::Function(def) => {
                self.functions
                    .insert(def.fname.value.clone(), Rc::new(def.body.clone()));
                0
            }
            Command::ExtendedTest(..) => self.fail(io, "[[ ]] is not supported; use [ ]", 2),
        };
        self.last_status = status;
        Ok(status)
    }

    /// An expansion error fails the command; `${x:?}` ends the shell.
    fn expansion_failed(&mut self, io: &Io, message: &str) -> Exec {
        if message == super::expand::FATAL {
            return Err(Flow::Exit(1));
        }
        Ok(self.fail(io, message, 1))
    }

    fn fail(&mut self, io: &Io, message: &str, status: i32) -> i32 {
        applets::complain(&mut io.stderr.clone(), "sh", message);
        self.last_status = status;
        status
    }

    fn run_compound(&mut self, compound: &CompoundCommand, io: &Io) -> Exec {
        match compound {
            CompoundCommand::BraceGroup(group) => self.run_list(&group.list, io),
            CompoundCommand::Subshell(sub) => Ok(self.subshell(|sh| sh.run_list(&sub.list, io))),
            CompoundCommand::IfClause(clause) => {
                if self.condition(&clause.condition, io)? == 0 {
                    return self.run_list(&clause.then, io);
                }
                for branch in clause.elses.iter().flatten() {
                    match &branch.condition {
                        Some(cond) if self.condition(cond, io)? != 0 => continue,
                        _ => return self.run_list(&branch.body, io),
                    }
                }
                Ok(0)
            }
            CompoundCommand::WhileClause(clause) => {
                self.run_loop(&clause.0, &clause.1.list, true, io)
            }
            CompoundCommand::UntilClause(clause) => {
                self.run_loop(&clause.0, &clause.1.list, false, io)
            }
            CompoundCommand::ForClause(clause) => {
                let values = match &clause.values {
                    Some(words) => match self.expand_words(words, io) {
                        Ok(v) => v,
                        Err(e) => return self.expansion_failed(io, &e),
                    },
                    None => self.positional.clone(),
                };
                let mut status = 0;
                self.loop_depth += 1;
                let result = (|| {
                    for value in values {
                        self.set_var(&clause.variable_name, &value);
                        match self.run_list(&clause.body.list, io) {
                            Ok(s) => status = s,
                            Err(Flow::Break(n)) => {
                                if n > 1 {
                                    return Err(Flow::Break(n - 1));
                                }
                                break;
                            }
                            Err(Flow::Continue(n)) => {
                                if n > 1 {
                                    return Err(Flow::Continue(n - 1));
                                }
                            }
                            Err(other) => return Err(other),
                        }
                    }
                    Ok(status)
                })();
                self.loop_depth -= 1;
                result
            }
            CompoundCommand::CaseClause(clause) => {
                let value = match self.expand_single(&clause.value, io) {
                    Ok(v) => v,
                    Err(e) => return self.expansion_failed(io, &e),
                };
                let mut status = 0;
                let mut falling = false;
                for item in &clause.cases {
                    let mut hit = falling;
                    if !hit {
                        for pattern in &item.patterns {
                            match self.expand_pattern(pattern, io) {
                                Ok(p) if crate::glob::matches(&p, &value) => {
                                    hit = true;
                                    break;
                                }
                                Ok(_) => {}
                                Err(e) => return self.expansion_failed(io, &e),
                            }
                        }
                    }
                    if !hit {
                        continue;
                    }
                    if let Some(cmd) = &item.cmd {
                        status = self.run_list(cmd, io)?;
                    }
                    match item.post_action {
                        ast::CaseItemPostAction::ExitCase => break,
                        ast::CaseItemPostAction::UnconditionallyExecuteNextCaseItem => {
                            falling = true
                        }
                        ast::CaseItemPostAction::ContinueEvaluatingCases => falling = false,
                    }
                }
                Ok(status)
            }
            CompoundCommand::Arithmetic(cmd) => match self.eval_arith(&cmd.expr.value, io) {
                Ok(v) => Ok(i32::from(v == 0)),
                Err(e) => self.expansion_failed(io, &e),
            },
            CompoundCommand::ArithmeticForClause(_) => {
                Ok(self.fail(io, "for ((...)) is not supported", 2))
            }
            CompoundCommand::Coprocess(_) => Ok(self.fail(io, "coproc is not supported", 2)),
        }
    }

    fn condition(&mut self, list: &CompoundList, io: &Io) -> Exec {
        self.condition_depth += 1;
        let r = self.run_list(list, io);
        self.condition_depth -= 1;
        r
    }

    fn run_loop(
        &mut self,
        cond: &CompoundList,
        body: &CompoundList,
        want_success: bool,
        io: &Io,
    ) -> Exec {
        let mut status = 0;
        self.loop_depth += 1;
        let result = loop {
            let c = match self.condition(cond, io) {
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            if (c == 0) != want_success {
                break Ok(status);
            }
            match self.run_list(body, io) {
                Ok(s) => status = s,
                Err(Flow::Break(n)) => {
                    break if n > 1 {
                        Err(Flow::Break(n - 1))
                    } else {
                        Ok(status)
                    }
                }
                Err(Flow::Continue(n)) if n > 1 => break Err(Flow::Continue(n - 1)),
                Err(Flow::Continue(_)) => {}
                Err(other) => break Err(other),
            }
        };
        self.loop_depth -= 1;
        result
    }

    fn run_simple(&mut self, cmd: &SimpleCommand, io: &Io) -> Exec {
        let mut assignments = Vec::new();
        let mut words = Vec::new();
        let mut redirects = Vec::new();
        let items = cmd
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .chain(cmd.suffix.iter().flat_map(|s| s.0.iter()));
        let mut name_seen = false;
        for item in cmd.prefix.iter().flat_map(|p| p.0.iter()) {
            if let CommandPrefixOrSuffixItem::AssignmentWord(a, _) = item {
                assignments.push(a);
            }
        }
        if let Some(name) = &cmd.word_or_name {
            words.push(name.clone());
            name_seen = true;
        }
        for item in items {
            match item {
                CommandPrefixOrSuffixItem::IoRedirect(r) => redirects.push(r.clone()),
                CommandPrefixOrSuffixItem::Word(w) => words.push(w.clone()),
                CommandPrefixOrSuffixItem::AssignmentWord(_, w) if name_seen => {
                    words.push(w.clone())
                }
                CommandPrefixOrSuffixItem::AssignmentWord(..) => {}
                CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                    return Ok(self.fail(io, "process substitution is not supported", 2));
                }
            }
        }
        let mut assigned = Vec::new();
        for a in assignments {
            let ast::AssignmentName::VariableName(name) = &a.name else {
                return Ok(self.fail(io, "arrays are not supported", 2));
            };
            let value = match &a.value {
                ast::AssignmentValue::Scalar(word) => match self.expand_single(word, io) {
                    Ok(v) => v,
                    Err(e) => return self.expansion_failed(io, &e),
                },
                ast::AssignmentValue::Array(_) => {
                    return Ok(self.fail(io, "arrays are not supported", 2))
                }
            };
            let value = if a.append {
                format!("{}{}", self.var(name).unwrap_or(""), value)
            } else {
                value
            };
            assigned.push((name.clone(), value));
        }
        self.last_substitution_status = None;
        let argv = match self.expand_words(&words, io) {
            Ok(argv) => argv,
            Err(e) => return self.expansion_failed(io, &e),
        };
        let io = match self.redirect(&redirects, io) {
            Ok(io) => io,
            Err(message) => return self.expansion_failed(io, &message),
        };
        if argv.is_empty() {
            for (name, value) in &assigned {
                self.set_var(name, value);
            }
            return Ok(self.last_substitution_status.take().unwrap_or(0));
        }
        if self.xtrace {
            let mut err = io.stderr.clone();
            let _ = writeln!(err, "+ {}", argv.join(" "));
        }
        let name = argv[0].as_str();
        if let Some(body) = self.functions.get(name).cloned() {
            return self.call_function(&body, &argv, &assigned, &io);
        }
        if builtins::is_builtin(name) {
            for (k, v) in &assigned {
                self.set_var(k, v);
            }
            return builtins::run(self, &argv, &io);
        }
        let env = self.exported_env(&assigned);
        let mut ctx = applets::Ctx {
            io: io.clone(),
            env,
        };
        match applets::run(applets::basename(name), &argv, &mut ctx) {
            Some(status) => {
                let _ = ctx.io.stdout.flush();
                Ok(status)
            }
            None => Ok(self.fail(&io, &format!("{name}: not found"), 127)),
        }
    }

    fn call_function(
        &mut self,
        body: &ast::FunctionBody,
        argv: &[String],
        assigned: &[(String, String)],
        io: &Io,
    ) -> Exec {
        for (k, v) in assigned {
            self.set_var(k, v);
        }
        let saved = std::mem::replace(&mut self.positional, argv[1..].to_vec());
        let io = match &body.1 {
            Some(list) => match self.redirect(&list.0, io) {
                Ok(io) => io,
                Err(m) => {
                    self.positional = saved;
                    return Ok(self.fail(io, &m, 1));
                }
            },
            None => io.clone(),
        };
        let result = self.run_compound(&body.0, &io);
        self.positional = saved;
        match result {
            Err(Flow::Return(s)) => Ok(s),
            other => other,
        }
    }

    /// Applies redirections on top of `io`.
    pub(super) fn redirect(&mut self, redirects: &[IoRedirect], io: &Io) -> Result<Io, String> {
        let mut io = io.clone();
        for r in redirects {
            match r {
                IoRedirect::File(fd, kind, target) => {
                    let input_kind = matches!(
                        kind,
                        IoFileRedirectKind::Read
                            | IoFileRedirectKind::DuplicateInput
                            | IoFileRedirectKind::ReadAndWrite
                    );
                    let fd = fd.unwrap_or(if input_kind { 0 } else { 1 });
                    let target = match target {
                        IoFileRedirectTarget::Filename(w) => {
                            Target::Path(self.expand_single(w, &io)?)
                        }
                        IoFileRedirectTarget::Fd(n) => Target::Fd(*n),
                        IoFileRedirectTarget::Duplicate(w) => {
                            let text = self.expand_single(w, &io)?;
                            if text == "-" {
                                Target::Close
                            } else {
                                match text.parse() {
                                    Ok(n) => Target::Fd(n),
                                    Err(_) => Target::Path(text),
                                }
                            }
                        }
                        IoFileRedirectTarget::ProcessSubstitution(..) => {
                            return Err("process substitution is not supported".into());
                        }
                    };
                    apply_file_redirect(&mut io, fd, kind, target)?;
                }
                IoRedirect::HereDocument(fd, doc) => {
                    let text = if doc.requires_expansion {
                        self.expand_heredoc(&doc.doc.value, &io)?
                    } else {
                        doc.doc.value.clone()
                    };
                    set_input(&mut io, fd.unwrap_or(0), Input::bytes(text.into_bytes()))?;
                }
                IoRedirect::HereString(fd, word) => {
                    let mut text = self.expand_single(word, &io)?;
                    text.push('\n');
                    set_input(&mut io, fd.unwrap_or(0), Input::bytes(text.into_bytes()))?;
                }
                IoRedirect::OutputAndError(word, append) => {
                    let path = self.expand_single(word, &io)?;
                    let out = open_output(&path, *append)?;
                    io.stdout = out.clone();
                    io.stderr = out;
                }
            }
        }
        Ok(io)
    }
}

enum Target {
    Path(String),
    Fd(i32),
    Close,
}

fn set_input(io: &mut Io, fd: i32, input: Input) -> Result<(), String> {
    if fd != 0 {
        return Err(format!(
            "redirecting input to descriptor {fd} is not supported"
        ));
    }
    io.stdin = input;
    Ok(())
}

fn output_slot(io: &mut Io, fd: i32) -> Result<&mut Output, String> {
    match fd {
        1 => Ok(&mut io.stdout),
        2 => Ok(&mut io.stderr),
        _ => Err(format!(
            "descriptor {fd} is not supported (only 0, 1 and 2)"
        )),
    }
}

fn open_output(path: &str, append: bool) -> Result<Output, String> {
    match path {
        "/dev/null" => return Ok(Output::Null),
        "/dev/stdout" => return Ok(Output::Stdout),
        "/dev/stderr" => return Ok(Output::Stderr),
        _ => {}
    }
    let file = if append {
        OpenOptions::new().create(true).append(true).open(path)
    } else {
        File::create(path)
    };
    file.map(|f| Output::File(Rc::new(std::cell::RefCell::new(f))))
        .map_err(|e| format!("can't create {path}: {}", applets::io_message(&e)))
}

fn open_input(path: &str) -> Result<Input, String> {
    match path {
        "/dev/null" => Ok(Input::Null),
        "/dev/stdin" => Ok(Input::Stdin),
        _ => File::open(path)
            .map(Input::file)
            .map_err(|e| format!("can't open {path}: {}", applets::io_message(&e))),
    }
}

fn apply_file_redirect(
    io: &mut Io,
    fd: i32,
    kind: &IoFileRedirectKind,
    target: Target,
) -> Result<(), String> {
    match (kind, target) {
        (IoFileRedirectKind::Read, Target::Path(p)) => set_input(io, fd, open_input(&p)?),
        (IoFileRedirectKind::ReadAndWrite, Target::Path(p)) => {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)
                .map_err(|e| format!("can't open {p}: {}", applets::io_message(&e)))?;
            set_input(io, fd, open_input(&p)?)
        }
        (IoFileRedirectKind::Write | IoFileRedirectKind::Clobber, Target::Path(p))
        | (IoFileRedirectKind::DuplicateOutput, Target::Path(p)) => {
            let out = open_output(&p, false)?;
            *output_slot(io, fd)? = out;
            Ok(())
        }
        (IoFileRedirectKind::Append, Target::Path(p)) => {
            let out = open_output(&p, true)?;
            *output_slot(io, fd)? = out;
            Ok(())
        }
        (IoFileRedirectKind::DuplicateOutput, Target::Fd(n)) => {
            let source = output_slot(io, n)?.clone();
            *output_slot(io, fd)? = source;
            Ok(())
        }
        (IoFileRedirectKind::DuplicateInput, Target::Fd(0)) => Ok(()),
        (_, Target::Close) => {
            if fd == 0 {
                io.stdin = Input::Null;
            } else {
                *output_slot(io, fd)? = Output::Null;
            }
            Ok(())
        }
        (_, Target::Fd(n)) => Err(format!("descriptor {n} is not supported here")),
        (_, Target::Path(p)) => Err(format!("unsupported redirection to {p}")),
    }
}
