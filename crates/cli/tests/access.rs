//! Who may talk to the daemon, and what one client may hold of it: the
//! socket's mode and group, the modes of the data root, the store and the
//! logs, one daemon per exec root, and the API's bounds (header timeout,
//! connections at once, body size).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::TestHost;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Sends `req` on a new connection and reads the answer until the daemon
/// closes it (the request says `Connection: close`), for at most 10 s.
fn http(socket: &Path, req: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status and the body of an answer.
fn split(resp: &str) -> (u16, &str) {
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {resp:?}"));
    (status, resp.split_once("\r\n\r\n").map_or("", |(_, b)| b))
}

#[test]
fn the_socket_is_0660_and_belongs_to_the_group_given() {
    let mut h = TestHost::without_daemon(berth());
    h.start_daemon(&["--group", "4242"]);
    let m = std::fs::metadata(&h.socket).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660, "the socket's mode");
    assert_eq!(m.gid(), 4242, "the socket's group");
    assert_eq!(m.uid(), 0, "the socket's owner");
}

#[test]
fn without_a_berth_group_the_socket_is_root_s_alone() {
    // This machine has no `berth` group: the default is root's group.
    assert!(
        !std::fs::read_to_string("/etc/group")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("berth:")),
        "this test expects a machine without a berth group"
    );
    let h = TestHost::new(berth());
    let m = std::fs::metadata(&h.socket).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!((m.uid(), m.gid()), (0, 0));
}

#[test]
fn an_unknown_group_is_refused_with_one_line() {
    let h = TestHost::without_daemon(berth());
    let mut d = h.spawn_daemon(&["--group", "no-such-group-here"]).unwrap();
    let st = d.wait().unwrap();
    assert!(!st.success());
    let log = h.daemon_log();
    assert!(
        log.contains("--group \"no-such-group-here\": no such group"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(!h.socket.exists());
}

#[test]
fn the_data_root_is_0700_and_the_store_and_logs_0600() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.41.0.0/24", "n1"]);
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n1",
        "--",
        "sh",
        "-c",
        "echo hello; sleep 600",
    ]);
    let id = id.trim();
    assert_eq!(mode(&h.data_root()), 0o700, "data root");
    assert_eq!(mode(&h.data_root().join("berth.redb")), 0o600, "store");
    assert_eq!(mode(&h.data_root().join("berth.lock")), 0o600, "lock");
    let log = h.data_root().join("containers").join(id).join("container.log");
    assert_eq!(mode(&log), 0o600, "container log");
}

#[test]
fn loose_modes_an_older_daemon_left_are_tightened_at_start() {
    let mut h = TestHost::new(berth());
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "none",
        "--",
        "sleep",
        "600",
    ]);
    let log = h
        .data_root()
        .join("containers")
        .join(id.trim())
        .join("container.log");
    h.stop_daemon();
    for (p, m) in [
        (h.data_root(), 0o755),
        (h.data_root().join("berth.redb"), 0o644),
        (log.clone(), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    h.start_daemon(&[]);
    assert_eq!(mode(&h.data_root()), 0o700);
    assert_eq!(mode(&h.data_root().join("berth.redb")), 0o600);
    assert_eq!(mode(&log), 0o600);
}

#[test]
fn a_second_daemon_on_the_same_exec_root_refuses_and_sweeps_nothing() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.42.0.0/24", "n1"]);
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n1",
        "--",
        "sleep",
        "600",
    ]);
    let sandbox = h.exec_root().join("netns").join(id.trim());
    assert!(sandbox.exists(), "{}", sandbox.display());

    // Another data root and socket, the same exec root.
    let log = h.root.join("second.log");
    let mut cmd = Command::new(berth());
    cmd.arg("-H")
        .arg(format!("unix://{}", h.root.join("second.sock").display()))
        .arg("daemon")
        .arg("--data-root")
        .arg(h.root.join("data2"))
        .arg("--exec-root")
        .arg(h.exec_root())
        .arg("--plugin-dir")
        .arg(h.plugin_dir())
        .arg("--docker-plugin-dir")
        .arg(h.root.join("docker-plugins"))
        .arg("--docker-plugin-spec-dir")
        .arg(h.root.join("docker-plugin-specs"))
        .arg("--cni-config-dir")
        .arg(h.root.join("cni"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    berth_testkit::in_netns(&mut cmd, &h.ns).unwrap();
    let mut second = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    let status = status.unwrap_or_else(|| panic!("the second daemon did not refuse to start: {err}"));
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "another berth daemon is already running with exec root {}",
            h.exec_root().display()
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // The first daemon's container keeps its sandbox and its address.
    assert!(sandbox.exists());
    let addr = h.address("a", "n1");
    assert!(addr.starts_with("10.42.0."), "{addr}");
    let ip = h.ok(&["exec", "a", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(ip.contains(&addr), "{ip}");
}

/// A daemon with small bounds: 1.5 s for headers, 2 connections, 4 KiB bodies.
fn bounded() -> TestHost {
    let mut h = TestHost::without_daemon(berth());
    h.daemon_env("BERTH_API_HEADER_TIMEOUT_MS", "1500");
    h.daemon_env("BERTH_API_MAX_CONNECTIONS", "2");
    h.daemon_env("BERTH_API_MAX_BODY", "4096");
    h.start_daemon(&[]);
    h
}

#[test]
fn a_client_slow_to_send_its_headers_is_dropped() {
    let h = bounded();
    let mut s = UnixStream::connect(&h.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    // Half a request, then nothing: slowloris.
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = s
        .read(&mut buf)
        .expect("the daemon must close the connection, not leave it open");
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "closed after {took:?}; read {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Still serving others.
    assert_eq!(
        split(&http(
            &h.socket,
            b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n"
        ))
        .0,
        200
    );
}

#[test]
fn connections_beyond_the_cap_wait_their_turn() {
    let h = bounded();
    // Two clients hold both connections (each inside its header timeout).
    let held: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut s = UnixStream::connect(&h.socket).unwrap();
            s.write_all(b"GET /_ping HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = UnixStream::connect(&h.socket).unwrap();
    third
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n")
        .unwrap();
    third.set_read_timeout(Some(Duration::from_millis(600))).unwrap();
    let mut buf = [0u8; 1024];
    match third.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        r => panic!(
            "a third connection was served while two were held: {:?}",
            r.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        ),
    }
    // One ends: the third is served.
    drop(held);
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = third.read_to_end(&mut out);
    assert_eq!(split(&String::from_utf8_lossy(&out)).0, 200);
}

#[test]
fn a_body_over_the_cap_is_answered_413_in_docker_s_words() {
    let h = bounded();
    let big = format!(r#"{{"Name":"big","Labels":{{"x":"{}"}}}}"#, "a".repeat(5000));
    // Declared by its length.
    let req = format!(
        "POST /networks/create HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    );
    let resp = http(&h.socket, req.as_bytes());
    let (status, body) = split(&resp);
    assert_eq!(status, 413, "{resp}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    let msg = v["message"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(msg.contains("4096 bytes"), "{msg}");
    // Chunked, with no length given.
    let mut req = b"POST /networks/create HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in big.as_bytes().chunks(1000) {
        req.extend(format!("{:x}\r\n", part.len()).bytes());
        req.extend(part);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let resp = http(&h.socket, &req);
    assert_eq!(split(&resp).0, 413, "{resp}");
    assert!(split(&resp).1.contains("\"message\""), "{resp}");
    // Nothing was made, and a small body still goes through.
    assert!(!h.ok(&["network", "ls"]).contains("big"));
    h.ok(&["network", "create", "small"]);
}
