//! The host side of the shared-library plugin contract holds when a
//! plugin breaks it: a second `complete` for one `call_async` is ignored
//! (no double free), and a library whose entry point ran is never closed,
//! even when it is refused after that, so threads it started keep their
//! code and the daemon lives on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use berth_testkit::{TestHost, plugin_library};
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn plugins(h: &TestHost) -> Vec<Value> {
    h.ok(&["plugin", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn status(h: &TestHost, name: &str) -> String {
    plugins(h)
        .into_iter()
        .find(|p| p["Name"] == name)
        .unwrap_or_else(|| panic!("plugin ls has no {name}: {:?}", plugins(h)))["Status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_second_complete_for_one_call_is_ignored() {
    let mut h = TestHost::without_daemon(berth());
    std::fs::create_dir_all(h.plugin_dir()).unwrap();
    // faulty's `twice`: call_async answers through `complete` twice with
    // the same token, on the plugin's own thread.
    std::fs::copy(
        plugin_library("berth-plugin-faulty"),
        h.plugin_dir().join("faulty-v2.so"),
    )
    .unwrap();
    h.start_daemon(&[]);
    assert_eq!(status(&h, "faulty-v2"), "loaded");
    for method in ["CreateEndpoint", "Join", "Leave", "DeleteEndpoint"] {
        let net = format!("twice-{}", method.to_lowercase());
        h.ok(&[
            "network",
            "create",
            "-d",
            "faulty-v2",
            "-o",
            &format!("fault=twice@{method}"),
            &net,
        ]);
        h.ok(&[
            "run",
            "-d",
            "--name",
            &net,
            "--network",
            &net,
            "--",
            "sleep",
            "600",
        ]);
        h.ok(&["exec", &net, "--", "ip", "link", "show", "eth0"]);
        h.ok(&["rm", "-f", &net]);
        h.ok(&["network", "rm", &net]);
    }
    // The daemon lived through every second answer and said it ignored it.
    h.ok(&["network", "ls"]);
    let log = h.daemon_log();
    assert!(
        log.matches("answered a call that is not waiting").count() >= 4,
        "{log}"
    );
}

/// Builds a library whose entry point starts a thread that keeps running
/// the library's code (it wakes every millisecond), then makes the host
/// refuse it: `mode` is `null` (no table), `abi9` (a version the host does
/// not speak) or `nocall` (a version 1 table without `call`).
fn spinner(dir: &Path, mode: &str) -> PathBuf {
    let src = dir.join(format!("spin-{mode}.c"));
    let table = match mode {
        "null" => "NULL",
        _ => "&table",
    };
    let abi = if mode == "abi9" { 9 } else { 1 };
    std::fs::write(
        &src,
        format!(
            r#"#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

static void *spin(void *arg) {{
    (void)arg;
    for (;;) usleep(1000);
    return NULL;
}}

static const struct {{
    uint32_t abi_version;
    const char *name;
    const char *capabilities;
    void *call;
    void *free;
}} table = {{ {abi}, "spin", "{{}}", NULL, NULL }};

const void *berth_plugin_v1(void) {{
    pthread_t t;
    if (pthread_create(&t, NULL, spin, NULL) == 0) pthread_detach(t);
    return {table};
}}
"#
        ),
    )
    .unwrap();
    let lib = dir.join(format!("spin-{mode}.so"));
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-pthread", "-o"])
        .arg(&lib)
        .arg(&src)
        .stderr(Stdio::inherit())
        .status()
        .expect("running cc to make a test plugin");
    assert!(st.success(), "cc failed for {}", src.display());
    lib
}

#[test]
fn a_refused_library_whose_entry_point_ran_stays_loaded() {
    let mut h = TestHost::without_daemon(berth());
    std::fs::create_dir_all(h.plugin_dir()).unwrap();
    let build = h.root.join("build");
    std::fs::create_dir_all(&build).unwrap();
    for mode in ["null", "abi9", "nocall"] {
        let lib = spinner(&build, mode);
        std::fs::copy(&lib, h.plugin_dir().join(lib.file_name().unwrap())).unwrap();
    }
    h.start_daemon(&[]);
    // Long enough for each thread to wake up many times in its code.
    thread::sleep(Duration::from_millis(300));
    assert!(
        status(&h, "spin-null").contains("returned no table"),
        "{}",
        status(&h, "spin-null")
    );
    assert_eq!(
        status(&h, "spin-abi9"),
        "refused: ABI version 9, this berth speaks 1 to 2"
    );
    assert_eq!(
        status(&h, "spin-nocall"),
        "refused: its table has no call or no free function"
    );
    // A reload calls the entry points again (the same libraries, still
    // loaded): more threads, still no crash.
    h.ok(&["plugin", "reload"]);
    thread::sleep(Duration::from_millis(300));
    h.ok(&["network", "create", "still-here"]);
    assert!(
        status(&h, "spin-abi9").starts_with("refused: "),
        "{}",
        status(&h, "spin-abi9")
    );
}
