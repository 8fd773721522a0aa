//! A Docker network plugin for tests: Docker's remote network-driver
//! protocol served over a real unix socket by a small threaded HTTP/1.1
//! server, written from the protocol's documentation and independent of
//! berth's own types.
//!
//! Its networks are bridges in the test host's namespace (`pb` and 12 hex
//! digits of the network id) holding the networks' gateway addresses, each
//! with forwarding off so that its networks stay apart; `Join` makes a veth
//! pair there, puts one end on the bridge and hands the other to the
//! engine. Every kernel change runs `ip` inside the test host. Switches
//! ([`Fault`]) make it misbehave, one method at a time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Error, TestHost, run_in};

/// A way to misbehave, set per method with [`DockerPlugin::fault`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `{"Err": MESSAGE}` (status 200, as Docker's plugin helpers do).
    Err(String),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with an empty body.
    Empty,
    /// Say nothing for this long, then close the connection, having done
    /// nothing.
    Hang(Duration),
    /// Answer 404, as for a method the plugin does not have.
    NotFound,
    /// Close the connection without answering and stop serving: the
    /// socket file stays, with nobody listening on it.
    Vanish,
    /// Do the work and answer, then stop serving.
    VanishAfter,
    /// Answer 200 with this body instead of doing the work.
    Answer(String),
}

/// What the plugin knows of one network.
#[derive(Clone, Debug)]
struct Net {
    bridge: String,
    gateway: String,
    routes: Vec<String>,
}

#[derive(Default)]
struct Shared {
    ns: PathBuf,
    socket: PathBuf,
    implements: Vec<String>,
    stop: AtomicBool,
    faults: Mutex<HashMap<String, Fault>>,
    calls: Mutex<Vec<String>>,
    networks: Mutex<HashMap<String, Net>>,
    endpoints: Mutex<HashMap<String, String>>,
}

/// A running test plugin. Dropping it stops the server and removes its
/// socket file.
pub struct DockerPlugin {
    name: String,
    shared: Arc<Shared>,
    server: Option<thread::JoinHandle<()>>,
}

/// The options the plugin's networks take (`-o KEY=VALUE`).
pub const OPTIONS: &[&str] = &["static_route"];

impl DockerPlugin {
    /// Serves the plugin `name` at `<root>/docker-plugins/NAME.sock` of the
    /// test host, where its daemon looks for Docker plugin sockets; it
    /// implements `NetworkDriver`.
    pub fn start(h: &TestHost, name: &str) -> Self {
        let socket = h.root.join("docker-plugins").join(format!("{name}.sock"));
        Self::serve(&h.ns, &socket, name, &["NetworkDriver"])
    }

    /// Serves the plugin `name` on `socket`, doing its kernel work in the
    /// namespace pinned at `ns`, claiming to implement `implements` in its
    /// `Plugin.Activate` answer.
    pub fn serve(ns: &Path, socket: &Path, name: &str, implements: &[&str]) -> Self {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).expect("creating the plugin socket's directory");
        }
        let _ = std::fs::remove_file(socket);
        let listener =
            UnixListener::bind(socket).unwrap_or_else(|e| panic!("listening on {}: {e}", socket.display()));
        let shared = Arc::new(Shared {
            ns: ns.to_owned(),
            socket: socket.to_owned(),
            implements: implements.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        });
        let s = shared.clone();
        let server = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                thread::spawn(move || handle(&s, conn));
            }
            // The listener closes here; the socket file stays.
        });
        Self {
            name: name.to_owned(),
            shared,
            server: Some(server),
        }
    }

    /// The plugin's name (`-d NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its socket.
    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// Makes `method` (`Join`, `CreateEndpoint`, `Plugin.Activate`, …)
    /// misbehave from now on.
    pub fn fault(&self, method: &str, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .insert(method.to_owned(), fault);
    }

    /// Makes every method behave again.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// The methods called so far, in order (`Plugin.Activate`, `Join`, …).
    pub fn calls(&self) -> Vec<String> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Stops serving: later connections are refused. The socket file stays.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and closes the listener.
        let _ = UnixStream::connect(&self.shared.socket);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DockerPlugin {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.shared.socket);
    }
}

/// Reads one request: the path and the body.
fn read_request(conn: &UnixStream) -> Option<(String, Vec<u8>)> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((path, body))
}

fn respond(mut conn: &UnixStream, status: u16, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

/// Stops the server from inside a handler.
fn vanish(s: &Shared) {
    s.stop.store(true, Ordering::SeqCst);
    let _ = UnixStream::connect(&s.socket);
}

fn handle(s: &Shared, conn: UnixStream) {
    let Some((path, body)) = read_request(&conn) else {
        return;
    };
    if s.stop.load(Ordering::SeqCst) {
        return;
    }
    let method = path
        .trim_start_matches('/')
        .trim_start_matches("NetworkDriver.")
        .to_owned();
    s.calls.lock().unwrap().push(method.clone());
    let fault = s.faults.lock().unwrap().get(&method).cloned();
    match fault {
        Some(Fault::Err(msg)) => return respond(&conn, 200, json!({ "Err": msg }).to_string().as_bytes()),
        Some(Fault::Garbage) => return respond(&conn, 200, b"<html>this is not json"),
        Some(Fault::Empty) => return respond(&conn, 200, b""),
        Some(Fault::NotFound) => return respond(&conn, 404, b"404 page not found\n"),
        Some(Fault::Hang(d)) => {
            let until = Instant::now() + d;
            while Instant::now() < until && !s.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        Some(Fault::Vanish) => return vanish(s),
        Some(Fault::Answer(body)) => return respond(&conn, 200, body.as_bytes()),
        Some(Fault::VanishAfter) | None => {}
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = match method.as_str() {
        "Plugin.Activate" => Ok(json!({ "Implements": s.implements })),
        "GetCapabilities" => Ok(json!({ "Scope": "local", "ConnectivityScope": "local" })),
        "CreateNetwork" => create_network(s, &req),
        "DeleteNetwork" => delete_network(s, &req),
        "CreateEndpoint" => create_endpoint(s, &req),
        "Join" => join(s, &req),
        "Leave" => leave(s, &req),
        "DeleteEndpoint" => delete_endpoint(s, &req),
        _ => return respond(&conn, 404, b"404 page not found\n"),
    };
    let body = match answer {
        Ok(v) => v,
        Err(e) => json!({ "Err": e.to_string() }),
    };
    respond(&conn, 200, body.to_string().as_bytes());
    if fault == Some(Fault::VanishAfter) {
        vanish(s);
    }
}

/// Runs `ip ARGS` in the host; the error is its stderr.
fn ip(s: &Shared, args: &[&str]) -> Result<(), Error> {
    let r = run_in(&s.ns, "ip", args);
    if r.code == 0 {
        Ok(())
    } else {
        Err(Error::Ip {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stderr: r.stderr.trim().to_owned(),
        })
    }
}

fn exists(s: &Shared, link: &str) -> bool {
    run_in(&s.ns, "ip", &["link", "show", link]).code == 0
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn create_network(s: &Shared, req: &Value) -> Result<Value, Error> {
    let id = str_of(req, "NetworkID");
    if id.is_empty() {
        return Err(Error::NoNetworkId);
    }
    let mut routes = Vec::new();
    if let Some(opts) = req["Options"]["com.docker.network.generic"].as_object() {
        for (k, v) in opts {
            match k.as_str() {
                "static_route" => routes.push(v.as_str().unwrap_or_default().to_owned()),
                _ => {
                    return Err(Error::UnknownOption {
                        key: k.clone(),
                        accepted: OPTIONS,
                    });
                }
            }
        }
    }
    let gateway = req["IPv4Data"][0]["Gateway"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bridge = format!("pb{}", short(id));
    if !exists(s, &bridge) {
        ip(s, &["link", "add", &bridge, "type", "bridge"])?;
        let made = (|| {
            // Its own networks only: nothing is forwarded from one to another.
            let r = run_in(
                &s.ns,
                "sh",
                &[
                    "-c",
                    &format!("echo 0 > /proc/sys/net/ipv4/conf/{bridge}/forwarding"),
                ],
            );
            if r.code != 0 {
                return Err(Error::Forwarding {
                    bridge: bridge.clone(),
                    stderr: r.stderr.trim().to_owned(),
                });
            }
            if !gateway.is_empty() {
                ip(s, &["addr", "add", &gateway, "dev", &bridge])?;
            }
            ip(s, &["link", "set", &bridge, "up"])
        })();
        if let Err(e) = made {
            let _ = ip(s, &["link", "del", &bridge]);
            return Err(e);
        }
    }
    let gateway = gateway.split('/').next().unwrap_or_default().to_owned();
    s.networks.lock().unwrap().insert(
        id.to_owned(),
        Net {
            bridge,
            gateway,
            routes,
        },
    );
    Ok(json!({}))
}

fn delete_network(s: &Shared, req: &Value) -> Result<Value, Error> {
    let id = str_of(req, "NetworkID");
    let bridge = format!("pb{}", short(id));
    s.networks.lock().unwrap().remove(id);
    if exists(s, &bridge) {
        ip(s, &["link", "del", &bridge])?;
    }
    Ok(json!({}))
}

fn create_endpoint(s: &Shared, req: &Value) -> Result<Value, Error> {
    let (nid, eid) = (str_of(req, "NetworkID"), str_of(req, "EndpointID"));
    if !s.networks.lock().unwrap().contains_key(nid) {
        return Err(Error::NoSuchNetwork(nid.to_owned()));
    }
    s.endpoints.lock().unwrap().insert(eid.to_owned(), nid.to_owned());
    Ok(json!({ "Interface": null }))
}

/// The host end on the bridge, and the end handed to the engine.
fn veth_names(eid: &str) -> (String, String) {
    let e = &eid[..eid.len().min(11)];
    (format!("veth{e}"), format!("vp{e}"))
}

fn join(s: &Shared, req: &Value) -> Result<Value, Error> {
    let (nid, eid) = (str_of(req, "NetworkID"), str_of(req, "EndpointID"));
    let net = s
        .networks
        .lock()
        .unwrap()
        .get(nid)
        .cloned()
        .ok_or_else(|| Error::NoSuchNetwork(nid.to_owned()))?;
    if !s.endpoints.lock().unwrap().contains_key(eid) {
        return Err(Error::NoSuchEndpoint(eid.to_owned()));
    }
    let (host, peer) = veth_names(eid);
    ip(s, &["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
    if let Err(e) = ip(s, &["link", "set", &host, "master", &net.bridge, "up"]) {
        let _ = ip(s, &["link", "del", &host]);
        return Err(e);
    }
    let routes: Vec<Value> = net
        .routes
        .iter()
        .map(|r| json!({ "Destination": r, "RouteType": 1, "NextHop": "" }))
        .collect();
    Ok(json!({
        "InterfaceName": { "SrcName": peer, "DstPrefix": "eth" },
        "Gateway": net.gateway,
        "StaticRoutes": routes,
        "DisableGatewayService": false,
    }))
}

fn leave(s: &Shared, req: &Value) -> Result<Value, Error> {
    let (host, peer) = veth_names(str_of(req, "EndpointID"));
    for l in [host, peer] {
        if exists(s, &l) {
            ip(s, &["link", "del", &l])?;
        }
    }
    Ok(json!({}))
}

fn delete_endpoint(s: &Shared, req: &Value) -> Result<Value, Error> {
    let eid = str_of(req, "EndpointID");
    s.endpoints.lock().unwrap().remove(eid);
    let (host, _) = veth_names(eid);
    if exists(s, &host) {
        ip(s, &["link", "del", &host])?;
    }
    Ok(json!({}))
}
