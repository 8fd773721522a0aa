//! The README's command table and the command line cannot drift apart:
//! every command the table names exists, every flag it shows is one the
//! command takes (and parses with a value where it needs one), and every
//! command and flag the CLI has is in the table.

use std::collections::{BTreeMap, BTreeSet};

use clap::{CommandFactory, Parser};

use crate::args::Cli;

const README: &str = include_str!("../../../README.md");

/// One command as the table shows it: its path (`network create`) and the
/// flags written in its usage.
#[derive(Debug)]
struct Usage {
    path: Vec<String>,
    flags: BTreeSet<String>,
}

/// The table's rows: those whose first cell starts with `` `berth ``.
fn table_rows() -> Vec<&'static str> {
    let rows: Vec<&str> = README
        .lines()
        .filter(|l| l.starts_with("| `berth "))
        .map(|l| {
            // The first cell ends at the first ` |` outside backticks.
            let mut in_code = false;
            for (i, c) in l.char_indices().skip(1) {
                match c {
                    '`' => in_code = !in_code,
                    '|' if !in_code && l[..i].ends_with(' ') => return &l[2..i],
                    _ => {}
                }
            }
            l
        })
        .collect();
    assert!(rows.len() > 10, "the README's command table was not found");
    rows
}

/// The usages in one cell: each code span that starts with `berth `, or
/// that follows ` / ` (a sibling of the previous one: `start NAME...`).
fn usages(cell: &str) -> Vec<Usage> {
    let mut out: Vec<Usage> = Vec::new();
    let spans: Vec<&str> = cell.split('`').collect();
    for (i, span) in spans.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let sibling = i >= 2 && spans[i - 1].trim() == "/";
        let (mut path, rest) = if let Some(rest) = span.strip_prefix("berth ") {
            (Vec::new(), rest)
        } else if sibling {
            let mut p = out.last().expect("a sibling follows a usage").path.clone();
            p.pop();
            (p, *span)
        } else {
            continue;
        };
        let mut words = rest.split_whitespace().peekable();
        while let Some(w) = words.peek() {
            if w.chars().all(|c| c.is_ascii_lowercase()) && !w.is_empty() {
                path.push((*w).to_owned());
                words.next();
            } else {
                break;
            }
        }
        let tail: Vec<&str> = words.collect();
        out.push(Usage {
            path,
            flags: flags(&tail.join(" ")),
        });
    }
    out
}

/// The flags written in a usage: `--long` and `-x` (one letter, not
/// followed by another: `[-END]` is a placeholder).
fn flags(usage: &str) -> BTreeSet<String> {
    let b = usage.as_bytes();
    let mut out = BTreeSet::new();
    for i in 0..b.len() {
        let starts = b[i] == b'-' && (i == 0 || matches!(b[i - 1], b'[' | b' ' | b'|'));
        if !starts {
            continue;
        }
        if b.get(i + 1) == Some(&b'-') {
            let end = (i + 2..b.len())
                .find(|&j| !(b[j].is_ascii_lowercase() || b[j].is_ascii_digit() || b[j] == b'-'))
                .unwrap_or(b.len());
            if end > i + 2 {
                out.insert(usage[i..end].to_owned());
            }
        } else if b.get(i + 1).is_some_and(u8::is_ascii_alphabetic)
            && !b.get(i + 2).is_some_and(|c| c.is_ascii_alphanumeric())
        {
            out.insert(usage[i..i + 2].to_owned());
        }
    }
    out
}

/// Every command of the CLI that takes no subcommand, by path.
fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut BTreeMap<Vec<String>, clap::Command>) {
    if cmd.is_hide_set() || cmd.get_name() == "help" {
        return;
    }
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            leaves(sub, p, out);
        }
    } else {
        out.insert(path, cmd.clone());
    }
}

fn command<'a>(root: &'a clap::Command, path: &[String]) -> Option<&'a clap::Command> {
    path.iter().try_fold(root, |c, w| c.find_subcommand(w))
}

/// The flags a command takes, as written (`--long` and `-x`), with
/// whether each takes a value; help and version are left out.
fn cli_flags(cmd: &clap::Command) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for a in cmd.get_arguments() {
        if a.is_positional() || a.is_hide_set() || matches!(a.get_id().as_str(), "help" | "version") {
            continue;
        }
        let takes = a.get_action().takes_values();
        if let Some(l) = a.get_long() {
            out.insert(format!("--{l}"), takes);
        }
        if let Some(s) = a.get_short() {
            out.insert(format!("-{s}"), takes);
        }
    }
    out
}

#[test]
fn the_readme_table_shows_every_command_and_flag_and_no_other() {
    let mut root = Cli::command();
    root.build();
    let mut documented: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let mut faults = Vec::new();
    for row in table_rows() {
        for u in usages(row) {
            let Some(cmd) = command(&root, &u.path) else {
                faults.push(format!(
                    "the README names `berth {}`, which does not exist",
                    u.path.join(" ")
                ));
                continue;
            };
            let known = cli_flags(cmd);
            for f in &u.flags {
                if f != "-H" && !known.contains_key(f) {
                    faults.push(format!(
                        "the README shows {f} for `berth {}`, which has no such flag",
                        u.path.join(" ")
                    ));
                }
            }
            documented.entry(u.path).or_default().extend(u.flags);
        }
    }
    let mut all = BTreeMap::new();
    leaves(&root, Vec::new(), &mut all);
    for (path, cmd) in &all {
        // `container X` is Docker's longer name of `X` (`container ls` of
        // `ps`): it must take the same flags, and needs no row of its own.
        if path.first().is_some_and(|w| w == "container") {
            let short = if path[1] == "ls" { "ps" } else { path[1].as_str() };
            let twin = command(&root, &[short.to_owned()]).expect("container X mirrors X");
            let (a, b) = (cli_flags(cmd), cli_flags(twin));
            if a != b {
                faults.push(format!(
                    "`berth {}` and `berth {short}` take different flags",
                    path.join(" ")
                ));
            }
            continue;
        }
        let Some(shown) = documented.get(path) else {
            faults.push(format!(
                "the README's table has no row for `berth {}`",
                path.join(" ")
            ));
            continue;
        };
        for f in cli_flags(cmd).keys() {
            if f != "-H" && f != "--host" && !shown.contains(f) {
                // A flag shown by its other name counts.
                let arg = cmd.get_arguments().find(|a| {
                    a.get_long().is_some_and(|l| format!("--{l}") == *f)
                        || a.get_short().is_some_and(|s| format!("-{s}") == *f)
                });
                let other = arg.is_some_and(|a| {
                    a.get_long().is_some_and(|l| shown.contains(&format!("--{l}")))
                        || a.get_short().is_some_and(|s| shown.contains(&format!("-{s}")))
                });
                if !other {
                    faults.push(format!(
                        "the README's row for `berth {}` lacks {f}",
                        path.join(" ")
                    ));
                }
            }
        }
    }
    assert!(faults.is_empty(), "README and CLI differ:\n{}", faults.join("\n"));
}

/// Every flag of the table goes through the parser on its command (with a
/// value where it takes one): the parser knows it there. (It may still
/// want the command's other arguments, or another value.)
#[test]
fn every_flag_of_the_readme_table_parses() {
    let root = Cli::command();
    for row in table_rows() {
        for u in usages(row) {
            let Some(cmd) = command(&root, &u.path) else {
                continue; // the other test names it
            };
            let known = cli_flags(cmd);
            for f in &u.flags {
                let mut argv: Vec<String> = vec!["berth".into()];
                argv.extend(u.path.iter().cloned());
                // `--serve-docker[=DIR]`: an optional value, only after `=`.
                let equals = cmd.get_arguments().any(|a| {
                    a.get_long().is_some_and(|l| format!("--{l}") == *f) && a.is_require_equals_set()
                });
                if equals {
                    argv.push(format!("{f}=1"));
                } else {
                    argv.push(f.clone());
                    if known.get(f).copied().unwrap_or(true) {
                        argv.push("1".into());
                    }
                }
                if let Err(e) = Cli::try_parse_from(&argv) {
                    use clap::error::ErrorKind::{InvalidSubcommand, UnknownArgument};
                    assert!(
                        !matches!(e.kind(), UnknownArgument | InvalidSubcommand),
                        "{argv:?}: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_table_parser_reads_usages() {
    let u = usages("`berth stop [-t SECONDS] NAME...` / `start NAME...` / `kill [-s SIGNAL] NAME...`");
    let paths: Vec<String> = u.iter().map(|u| u.path.join(" ")).collect();
    assert_eq!(paths, ["stop", "start", "kill"]);
    assert_eq!(u[2].flags, BTreeSet::from(["-s".to_owned()]));
    let f =
        flags("[-p [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp\\|udp]]... [-P] [--ip-range CIDR]");
    assert_eq!(f, BTreeSet::from(["-p".into(), "-P".into(), "--ip-range".into()]));
}
