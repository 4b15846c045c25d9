//! rustext: a sample Lambda extension shaped like Datadog's bottlecap, the
//! subject of initprof's linker-flag comparisons. It has the same dependency
//! stack as the real one (a tokio multi-thread runtime, hyper servers, a
//! reqwest client with rustls, serde_json) and the same init order:
//!
//!  1. register (POST /2020-01-01/extension/register);
//!  2. listeners on 127.0.0.1:8124 (lifecycle), 8126 (traces), 8999 (telemetry)
//!     and UDP 8125 (DogStatsD);
//!  3. the Telemetry API subscribe (schema 2022-12-13, buffering 1000/262144/25);
//!  4. loop on /next until SHUTDOWN.
//!
//! Like the other samples it prints ground-truth checkpoints on stdout,
//!
//!     INIT | checkpoint=<name> mono_ns=<CLOCK_MONOTONIC ns>
//!
//! at main, register_ok, listener_bound, subscribe_ok and before_next, plus
//! `INIT | phase=<name> mono_ns=<ns>` lines in the style of bottlecap's debug
//! checkpoints (config_loaded, runtime_started, registered, listeners_started,
//! telemetry_subscribed), which `initprof run --checkpoint` can match. Each
//! line is written and flushed on its own, the clock read before it.
//!
//! Environment (all optional except AWS_LAMBDA_RUNTIME_API):
//!   AWS_LAMBDA_RUNTIME_API     host:port of the platform (Lambda: 127.0.0.1:9001)
//!   INITPROF_SAMPLE_PORT       unset: the real ports (8124, 8126, 8999, UDP 8125);
//!                              N: telemetry listener on N and the other three
//!                              ephemeral (0 = all ephemeral, for parallel tests)
//!   INITPROF_SAMPLE_DEST_HOST  host in the subscription URI (default sandbox.localdomain)
//!   INITPROF_SAMPLE_H18=1      subscribe in a task concurrently with the first /next
//!   INITPROF_SAMPLE_CRASH=register|after_register  exit 3 at that point
//!   INITPROF_SAMPLE_NONEXT=1   register, then sleep forever without calling /next
//!   INITPROF_SAMPLE_INIT_DELAY_MS=N  sleep N ms after subscribing (not under H18)

use std::convert::Infallible;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response};

const LIFECYCLE_PORT: u16 = 8124;
const TRACE_PORT: u16 = 8126;
const DOGSTATSD_PORT: u16 = 8125;
const TELEMETRY_PORT: u16 = 8999;

fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes one whole line and flushes it, so a reader sees each line as soon as
/// it happens, whatever stdout is connected to.
fn out_line(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(line.as_bytes());
    let _ = o.flush();
}

fn checkpoint(name: &str, ns: u64) {
    out_line(&format!("INIT | checkpoint={name} mono_ns={ns}\n"));
}

fn phase(name: &str) {
    let ns = mono_ns();
    out_line(&format!("INIT | phase={name} mono_ns={ns}\n"));
}

struct Config {
    name: String,
    api: String,
    telemetry_port: u16,
    other_ports: Option<(u16, u16, u16)>, // lifecycle, trace, dogstatsd
    dest_host: String,
    h18: bool,
    nonext: bool,
    crash_after_register: bool,
    delay_ms: u64,
}

/// Everything the extension needs once registered.
struct Ext {
    name: String,
    api: String,
    id: String,
    client: reqwest::Client,
    init_done: AtomicBool,
}

impl Ext {
    /// Reports a failure to the platform (init/error during init, exit/error
    /// after), prints it on stderr and exits 1.
    async fn fail(&self, reason: &str, msg: &str) -> ! {
        eprintln!("{}: {}", self.name, msg);
        let path = if self.init_done.load(Ordering::SeqCst) {
            "/2020-01-01/extension/exit/error"
        } else {
            "/2020-01-01/extension/init/error"
        };
        let body = serde_json::json!({
            "errorMessage": msg,
            "errorType": format!("Extension.{reason}"),
            "stackTrace": [],
        });
        let r = self
            .client
            .post(format!("http://{}{}", self.api, path))
            .header("Lambda-Extension-Identifier", &self.id)
            .header("Lambda-Extension-Function-Error-Type", format!("Extension.{reason}"))
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Err(e) = r {
            eprintln!("{}: reporting the error to the platform failed too: {e}", self.name);
        }
        std::process::exit(1);
    }
}

fn env_flag(k: &str) -> bool {
    std::env::var(k).map(|v| v == "1").unwrap_or(false)
}

/// Reads the environment; a bad value is one line on stderr and exit 2.
fn load_config(name: String) -> Config {
    let bad = |msg: String| -> ! {
        eprintln!("{name}: {msg}");
        std::process::exit(2);
    };
    let mut crash_after_register = false;
    match std::env::var("INITPROF_SAMPLE_CRASH").unwrap_or_default().as_str() {
        "" => {}
        "register" => {
            eprintln!("{name}: INITPROF_SAMPLE_CRASH=register: exiting with status 3 before registering");
            std::process::exit(3);
        }
        "after_register" => crash_after_register = true,
        other => bad(format!(
            "INITPROF_SAMPLE_CRASH={other}: unknown crash point (want: register or after_register)"
        )),
    }
    let api = match std::env::var("AWS_LAMBDA_RUNTIME_API") {
        Ok(v) if !v.is_empty() => v,
        _ => {
            eprintln!("{name}: AWS_LAMBDA_RUNTIME_API is not set: run me under a Lambda platform (e.g. initprof platform)");
            std::process::exit(1);
        }
    };
    let (telemetry_port, other_ports) = match std::env::var("INITPROF_SAMPLE_PORT") {
        Ok(v) if !v.is_empty() => match v.parse::<u16>() {
            Ok(p) => (p, None),
            Err(_) => bad(format!("INITPROF_SAMPLE_PORT={v} is not a port number (0-65535)")),
        },
        _ => (TELEMETRY_PORT, Some((LIFECYCLE_PORT, TRACE_PORT, DOGSTATSD_PORT))),
    };
    let dest_host = match std::env::var("INITPROF_SAMPLE_DEST_HOST") {
        Ok(v) if !v.is_empty() => v,
        _ => "sandbox.localdomain".to_string(),
    };
    let delay_ms = match std::env::var("INITPROF_SAMPLE_INIT_DELAY_MS") {
        Ok(v) if !v.is_empty() => match v.parse::<u64>() {
            Ok(n) if n <= 600_000 => n,
            _ => bad(format!(
                "INITPROF_SAMPLE_INIT_DELAY_MS={v} is not a number of milliseconds (0-600000)"
            )),
        },
        _ => 0,
    };
    Config {
        name,
        api,
        telemetry_port,
        other_ports,
        dest_host,
        h18: env_flag("INITPROF_SAMPLE_H18"),
        nonext: env_flag("INITPROF_SAMPLE_NONEXT"),
        crash_after_register,
        delay_ms,
    }
}

fn main() {
    let t_main = mono_ns();
    let name = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustext".to_string());
    checkpoint("main", t_main);

    let cfg = load_config(name);
    phase("config_loaded");

    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: starting the tokio runtime: {e}", cfg.name);
            std::process::exit(1);
        }
    };
    phase("runtime_started");
    rt.block_on(run(cfg));
}

async fn run(cfg: Config) {
    // The platform is plain HTTP on loopback: no proxy, as in Lambda.
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: building the HTTP client: {e}", cfg.name);
            std::process::exit(1);
        }
    };

    // 1. Register.
    let id = match register(&cfg, &client).await {
        Ok(id) => id,
        Err(e) => {
            eprintln!("{}: {e}", cfg.name);
            std::process::exit(1);
        }
    };
    phase("registered");
    if cfg.crash_after_register {
        eprintln!(
            "{}: INITPROF_SAMPLE_CRASH=after_register: exiting with status 3 after registering",
            cfg.name
        );
        std::process::exit(3);
    }
    let ext = Arc::new(Ext {
        name: cfg.name.clone(),
        api: cfg.api.clone(),
        id,
        client,
        init_done: AtomicBool::new(false),
    });
    if cfg.nonext {
        eprintln!(
            "{}: INITPROF_SAMPLE_NONEXT=1: registered; sleeping forever without calling /next",
            cfg.name
        );
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }

    // 2. Listeners: lifecycle and trace agent, telemetry, DogStatsD.
    let (lc_port, tr_port, ds_port) = cfg.other_ports.unwrap_or((0, 0, 0));
    for (what, port) in [("lifecycle", lc_port), ("trace agent", tr_port)] {
        match tcp_listen(port, None) {
            Ok(l) => serve(l, |_req| async { Ok(Response::new(Body::from("{}"))) }),
            Err(e) => ext.fail("ListenerFailed", &format!("{what} listener: {e}")).await,
        }
    }
    let events = Arc::new(AtomicU64::new(0));
    let tel = match tcp_listen(cfg.telemetry_port, Some("listener_bound")) {
        Ok(l) => l,
        Err(e) => ext.fail("ListenerFailed", &format!("telemetry listener: {e}")).await,
    };
    let tel_port = tel.local_addr().map(|a| a.port()).unwrap_or(cfg.telemetry_port);
    {
        let events = events.clone();
        serve(tel, move |req| telemetry_batch(req, events.clone()));
    }
    match tokio::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, ds_port)).await {
        Ok(sock) => {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while sock.recv_from(&mut buf).await.is_ok() {}
            });
        }
        Err(e) => {
            ext.fail("ListenerFailed", &format!("DogStatsD: bind UDP 127.0.0.1:{ds_port}: {e}"))
                .await
        }
    }
    phase("listeners_started");

    // 3. Subscribe (concurrently with the first /next under H18).
    let body = serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": format!("http://{}:{}/", cfg.dest_host, tel_port)},
    });
    let sub_task = if cfg.h18 {
        let ext = ext.clone();
        Some(tokio::spawn(async move { subscribe(&ext, body).await }))
    } else {
        subscribe(&ext, body).await;
        if cfg.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cfg.delay_ms)).await;
        }
        None
    };

    // 4. The event loop.
    let mut first = true;
    loop {
        if first {
            first = false;
            checkpoint("before_next", mono_ns());
        }
        let ev = match next(&ext).await {
            Ok(ev) => ev,
            Err(e) => ext.fail("NextFailed", &e).await,
        };
        ext.init_done.store(true, Ordering::SeqCst);
        let et = ev.get("eventType").and_then(|v| v.as_str()).unwrap_or("");
        if et.eq_ignore_ascii_case("SHUTDOWN") {
            // Under H18 the subscribe may still be in flight: finish it, so its
            // outcome (subscribe_ok or an error) is always reported.
            if let Some(t) = sub_task {
                let _ = t.await;
            }
            out_line(&format!(
                "SHUTDOWN | telemetry_events={}\n",
                events.load(Ordering::SeqCst)
            ));
            std::process::exit(0);
        }
    }
}

async fn register(cfg: &Config, client: &reqwest::Client) -> Result<String, String> {
    let resp = client
        .post(format!("http://{}/2020-01-01/extension/register", cfg.api))
        .header("Lambda-Extension-Name", &cfg.name)
        .header("Lambda-Extension-Accept-Feature", "accountId")
        .header("Content-Type", "application/json")
        .body(r#"{"events":["INVOKE","SHUTDOWN"]}"#)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("register failed: {e}"))?;
    let t = mono_ns();
    let status = resp.status();
    let id = resp
        .headers()
        .get("Lambda-Extension-Identifier")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if status != reqwest::StatusCode::OK {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("register: HTTP {}: {:.600}", status.as_u16(), body));
    }
    if id.is_empty() {
        return Err("register: HTTP 200 but no Lambda-Extension-Identifier header".into());
    }
    checkpoint("register_ok", t);
    Ok(id)
}

async fn subscribe(ext: &Ext, body: serde_json::Value) {
    let r = ext
        .client
        .put(format!("http://{}/2022-07-01/telemetry", ext.api))
        .header("Lambda-Extension-Identifier", &ext.id)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let t = mono_ns();
    let resp = match r {
        Ok(r) => r,
        Err(e) => ext.fail("SubscribeFailed", &format!("telemetry subscribe failed: {e}")).await,
    };
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        let msg = format!("telemetry subscribe: HTTP {}: {:.600}", status.as_u16(), body);
        ext.fail("SubscribeFailed", &msg).await;
    }
    checkpoint("subscribe_ok", t);
    phase("telemetry_subscribed");
}

async fn next(ext: &Ext) -> Result<serde_json::Value, String> {
    let resp = ext
        .client
        .get(format!("http://{}/2020-01-01/extension/event/next", ext.api))
        .header("Lambda-Extension-Identifier", &ext.id)
        .send()
        .await
        .map_err(|e| format!("/next failed: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("/next: reading the body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "/next: HTTP {}: {:.600}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("/next: the event is not JSON: {e}"))
}

/// Binds a TCP listener on 127.0.0.1:port, printing the checkpoint (if any)
/// right after bind(2) returns, before listen(2).
fn tcp_listen(port: u16, ckpt: Option<&str>) -> Result<tokio::net::TcpListener, String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let sock = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    let _ = sock.set_reuseaddr(true);
    let r = sock.bind(addr);
    let t = mono_ns();
    r.map_err(|e| format!("bind {addr}: {e}"))?;
    if let Some(name) = ckpt {
        checkpoint(name, t);
    }
    sock.listen(1024).map_err(|e| format!("listen {addr}: {e}"))
}

/// Serves HTTP/1 on the listener in a tokio task.
fn serve<F, R>(l: tokio::net::TcpListener, handler: F)
where
    F: Fn(Request<Body>) -> R + Clone + Send + Sync + 'static,
    R: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let incoming = match hyper::server::conn::AddrIncoming::from_listener(l) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("listener: {e}");
            return;
        }
    };
    let make = make_service_fn(move |_conn| {
        let h = handler.clone();
        async move { Ok::<_, Infallible>(service_fn(h)) }
    });
    tokio::spawn(async move {
        if let Err(e) = hyper::Server::builder(incoming).serve(make).await {
            eprintln!("listener: {e}");
        }
    });
}

/// Handles one Telemetry API batch: a JSON array of events. Counts them and
/// prints each event's type, as the other samples do.
async fn telemetry_batch(
    req: Request<Body>,
    events: Arc<AtomicU64>,
) -> Result<Response<Body>, Infallible> {
    let body = match hyper::body::to_bytes(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return Ok(status(400, format!("reading the batch: {e}"))),
    };
    let batch: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Ok(status(400, format!("the batch is not a JSON array: {e}"))),
    };
    for ev in &batch {
        let ty = ev.get("type").and_then(|v| v.as_str()).unwrap_or("");
        out_line(&format!("TELEMETRY | type={ty}\n"));
        events.fetch_add(1, Ordering::SeqCst);
    }
    Ok(Response::new(Body::empty()))
}

fn status(code: u16, msg: String) -> Response<Body> {
    let mut r = Response::new(Body::from(msg));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    r
}
