//! A real dockerd (Debian's `docker.io`) inside a test host's network
//! namespace, for the tests of `berth daemon --serve-docker`.
//!
//! dockerd runs under `unshare -m --propagation private` with a tmpfs on
//! `/run` (it writes `/run/docker` and `/run/containerd` whatever its
//! roots say) and the given plugin directory bind-mounted onto
//! `/run/docker/plugins`, the one socket directory it searches; its data
//! root, exec root, socket, pid file and config are under `DIR/docker` in
//! the test host's root. So nothing of it lands in the machine's `/run`,
//! `/etc` or `/var/lib`; it and its containerd and shims carry
//! [`crate::ROOT_ENV`], so the test host's cleanup ends them too.
//! Its one image is `busybox-static` with a few applets, made with
//! `docker import`.
//!
//! Also here: [`post`], a one-request HTTP client over a unix socket, to
//! speak Docker's plugin protocol to berth directly.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Run, TestHost, in_netns};

/// Debian's dockerd.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Its client.
pub const DOCKER: &str = "/usr/bin/docker";
/// The busybox the image is made of (`busybox-static`).
const BUSYBOX: &str = "/bin/busybox";
/// The image every container runs.
pub const IMAGE: &str = "berth-test-busybox:latest";
/// Its applets.
const APPLETS: &[&str] = &["sh", "sleep", "ping", "ip", "cat", "ls"];

/// How long dockerd gets to answer, and to stop.
const START_WAIT: Duration = Duration::from_secs(60);
const STOP_WAIT: Duration = Duration::from_secs(30);
/// Every docker command is bounded.
const COMMAND_WAIT: Duration = Duration::from_secs(90);

/// A running dockerd in a test host; stopped (its containers removed
/// first) when dropped.
pub struct Dockerd {
    dir: PathBuf,
    ns: PathBuf,
    plugins: PathBuf,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd in `host`'s namespace with `plugins` as its
    /// `/run/docker/plugins`, waits until it answers and imports the
    /// image. Panics (with dockerd's log) when it does not come up.
    pub fn start(host: &TestHost, plugins: &Path) -> Self {
        assert!(
            Path::new(DOCKERD).exists() && Path::new(DOCKER).exists(),
            "this test needs Debian's docker.io ({DOCKERD}, {DOCKER}): apt-get install docker.io"
        );
        assert!(
            Path::new(BUSYBOX).exists(),
            "this test needs {BUSYBOX}: apt-get install busybox-static"
        );
        let dir = host.root.join("docker");
        fs::create_dir_all(dir.join("client")).expect("making dockerd's directory");
        // Its trust key would otherwise go to /etc/docker/key.json.
        fs::write(
            dir.join("daemon.json"),
            serde_json::json!({ "deprecated-key-path": dir.join("key.json") }).to_string(),
        )
        .expect("writing daemon.json");
        let mut d = Self {
            dir,
            ns: host.ns.clone(),
            plugins: plugins.to_owned(),
            child: None,
        };
        d.spawn();
        d.import();
        d
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("opening dockerd's log");
        // `unshare` execs the shell, which execs dockerd: one pid.
        let mounts = "mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins \
                      && mount --bind \"$BERTH_TEST_PLUGINS\" /run/docker/plugins && exec \"$@\"";
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            mounts,
            "dockerd",
            DOCKERD,
        ])
        .arg("--config-file")
        .arg(self.dir.join("daemon.json"))
        .arg("--data-root")
        .arg(self.dir.join("data"))
        .arg("--exec-root")
        .arg(self.dir.join("exec"))
        .arg("--pidfile")
        .arg(self.dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", self.socket().display()))
        .arg("--bridge=none")
        .env("BERTH_TEST_PLUGINS", &self.plugins)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dockerd's log"))
        .stderr(log);
        in_netns(&mut c, &self.ns).expect("opening the test host's namespace");
        self.child = Some(c.spawn().expect("starting dockerd"));
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("dockerd exited at start ({st}); its log:\n{}", self.log());
            }
            let probe = self.docker_within(
                &["version", "--format", "{{.Server.Version}}"],
                Duration::from_secs(5),
            );
            if probe.is_some_and(|r| r.code == 0) {
                return;
            }
            if Instant::now() > deadline {
                let pid = self.child.as_ref().map_or(0, Child::id).to_string();
                let seen = Command::new("nsenter")
                    .args([
                        "-t",
                        &pid,
                        "-m",
                        "sh",
                        "-c",
                        "ls -la /run/docker/plugins; grep docker /proc/self/mountinfo; ls -la \"$0\"",
                        &self.plugins.to_string_lossy(),
                    ])
                    .output()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
                    })
                    .unwrap_or_default();
                panic!(
                    "dockerd did not answer within {} s; its /run/docker/plugins:\n{seen}\nits log:\n{}",
                    START_WAIT.as_secs(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn import(&self) {
        let img = self.dir.join("image");
        fs::create_dir_all(img.join("bin")).expect("making the image's tree");
        fs::copy(BUSYBOX, img.join("bin/busybox")).expect("copying busybox into the image");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", img.join("bin").join(applet)).expect("linking an applet");
        }
        let tar = self.dir.join("image.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("running tar");
        assert!(st.success(), "tar of the image failed");
        self.ok(&["import", &tar.to_string_lossy(), IMAGE]);
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// dockerd's log so far.
    pub fn log(&self) -> String {
        let log = fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("module=grpc")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Runs `docker ARGS` against this dockerd, bounded in time.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.docker_within(args, COMMAND_WAIT).unwrap_or_else(|| {
            panic!(
                "docker {} took over {} s; dockerd's log:\n{}",
                args.join(" "),
                COMMAND_WAIT.as_secs(),
                self.log()
            )
        })
    }

    /// Runs `docker ARGS`; `None` (the client killed) after `limit`.
    fn docker_within(&self, args: &[&str], limit: Duration) -> Option<Run> {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("running docker");
        let deadline = Instant::now() + limit;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Some(child.wait_with_output().expect("docker's output").into())
    }

    /// Runs `docker ARGS` and insists on success; returns stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert_eq!(
            r.code,
            0,
            "docker {} failed: {}{}\ndockerd's log:\n{}",
            args.join(" "),
            r.stdout,
            r.stderr,
            self.log()
        );
        r.stdout.trim().to_owned()
    }

    /// Runs `docker ARGS` and insists on failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert_ne!(r.code, 0, "docker {} succeeded: {}", args.join(" "), r.stdout);
        r.stderr
    }

    /// Stops dockerd (SIGTERM, then SIGKILL after a while); its
    /// containers stop with it, its networks stay in its data root.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on the pid of the child we started and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_WAIT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("dockerd did not stop within {} s: killed", STOP_WAIT.as_secs());
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }

    /// Stops dockerd and starts it again on the same roots.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.stop();
        // What is left (a shim) carries ROOT_ENV: the test host's cleanup ends it.
    }
}

/// POSTs `body` to `path` on the unix socket `socket` (HTTP/1.1, one
/// request per connection) and returns the status and the JSON answer
/// (`Null` when the body is not JSON).
pub fn post(socket: &Path, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sending the request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("reading the answer");
    let text = String::from_utf8_lossy(&out);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    // Bounded by the input: each turn consumes a chunk.
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
