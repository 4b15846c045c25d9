//! bootstrap: a hello-world Lambda function on the Runtime API. It does what
//! lambda_runtime's `run(service_fn(..))` does for lambda-perf's function:
//! start a multi-threaded tokio runtime, then loop on GET .../invocation/next
//! and POST {"statusCode":200} to .../response.

use hyper::{body, Body, Client, Method, Request};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")?;
    let base = format!("http://{api}/2018-06-01/runtime/invocation");
    let client = Client::new();
    loop {
        let next = client.get(format!("{base}/next").parse()?).await?;
        let id = next
            .headers()
            .get("lambda-runtime-aws-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let event: Value = serde_json::from_slice(&body::to_bytes(next.into_body()).await?).unwrap_or(Value::Null);
        let _ = event;
        let out = json!({"statusCode": 200}).to_string();
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}/{id}/response"))
            .body(Body::from(out))?;
        client.request(req).await?;
    }
}
