//! rustext-bottlecap: a Lambda extension at the scale of Datadog's bottlecap,
//! the subject of initprof's load-time comparisons on a binary of the size
//! whose load is in question. It links bottlecap's dependency set from
//! crates.io (tokio, hyper 1 + hyper-util, axum, reqwest with rustls and
//! HTTP/2, rustls on aws-lc-rs, hyper-rustls, tonic + prost +
//! opentelemetry-proto, zstd, regex, figment, tracing-subscriber, chrono,
//! serde, rmp-serde, protobuf, rand, sha2/hmac) and, before its first /next,
//! does what such an extension does, printing a checkpoint after each step:
//!
//!   1. logging (tracing-subscriber, env filter from DD_LOG_LEVEL);
//!   2. config: defaults, the built-in YAML, $DD_CONFIG_PATH or
//!      $LAMBDA_TASK_ROOT/datadog.yaml if present, then DD_* environment (figment),
//!      and the processing-rule / obfuscation regexes compiled;
//!   3. the tokio multi-thread runtime;
//!   4. HTTP clients: a loopback reqwest client for the Extensions API, a
//!      reqwest intake client (rustls, webpki roots, HTTP/2), a hyper-rustls
//!      client on aws-lc-rs, the zstd compressor and the SigV4 signing key
//!      (hmac-sha256). None of them connects anywhere during init;
//!   5. listeners on 127.0.0.1: lifecycle 8124 and trace agent 8126 (axum),
//!      OTLP gRPC 4317 (tonic), OTLP HTTP 4318 (axum + prost), DogStatsD UDP 8125;
//!   6. register (POST /2020-01-01/extension/register);
//!   7. the telemetry listener on 8999 (hyper) and the Telemetry API subscribe
//!      (PUT /2022-07-01/telemetry, destination http://sandbox.localdomain:8999/);
//!   8. loop on /next until SHUTDOWN, then exit 0.
//!
//! Stdout carries only the sample protocol: `INIT | phase=<name> mono_ns=<ns>`
//! after each step (for `initprof run --checkpoint 'INIT \| phase=(\w+)'`),
//! `INIT | checkpoint=<name> mono_ns=<ns>` ground-truth lines like the other
//! samples (main, register_ok, listener_bound, subscribe_ok, before_next),
//! `TELEMETRY | type=<t>` per telemetry event and `SHUTDOWN | ...` at the end.
//! Logs go to stderr. It never sends anything to an address outside loopback:
//! the intake clients are built, as bottlecap builds them, but never used.
//!
//! Environment (all optional except AWS_LAMBDA_RUNTIME_API):
//!   AWS_LAMBDA_RUNTIME_API     host:port of the platform
//!   INITPROF_SAMPLE_PORT       unset: the fixed ports above; N: telemetry
//!                              listener on N and every other socket ephemeral
//!   INITPROF_SAMPLE_DEST_HOST  host in the subscription URI (default sandbox.localdomain)
//!   DD_*                       config keys (DD_SITE, DD_API_KEY, DD_LOG_LEVEL, ...)

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use datadog_opentelemetry::propagation::carrier::Extractor;
use datadog_opentelemetry::propagation::{
    DatadogCompositePropagator, ExtractResult, PropagationConfig, TracePropagationStyle,
};
use libdd_trace_protobuf::pb;
use sha2::{Digest, Sha256};
use tonic::codec::CompressionEncoding;
use tonic_types::StatusExt;

// bottlecap's allocator: jemalloc, initialised on the first allocation.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

lazy_static::lazy_static! {
    /// A DogStatsD datagram line: name:value|type[|@rate][|#tags][|Tts].
    static ref DOGSTATSD_LINE: regex::Regex = regex::Regex::new(
        r"^(?P<name>[^:|]+):(?P<values>[^|]+)\|(?P<type>c|g|ms|h|s|d)(?:\|@(?P<rate>[0-9.]+))?(?:\|#(?P<tags>[^|]*))?(?:\|T(?P<ts>[0-9]+))?$"
    ).expect("the DogStatsD pattern compiles");
}

const LIFECYCLE_PORT: u16 = 8124;
const DOGSTATSD_PORT: u16 = 8125;
const TRACE_PORT: u16 = 8126;
const OTLP_GRPC_PORT: u16 = 4317;
const OTLP_HTTP_PORT: u16 = 4318;
const TELEMETRY_PORT: u16 = 8999;

/// The configuration bottlecap reads first of all; a file or DD_* variables
/// override it, as figment merges them.
const DEFAULT_YAML: &str = r#"
site: datadoghq.com
log_level: info
serverless_flush_strategy: default
flush_timeout: 30
compression_level: 3
enhanced_metrics: true
capture_lambda_payload: false
capture_lambda_payload_max_depth: 10
serverless_logs_enabled: true
apm_config:
  replace_tags:
    - name: "http.url"
      pattern: "(token|key|secret|password)=[^&]*"
      repl: "$1=?"
    - name: "*"
      pattern: "\\b[0-9]{13,16}\\b"
      repl: "?"
  ignore_resources:
    - "GET /health(check)?"
    - "^(OPTIONS|HEAD) .*"
  obfuscation:
    http:
      remove_query_string: true
      remove_paths_with_digits: true
logs_config:
  processing_rules:
    - type: mask_sequences
      name: mask_credit_cards
      pattern: "(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|3[47][0-9]{13})"
      replace_placeholder: "[masked_card]"
    - type: mask_sequences
      name: mask_emails
      pattern: "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"
      replace_placeholder: "[masked_email]"
    - type: mask_sequences
      name: mask_api_keys
      pattern: "(?i)(api[_-]?key|authorization)[\"':= ]+[A-Za-z0-9_\\-]{16,}"
      replace_placeholder: "$1=[masked]"
    - type: exclude_at_match
      name: exclude_start_end
      pattern: "^(START|END|REPORT) RequestId: [0-9a-f-]{36}"
otlp_config:
  receiver:
    protocols:
      grpc:
        endpoint: "localhost:4317"
      http:
        endpoint: "localhost:4318"
"#;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct ReplaceRule {
    name: String,
    pattern: String,
    repl: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct ApmConfig {
    replace_tags: Vec<ReplaceRule>,
    ignore_resources: Vec<String>,
    obfuscation: HashMap<String, HashMap<String, bool>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct ProcessingRule {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    pattern: String,
    replace_placeholder: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct LogsConfig {
    processing_rules: Vec<ProcessingRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    site: String,
    api_key: String,
    log_level: String,
    env: Option<String>,
    service: Option<String>,
    version: Option<String>,
    tags: Option<String>,
    serverless_flush_strategy: String,
    flush_timeout: u64,
    compression_level: i32,
    #[serde(deserialize_with = "serde_aux::field_attributes::deserialize_bool_from_anything")]
    enhanced_metrics: bool,
    #[serde(deserialize_with = "serde_aux::field_attributes::deserialize_bool_from_anything")]
    capture_lambda_payload: bool,
    tls_cert_file: Option<String>,
    proxy_https: Option<String>,
    capture_lambda_payload_max_depth: u32,
    serverless_logs_enabled: bool,
    apm_config: ApmConfig,
    logs_config: LogsConfig,
    otlp_config: serde_json::Value,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            site: "datadoghq.com".into(),
            api_key: String::new(),
            log_level: "info".into(),
            env: None,
            service: None,
            version: None,
            tags: None,
            serverless_flush_strategy: "default".into(),
            flush_timeout: 30,
            compression_level: 3,
            tls_cert_file: None,
            proxy_https: None,
            enhanced_metrics: true,
            capture_lambda_payload: false,
            capture_lambda_payload_max_depth: 10,
            serverless_logs_enabled: true,
            apm_config: ApmConfig::default(),
            logs_config: LogsConfig::default(),
            otlp_config: serde_json::Value::Null,
        }
    }
}

/// The compiled forms of the config's patterns, as bottlecap's trace and log
/// processors hold them.
struct Rules {
    replace_tags: Vec<(String, regex::Regex, String)>,
    ignore_resources: Vec<regex::Regex>,
    log_rules: Vec<(String, regex::Regex, Option<String>)>,
    obfuscation: libdd_trace_obfuscation::obfuscation_config::ObfuscationConfig,
    /// DD_TAGS (key:value,...) interned, in their given order.
    tags: indexmap::IndexMap<ustr::Ustr, ustr::Ustr>,
}

#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("config: {0}")]
    Config(#[from] figment::Error),
    #[error("config: pattern {0:?}: {1}")]
    Pattern(String, regex::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
    #[error("{0}")]
    Other(String),
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes one whole line to stdout and flushes it.
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

fn die(name: &str, msg: &str) -> ! {
    eprintln!("{name}: {msg}");
    std::process::exit(1);
}

fn load_config() -> Result<Config, InitError> {
    let task_root = std::env::var("LAMBDA_TASK_ROOT").unwrap_or_else(|_| "/var/task".into());
    let path = std::env::var("DD_CONFIG_PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("{task_root}/datadog.yaml"));
    let fig = Figment::from(Serialized::defaults(Config::default()))
        .merge(Yaml::string(DEFAULT_YAML))
        .merge(Yaml::file(path))
        .merge(
            Env::prefixed("DD_")
                .ignore(&["config_path"])
                .filter(|k| !k.as_str().contains("__")),
        );
    Ok(fig.extract()?)
}

fn compile_rules(cfg: &Config) -> Result<Rules, InitError> {
    let re = |p: &str| regex::Regex::new(p).map_err(|e| InitError::Pattern(p.to_string(), e));
    let mut r = Rules {
        replace_tags: Vec::new(),
        ignore_resources: Vec::new(),
        log_rules: Vec::new(),
        obfuscation: libdd_trace_obfuscation::obfuscation_config::ObfuscationConfig::new_from_env()
            .map_err(|e| InitError::Other(format!("trace obfuscation config: {e}")))?,
        tags: indexmap::IndexMap::new(),
    };
    lazy_static::initialize(&DOGSTATSD_LINE);
    for kv in cfg.tags.as_deref().unwrap_or("").split([',', ' ']).filter(|t| !t.is_empty()) {
        let (k, v) = kv.split_once(':').unwrap_or((kv, ""));
        r.tags.insert(ustr::ustr(k), ustr::ustr(v));
    }
    for t in &cfg.apm_config.replace_tags {
        r.replace_tags.push((t.name.clone(), re(&t.pattern)?, t.repl.clone()));
    }
    for p in &cfg.apm_config.ignore_resources {
        r.ignore_resources.push(re(p)?);
    }
    for p in &cfg.logs_config.processing_rules {
        r.log_rules.push((p.kind.clone(), re(&p.pattern)?, p.replace_placeholder.clone()));
    }
    Ok(r)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any size");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The AWS SigV4 signing key bottlecap derives to call KMS / Secrets Manager
/// for an encrypted API key (kSecret -> kDate -> kRegion -> kService -> kSigning).
fn sigv4_key(secret: &str, region: &str, service: &str) -> String {
    let date = chrono::Utc::now().format("%Y%m%d").to_string();
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hex::encode(hmac(&k, b"aws4_request"))
}

/// DD_APM_DD_URL if it names 127.0.0.1, ::1 or localhost, else None (and a
/// log line): the sample must not send anything outside the sandbox.
fn loopback_apm_url() -> Option<http::Uri> {
    let v = std::env::var("DD_APM_DD_URL").ok().filter(|v| !v.is_empty())?;
    let base: http::Uri = v.parse().ok()?;
    let host = base.host()?.trim_matches(['[', ']']).to_string();
    let loopback = host == "localhost"
        || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    if !loopback {
        tracing::warn!(url = %v, "DD_EXTENSION | DD_APM_DD_URL is not loopback: traces are not sent");
        return None;
    }
    format!("{}/v0.4/traces", v.trim_end_matches('/')).parse().ok()
}

/// The size of /tmp, for the tmp_max enhanced metric (statfs, as bottlecap).
fn tmp_max_bytes() -> anyhow::Result<u64> {
    let st = nix::sys::statfs::statfs("/tmp")?;
    Ok(st.blocks() * st.block_size() as u64)
}

type HyperTlsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The clients and state built during init, as bottlecap's flushers hold them.
#[allow(dead_code)]
struct Clients {
    api: reqwest::Client,
    intake: reqwest::Client,
    otlp_forwarder: HyperTlsClient,
    compressor: std::sync::Mutex<zstd::bulk::Compressor<'static>>,
    /// DD_APM_DD_URL, kept only when it is a loopback address.
    apm_url: Option<http::Uri>,
    api_key: String,
    proxy: Option<hyper_http_proxy::ProxyConnector<hyper_util::client::legacy::connect::HttpConnector>>,
    tmp_max_bytes: u64,
    signing_key: String,
    api_key_hash: String,
    intake_url: String,
}

fn build_clients(cfg: &Config) -> Result<Clients, InitError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The platform is plain HTTP on loopback: no proxy, as in Lambda.
    let api = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(None)
        .build()?;
    let intake = reqwest::Client::builder()
        .use_rustls_tls()
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(270))
        .timeout(Duration::from_secs(cfg.flush_timeout))
        .user_agent(concat!("rustext-bottlecap/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // tls_cert_file (DD_TLS_CERT_FILE): extra PEM roots layered on the built-in ones.
    if let Some(path) = cfg.tls_cert_file.as_deref().filter(|p| !p.is_empty()) {
        let f = std::fs::File::open(path)
            .map_err(|e| InitError::Other(format!("tls_cert_file {path}: {e}")))?;
        let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
            rustls_pemfile::certs(&mut std::io::BufReader::new(f))
                .collect::<Result<_, _>>()
                .map_err(|e| InitError::Other(format!("tls_cert_file {path}: {e}")))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        tracing::info!(added, "DD_EXTENSION | extra TLS roots loaded");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let otlp_forwarder = hyper_util::client::legacy::Client::builder(
        hyper_util::rt::TokioExecutor::new(),
    )
    .pool_idle_timeout(Duration::from_secs(270))
    .build(https);
    // proxy_https (DD_PROXY_HTTPS): a CONNECT proxy in front of the intake.
    let proxy = match cfg.proxy_https.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => {
            let uri: http::Uri = p
                .parse()
                .map_err(|e| InitError::Other(format!("proxy_https {p}: {e}")))?;
            let proxy = hyper_http_proxy::Proxy::new(hyper_http_proxy::Intercept::Https, uri);
            let c = hyper_http_proxy::ProxyConnector::from_proxy(
                hyper_util::client::legacy::connect::HttpConnector::new(),
                proxy,
            )
            .map_err(|e| InitError::Other(format!("proxy_https {p}: {e}")))?;
            Some(c)
        }
        None => None,
    };
    let compressor = zstd::bulk::Compressor::new(cfg.compression_level).map_err(InitError::Zstd)?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    Ok(Clients {
        api,
        intake,
        otlp_forwarder,
        compressor: std::sync::Mutex::new(compressor),
        proxy,
        apm_url: loopback_apm_url(),
        api_key: cfg.api_key.clone(),
        tmp_max_bytes: if cfg.enhanced_metrics { tmp_max_bytes().unwrap_or(0) } else { 0 },
        signing_key: sigv4_key(&secret, &region, "secretsmanager"),
        api_key_hash: hex::encode(Sha256::digest(cfg.api_key.as_bytes())),
        intake_url: format!("https://trace.agent.{}/api/v0.2/traces", cfg.site),
    })
}

/// What the listeners count, reported at SHUTDOWN.
#[derive(Default)]
struct Counters {
    telemetry_events: AtomicU64,
    spans: AtomicU64,
    metrics: AtomicU64,
    invocations: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    counters: Arc<Counters>,
    rules: Arc<Rules>,
    pipeline: Arc<TracePipeline>,
}

/// dd-trace-rs's propagation settings, as bottlecap's PropConfig wraps its config.
#[derive(Debug)]
struct PropConfig {
    styles: Vec<TracePropagationStyle>,
    extract_first: bool,
}

impl PropagationConfig for PropConfig {
    fn trace_propagation_style(&self) -> Option<&[TracePropagationStyle]> {
        Some(&self.styles)
    }
    fn trace_propagation_style_extract(&self) -> Option<&[TracePropagationStyle]> {
        None
    }
    fn trace_propagation_style_inject(&self) -> Option<&[TracePropagationStyle]> {
        None
    }
    fn trace_propagation_extract_first(&self) -> bool {
        self.extract_first
    }
    fn trace_propagation_behavior_extract(
        &self,
    ) -> datadog_opentelemetry::configuration::TracePropagationBehaviorExtract {
        datadog_opentelemetry::configuration::TracePropagationBehaviorExtract::default()
    }
    fn datadog_tags_max_length(&self) -> usize {
        512
    }
}

/// A JSON object (a trigger's headers) as a propagation carrier.
struct JsonCarrier<'a>(&'a serde_json::Value);

impl Extractor for JsonCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key.to_lowercase()).and_then(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// The trace side of bottlecap built at init: the propagator for inferred
/// spans and the stats concentrator (libdd-trace-stats).
struct TracePipeline {
    propagator: DatadogCompositePropagator<PropConfig>,
    /// Decoded v0.4 chunks waiting for the flush.
    pending: std::sync::Mutex<Vec<Vec<libdd_trace_utils::span::v04::SpanBytes>>>,
    concentrator: std::sync::Mutex<libdd_trace_stats::span_concentrator::SpanConcentrator>,
}

fn trace_pipeline() -> TracePipeline {
    let styles = std::env::var("DD_TRACE_PROPAGATION_STYLE")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| match s.trim().to_lowercase().as_str() {
                    "datadog" => Some(TracePropagationStyle::Datadog),
                    "tracecontext" => Some(TracePropagationStyle::TraceContext),
                    "b3multi" => Some(TracePropagationStyle::B3Multi),
                    "b3" | "b3 single header" => Some(TracePropagationStyle::B3SingleHeader),
                    "baggage" => Some(TracePropagationStyle::Baggage),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![TracePropagationStyle::Datadog, TracePropagationStyle::TraceContext]);
    let propagator = DatadogCompositePropagator::new(Arc::new(PropConfig {
        styles,
        extract_first: false,
    }));
    let concentrator = libdd_trace_stats::span_concentrator::SpanConcentrator::new(
        Duration::from_secs(10),
        std::time::SystemTime::now(),
        ["client", "server", "producer", "consumer"].map(String::from).to_vec(),
        ["_dd.base_service", "db.instance", "db.system", "peer.service", "peer.hostname"]
            .map(String::from)
            .to_vec(),
        None,
        Vec::new(),
        // stats-obfuscation (enabled by dd-trace-rs): bottlecap passes None too.
        None,
    );
    TracePipeline {
        propagator,
        pending: std::sync::Mutex::new(Vec::new()),
        concentrator: std::sync::Mutex::new(concentrator),
    }
}

async fn traces(
    State(s): State<AppState>,
    headers: http::HeaderMap,
    body: Bytes,
) -> (http::StatusCode, String) {
    let msgpack = mime::APPLICATION_MSGPACK.essence_str();
    if let Some(ct) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        if !ct.starts_with(msgpack) && !ct.starts_with("application/octet-stream") {
            return (http::StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("want {msgpack}"));
        }
    }
    let (chunks, _) =
        match libdd_trace_utils::msgpack_decoder::v04::from_bytes(libdd_tinybytes::Bytes::from(body.to_vec())) {
            Ok(c) => c,
            Err(e) => return (http::StatusCode::BAD_REQUEST, format!("{e}")),
        };
    let mut kept = 0u64;
    let mut keep = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        keep.push(chunk.clone());
        let mut trace: Vec<pb::Span> = Vec::with_capacity(chunk.len());
        for mut span in chunk {
            libdd_trace_obfuscation::obfuscate::obfuscate_v04_span(&mut span, &s.rules.obfuscation);
            let mut meta: HashMap<String, String> = span
                .meta
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.as_str().to_string()))
                .collect();
            for (tag, re, repl) in &s.rules.replace_tags {
                for (k, v) in meta.iter_mut() {
                    if tag == "*" || tag == k {
                        *v = re.replace_all(v, repl.as_str()).into_owned();
                    }
                }
            }
            for (k, v) in &s.rules.tags {
                meta.entry(k.to_string()).or_insert_with(|| v.to_string());
            }
            trace.push(pb::Span {
                service: span.service.as_str().to_string(),
                name: span.name.as_str().to_string(),
                resource: span.resource.as_str().to_string(),
                r#type: span.r#type.as_str().to_string(),
                trace_id: span.trace_id as u64,
                span_id: span.span_id,
                parent_id: span.parent_id,
                start: span.start,
                duration: span.duration,
                error: span.error,
                meta,
                ..Default::default()
            });
        }
        trace.retain(|sp| !s.rules.ignore_resources.iter().any(|r| r.is_match(&sp.resource)));
        libdd_trace_utils::trace_utils::compute_top_level_span(&mut trace);
        if trace.is_empty() || libdd_trace_normalization::normalizer::normalize_trace(&mut trace).is_err() {
            continue;
        }
        for sp in trace.iter_mut() {
            libdd_trace_obfuscation::obfuscate::obfuscate_pb_span(sp, &s.rules.obfuscation);
        }
        if let Ok(mut c) = s.pipeline.concentrator.lock() {
            for sp in &trace {
                c.add_span(sp);
            }
        }
        kept += trace.len() as u64;
    }
    if let Ok(mut p) = s.pipeline.pending.lock() {
        p.extend(keep);
    }
    s.counters.spans.fetch_add(kept, Ordering::SeqCst);
    (http::StatusCode::OK, r#"{"rate_by_service":{}}"#.into())
}

/// The profiling intake (multipart/form-data); counts the parts.
async fn profiling(headers: http::HeaderMap, body: Bytes) -> (http::StatusCode, String) {
    let boundary = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .and_then(|m| m.get_param(mime::BOUNDARY).map(|b| b.as_str().to_string()));
    let Some(boundary) = boundary else {
        return (http::StatusCode::BAD_REQUEST, "no multipart boundary".into());
    };
    let mut mp = multipart::server::Multipart::with_body(std::io::Cursor::new(body), boundary);
    let mut parts = Vec::new();
    let r = mp.foreach_entry(|f| parts.push(f.headers.name.to_string()));
    match r {
        Ok(()) => (http::StatusCode::OK, itertools::Itertools::join(&mut parts.iter(), ",")),
        Err(e) => (http::StatusCode::BAD_REQUEST, format!("{e}")),
    }
}

async fn otlp_http_traces(State(s): State<AppState>, body: Bytes) -> http::StatusCode {
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            let n: usize = req
                .resource_spans
                .iter()
                .flat_map(|r| r.scope_spans.iter())
                .map(|s| s.spans.len())
                .sum();
            s.counters.spans.fetch_add(n as u64, Ordering::SeqCst);
            http::StatusCode::OK
        }
        Err(_) => http::StatusCode::BAD_REQUEST,
    }
}

async fn invocation(
    State(s): State<AppState>,
    uri: http::Uri,
    headers: http::HeaderMap,
    axum::Json(v): axum::Json<serde_json::Value>,
) -> axum::Json<serde_json::Value> {
    s.counters.invocations.fetch_add(1, Ordering::SeqCst);
    let depth = v.as_object().map(|o| o.len()).unwrap_or(0);
    let parent = match v.get("headers") {
        Some(h) => match s.pipeline.propagator.extract(&JsonCarrier(h)) {
            ExtractResult::Continue(ctx) => Some(ctx.span_id),
            _ => None,
        },
        None => None,
    };
    // The inferred-span path reads the trigger's query string and cookies.
    let query: Vec<(String, String)> =
        serde_html_form::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let cookies = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| cookie::Cookie::parse(c.trim().to_string()).ok())
        .count();
    axum::Json(serde_json::json!({"ok": true, "keys": depth, "query": query.len(), "cookies": cookies, "parent_id": parent}))
}

struct OtlpGrpc {
    counters: Arc<Counters>,
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.get_ref();
        if req.resource_spans.is_empty() {
            return Err(tonic::Status::with_error_details(
                tonic::Code::InvalidArgument,
                "empty export",
                tonic_types::ErrorDetails::with_bad_request_violation("resource_spans", "is empty"),
            ));
        }
        let services = req
            .resource_spans
            .iter()
            .filter_map(|r| r.resource.as_ref())
            .flat_map(|r| r.attributes.iter())
            .filter(|kv| kv.key == opentelemetry_semantic_conventions::attribute::SERVICE_NAME)
            .count();
        let n: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter())
            .map(|s| s.spans.len())
            .sum();
        tracing::debug!(services, spans = n, "DD_EXTENSION | OTLP export");
        self.counters.spans.fetch_add(n as u64, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_logs
            .iter()
            .flat_map(|r| r.scope_logs.iter())
            .map(|s| s.log_records.len())
            .sum();
        tracing::debug!(records = n, "DD_EXTENSION | OTLP logs");
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_metrics
            .iter()
            .flat_map(|r| r.scope_metrics.iter())
            .map(|s| s.metrics.len())
            .sum();
        self.counters.metrics.fetch_add(n as u64, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A trait object boundary like bottlecap's flushers.
#[async_trait::async_trait]
trait Flusher: Send + Sync {
    /// Builds the final payload; returns its compressed size. It is never sent:
    /// the sample must not reach an address outside the sandbox.
    async fn prepare(&self, c: &Counters) -> Result<usize, String>;
}

struct StatsFlusher {
    clients: Arc<Clients>,
    pipeline: Arc<TracePipeline>,
}

impl StatsFlusher {
    /// Sends the pending traces with libdatadog's SendData (zstd, retries), as
    /// bottlecap's trace flusher does, but only to a loopback DD_APM_DD_URL
    /// (a fake intake in a test): the sample never reaches the real intake.
    async fn flush_traces(&self, stats: pb::ClientStatsPayload) {
        let Some(url) = self.clients.apm_url.clone() else {
            return;
        };
        // Stats first (msgpack + gzip, /v0.6/stats), as bottlecap's stats flusher.
        if !stats.stats.is_empty() {
            let payload = libdd_trace_utils::stats_utils::construct_stats_payload(vec![stats]);
            if let Ok(data) = libdd_trace_utils::stats_utils::serialize_stats_payload(payload) {
                let stats_url = url.to_string().replace("/v0.4/traces", "/v0.6/stats");
                if let Ok(u) = stats_url.parse() {
                    let ep = libdd_common::Endpoint {
                        url: u,
                        ..Default::default()
                    };
                    let r = libdd_trace_utils::stats_utils::send_stats_payload::<
                        libdd_capabilities_impl::NativeCapabilities,
                    >(data, &ep, &self.clients.api_key)
                    .await;
                    if let Err(e) = r {
                        tracing::warn!("DD_EXTENSION | stats flush: {e}");
                    }
                }
            }
        }
        let chunks = match self.pipeline.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        if chunks.is_empty() {
            return;
        }
        let endpoint = libdd_common::Endpoint {
            url,
            api_key: Some(self.clients.api_key.clone().into()),
            timeout_ms: 5_000,
            ..Default::default()
        };
        let size = chunks.iter().map(|c| c.len()).sum::<usize>();
        let data = libdd_trace_utils::send_data::SendDataBuilder::new(
            size,
            libdd_trace_utils::tracer_payload::TracerPayloadCollection::V04(chunks),
            libdd_trace_utils::tracer_header_tags::TracerHeaderTags::default(),
            &endpoint,
        )
        .with_compression(libdd_trace_utils::send_with_retry::CompressionStrategy::Zstd {
            level: 3,
        })
        .build();
        let caps = libdd_capabilities_impl::NativeCapabilities::new();
        let r = data.send(&caps).await;
        tracing::info!(
            requests = r.requests_count,
            bytes = r.bytes_sent,
            "DD_EXTENSION | traces flushed"
        );
    }
}

#[async_trait::async_trait]
impl Flusher for StatsFlusher {
    async fn prepare(&self, c: &Counters) -> Result<usize, String> {
        let now = chrono::Utc::now();
        let mut ts = protobuf::well_known_types::timestamp::Timestamp::new();
        ts.seconds = now.timestamp();
        ts.nanos = now.timestamp_subsec_nanos() as i32;
        let mut payload = protobuf::Message::write_to_bytes(&ts).map_err(|e| e.to_string())?;
        let buckets = match self.pipeline.concentrator.lock() {
            Ok(mut c) => c.flush(std::time::SystemTime::now(), true).all_buckets(),
            Err(_) => Vec::new(),
        };
        for b in &buckets {
            payload.extend_from_slice(&prost::Message::encode_to_vec(b));
        }
        let stats = pb::ClientStatsPayload {
            hostname: String::new(),
            env: std::env::var("DD_ENV").unwrap_or_default(),
            version: std::env::var("DD_VERSION").unwrap_or_default(),
            stats: buckets,
            ..Default::default()
        };
        let summary = serde_json::json!({
            "spans": c.spans.load(Ordering::SeqCst),
            "metrics": c.metrics.load(Ordering::SeqCst),
            "invocations": c.invocations.load(Ordering::SeqCst),
            "telemetry_events": c.telemetry_events.load(Ordering::SeqCst),
            "at": now.to_rfc3339(),
        });
        payload.extend_from_slice(summary.to_string().as_bytes());
        let mut order: ordered_hash_map::OrderedHashMap<&str, u64> = ordered_hash_map::OrderedHashMap::new();
        order.insert("spans", c.spans.load(Ordering::SeqCst));
        order.insert("metrics", c.metrics.load(Ordering::SeqCst));
        let packed = rmp_serde::to_vec_named(&order.iter().collect::<Vec<_>>()).map_err(|e| e.to_string())?;
        payload.extend_from_slice(&packed);
        let size = {
            let mut z = self.clients.compressor.lock().map_err(|e| e.to_string())?;
            z.compress(&payload).map(|v| v.len()).map_err(|e| e.to_string())?
        };
        self.flush_traces(stats).await;
        Ok(size)
    }
}

struct Ports {
    lifecycle: u16,
    dogstatsd: u16,
    trace: u16,
    otlp_grpc: u16,
    otlp_http: u16,
    telemetry: u16,
}

fn ports(name: &str) -> Ports {
    match std::env::var("INITPROF_SAMPLE_PORT") {
        Ok(v) if !v.is_empty() => match v.parse::<u16>() {
            Ok(p) => Ports {
                lifecycle: 0,
                dogstatsd: 0,
                trace: 0,
                otlp_grpc: 0,
                otlp_http: 0,
                telemetry: p,
            },
            Err(_) => {
                eprintln!("{name}: INITPROF_SAMPLE_PORT={v} is not a port number (0-65535)");
                std::process::exit(2);
            }
        },
        _ => Ports {
            lifecycle: LIFECYCLE_PORT,
            dogstatsd: DOGSTATSD_PORT,
            trace: TRACE_PORT,
            otlp_grpc: OTLP_GRPC_PORT,
            otlp_http: OTLP_HTTP_PORT,
            telemetry: TELEMETRY_PORT,
        },
    }
}

fn main() {
    let t_main = mono_ns();
    let name = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustext-bottlecap".to_string());
    checkpoint("main", t_main);
    let api = match std::env::var("AWS_LAMBDA_RUNTIME_API") {
        Ok(v) if !v.is_empty() => v,
        _ => die(
            &name,
            "AWS_LAMBDA_RUNTIME_API is not set: run me under a Lambda platform (e.g. initprof platform)",
        ),
    };
    let ports = ports(&name);

    // 1. Logging, as bottlecap sets it up first from DD_LOG_LEVEL.
    let level = std::env::var("DD_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(level.to_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    phase("logging_ready");

    // 2. Config: defaults < built-in YAML < datadog.yaml < DD_* environment.
    let cfg = match load_config() {
        Ok(c) => c,
        Err(e) => die(&name, &e.to_string()),
    };
    let rules = match compile_rules(&cfg) {
        Ok(r) => Arc::new(r),
        Err(e) => die(&name, &e.to_string()),
    };
    tracing::info!(
        site = %cfg.site,
        rules = rules.log_rules.len() + rules.replace_tags.len() + rules.ignore_resources.len(),
        "DD_EXTENSION | config loaded"
    );
    phase("config_loaded");

    // 3. The runtime.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => die(&name, &format!("starting the tokio runtime: {e}")),
    };
    phase("runtime_started");
    rt.block_on(run(name, api, cfg, rules, ports));
}

async fn tcp_listen(port: u16, ckpt: Option<&str>) -> Result<tokio::net::TcpListener, String> {
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

fn serve_axum(l: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(l, router).await {
            tracing::error!("DD_EXTENSION | listener: {e}");
        }
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct RegisterResponse {
    #[serde(default)]
    function_name: String,
    #[serde(default)]
    function_version: String,
    #[serde(default)]
    handler: String,
    #[serde(default)]
    account_id: Option<String>,
}

async fn run(name: String, api: String, cfg: Config, rules: Arc<Rules>, ports: Ports) {
    // 4. HTTP clients with TLS roots, compressor, signing key.
    let clients = match build_clients(&cfg) {
        Ok(c) => Arc::new(c),
        Err(e) => die(&name, &e.to_string()),
    };
    let instance: u64 = rand::rng().random();
    tracing::debug!(
        instance = format!("{instance:016x}"),
        key = %&clients.api_key_hash[..12],
        tmp_max = clients.tmp_max_bytes,
        proxy = clients.proxy.is_some(),
        intake = %clients.intake_url,
        "DD_EXTENSION | clients ready"
    );
    phase("http_clients_built");

    // 4b. The trace pipeline: propagator and stats concentrator.
    let pipeline = Arc::new(trace_pipeline());
    phase("trace_pipeline_ready");

    // 5. Listeners: lifecycle and trace agent (axum), OTLP gRPC (tonic), OTLP
    //    HTTP (axum + prost), DogStatsD (UDP).
    let counters = Arc::new(Counters::default());
    let state = AppState {
        counters: counters.clone(),
        rules: rules.clone(),
        pipeline,
    };
    let lifecycle = Router::new()
        .route("/lambda/start-invocation", post(invocation))
        .route("/lambda/end-invocation", post(invocation))
        .route("/lambda/hello", get(|| async { "{}" }))
        .with_state(state.clone());
    let trace = Router::new()
        .route("/v0.4/traces", post(traces).put(traces))
        .route("/v0.5/traces", post(traces).put(traces))
        .route("/profiling/v1/input", post(profiling))
        .route(
            "/info",
            get(|| async { axum::Json(serde_json::json!({"endpoints": ["/v0.4/traces", "/v0.5/traces"]})) }),
        )
        .layer(tower_http::limit::RequestBodyLimitLayer::new(50 * 1024 * 1024))
        .with_state(state.clone());
    let otlp_http = Router::new()
        .route("/v1/traces", post(otlp_http_traces))
        .with_state(state.clone());
    let bound = futures::future::join_all(
        [ports.lifecycle, ports.trace, ports.otlp_http].map(|p| tcp_listen(p, None)),
    )
    .await;
    for ((what, router), l) in [
        ("lifecycle", lifecycle),
        ("trace agent", trace),
        ("OTLP HTTP", otlp_http),
    ]
    .into_iter()
    .zip(bound)
    {
        match l {
            Ok(l) => serve_axum(l, router),
            Err(e) => die(&name, &format!("{what} listener: {e}")),
        }
    }
    let grpc = match tcp_listen(ports.otlp_grpc, None).await {
        Ok(l) => l,
        Err(e) => die(&name, &format!("OTLP gRPC listener: {e}")),
    };
    {
        let traces = TraceServiceServer::new(OtlpGrpc {
            counters: counters.clone(),
        })
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
        let metrics = MetricsServiceServer::new(OtlpGrpc {
            counters: counters.clone(),
        })
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
        let logs = LogsServiceServer::new(OtlpGrpc {
            counters: counters.clone(),
        })
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
        tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .add_service(traces)
                .add_service(metrics)
                .add_service(logs)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc))
                .await;
            if let Err(e) = r {
                tracing::error!("DD_EXTENSION | OTLP gRPC: {e}");
            }
        });
    }
    match tokio::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, ports.dogstatsd)).await
    {
        Ok(sock) => {
            let counters = counters.clone();
            let rules = rules.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut agg: fnv::FnvHashMap<String, f64> = fnv::FnvHashMap::default();
                while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    for caps in text.lines().filter_map(|l| DOGSTATSD_LINE.captures(l)) {
                        let v: f64 = caps["values"].split(':').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
                        *agg.entry(caps["name"].to_string()).or_default() += v;
                        counters.metrics.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = rules.tags.len();
                }
            });
        }
        Err(e) => die(
            &name,
            &format!("DogStatsD: bind UDP 127.0.0.1:{}: {e}", ports.dogstatsd),
        ),
    }
    // The Runtime API proxy (bottlecap's proxy for AppSec and LWA): only when
    // enabled, on 127.0.0.1:9000, forwarding to AWS_LAMBDA_RUNTIME_API.
    let proxy_on = ["DD_SERVERLESS_APPSEC_ENABLED", "DD_EXPERIMENTAL_ENABLE_PROXY"]
        .iter()
        .any(|k| std::env::var(k).map(|v| v == "true" || v == "1").unwrap_or(false));
    if proxy_on {
        let port = if ports.telemetry == TELEMETRY_PORT { 9000 } else { 0 };
        match tcp_listen(port, None).await {
            Ok(l) => {
                let fwd = ProxyState {
                    client: clients.otlp_forwarder.clone(),
                    upstream: api.clone(),
                };
                serve_axum(l, Router::new().fallback(runtime_proxy).with_state(fwd));
            }
            Err(e) => die(&name, &format!("runtime API proxy listener: {e}")),
        }
    }
    phase("listeners_started");

    // 6. Register.
    let id = match register(&name, &api, &clients.api).await {
        Ok(id) => id,
        Err(e) => die(&name, &e),
    };
    phase("registered");

    // 7. Telemetry listener (hyper, on its own port) and the subscribe.
    let tel = match tcp_listen(ports.telemetry, Some("listener_bound")).await {
        Ok(l) => l,
        Err(e) => fail(&name, &api, &id, &clients.api, &format!("telemetry listener: {e}")).await,
    };
    let tel_port = tel.local_addr().map(|a| a.port()).unwrap_or(ports.telemetry);
    serve_telemetry(tel, counters.clone());
    phase("telemetry_listener_started");
    let dest_host = std::env::var("INITPROF_SAMPLE_DEST_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sandbox.localdomain".to_string());
    if let Err(e) = subscribe(&api, &id, &clients.api, &dest_host, tel_port).await {
        fail(&name, &api, &id, &clients.api, &e).await;
    }
    phase("telemetry_subscribed");

    // 8. The event loop.
    let flusher: Box<dyn Flusher> = Box::new(StatsFlusher {
        clients: clients.clone(),
        pipeline: state.pipeline.clone(),
    });
    checkpoint("before_next", mono_ns());
    loop {
        let ev = match next(&api, &id, &clients.api).await {
            Ok(ev) => ev,
            Err(e) => die(&name, &e),
        };
        let et = ev.get("eventType").and_then(|v| v.as_str()).unwrap_or("");
        if et.eq_ignore_ascii_case("SHUTDOWN") {
            let size = flusher.prepare(&counters).await.unwrap_or(0);
            out_line(&format!(
                "SHUTDOWN | telemetry_events={} final_payload_zstd_bytes={size}\n",
                counters.telemetry_events.load(Ordering::SeqCst)
            ));
            std::process::exit(0);
        }
        counters.invocations.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct ProxyState {
    client: HyperTlsClient,
    upstream: String,
}

/// Forwards one Runtime API request to the platform with the hyper-rustls
/// client, as bottlecap's proxy does (it inspects invocation payloads on the way).
async fn runtime_proxy(
    State(p): State<ProxyState>,
    req: axum::extract::Request,
) -> Result<axum::response::Response, http::StatusCode> {
    let (mut parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| http::StatusCode::BAD_REQUEST)?
        .to_bytes();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    parts.uri = format!("http://{}{}", p.upstream, path)
        .parse()
        .map_err(|_| http::StatusCode::BAD_REQUEST)?;
    parts.headers.remove(http::header::HOST);
    let resp = p
        .client
        .request(http::Request::from_parts(parts, Full::new(bytes)))
        .await
        .map_err(|_| http::StatusCode::BAD_GATEWAY)?;
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| http::StatusCode::BAD_GATEWAY)?
        .to_bytes();
    Ok(axum::response::Response::from_parts(parts, axum::body::Body::from(bytes)))
}

/// Reports an init failure to the platform, prints it and exits 1.
async fn fail(name: &str, api: &str, id: &str, client: &reqwest::Client, msg: &str) -> ! {
    eprintln!("{name}: {msg}");
    let body = serde_json::json!({"errorMessage": msg, "errorType": "Extension.InitFailed", "stackTrace": []});
    let _ = client
        .post(format!("http://{api}/2020-01-01/extension/init/error"))
        .header("Lambda-Extension-Identifier", id)
        .header("Lambda-Extension-Function-Error-Type", "Extension.InitFailed")
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    std::process::exit(1);
}

async fn register(name: &str, api: &str, client: &reqwest::Client) -> Result<String, String> {
    let resp = client
        .post(format!("http://{api}/2020-01-01/extension/register"))
        .header("Lambda-Extension-Name", name)
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
    let body = resp.bytes().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "register: HTTP {}: {:.600}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
        ));
    }
    if id.is_empty() {
        return Err("register: HTTP 200 but no Lambda-Extension-Identifier header".into());
    }
    checkpoint("register_ok", t);
    if let Ok(r) = serde_json::from_slice::<RegisterResponse>(&body) {
        tracing::info!(function = %r.function_name, "DD_EXTENSION | registered");
    }
    Ok(id)
}

async fn subscribe(
    api: &str,
    id: &str,
    client: &reqwest::Client,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let body = serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": format!("http://{host}:{port}/")},
    });
    let resp = client
        .put(format!("http://{api}/2022-07-01/telemetry"))
        .header("Lambda-Extension-Identifier", id)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("telemetry subscribe failed: {e}"))?;
    let t = mono_ns();
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!(
            "telemetry subscribe: HTTP {}: {:.600}",
            status.as_u16(),
            body
        ));
    }
    checkpoint("subscribe_ok", t);
    Ok(())
}

async fn next(api: &str, id: &str, client: &reqwest::Client) -> Result<serde_json::Value, String> {
    let resp = client
        .get(format!("http://{api}/2020-01-01/extension/event/next"))
        .header("Lambda-Extension-Identifier", id)
        .send()
        .await
        .map_err(|e| format!("/next failed: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("/next: reading the body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "/next: HTTP {}: {:.600}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("/next: the event is not JSON: {e}"))
}

/// Serves the Telemetry API destination with hyper 1 + hyper-util's auto
/// (HTTP/1 or HTTP/2) connection builder, as bottlecap's telemetry listener does.
fn serve_telemetry(l: tokio::net::TcpListener, counters: Arc<Counters>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match l.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("DD_EXTENSION | telemetry accept: {e}");
                    continue;
                }
            };
            let counters = counters.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counters = counters.clone();
                    async move { Ok::<_, Infallible>(telemetry_batch(req, &counters).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
}

async fn telemetry_batch(
    req: hyper::Request<hyper::body::Incoming>,
    counters: &Counters,
) -> hyper::Response<Full<Bytes>> {
    let reply = |code: u16, msg: String| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(msg)));
        *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_REQUEST);
        r
    };
    let hint = http_body::Body::size_hint(req.body()).lower();
    if hint > 64 * 1024 * 1024 {
        return reply(413, format!("batch of {hint} bytes"));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(400, format!("reading the batch: {e}")),
    };
    let batch: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return reply(400, format!("the batch is not a JSON array: {e}")),
    };
    for ev in &batch {
        let ty = ev.get("type").and_then(|v| v.as_str()).unwrap_or("");
        out_line(&format!("TELEMETRY | type={ty}\n"));
        counters.telemetry_events.fetch_add(1, Ordering::SeqCst);
    }
    reply(200, String::new())
}
