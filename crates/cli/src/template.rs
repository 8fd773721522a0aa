//! Go's `text/template`, the part Docker's `--format` uses, over JSON values.
//!
//! | syntax | as in Go |
//! |---|---|
//! | `{{.A.B}}`, `{{.}}`, `{{$}}`, `{{$x.A}}`, `{{(pipe).A}}` | fields of maps, the dot, variables |
//! | `{{f a b}}`, `{{a \| f b}}`, `{{.Label "k"}}` | calls, pipelines, a map indexed as a method |
//! | `{{if}}`, `{{else if}}`, `{{range [$i,] [$v :=]}}`, `{{with}}`, `{{else}}`, `{{end}}` | control |
//! | `{{$x := pipe}}`, `{{/* … */}}`, `{{- … -}}` | variables, comments, trimming |
//!
//! Functions: Go's `and or not len index slice print printf println eq ne lt
//! le gt ge`, and Docker's `json join split upper lower title pad truncate`.
//! `table` (Docker's column directive) is the caller's: see [`Format`].
//! Not supported: `define`, `template`, `block`, `break`, `continue`.

use std::fmt;

use serde_json::{Map, Number, Value};

/// A template that failed to parse or to run: one line, with its position.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

type Result<T> = std::result::Result<T, Error>;

/// Line and column (from 1) in the template's text.
#[derive(Clone, Copy, Debug)]
struct Pos(usize, usize);

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
struct Pipe {
    pos: Pos,
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug)]
enum Arg {
    /// `.A.B` (empty: the dot).
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// `(pipe).A`.
    Paren(Box<Pipe>, Vec<String>),
    Lit(Value),
    Func(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    /// `.A.B` right after `)`.
    Chain(Vec<String>),
    Str(String),
    Num(Number),
    Ident(String),
    LParen,
    RParen,
    Bar,
    Declare,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Field(p) | Tok::Chain(p) => write!(f, ".{}", p.join(".")),
            Tok::Var(v, p) if p.is_empty() => write!(f, "${v}"),
            Tok::Var(v, p) => write!(f, "${v}.{}", p.join(".")),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Num(n) => write!(f, "{n}"),
            Tok::Ident(s) => f.write_str(s),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::Bar => f.write_str("|"),
            Tok::Declare => f.write_str(":="),
            Tok::Comma => f.write_str(","),
        }
    }
}

/// An action's tokens, each with where it starts.
type Toks = Vec<(Tok, Pos)>;

/// One `{{…}}` or the text between them.
enum Item {
    Text(String),
    Action(Toks, Pos),
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

fn err<T>(pos: Pos, msg: impl fmt::Display) -> Result<T> {
    Err(Error(format!(
        "template parsing error: {}:{}: {msg}",
        pos.0, pos.1
    )))
}

struct Lexer<'a> {
    src: &'a str,
    at: usize,
}

impl Lexer<'_> {
    fn pos(&self, at: usize) -> Pos {
        let before = &self.src[..at];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(at, |n| at - n - 1) + 1;
        Pos(line, col)
    }

    fn items(mut self) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut trim_next = false;
        loop {
            let rest = &self.src[self.at..];
            let Some(open) = rest.find("{{") else {
                let mut text = rest;
                if trim_next {
                    text = text.trim_start();
                }
                items.push(Item::Text(text.to_owned()));
                return Ok(items);
            };
            let mut text = &rest[..open];
            if trim_next {
                text = text.trim_start();
            }
            let start = self.at + open;
            self.at = start + 2;
            let inner = &self.src[self.at..];
            if inner.starts_with('-') && inner[1..].starts_with(char::is_whitespace) {
                text = text.trim_end();
                self.at += 1;
            }
            items.push(Item::Text(text.to_owned()));
            let (toks, trim) = self.action(start)?;
            trim_next = trim;
            if let Some(toks) = toks {
                items.push(Item::Action(toks, self.pos(start)));
            }
        }
    }

    /// The tokens up to `}}`, or `None` for a comment; and whether it ends with `-}}`.
    fn action(&mut self, start: usize) -> Result<(Option<Toks>, bool)> {
        let mut toks = Vec::new();
        let b = self.src.as_bytes();
        let close = |at: usize| -> Option<(usize, bool)> {
            let s = &self.src[at..];
            if s.starts_with("}}") {
                Some((2, false))
            } else if s.starts_with("-}}") && at > 0 && (b[at - 1] as char).is_whitespace() {
                Some((3, true))
            } else {
                None
            }
        };
        let ws = self.src[self.at..].len() - self.src[self.at..].trim_start().len();
        if self.src[self.at + ws..].starts_with("/*") {
            let Some(end) = self.src[self.at..].find("*/") else {
                return err(self.pos(start), "unclosed comment");
            };
            self.at += end + 2;
            let ws = self.src[self.at..].len() - self.src[self.at..].trim_start().len();
            return match close(self.at + ws) {
                Some((n, trim)) => {
                    self.at += ws + n;
                    Ok((None, trim))
                }
                None => err(self.pos(self.at), "comment ends before closing delimiter"),
            };
        }
        let mut prev_end = usize::MAX;
        loop {
            let Some(c) = self.src[self.at..].chars().next() else {
                return err(self.pos(start), "unclosed action");
            };
            if let Some((n, trim)) = close(self.at) {
                self.at += n;
                return Ok((Some(toks), trim));
            }
            let here = self.at;
            let pos = self.pos(here);
            if c.is_whitespace() {
                self.at += c.len_utf8();
                continue;
            }
            let word = |from: usize| {
                let s = &self.src[from..];
                let n = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                &self.src[from..from + n]
            };
            let tok = match c {
                '(' => {
                    self.at += 1;
                    Tok::LParen
                }
                ')' => {
                    self.at += 1;
                    Tok::RParen
                }
                '|' => {
                    self.at += 1;
                    Tok::Bar
                }
                ',' => {
                    self.at += 1;
                    Tok::Comma
                }
                ':' if self.src[here..].starts_with(":=") => {
                    self.at += 2;
                    Tok::Declare
                }
                '.' => {
                    let path = self.path(pos)?;
                    if prev_end == here && matches!(toks.last(), Some((Tok::RParen, _))) {
                        Tok::Chain(path)
                    } else {
                        Tok::Field(path)
                    }
                }
                '$' => {
                    let name = word(here + 1).to_owned();
                    self.at = here + 1 + name.len();
                    let path = if self.src[self.at..].starts_with('.') {
                        self.path(pos)?
                    } else {
                        Vec::new()
                    };
                    Tok::Var(name, path)
                }
                '"' => {
                    let s = &self.src[here..];
                    let mut end = None;
                    let mut escaped = false;
                    for (i, ch) in s.char_indices().skip(1) {
                        match ch {
                            '\\' if !escaped => escaped = true,
                            '"' if !escaped => {
                                end = Some(i);
                                break;
                            }
                            '\n' => break,
                            _ => escaped = false,
                        }
                    }
                    let Some(end) = end else {
                        return err(pos, "unterminated quoted string");
                    };
                    self.at = here + end + 1;
                    match serde_json::from_str::<String>(&s[..=end]) {
                        Ok(v) => Tok::Str(v),
                        Err(_) => return err(pos, format!("bad string {}", &s[..=end])),
                    }
                }
                '`' => {
                    let s = &self.src[here + 1..];
                    let Some(end) = s.find('`') else {
                        return err(pos, "unterminated raw quoted string");
                    };
                    self.at = here + end + 2;
                    Tok::Str(s[..end].to_owned())
                }
                c if c.is_ascii_digit() || c == '-' || c == '+' => {
                    let s = &self.src[here..];
                    let n = s[1..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                        .map_or(s.len(), |n| n + 1);
                    self.at = here + n;
                    let text = s[..n].trim_start_matches('+');
                    match text.parse::<i64>() {
                        Ok(i) => Tok::Num(i.into()),
                        Err(_) => match text.parse::<f64>().ok().and_then(Number::from_f64) {
                            Some(f) => Tok::Num(f),
                            None => return err(pos, format!("bad number syntax: {:?}", &s[..n])),
                        },
                    }
                }
                c if c.is_alphabetic() || c == '_' => {
                    let w = word(here);
                    self.at = here + w.len();
                    Tok::Ident(w.to_owned())
                }
                c => return err(pos, format!("unexpected {:?} in operand", c.to_string())),
            };
            prev_end = self.at;
            toks.push((tok, pos));
        }
    }

    /// `.A.B` from `self.at`, which is at the first dot.
    fn path(&mut self, pos: Pos) -> Result<Vec<String>> {
        let mut path = Vec::new();
        while self.src[self.at..].starts_with('.') {
            let s = &self.src[self.at + 1..];
            let n = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if n == 0 {
                if path.is_empty() {
                    self.at += 1;
                    return Ok(path); // the dot itself
                }
                return err(pos, "bad field name after '.'");
            }
            path.push(s[..n].to_owned());
            self.at += 1 + n;
        }
        Ok(path)
    }
}

/// Where a list of nodes ended: `{{end}}`, `{{else}}` or `{{else KEYWORD pipe}}`.
enum Closer {
    Eof,
    End,
    Else,
    ElseChain(String, Pipe),
}

struct Parser {
    items: std::vec::IntoIter<Item>,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Closer, Pos)> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (toks, pos) = match item {
                Item::Text(t) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t));
                    }
                    continue;
                }
                Item::Action(toks, pos) => (toks, pos),
            };
            let keyword = match toks.first() {
                Some((Tok::Ident(k), _)) => k.as_str(),
                None => return err(pos, "missing value for command"),
                _ => "",
            };
            match keyword {
                "end" if toks.len() == 1 => return Ok((nodes, Closer::End, pos)),
                "end" => return err(pos, "unexpected tokens after end"),
                "else" if toks.len() == 1 => return Ok((nodes, Closer::Else, pos)),
                "else" => match &toks[1].0 {
                    Tok::Ident(k) if k == "if" || k == "with" => {
                        let k = k.clone();
                        let pipe = pipe(&toks[2..], pos, false)?;
                        return Ok((nodes, Closer::ElseChain(k, pipe), pos));
                    }
                    t => return err(pos, format!("unexpected {t} after else")),
                },
                "if" | "with" | "range" => {
                    let p = pipe(&toks[1..], pos, keyword == "range")?;
                    nodes.push(self.control(keyword, p, pos)?);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return err(pos, format!("{keyword} is not supported"));
                }
                _ => nodes.push(Node::Action(pipe(&toks, pos, false)?)),
            }
        }
        Ok((nodes, Closer::Eof, Pos(0, 0)))
    }

    fn control(&mut self, keyword: &str, p: Pipe, pos: Pos) -> Result<Node> {
        let (body, end, at) = self.list()?;
        let els = match end {
            Closer::Eof => {
                return err(
                    pos,
                    format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
                );
            }
            Closer::End => Vec::new(),
            Closer::Else => match self.list()? {
                (els, Closer::End, _) => els,
                (_, Closer::Eof, _) => {
                    return err(
                        pos,
                        format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
                    );
                }
                (_, _, at) => return err(at, "expected end; found else"),
            },
            Closer::ElseChain(k, p2) if k == keyword && keyword != "range" => vec![self.control(&k, p2, at)?],
            Closer::ElseChain(k, _) => return err(at, format!("else {k} inside {keyword}")),
        };
        Ok(match keyword {
            "if" => Node::If(p, body, els),
            "with" => Node::With(p, body, els),
            _ => Node::Range(p, body, els),
        })
    }
}

/// A pipeline from tokens: `[$a[, $b] :=] cmd | cmd …`.
fn pipe(toks: &[(Tok, Pos)], pos: Pos, range: bool) -> Result<Pipe> {
    let mut toks = toks;
    let mut decl = Vec::new();
    if let Some(d) = toks.iter().position(|(t, _)| *t == Tok::Declare) {
        for (i, (t, p)) in toks[..d].iter().enumerate() {
            match t {
                Tok::Var(v, path) if path.is_empty() && i % 2 == 0 => decl.push(v.clone()),
                Tok::Comma if i % 2 == 1 && range => {}
                t => return err(*p, format!("unexpected {t} in declaration")),
            }
        }
        if decl.is_empty() || decl.len() > if range { 2 } else { 1 } {
            return err(pos, "too many declarations");
        }
        toks = &toks[d + 1..];
    }
    let (p, rest) = pipe_of(toks, pos)?;
    if let Some((t, p)) = rest.first() {
        return err(*p, format!("unexpected {t} in operand"));
    }
    Ok(Pipe { decl, ..p })
}

/// Commands up to the end or an unmatched `)`; returns what is left.
fn pipe_of(mut toks: &[(Tok, Pos)], pos: Pos) -> Result<(Pipe, &[(Tok, Pos)])> {
    let mut cmds = Vec::new();
    let mut cmd = Vec::new();
    while let Some(((t, p), rest)) = toks.split_first() {
        match t {
            Tok::RParen => break,
            Tok::Bar => {
                if cmd.is_empty() {
                    return err(*p, "missing command before |");
                }
                cmds.push(std::mem::take(&mut cmd));
                toks = rest;
                continue;
            }
            Tok::LParen => {
                let (inner, after) = pipe_of(rest, *p)?;
                let Some(((Tok::RParen, _), mut after)) = after.split_first() else {
                    return err(*p, "unclosed left paren");
                };
                let mut path = Vec::new();
                if let Some(((Tok::Chain(c), _), a)) = after.split_first() {
                    path = c.clone();
                    after = a;
                }
                cmd.push(Arg::Paren(Box::new(inner), path));
                toks = after;
                continue;
            }
            Tok::Field(f) => cmd.push(Arg::Field(f.clone())),
            Tok::Var(v, f) => cmd.push(Arg::Var(v.clone(), f.clone())),
            Tok::Str(s) => cmd.push(Arg::Lit(Value::String(s.clone()))),
            Tok::Num(n) => cmd.push(Arg::Lit(Value::Number(n.clone()))),
            Tok::Ident(w) => cmd.push(match w.as_str() {
                "true" => Arg::Lit(Value::Bool(true)),
                "false" => Arg::Lit(Value::Bool(false)),
                "nil" => Arg::Lit(Value::Null),
                w if FUNCS.contains(&w) => Arg::Func(w.to_owned()),
                w => return err(*p, format!("function {w:?} not defined")),
            }),
            t => return err(*p, format!("unexpected {t} in operand")),
        }
        toks = rest;
    }
    if cmd.is_empty() {
        return err(
            pos,
            if cmds.is_empty() {
                "missing value for command"
            } else {
                "missing command after |"
            },
        );
    }
    cmds.push(cmd);
    Ok((
        Pipe {
            pos,
            decl: Vec::new(),
            cmds,
        },
        toks,
    ))
}

const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt", "le", "gt",
    "ge", "json", "join", "split", "upper", "lower", "title", "pad", "truncate",
];

impl Template {
    /// Parses `text`; the error names the line and column.
    pub fn parse(text: &str) -> Result<Self> {
        let items = Lexer { src: text, at: 0 }.items()?;
        let mut p = Parser {
            items: items.into_iter(),
        };
        match p.list()? {
            (nodes, Closer::Eof, _) => Ok(Self { nodes }),
            (_, Closer::End, pos) => err(pos, "unexpected {{end}}"),
            (_, _, pos) => err(pos, "unexpected {{else}}"),
        }
    }

    /// Runs the template on `data`. With `strict`, a field an object lacks
    /// is an error (Docker's placeholders are a struct's methods); without,
    /// it prints `<no value>` (a map's missing key).
    pub fn render(&self, data: &Value, strict: bool) -> Result<String> {
        let mut ex = Exec {
            vars: vec![("".into(), data.clone())],
            out: String::new(),
            strict,
        };
        ex.list(&self.nodes, data)?;
        Ok(ex.out)
    }
}

struct Exec {
    vars: Vec<(String, Value)>,
    out: String,
    strict: bool,
}

/// Go's truth: false, 0, nil, and empty strings, arrays and maps are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Go's `%v` of a JSON value: maps as `map[k:v]` in key order, arrays as `[a b]`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let kv: Vec<String> = keys.iter().map(|k| format!("{k}:{}", text(&o[*k]))).collect();
            format!("map[{}]", kv.join(" "))
        }
        v => v.to_string(),
    }
}

fn exec_err<T>(pos: Pos, msg: impl fmt::Display) -> Result<T> {
    Err(Error(format!("template: {}:{}: {msg}", pos.0, pos.1)))
}

impl Exec {
    fn list(&mut self, nodes: &[Node], dot: &Value) -> Result<()> {
        let mark = self.vars.len();
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&text(&v));
                    }
                }
                Node::If(p, body, els) => {
                    let v = self.pipe(p, dot)?;
                    self.list(if truth(&v) { body } else { els }, dot)?;
                }
                Node::With(p, body, els) => {
                    let v = self.pipe(p, dot)?;
                    if truth(&v) {
                        self.list(body, &v)?;
                    } else {
                        self.list(els, dot)?;
                    }
                }
                Node::Range(p, body, els) => self.range(p, body, els, dot)?,
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn range(&mut self, p: &Pipe, body: &[Node], els: &[Node], dot: &Value) -> Result<()> {
        let v = self.eval_pipe(p, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e.clone()))
                .collect(),
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::from(k.clone()), o[k].clone()))
                    .collect()
            }
            Value::Null => Vec::new(),
            Value::Number(n) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0))
                .map(|i| (Value::from(i), Value::from(i)))
                .collect(),
            other => return exec_err(p.pos, format!("range can't iterate over {}", text(other))),
        };
        if items.is_empty() {
            return self.list(els, dot);
        }
        for (k, e) in items {
            let mark = self.vars.len();
            match p.decl.as_slice() {
                [v] => self.vars.push((v.clone(), e.clone())),
                [kv, v] => {
                    self.vars.push((kv.clone(), k));
                    self.vars.push((v.clone(), e.clone()));
                }
                _ => {}
            }
            self.list(body, &e)?;
            self.vars.truncate(mark);
        }
        Ok(())
    }

    /// Runs a pipeline and declares its variable, if any.
    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value> {
        if p.cmds.is_empty() {
            return Ok(Value::Null);
        }
        let v = self.eval_pipe(p, dot)?;
        if let [name] = p.decl.as_slice() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn eval_pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, dot, last, p.pos)?);
        }
        Ok(last.unwrap_or(Value::Null))
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>, pos: Pos) -> Result<Value> {
        let mut args = Vec::new();
        for a in &cmd[1..] {
            args.push(self.arg(a, dot, pos)?);
        }
        args.extend(piped);
        match &cmd[0] {
            Arg::Func(name) => {
                call(name, &args).or_else(|m| exec_err(pos, format!("error calling {name}: {m}")))
            }
            Arg::Field(path) if !args.is_empty() && !path.is_empty() => {
                // A method with arguments, as `.Label "k"`: index the map it names.
                let (last, head) = path.split_last().unwrap_or((&path[0], &[]));
                let recv = self.walk(dot, head, pos)?;
                let m = self.walk(&recv, std::slice::from_ref(last), pos)?;
                match (&m, args.as_slice()) {
                    (Value::Object(o), [Value::String(k)]) => {
                        Ok(o.get(k).cloned().unwrap_or(Value::from("")))
                    }
                    (Value::String(_), [_]) => Ok(m), // a header row
                    _ => exec_err(
                        pos,
                        format!("can't give argument to non-function .{}", path.join(".")),
                    ),
                }
            }
            a if args.is_empty() => self.arg(a, dot, pos),
            a => exec_err(
                pos,
                format!("can't give argument to non-function {}", describe(a)),
            ),
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value, pos: Pos) -> Result<Value> {
        match a {
            Arg::Field(path) => self.walk(dot, path, pos),
            Arg::Var(name, path) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return exec_err(pos, format!("undefined variable: ${name}"));
                };
                let v = v.clone();
                self.walk(&v, path, pos)
            }
            Arg::Paren(p, path) => {
                let v = self.eval_pipe(p, dot)?;
                self.walk(&v, path, pos)
            }
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Func(name) => {
                call(name, &[]).or_else(|m| exec_err(pos, format!("error calling {name}: {m}")))
            }
        }
    }

    fn walk(&self, v: &Value, path: &[String], pos: Pos) -> Result<Value> {
        let mut v = v.clone();
        for (i, f) in path.iter().enumerate() {
            v = match v {
                Value::Object(mut o) => match o.remove(f) {
                    Some(x) => x,
                    None if self.strict => {
                        return exec_err(
                            pos,
                            format!(
                                "executing at <.{}>: can't evaluate field {f}",
                                path[..=i].join(".")
                            ),
                        );
                    }
                    None => Value::Null,
                },
                Value::Null if !self.strict => Value::Null,
                other => {
                    return exec_err(
                        pos,
                        format!(
                            "executing at <.{}>: can't evaluate field {f} in {}",
                            path[..=i].join("."),
                            kind(&other)
                        ),
                    );
                }
            };
        }
        Ok(v)
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Lit(v) => text(v),
        Arg::Var(v, _) => format!("${v}"),
        _ => "(pipe)".into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn str_arg<'a>(args: &'a [Value], i: usize, name: &str) -> std::result::Result<&'a str, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("{name} wants a string, got {}", kind(v))),
        None => Err(format!("{name} wants {} arguments", i + 1)),
    }
}

fn int_arg(args: &[Value], i: usize) -> std::result::Result<i64, String> {
    match args.get(i) {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Some(v) => Err(format!("wants an integer, got {}", kind(v))),
        None => Err(format!("wants {} arguments", i + 1)),
    }
}

fn arity(args: &[Value], n: usize) -> std::result::Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("wrong number of args: want {n} got {}", args.len()))
    }
}

fn compare(a: &Value, b: &Value) -> std::result::Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).ok_or_else(|| "incomparable numbers".into())
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if x == y => Ok(std::cmp::Ordering::Equal),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            kind(a),
            kind(b)
        )),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            s.push(' ');
        }
        s.push_str(&text(a));
    }
    s
}

/// Go's `fmt.Sprintf` for `%v %s %d %q %t %%`.
fn sprintf(args: &[Value]) -> std::result::Result<String, String> {
    let f = str_arg(args, 0, "printf")?;
    let mut rest = args[1..].iter();
    let mut out = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('v' | 's' | 'd' | 't' | 'q')) => match rest.next() {
                Some(a) if verb == 'q' => out.push_str(&Value::from(text(a)).to_string()),
                Some(a) => out.push_str(&text(a)),
                None => out.push_str(&format!("%!{verb}(MISSING)")),
            },
            Some(v) => return Err(format!("unsupported verb %{v}")),
            None => out.push_str("%!(NOVERB)"),
        }
    }
    Ok(out)
}

fn call(name: &str, args: &[Value]) -> std::result::Result<Value, String> {
    Ok(match name {
        "and" => args
            .iter()
            .find(|a| !truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "not" => {
            arity(args, 1)?;
            Value::Bool(!truth(&args[0]))
        }
        "len" => {
            arity(args, 1)?;
            Value::from(match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                v => return Err(format!("len of {}", kind(v))),
            })
        }
        "index" => {
            let mut v = args.first().cloned().ok_or("index of nothing")?;
            for k in &args[1..] {
                v = match (&v, k) {
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().filter(|i| (*i as usize) < a.len());
                        a[i.ok_or_else(|| format!("index out of range: {n}"))? as usize].clone()
                    }
                    (Value::Object(o), Value::String(s)) => o.get(s).cloned().unwrap_or(Value::Null),
                    (Value::Null, _) => Value::Null,
                    (v, k) => return Err(format!("can't index item of type {} with {}", kind(v), kind(k))),
                };
            }
            v
        }
        "slice" => {
            let from = if args.len() > 1 {
                int_arg(args, 1)? as usize
            } else {
                0
            };
            match args.first() {
                Some(Value::String(s)) => {
                    let to = if args.len() > 2 {
                        int_arg(args, 2)? as usize
                    } else {
                        s.len()
                    };
                    Value::from(s.get(from..to).ok_or("slice index out of range")?)
                }
                Some(Value::Array(a)) => {
                    let to = if args.len() > 2 {
                        int_arg(args, 2)? as usize
                    } else {
                        a.len()
                    };
                    Value::from(a.get(from..to).ok_or("slice index out of range")?.to_vec())
                }
                _ => return Err("can't slice this".into()),
            }
        }
        "print" => Value::from(sprint(args)),
        "printf" => Value::from(sprintf(args)?),
        "println" => {
            let mut s = args.iter().map(text).collect::<Vec<_>>().join(" ");
            s.push('\n');
            Value::from(s)
        }
        "eq" => {
            let first = args.first().ok_or("missing argument for comparison")?;
            let mut eq = false;
            for b in &args[1..] {
                eq |= compare(first, b).map(|o| o.is_eq()).unwrap_or(first == b);
            }
            Value::Bool(eq)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(args, 2)?;
            let o = compare(&args[0], &args[1]);
            Value::Bool(match name {
                "ne" => !o.map(|o| o.is_eq()).unwrap_or(args[0] == args[1]),
                "lt" => o?.is_lt(),
                "le" => o?.is_le(),
                "gt" => o?.is_gt(),
                _ => o?.is_ge(),
            })
        }
        "json" => {
            arity(args, 1)?;
            Value::from(serde_json::to_string(&args[0]).map_err(|e| e.to_string())?)
        }
        "join" => {
            arity(args, 2)?;
            let sep = str_arg(args, 1, "join")?;
            match &args[0] {
                Value::Array(a) => Value::from(a.iter().map(text).collect::<Vec<_>>().join(sep)),
                Value::Null => Value::from(""),
                v => return Err(format!("join of {}", kind(v))),
            }
        }
        "split" => {
            arity(args, 2)?;
            let (s, sep) = (str_arg(args, 0, "split")?, str_arg(args, 1, "split")?);
            Value::Array(s.split(sep).map(Value::from).collect())
        }
        "upper" | "lower" | "title" => {
            arity(args, 1)?;
            let s = text(&args[0]);
            Value::from(match name {
                "upper" => s.to_uppercase(),
                "lower" => s.to_lowercase(),
                _ => title(&s),
            })
        }
        "pad" => {
            arity(args, 3)?;
            let s = text(&args[0]);
            // Capped: a template must not be able to ask for gigabytes.
            let (l, r) = (
                int_arg(args, 1)?.clamp(0, 4096) as usize,
                int_arg(args, 2)?.clamp(0, 4096) as usize,
            );
            Value::from(format!("{}{s}{}", " ".repeat(l), " ".repeat(r)))
        }
        "truncate" => {
            arity(args, 2)?;
            let s = text(&args[0]);
            let n = int_arg(args, 1)?.max(0) as usize;
            Value::from(s.chars().take(n).collect::<String>())
        }
        _ => return Err(format!("function {name:?} not defined")),
    })
}

/// Each word's first letter upper-cased, as Go's `strings.Title`.
fn title(s: &str) -> String {
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

/// What `--format` asked for: Docker's default table, JSON lines, a
/// `table TEMPLATE` (a header row, columns split on tabs) or a bare template.
#[derive(Debug)]
pub enum Format {
    /// `table` or nothing.
    Default,
    /// `json`.
    Json,
    /// `table TEMPLATE`.
    Table(Template),
    /// `TEMPLATE`.
    Raw(Template),
}

impl Format {
    /// Parses `--format`, turning `\t` and `\n` into tabs and newlines as Docker does.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim_matches(' ');
        if t.is_empty() || t == "table" {
            return Ok(Format::Default);
        }
        if t == "json" {
            return Ok(Format::Json);
        }
        let unescape = |s: &str| s.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n");
        match t.strip_prefix("table") {
            Some(rest) if rest.starts_with(char::is_whitespace) => {
                Ok(Format::Table(Template::parse(&unescape(rest))?))
            }
            _ => Ok(Format::Raw(Template::parse(&unescape(t))?)),
        }
    }

    /// The lines for `rows`: for a table, `header` (the placeholders'
    /// column names) rendered first and the columns aligned as Go's
    /// tabwriter does with Docker's settings (minimum width 10, padding 3).
    pub fn lines(&self, rows: &[Value], header: &Value) -> Result<String> {
        match self {
            Format::Raw(t) => {
                let mut out = String::new();
                for r in rows {
                    out.push_str(&t.render(r, true)?);
                    out.push('\n');
                }
                Ok(out)
            }
            Format::Table(t) => {
                let mut text = t.render(header, false)?;
                text.push('\n');
                for r in rows {
                    text.push_str(&t.render(r, true)?);
                    text.push('\n');
                }
                Ok(tabwriter(&text))
            }
            Format::Default | Format::Json => Ok(String::new()),
        }
    }
}

/// Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)` over whole text: each
/// tab-terminated cell is padded to its column's width.
fn tabwriter(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// An object from `(key, value)` pairs, in that order.
pub fn object<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(t: &str, data: Value) -> String {
        Template::parse(t).unwrap().render(&data, false).unwrap()
    }

    fn parse_err(t: &str) -> String {
        Template::parse(t).unwrap_err().to_string()
    }

    #[test]
    fn fields_and_nested_maps() {
        let d = json!({"Name": "web", "NetworkSettings": {"Networks": {"n": {"IPAddress": "10.1.0.2"}}}});
        assert_eq!(run("{{.Name}}", d.clone()), "web");
        assert_eq!(
            run("{{.NetworkSettings.Networks.n.IPAddress}}", d.clone()),
            "10.1.0.2"
        );
        assert_eq!(run("{{.Missing}}", d.clone()), "<no value>");
        assert_eq!(run("a{{.}}b", json!("x")), "axb");
    }

    #[test]
    fn range_over_a_map_goes_in_key_order() {
        let d = json!({"N": {"b": {"IP": "2"}, "a": {"IP": "1"}}});
        assert_eq!(run("{{range .N}}{{.IP}} {{end}}", d.clone()), "1 2 ");
        assert_eq!(
            run("{{range $k, $v := .N}}{{$k}}={{$v.IP}};{{end}}", d.clone()),
            "a=1;b=2;"
        );
        assert_eq!(run("{{range .E}}x{{else}}none{{end}}", json!({"E": []})), "none");
        assert_eq!(
            run("{{range $i, $e := .}}{{$i}}{{$e}}{{end}}", json!(["a", "b"])),
            "0a1b"
        );
    }

    #[test]
    fn if_else_with_and_comparisons() {
        let d = json!({"A": true, "N": 3, "S": ""});
        assert_eq!(run("{{if .A}}y{{else}}n{{end}}", d.clone()), "y");
        assert_eq!(
            run("{{if .S}}y{{else if eq .N 3}}three{{else}}n{{end}}", d.clone()),
            "three"
        );
        assert_eq!(run("{{with .S}}x{{else}}empty{{end}}", d.clone()), "empty");
        assert_eq!(run("{{with .N}}{{.}}{{end}}", d.clone()), "3");
        assert_eq!(run("{{if and .A (gt .N 2)}}big{{end}}", d.clone()), "big");
        assert_eq!(run("{{if not .S}}no s{{end}}", d.clone()), "no s");
        assert_eq!(
            run(r#"{{eq "a" "b" "a"}} {{ne 1 2}} {{le 2 2}}"#, d),
            "true true true"
        );
    }

    #[test]
    fn docker_functions() {
        let d = json!({"L": ["a", "b"], "S": "Hello world", "M": {"k": "v"}});
        assert_eq!(run(r#"{{join .L ", "}}"#, d.clone()), "a, b");
        assert_eq!(run("{{json .M}}", d.clone()), r#"{"k":"v"}"#);
        assert_eq!(run("{{json .}}", json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(
            run("{{upper .S}} {{lower .S}} {{title \"ab cd\"}}", d.clone()),
            "HELLO WORLD hello world Ab Cd"
        );
        assert_eq!(run(r#"{{index (split .S " ") 1}}"#, d.clone()), "world");
        assert_eq!(run(r#"{{index .M "k"}} {{index .L 0}}"#, d.clone()), "v a");
        assert_eq!(run("{{len .L}} {{len .S}}", d.clone()), "2 11");
        assert_eq!(run("{{println .S}}", d.clone()), "Hello world\n");
        assert_eq!(run(r#"{{printf "%s=%d" "x" 3}}"#, d.clone()), "x=3");
        assert_eq!(
            run("{{truncate .S 5}}|{{pad .S 1 1}}|", d.clone()),
            "Hello| Hello world |"
        );
        assert_eq!(run("{{.S | upper | printf \"%s!\"}}", d.clone()), "HELLO WORLD!");
        assert_eq!(run("{{.M}} {{.L}}", d), "map[k:v] [a b]");
    }

    #[test]
    fn variables_comments_and_trim_markers() {
        let d = json!({"A": "x", "B": ["1", "2"]});
        assert_eq!(
            run("{{$a := .A}}{{range .B}}{{$a}}{{.}}{{end}}", d.clone()),
            "x1x2"
        );
        assert_eq!(run("{{range .B}}{{$.A}}{{end}}", d.clone()), "xx");
        assert_eq!(run("a {{/* note */}} b", d.clone()), "a  b");
        assert_eq!(run("a  {{- .A -}}  \n b", d.clone()), "axb");
        assert_eq!(run("{{-3}}", d), "-3");
    }

    #[test]
    fn a_map_field_with_an_argument_is_indexed_like_a_method() {
        let d = json!({"Label": {"team": "web"}});
        assert_eq!(run(r#"{{.Label "team"}}|{{.Label "none"}}|"#, d), "web||");
    }

    #[test]
    fn strict_rendering_rejects_unknown_fields() {
        let t = Template::parse("{{.Nope}}").unwrap();
        assert_eq!(
            t.render(&json!({"Name": "a"}), true).unwrap_err().to_string(),
            "template: 1:1: executing at <.Nope>: can't evaluate field Nope"
        );
    }

    #[test]
    fn parse_errors_name_the_line_and_column() {
        assert_eq!(
            parse_err("{{.Name}"),
            "template parsing error: 1:8: unexpected \"}\" in operand"
        );
        assert_eq!(
            parse_err("{{.Name"),
            "template parsing error: 1:1: unclosed action"
        );
        assert_eq!(
            parse_err("x\n  {{nosuch .}}"),
            "template parsing error: 2:5: function \"nosuch\" not defined"
        );
        assert_eq!(
            parse_err("{{if .A}}x"),
            "template parsing error: 1:1: unexpected EOF: {{if}} has no {{end}}"
        );
        assert_eq!(
            parse_err("{{end}}"),
            "template parsing error: 1:1: unexpected {{end}}"
        );
        assert_eq!(
            parse_err("{{.A | }}"),
            "template parsing error: 1:1: missing command after |"
        );
        assert_eq!(
            parse_err("{{ \"abc }}"),
            "template parsing error: 1:4: unterminated quoted string"
        );
        assert_eq!(
            parse_err("{{(.A}}"),
            "template parsing error: 1:3: unclosed left paren"
        );
    }

    #[test]
    fn no_mangled_template_panics() {
        let seeds = [
            r#"{{range $k, $v := .M}}{{$k}}={{$v | printf "%q"}}{{else}}-{{end}}"#,
            r#"{{- if and .A (gt (len .L) 1) -}} {{index .L 1}} {{else if .S}}{{.S}}{{end}}"#,
            r#"{{with .M}}{{json .}}{{end}}{{/* c */}}{{(split .S " ").x}}{{.Label "k"}}"#,
            "{{`raw` | upper}}{{\"é\\\"\"}}{{-3}}{{1.5}}{{$x := .A}}{{$x}}{{slice .S 1 2}}",
        ];
        let data = json!({"A": true, "L": ["a", "b"], "M": {"k": 1}, "S": "é b", "Label": {"k": "v"}});
        let specials = [
            "{{", "}}", "-", "(", ")", "|", "$", ".", "\"", "`", ":=", ",", " ", "é", "/*",
        ];
        for seed in seeds {
            let chars: Vec<(usize, char)> = seed.char_indices().collect();
            let mut inputs = Vec::new();
            for &(i, c) in &chars {
                inputs.push(seed[..i].to_owned());
                inputs.push(format!("{}{}", &seed[..i], &seed[i + c.len_utf8()..]));
                for sp in specials {
                    inputs.push(format!("{}{sp}{}", &seed[..i], &seed[i..]));
                }
            }
            for t in inputs {
                if let Ok(t) = Template::parse(&t) {
                    let _ = t.render(&data, true);
                    let _ = t.render(&data, false);
                }
            }
        }
    }

    #[test]
    fn table_format_aligns_columns_under_docker_headers() {
        let f = Format::parse(r"table {{.ID}}\t{{.Name}}").unwrap();
        let rows = [
            json!({"ID": "abc", "Name": "bridge"}),
            json!({"ID": "0123456789abcdef", "Name": "x"}),
        ];
        let header = json!({"ID": "NETWORK ID", "Name": "NAME"});
        assert_eq!(
            f.lines(&rows, &header).unwrap(),
            "NETWORK ID         NAME\nabc                bridge\n0123456789abcdef   x\n"
        );
        assert!(matches!(Format::parse("table").unwrap(), Format::Default));
        assert!(matches!(Format::parse("json").unwrap(), Format::Json));
        let raw = Format::parse(r"{{.Name}}\t{{.ID}}").unwrap();
        assert_eq!(raw.lines(&rows[..1], &header).unwrap(), "bridge\tabc\n");
    }
}
