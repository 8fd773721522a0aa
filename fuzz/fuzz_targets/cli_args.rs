//! Feeds arbitrary command lines to the CLI's reading of them
//! (`crates/cli/src/args.rs`, compiled here as it is): clap's parsing of
//! every command's flags and the error or help text it prints, then the
//! parsing berth does before it asks the daemon anything (`-H`,
//! `KEY=VALUE` options, labels and aux addresses, filters,
//! `--default-address-pool`, `--cluster-store` and its options,
//! `--serve-docker[=DIR]`). The input
//! is the arguments after `berth`, separated by NUL bytes; they need not be
//! UTF-8. Nothing may panic, and a bad value is one line of error.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

// The CLI reads fields (and uses helpers) that this target does not.
#[allow(dead_code)]
#[path = "../../crates/cli/src/args.rs"]
mod args;

use args::{Cli, Cmd, ContainerCmd, LifeCmd, NetworkCmd};

/// A bad value's message must be a single line: `berth: {err:#}` is all
/// the user sees.
fn one_line<T>(r: anyhow::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(!msg.contains(['\n', '\r']), "a multi-line error: {msg:?}");
            None
        }
    }
}

/// `main` indexes a command's argv and `inspect`/`rm` need a key: clap's
/// `required = true` must hold.
fn not_empty(v: &[String]) {
    assert!(!v.is_empty(), "a required list is empty");
}

fn check(cli: Cli) {
    if let Some(h) = &cli.host {
        one_line(args::socket_path(h));
    }
    match cli.cmd {
        Cmd::Daemon(a) => {
            for p in &a.default_address_pool {
                one_line(args::address_pool(p, berth_engine::ipam::AddressPool::new));
            }
            if let Some(dir) = one_line(args::serve_docker_dir(a.serve_docker.as_deref())).flatten() {
                assert!(!dir.as_os_str().is_empty(), "--serve-docker= read as a directory");
            }
            if let Some(store) = &a.cluster_store {
                one_line(
                    berth_engine::berth_cluster::Options::parse(store, &a.cluster_store_opt)
                        .map_err(anyhow::Error::from),
                );
            }
        }
        Cmd::Network(NetworkCmd::Create(a)) => {
            if let Some(body) = one_line(a.request()) {
                serde_json::to_vec(&body).expect("a create request always encodes");
            }
        }
        Cmd::Network(NetworkCmd::Ls { filters, .. } | NetworkCmd::Prune { filters, .. })
        | Cmd::Ps(args::PsArgs { filters, .. })
        | Cmd::Container(ContainerCmd::Ls(args::PsArgs { filters, .. })) => {
            if let Some(f) = one_line(args::filters(&filters)) {
                let q = one_line(args::filters_query(&f)).expect("filters always encode");
                assert!(q.is_empty() || q.bytes().all(|b| b.is_ascii_graphic()), "{q:?}");
            }
        }
        Cmd::Network(NetworkCmd::Inspect { networks: keys, .. } | NetworkCmd::Rm { networks: keys })
        | Cmd::Inspect { containers: keys, .. }
        | Cmd::Rm { containers: keys, .. }
        | Cmd::Life(
            LifeCmd::Stop { containers: keys, .. }
            | LifeCmd::Start { containers: keys }
            | LifeCmd::Restart { containers: keys, .. }
            | LifeCmd::Kill { containers: keys, .. }
            | LifeCmd::Wait { containers: keys },
        ) => {
            not_empty(&keys);
            for k in &keys {
                assert!(args::enc(k).bytes().all(|b| b.is_ascii_graphic()));
            }
        }
        Cmd::Network(
            NetworkCmd::Connect { network, .. }
            | NetworkCmd::Disconnect { network, .. }
            | NetworkCmd::Check { network },
        ) => {
            args::enc(&network);
        }
        Cmd::Run(a) => not_empty(&a.command),
        Cmd::Exec(a) => not_empty(&a.command),
        Cmd::Shim { argv, .. } => not_empty(&argv),
        Cmd::Port { .. }
        | Cmd::System(_)
        | Cmd::Life(LifeCmd::Logs { .. })
        | Cmd::Container(ContainerCmd::Life(_))
        | Cmd::Info
        | Cmd::Version
        | Cmd::Plugin(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let argv = std::iter::once(OsString::from("berth"))
        .chain(data.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec())));
    match Cli::try_parse_from(argv) {
        Ok(cli) => check(cli),
        // What `Cli::parse` would print (an error, or the help or version).
        Err(e) => drop(e.render().to_string()),
    }
});
