//! Running the real `microdash` binary in tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

pub mod mqtt;
pub mod services;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process that is killed when dropped, with its stdout lines on a channel (and,
/// from [`microdash_logging`], its log on stderr kept).
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    log: Option<std::sync::Arc<std::sync::Mutex<String>>>,
}

/// `microdash` with `args` and extra environment variables. The embedded MQTT endpoint takes
/// a free port unless `env` says otherwise, so servers of parallel tests do not collide.
pub fn microdash(args: &[&str], env: &[(&str, &str)]) -> Proc {
    spawn(Command::new(env!("CARGO_BIN_EXE_microdash")), args, env, false)
}

/// As [`microdash`], keeping everything it logs on stderr ([`Proc::log`]).
pub fn microdash_logging(args: &[&str], env: &[(&str, &str)]) -> Proc {
    spawn(Command::new(env!("CARGO_BIN_EXE_microdash")), args, env, true)
}

/// As [`microdash`], allowed at most `open_files` open file descriptors (`ulimit -n`, soft
/// and hard, set by the shell that then becomes the server).
pub fn microdash_with_open_files(open_files: u64, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_microdash"));
    spawn(cmd, args, env, false)
}

/// Another program than `microdash` (an example, say), run as [`microdash_logging`] runs
/// the server: stdout lines on a channel, stderr kept.
pub fn program(path: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    spawn_command(Command::new(path), args, env, true)
}

/// `cmd` as the server: a warning-level log and the embedded MQTT endpoint on a free port,
/// unless `env` says otherwise.
fn spawn(mut cmd: Command, args: &[&str], env: &[(&str, &str)], keep_log: bool) -> Proc {
    cmd.env("MICRODASH_LOG_FILTER", "warn").env("MICRODASH_MQTT_LISTEN_ADDR", "127.0.0.1:0");
    spawn_command(cmd, args, env, keep_log)
}

fn spawn_command(mut cmd: Command, args: &[&str], env: &[(&str, &str)], keep_log: bool) -> Proc {
    cmd.args(args).stdout(Stdio::piped()).stderr(if keep_log { Stdio::piped() } else { Stdio::inherit() });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|err| panic!("starting {:?}: {err}", cmd.get_program()));
    let log = child.stderr.take().map(|stderr| {
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        log
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Proc { child, lines, log }
}

/// Run `microdash` to completion and return its stdout; panics on failure.
pub fn microdash_output(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microdash"));
    cmd.args(args).env("MICRODASH_LOG_FILTER", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running microdash");
    assert!(out.status.success(), "microdash {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

impl Proc {
    /// What it logged so far (only from [`microdash_logging`]).
    pub fn log(&self) -> String {
        self.log.as_ref().map(|log| log.lock().unwrap().clone()).unwrap_or_default()
    }

    /// The first stdout line containing `needle`, within ten seconds.
    pub fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?} within 10 s"),
            }
        }
    }

    /// The last word of the first stdout line containing `needle` (as [`Proc::line_with`],
    /// lines before it are passed over).
    pub fn last_word_of(&self, needle: &str) -> String {
        self.line_with(needle).rsplit(' ').next().unwrap_or_default().to_owned()
    }

    /// The URL the server says it listens on.
    pub fn url(&self) -> String {
        self.last_word_of("listening on")
    }

    /// The token `serve --demo` prints (after the URL: ask for that first).
    pub fn demo_token(&self) -> String {
        self.last_word_of("demo token")
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.stop("TERM")
    }

    /// Send `signal` (`TERM`, `INT`) and wait for the exit status; what it printed stays
    /// readable with [`Proc::line_with`].
    pub fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not stop within 15 s of SIG{signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A random delay in `[low, high)` milliseconds (the standard library's hash keys are random).
pub fn random_ms(low: u64, high: u64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    Duration::from_millis(low + hasher.finish() % (high - low))
}

/// Poll `probe` until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw HTTP/1.1 Server-Sent Events connection, to see exactly what a browser would.
pub struct RawStream {
    stream: tokio::net::TcpStream,
    pub received: String,
}

impl RawStream {
    /// `GET path` on the server at `url` (`http://host:port`) with a bearer token.
    pub async fn open(url: &str, path: &str, token: &str) -> RawStream {
        Self::open_with(url, path, &format!("Authorization: Bearer {token}")).await
    }

    /// `GET path` with `credential` as its one extra header line (`Cookie: ...`, say).
    pub async fn open_with(url: &str, path: &str, credential: &str) -> RawStream {
        use tokio::io::AsyncWriteExt;
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{credential}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        RawStream { stream, received: String::new() }
    }

    /// Read until `needle` has arrived (after what earlier calls consumed); fails after 10 s.
    pub async fn read_until(&mut self, needle: &str) {
        use tokio::io::AsyncReadExt;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 8192];
        while !self.received.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} within 10 s; got {:?}", self.received))
                .unwrap();
            assert!(n > 0, "stream closed before {needle:?}; got {:?}", self.received);
            self.received.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let at = self.received.find(needle).unwrap() + needle.len();
        self.received.drain(..at);
    }

    /// Wait for the server to close the connection; fails after 10 s.
    pub async fn closed(&mut self) {
        self.closed_by(Instant::now() + Duration::from_secs(10)).await;
    }

    /// Wait for the server to close the connection; fails at `deadline`.
    pub async fn closed_by(&mut self, deadline: Instant) {
        self.ended_or_closed_by(deadline, false).await;
    }

    /// Wait for the server to end the response (its last chunk; the connection may stay
    /// open for another request) or close the connection; fails at `deadline`.
    pub async fn ended_by(&mut self, deadline: Instant) {
        self.ended_or_closed_by(deadline, true).await;
    }

    async fn ended_or_closed_by(&mut self, deadline: Instant, end_of_body: bool) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 8192];
        loop {
            if end_of_body && self.received.contains("\r\n0\r\n\r\n") {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(n)) => self.received.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => panic!("the server kept the stream open"),
            }
        }
    }
}

/// Sign `username` in at the server at `url`; the `name=value` of its session cookie.
pub async fn sign_in_cookie(url: &str, username: &str, password: &str) -> String {
    let http = microdash_client::Client::default_http().unwrap();
    let signed_in = http
        .post(format!("{url}/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

/// The value of an unlabelled series in a server's `/metrics`.
pub async fn scrape(url: &str, name: &str) -> f64 {
    let http = microdash_client::Client::default_http().unwrap();
    let text = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} missing"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
