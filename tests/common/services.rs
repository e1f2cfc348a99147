//! The PostgreSQL and Redis the tests use.
//!
//! The usual local ones when something answers there (PostgreSQL at
//! `127.0.0.1:5432`, user `postgres`, trust auth, database `test`; Redis at
//! `127.0.0.1:6379`), else private instances that this test process starts
//! from the installed binaries: a temporary data directory, a free port,
//! and a watchdog that stops the instance and removes the directory once
//! the test process has exited. `REALTIME_TEST_PG` and `REALTIME_TEST_REDIS`
//! (`host:port`) name other addresses to try first; pointing one at a
//! closed port exercises the private path.
//!
//! Tests that need a service fail (never skip) when neither is possible,
//! with one line saying what to install.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The one line a test fails with when it needs PostgreSQL and cannot have it.
pub fn pg_missing(tried: &str) -> String {
    format!("the PostgreSQL tests need PostgreSQL: nothing answers at {tried}, and initdb, pg_ctl or psql is missing (looked on PATH and in /usr/lib/postgresql/*/bin); install PostgreSQL (Debian/Ubuntu: apt-get install postgresql)")
}

/// The one line a test fails with when it needs Redis and cannot have it.
pub fn redis_missing(tried: &str) -> String {
    format!("the cluster tests need Redis: nothing answers at {tried}, and redis-server is not on PATH; install it (Debian/Ubuntu: apt-get install redis-server)")
}

/// `host:port` of the PostgreSQL every test database is created in.
pub fn pg_addr() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        let usual = std::env::var("REALTIME_TEST_PG").unwrap_or("127.0.0.1:5432".into());
        if answers(&usual) {
            usual
        } else {
            private_postgres(&usual)
        }
    })
}

/// The Redis the cluster tests share (each with a key prefix of its own).
pub fn redis_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let usual = std::env::var("REALTIME_TEST_REDIS").unwrap_or("127.0.0.1:6379".into());
        let addr = if answers(&usual) {
            usual
        } else {
            private_redis(&usual)
        };
        format!("redis://{addr}")
    })
}

fn answers(addr: &str) -> bool {
    let Some(addr) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The directory holding `initdb` and `pg_ctl`: PATH first, then the
/// newest `/usr/lib/postgresql/<version>/bin` (Debian does not put them on
/// PATH).
fn pg_bin_dir() -> Option<PathBuf> {
    if let (Some(initdb), Some(_)) = (on_path("initdb"), on_path("pg_ctl")) {
        return initdb.parent().map(Path::to_path_buf);
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `program args` as the user PostgreSQL runs as: ourselves, or the
/// `postgres` user when we are root (initdb and postgres refuse root).
fn pg_command(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `sh -c script` detached from the test's output: it outlives the
/// test process and cleans up after it. `$TEST_PID` is this process.
#[allow(clippy::zombie_processes)] // it must outlive us: nobody waits
fn watchdog(script: &str) {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 $TEST_PID 2>/dev/null; do sleep 0.5; done; {script}"
        ))
        .env("TEST_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh");
}

fn private_postgres(tried: &str) -> String {
    let (Some(bin), Some(_)) = (pg_bin_dir(), on_path("psql")) else {
        panic!("{}", pg_missing(tried));
    };
    let as_root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("realtime-test-pg-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let data = dir.join("data");
    if as_root {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres"]).arg(&dir);
                c
            },
            "chown the private PostgreSQL directory",
        );
    }
    let port = free_port();
    let mut initdb = pg_command(&bin.join("initdb"), as_root);
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        .args(["--locale", "C"]);
    run(initdb, "initdb for the private PostgreSQL");
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
        dir.display()
    );
    let mut start = pg_command(&bin.join("pg_ctl"), as_root);
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .args(["-w", "-t", "120", "-o", &options, "start"]);
    // pg_ctl's server inherits our output pipes unless told otherwise.
    start.stdout(Stdio::null()).stderr(Stdio::null());
    run(start, "pg_ctl start for the private PostgreSQL");
    let stop = format!(
        "{} -D {} -m immediate stop",
        bin.join("pg_ctl").display(),
        data.display()
    );
    let stop = if as_root {
        format!("runuser -u postgres -- {stop}")
    } else {
        stop
    };
    watchdog(&format!("{stop}; rm -rf {}", dir.display()));
    let addr = format!("127.0.0.1:{port}");
    let mut createdb = Command::new("psql");
    createdb
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", "postgres", "-q", "-c", "CREATE DATABASE test"]);
    run(
        createdb,
        "creating database `test` in the private PostgreSQL",
    );
    eprintln!("nothing answered at {tried}: using a private PostgreSQL at {addr}");
    addr
}

#[allow(clippy::zombie_processes)] // the watchdog stops it after we exit
fn private_redis(tried: &str) -> String {
    let Some(redis_server) = on_path("redis-server") else {
        panic!("{}", redis_missing(tried));
    };
    let dir = tempfile::Builder::new()
        .prefix("realtime-test-redis-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let port = free_port();
    let child = Command::new(redis_server)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", redis_missing(tried)));
    watchdog(&format!("kill {}; rm -rf {}", child.id(), dir.display()));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the private redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("nothing answered at {tried}: using a private Redis at {addr}");
    addr.to_string()
}
