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
    child: Child,
}

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
        Self { endpoint: format!("http://127.0.0.1:{port}"), child }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
