//! A real S3-protocol server for tests: the `moto` server from PyPI (pinned; installed by
//! `scripts/ensure-deps.sh` into a virtualenv). It speaks S3's REST protocol over HTTP,
//! including versioned buckets and Object Lock, which is what the backup stores use. There is
//! no S3 service here, and MinIO is not in the registries these machines reach.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/ensure-deps.sh` installs it (override with `DBAAS_MOTO_SERVER`).
pub const DEFAULT_MOTO: &str = "/var/tmp/dbaas-tools/moto-5.2.5/bin/moto_server";

/// A moto server on a free loopback port, stopped when dropped.
pub struct S3Server {
    pub endpoint: String,
    /// The virtualenv's Python, with boto3 (moto's own dependency): the tests' independent
    /// S3 client (see [`S3Server::admin`]).
    python: std::path::PathBuf,
    child: Child,
}

/// What [`S3Server::admin`] runs: one boto3 call per request, JSON in and out, so the tests
/// look at buckets through another S3 client than the service's own.
const ADMIN: &str = r#"
import base64, json, sys
import boto3
from botocore.config import Config
req = json.load(sys.stdin)
s3 = boto3.client("s3", endpoint_url=req["endpoint"], region_name="us-east-1",
                  aws_access_key_id="test-key", aws_secret_access_key="test-secret",
                  config=Config(s3={"addressing_style": "path"}))
op, b = req["op"], req.get("bucket")
try:
    if op == "create_bucket":
        kw = {"ObjectLockEnabledForBucket": True} if req.get("lock") else {}
        s3.create_bucket(Bucket=b, **kw)
        out = None
    elif op == "keys":
        out = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix=req.get("prefix", "")).get("Contents", [])]
    elif op == "get":
        out = base64.b64encode(s3.get_object(Bucket=b, Key=req["key"])["Body"].read()).decode()
    elif op == "put":
        s3.put_object(Bucket=b, Key=req["key"], Body=base64.b64decode(req["data"]))
        out = None
    elif op == "versions":
        vs = s3.list_object_versions(Bucket=b, Prefix=req.get("prefix", "")).get("Versions", [])
        out = [[v["Key"], v["VersionId"]] for v in vs]
    elif op == "head":
        h = s3.head_object(Bucket=b, Key=req["key"], VersionId=req["version"])
        until = h.get("ObjectLockRetainUntilDate")
        out = [h.get("ObjectLockMode"), int(until.timestamp()) if until else None]
    elif op == "delete":
        s3.delete_object(Bucket=b, Key=req["key"], VersionId=req["version"])
        out = None
    elif op == "uploads":
        out = len(s3.list_multipart_uploads(Bucket=b).get("Uploads", []))
    else:
        raise ValueError("unknown op " + op)
    print(json.dumps({"ok": out}))
except Exception as e:
    print(json.dumps({"err": f"{type(e).__name__}: {e}"}))
"#;

impl S3Server {
    pub fn start() -> Self {
        let bin = std::env::var("DBAAS_MOTO_SERVER").unwrap_or_else(|_| DEFAULT_MOTO.to_string());
        assert!(
            std::path::Path::new(&bin).exists(),
            "no S3 server at {bin}: run `bash scripts/ensure-deps.sh` (installs moto) or set DBAAS_MOTO_SERVER"
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the S3 server did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let python = std::path::Path::new(&bin).with_file_name("python3");
        Self { endpoint: format!("http://127.0.0.1:{port}"), python, child }
    }

    /// Runs one boto3 call against this server: `request` is `{"op": …, "bucket": …, …}`
    /// (ops: create_bucket, keys, get, put, versions, head, delete, uploads; bytes in base64).
    /// Returns its result, or S3's refusal as the error.
    pub fn admin(&self, mut request: serde_json::Value) -> Result<serde_json::Value, String> {
        use std::io::Write;
        request["endpoint"] = self.endpoint.clone().into();
        let mut child = Command::new(&self.python)
            .args(["-c", ADMIN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.python.display()));
        child.stdin.take().expect("stdin").write_all(request.to_string().as_bytes()).expect("writing the request");
        let out = child.wait_with_output().expect("boto3 ran");
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("boto3 answered {:?}: {e}", String::from_utf8_lossy(&out.stdout)));
        match (answer.get("ok"), answer.get("err")) {
            (_, Some(e)) => Err(e.as_str().unwrap_or_default().to_string()),
            (Some(v), None) => Ok(v.clone()),
            (None, None) => panic!("boto3 answered {answer}"),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
