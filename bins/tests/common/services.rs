//! Private instances of Redis, Mosquitto and MariaDB, for tests that kill and restart them:
//! the machine's shared services serve other tests at the same time, so a fault test runs
//! its own, on free ports, in a temporary directory, from the binaries installed on the
//! machine. A missing binary fails the test (the panic names the package).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One service process, stopped when dropped; its data and log stay in its directory across
/// restarts.
pub struct Service {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    /// The port it listens on, on 127.0.0.1, the same after a restart.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    super::free_addr().rsplit(':').next().unwrap().parse().unwrap()
}

impl Service {
    /// Redis with an append-only file synced before each answer (`appendfsync always`), as a
    /// split deployment must run it: what it acknowledged survives its own crash.
    pub fn redis() -> Service {
        let (dir, port) = (tempfile::tempdir().unwrap(), free_port());
        let path = dir.path().display().to_string();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &path,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--logfile",
            "redis.log",
        ];
        Service::started("Redis (package redis-server)", "redis-server", &args, port, dir)
    }

    /// Mosquitto taking anonymous clients, keeping sessions and queued QoS 1 messages in a
    /// persistence file (written when it stops), with deploy/mosquitto.conf's limits (its
    /// defaults drop QoS 1 messages for a busy subscriber).
    pub fn mosquitto() -> Service {
        let (dir, port) = (tempfile::tempdir().unwrap(), free_port());
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 user root\nlog_dest file {}/mosquitto.log\nmax_inflight_messages 1000\nmax_queued_messages 100000\n",
                dir.path().display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let args = ["-c", conf.to_str().unwrap()];
        Service::started("Mosquitto (package mosquitto)", "mosquitto", &args, port, dir)
    }

    /// A MariaDB server of its own (root without a password, a `test` database), its data
    /// directory made with `mariadb-install-db`.
    pub fn mariadb() -> Service {
        let (dir, port) = (tempfile::tempdir().unwrap(), free_port());
        let data = dir.path().join("data");
        let installed = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display()))
            .arg("--innodb-log-file-size=8M")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("mariadb-install-db (package mariadb-server) cannot run: {e}"));
        assert!(installed.success(), "mariadb-install-db failed");
        let args = [
            "--no-defaults".to_owned(),
            "--user=root".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", dir.path().join("sock").display()),
            format!("--pid-file={}", dir.path().join("pid").display()),
            format!("--log-error={}", dir.path().join("mariadb.log").display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--innodb-log-file-size=8M".to_owned(),
            "--innodb-buffer-pool-size=64M".to_owned(),
            "--skip-log-bin".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Service::started("MariaDB (package mariadb-server)", "mariadbd", &args, port, dir)
    }

    fn started(name: &'static str, program: &'static str, args: &[&str], port: u16, dir: tempfile::TempDir) -> Service {
        let mut service =
            Service { name, program, args: args.iter().map(|a| a.to_string()).collect(), port, dir, child: None };
        service.start();
        service
    }

    /// Where clients find it: `redis://…/`, `tcp://…` or `mysql://root@…/test`.
    pub fn url(&self) -> String {
        match self.program {
            "redis-server" => format!("redis://127.0.0.1:{}/", self.port),
            "mosquitto" => format!("tcp://127.0.0.1:{}", self.port),
            _ => format!("mysql://root@127.0.0.1:{}/test", self.port),
        }
    }

    /// Its directory (data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Start it and wait (30 s at most) until it takes connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.name);
        let log = std::fs::File::create(self.dir.path().join("output.log")).unwrap();
        let mut child = Command::new(self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} cannot start ({}: {e}); the fault tests need it", self.name, self.program));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{} exited ({status}) at start; see {}", self.name, self.dir.path().display());
            }
            assert!(Instant::now() < deadline, "{} did not listen on {} within 30 s", self.name, self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// SIGKILL: a crash, nothing flushed on the way out.
    pub fn kill_hard(&mut self) {
        let mut child = self.child.take().expect("not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and wait (30 s at most) for it to exit: a clean stop.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("not running");
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{} did not stop within 30 s of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
