//! A `redis-server` child process for the Redis integration's tests,
//! example and bench: started on a free loopback port with persistence off,
//! waited for until it accepts, killed when dropped (on a panic too), and
//! restartable on the same port with the same settings.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a started server has to accept a connection.
const START: Duration = Duration::from_secs(10);

/// A `redis-server` on `127.0.0.1`.
#[derive(Debug)]
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    /// Whether it listens for TLS (and only TLS).
    tls: bool,
    log: PathBuf,
}

impl RedisProcess {
    /// A plain server; `None` (after saying so on stderr) when
    /// `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::with_args(&[])
    }

    /// A server with these extra arguments (`--requirepass`, `--user`…).
    pub fn with_args(args: &[&str]) -> Option<Self> {
        Self::launch(args, false)
    }

    /// A server that speaks TLS only, with `tls_args` naming its
    /// certificate, key and CA files.
    pub fn with_tls(tls_args: &[&str]) -> Option<Self> {
        Self::launch(tls_args, true)
    }

    fn launch(args: &[&str], tls: bool) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let log = std::env::temp_dir().join(format!(
            "leasehold-redis-test-{}-{port}.log",
            std::process::id()
        ));
        let mut server = Self {
            child: None,
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            tls,
            log,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!(
                    "skipped: redis-server not installed (e.g. `apt-get install -y redis-server`)"
                );
                None
            }
            Err(e) => panic!("redis-server could not be started: {e}"),
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        if self.tls {
            command.args(["--port", "0", "--tls-port", &port]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(&self.log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        self.wait_until_accepting();
        Ok(())
    }

    /// Polls the port: a process outside offers nothing else to wait on.
    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + START;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("redis-server status") {
                panic!(
                    "redis-server exited ({status}) before accepting; log: {}",
                    self.log_text()
                );
            }
            if self.ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not accept within {START:?}; log: {}",
                self.addr(),
                self.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server answers: a `PING` for plain TCP (any answer,
    /// `NOAUTH` included, means it is up), an accepted connection for TLS.
    fn ready(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(self.addr()) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0; 1];
        conn.write_all(b"PING\r\n").is_ok() && conn.read(&mut reply).is_ok_and(|n| n == 1)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>` (or `rediss://`), then `rest` (a path,
    /// a query).
    pub fn url(&self, rest: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}{rest}", self.port)
    }

    /// `redis://<userinfo>@127.0.0.1:<port>`, then `rest`.
    pub fn url_as(&self, userinfo: &str, rest: &str) -> String {
        format!("redis://{userinfo}@127.0.0.1:{}{rest}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients beyond the
    /// kernel's resets and FINs) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same settings.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
    }

    /// A connection made without any pool, for checking what the pool did
    /// (blocking; `userinfo` like `":password"`, or empty).
    #[cfg(feature = "redis")]
    pub fn direct(&self, userinfo: &str) -> redis::Connection {
        let url = if userinfo.is_empty() {
            self.url("")
        } else {
            self.url_as(userinfo, "")
        };
        redis::Client::open(url)
            .and_then(|client| client.get_connection())
            .expect("a direct connection")
    }

    /// The server's log, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(unreadable: {e})"))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
