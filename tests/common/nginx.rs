//! A real nginx (Debian's package) running `ops/nginx/realtime.conf` in
//! front of a test server, on a free port, in a directory of its own.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::WAIT;

pub struct Nginx {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// nginx with the shipped site config, its upstream pointed at
    /// `upstream`. Panics (never skips) without nginx.
    pub fn start(upstream: SocketAddr) -> Nginx {
        Self::start_many(&[upstream])
    }

    /// The same with several nodes upstream (nginx takes turns).
    pub fn start_many(upstreams: &[SocketAddr]) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: apt-get install -y nginx (scripts/test.sh does)");
        let site = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ops/nginx/realtime.conf"
        ))
        .expect("ops/nginx/realtime.conf");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = upstreams.iter().map(|u| format!("server {u}; ")).collect();
        let site = site
            .replace("server 127.0.0.1:8080;", &servers)
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert!(site.contains(&servers), "the upstream line moved");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {site}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .args([
                "-p",
                &d.to_string(),
                "-c",
                "nginx.conf",
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { addr, dir, child }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
