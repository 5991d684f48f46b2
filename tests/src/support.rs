//! Paths, fixture builds and process helpers shared by the tests.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{mpsc, Mutex, OnceLock},
    time::Duration,
};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// `target/<profile>`, found from this test binary (`target/<profile>/deps/e2e-…`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, as scripts/test does)",
        path.display()
    );
    path
}

/// A workspace cdylib, e.g. `magnum_driver_k8s_fedora_atomic`.
pub fn workspace_lib(crate_name: &str) -> PathBuf {
    built(profile_dir().join(format!("lib{crate_name}.so")))
}

pub fn bin(name: &str) -> PathBuf {
    built(profile_dir().join(name))
}

/// Builds a crate that lives outside the workspace (its own `[workspace]`)
/// into `target/fixtures`, once per test run, and returns that profile dir.
pub fn build_external(dir: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let lock = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
    let target = workspace().join("target/fixtures");
    if !done.iter().any(|d| d == dir) {
        let manifest = workspace().join(dir).join("Cargo.toml");
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building {dir} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        done.push(dir.to_owned());
    }
    target.join("debug")
}

/// Runs `magnum-driver-manage --plugins-dir DIR ARGS…`.
pub fn manage(plugins: &Path, args: &[&str]) -> Output {
    Command::new(bin("magnum-driver-manage"))
        .arg("--plugins-dir")
        .arg(plugins)
        .args(args)
        .env_remove("MAGNUM_PLUGINS_DIR")
        .env_remove("MAGNUM_CONFIG")
        .env_remove("MAGNUM_DATABASE_URL")
        // The default database (for the clusters-in-use check) is then one
        // inside this test's own directory, absent unless the test makes it.
        .env("MAGNUM_DATA_DIR", plugins.join("var"))
        .output()
        .expect("run magnum-driver-manage")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts exit status 1 and returns stderr.
pub fn fails(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// Registers the three bundled drivers (enabled) into `plugins`.
pub fn register_bundled(plugins: &Path) {
    for lib in BUNDLED {
        let path = workspace_lib(lib);
        ok(manage(
            plugins,
            &["register", path.to_str().expect("utf-8 path"), "--enable"],
        ));
    }
}

pub const BUNDLED: [&str; 3] = [
    "magnum_driver_k8s_fedora_atomic",
    "magnum_driver_swarm_fedora_atomic",
    "magnum_driver_mesos_ubuntu",
];

/// A `magnumd serve` on `127.0.0.1:0` (or a `magnumd conductor`) with its
/// own plugins and data dirs, killed on drop if the test did not
/// [`stop`](Magnumd::stop) it.
pub struct Magnumd {
    child: Option<Child>,
    /// `127.0.0.1:PORT`, from the `listening=` log line.
    pub addr: String,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Magnumd {
    /// Starts the server and waits (30 s at most) for its `listening=` line.
    pub fn start(plugins: &Path, data_dir: &Path) -> Self {
        Self::start_with(plugins, data_dir, None)
    }

    /// As [`start`](Self::start), with a TOML config file.
    pub fn start_with(plugins: &Path, data_dir: &Path, config: Option<&Path>) -> Self {
        Self::spawn("serve", plugins, data_dir, config)
    }

    /// As [`start_with`](Self::start_with), listening on `bind` (a port the
    /// caller picked, e.g. one the config's `[api] public_url` names).
    pub fn start_on(plugins: &Path, data_dir: &Path, config: &Path, bind: &str) -> Self {
        Self::spawn_on("serve", plugins, data_dir, Some(config), bind)
    }

    /// A `magnumd conductor` process (no API; `addr` stays empty), once it
    /// logged "conductor started".
    pub fn conductor(plugins: &Path, data_dir: &Path, config: &Path) -> Self {
        Self::spawn("conductor", plugins, data_dir, Some(config))
    }

    fn spawn(subcommand: &str, plugins: &Path, data_dir: &Path, config: Option<&Path>) -> Self {
        Self::spawn_on(subcommand, plugins, data_dir, config, "127.0.0.1:0")
    }

    fn spawn_on(
        subcommand: &str,
        plugins: &Path,
        data_dir: &Path,
        config: Option<&Path>,
        bind: &str,
    ) -> Self {
        let mut cmd = Command::new(bin("magnumd"));
        if let Some(config) = config {
            // The file's `log` filter applies (info when it has none).
            cmd.arg("--config").arg(config).env_remove("MAGNUM_LOG");
        } else {
            cmd.env("MAGNUM_LOG", "info");
        }
        let mut child = cmd
            .args([subcommand, "--bind", bind])
            .arg("--plugins-dir")
            .arg(plugins)
            .arg("--data-dir")
            .arg(data_dir)
            // Only the flags above configure it, whatever the caller's shell has.
            .env_remove("MAGNUM_CONFIG")
            .env_remove("MAGNUM_DATABASE_URL")
            .env_remove("MAGNUM_BIND")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start magnumd");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child: Some(child),
            addr: String::new(),
            lines,
            log: Vec::new(),
        };
        server.addr = loop {
            let Ok(line) = server.lines.recv_timeout(Duration::from_secs(30)) else {
                panic!(
                    "magnumd did not start; log so far:\n{}",
                    server.log.join("\n")
                )
            };
            server.log.push(line.clone());
            if subcommand == "conductor" && line.contains("conductor started") {
                break String::new();
            }
            if let Some(rest) = line.split("listening=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        server
    }

    /// The log lines printed so far.
    pub fn log(&mut self) -> String {
        self.log.extend(self.lines.try_iter());
        self.log.join("\n")
    }

    /// SIGTERM (a clean shutdown), then the exit status and the whole log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(term.success(), "kill -TERM magnumd");
        let status = child.wait().expect("wait for magnumd");
        // The reader thread ends at EOF, which closes the channel.
        self.log.extend(self.lines.iter());
        (status, self.log.join("\n"))
    }
}

impl Magnumd {
    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `kill -9` now (what dropping does too).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Magnumd {
    fn drop(&mut self) {
        self.kill();
    }
}
