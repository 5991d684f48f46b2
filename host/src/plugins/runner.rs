//! Process isolation (`isolation = "process"`): the driver's library is
//! loaded by a `magnum-driver-runner` process, through the same loader and
//! its checks, and each call crosses a pipe as length-prefixed frames. A
//! segfault, an abort, a stack overflow, an endless loop or runaway memory
//! then costs the call it happened in, never the service.
//!
//! Frames: a 4-byte big-endian length, then that many bytes of JSON. The
//! host sends a [`Hello`] (the manifest), the runner answers [`Ready`];
//! then each [`Request`] gets one [`Reply`]. One call at a time per runner;
//! concurrent calls get runners of their own ([`RunnerPool`]).

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        mpsc, Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use magnum_driver_abi::{DriverError, DriverInfo, ErrorKind};
use serde::{Deserialize, Serialize};

use super::manifest::{Isolation, Manifest};

/// The largest frame either side accepts: far above any plan (a plan with
/// every template of the k8s driver is about 300 KiB), far below memory
/// trouble. A runner claiming more is killed.
pub const MAX_FRAME: usize = 64 << 20;
/// The runner's program name, looked for next to the running binary.
pub const RUNNER: &str = "magnum-driver-runner";
/// How long a runner may take to load its library and say it is ready.
const STARTUP: Duration = Duration::from_secs(20);
/// Idle runners kept per driver; more are started for concurrent calls and
/// stopped after them.
const MAX_IDLE: usize = 4;
/// The stack of the runner's call thread: deep recursion in a template
/// renderer should not be mistaken for a runaway one.
pub const CALL_STACK: usize = 32 << 20;
/// Descriptors a runner may hold: a driver leaking them fails, not the host.
pub const RUNNER_NOFILE: u64 = 256;

/// `[drivers] runner_memory_mb`: the address-space limit of every runner
/// started after it is set.
static RUNNER_MEMORY_MB: AtomicU64 = AtomicU64::new(DEFAULT_RUNNER_MEMORY_MB);
pub const DEFAULT_RUNNER_MEMORY_MB: u64 = 1024;

pub fn set_runner_memory_mb(mb: u64) {
    RUNNER_MEMORY_MB.store(mb.max(64), Ordering::Relaxed);
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub manifest: Manifest,
    pub plugins_dir: PathBuf,
    /// The descriptor holding the host's private copy of the library: what
    /// the runner loads instead of the file (see [`LIBRARY_FD`]).
    pub library_fd: Option<i32>,
}

/// Where a runner finds the library: an in-memory copy of the bytes the
/// host checked at load, so that a file overwritten in place (`cat new.so >
/// driver.so`) changes no runner started later, as it changes nothing
/// in-process. The change is picked up only through registration.
pub const LIBRARY_FD: i32 = 3;

#[derive(Debug, Serialize, Deserialize)]
pub enum Ready {
    Loaded {
        info: Box<DriverInfo>,
        abi_version: String,
    },
    /// The loader's reason, as in-process loading would give it.
    Failed(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub operation: String,
    pub request: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Ok(String),
    Err(WireError),
}

/// [`DriverError`] on the wire (it is an ABI type, not a serde one).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireError {
    pub kind: u8,
    pub field: String,
    pub operation: String,
    pub message: String,
}

impl From<&DriverError> for WireError {
    fn from(e: &DriverError) -> Self {
        Self {
            kind: e.kind.0,
            field: e.field.to_string(),
            operation: e.operation.to_string(),
            message: e.message.to_string(),
        }
    }
}

impl From<WireError> for DriverError {
    fn from(e: WireError) -> Self {
        DriverError {
            kind: ErrorKind(e.kind),
            field: e.field.into(),
            operation: e.operation.into(),
            message: e.message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes, more than the {MAX_FRAME} allowed")]
    TooLarge(usize),
}

pub fn write_frame(w: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n as usize <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other(format!("frame of {} bytes", body.len())))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// The next frame; `None` at a clean end of stream (between frames).
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Where the runner binary is: `$MAGNUM_DRIVER_RUNNER`, else next to the
/// running program (or one directory up, for test and bench binaries in
/// `target/<profile>/deps`).
pub fn runner_program() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("MAGNUM_DRIVER_RUNNER") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(RUNNER))
        .find(|p| p.is_file());
    found.ok_or_else(|| {
        format!(
            "process isolation needs {RUNNER} next to {} (or its path in MAGNUM_DRIVER_RUNNER)",
            exe.display()
        )
    })
}

/// How a call through a runner failed.
#[derive(Debug)]
pub struct Failure {
    pub error: DriverError,
    /// Killed at its deadline (counts toward the driver being unhealthy).
    pub timed_out: bool,
}

/// The runners of one loaded driver. Dropping it stops the idle ones; a
/// call in flight keeps its runner until it ends, so a driver replaced by
/// a reload drains: new calls go to the new driver's pool.
pub struct RunnerPool {
    name: String,
    program: PathBuf,
    hello: Vec<u8>,
    /// The library's checked bytes (a memfd), given to each runner.
    library: std::os::fd::OwnedFd,
    /// The library's real path, for the runner's reasons.
    path: PathBuf,
    idle: Mutex<Vec<Runner>>,
    /// Runners that died (or failed to start) since a call last succeeded:
    /// the next start waits longer each time.
    deaths_in_a_row: AtomicU32,
    last_death: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RunnerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerPool")
            .field("name", &self.name)
            .finish()
    }
}

impl RunnerPool {
    /// Starts a first runner, which loads the library with every check of
    /// the in-process loader, and returns the pool with the driver's info
    /// and ABI version; that runner then waits for the first call.
    pub fn start(
        manifest: &Manifest,
        plugins_dir: &Path,
        bytes: &[u8],
    ) -> Result<(Self, DriverInfo, String), String> {
        Self::start_program(runner_program()?, manifest, plugins_dir, bytes)
    }

    fn start_program(
        program: PathBuf,
        manifest: &Manifest,
        plugins_dir: &Path,
        bytes: &[u8],
    ) -> Result<(Self, DriverInfo, String), String> {
        let path = manifest.library_path(plugins_dir);
        let library = memfd(&manifest.name, bytes)
            .map_err(|e| format!("cannot make the private copy of {}: {e}", path.display()))?;
        let mut inner = manifest.clone();
        // The runner loads it in its own process, from the private copy.
        inner.isolation = Isolation::InProcess;
        inner.library = PathBuf::from(format!("/proc/self/fd/{LIBRARY_FD}"));
        let hello = serde_json::to_vec(&Hello {
            manifest: inner,
            plugins_dir: plugins_dir.to_owned(),
            library_fd: Some(LIBRARY_FD),
        })
        .map_err(|e| format!("cannot encode the runner's manifest: {e}"))?;
        let pool = Self {
            name: manifest.name.clone(),
            program,
            hello,
            library,
            path,
            idle: Mutex::default(),
            deaths_in_a_row: AtomicU32::new(0),
            last_death: Mutex::default(),
        };
        let (runner, info, abi_version) = pool.spawn()?;
        pool.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(runner);
        Ok((pool, info, abi_version))
    }

    /// One call on an idle runner (or a new one), within `deadline`.
    pub fn call(
        &self,
        operation: &str,
        request: &str,
        deadline: Duration,
    ) -> Result<String, Failure> {
        let mut runner = match self.take_idle() {
            Some(r) => r,
            None => {
                self.back_off();
                match self.spawn() {
                    Ok((runner, _, _)) => runner,
                    Err(reason) => {
                        self.died();
                        return Err(Failure {
                            error: DriverError::internal(format!(
                                "driver {}: cannot start its runner for {operation}: {reason}",
                                self.name
                            )),
                            timed_out: false,
                        });
                    }
                }
            }
        };
        match runner.call(operation, request, deadline) {
            Ok(reply) => {
                self.deaths_in_a_row.store(0, Ordering::Relaxed);
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push(runner);
                }
                reply.map_err(|e| Failure {
                    error: e.into(),
                    timed_out: false,
                })
            }
            Err(end) => {
                self.died();
                let reason = end.describe(&self.name, operation, deadline, runner.pid());
                tracing::error!(driver = %self.name, operation, pid = runner.pid(), "{reason}");
                Err(Failure {
                    error: DriverError::internal(reason),
                    timed_out: matches!(end, End::Deadline),
                })
            }
        }
    }

    /// An idle runner still alive (one may have died while idle).
    fn take_idle(&self) -> Option<Runner> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut runner) = idle.pop() {
            if matches!(runner.child.try_wait(), Ok(None)) {
                return Some(runner);
            }
            tracing::warn!(driver = %self.name, pid = runner.pid(), "idle driver runner had exited; starting another");
        }
        None
    }

    fn died(&self) {
        self.deaths_in_a_row.fetch_add(1, Ordering::Relaxed);
        *self
            .last_death
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// After two deaths in a row, each start waits twice as long as the
    /// one before (0.1 s, 0.2 s … 5 s after the last death): a runner that
    /// dies at once must not be restarted in a tight loop.
    fn back_off(&self) {
        let deaths = self.deaths_in_a_row.load(Ordering::Relaxed);
        if deaths < 2 {
            return;
        }
        let wait = Duration::from_millis(100)
            .saturating_mul(1 << (deaths - 2).min(6))
            .min(Duration::from_secs(5));
        let since = self
            .last_death
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(wait, |t| t.elapsed());
        if let Some(left) = wait.checked_sub(since) {
            tracing::warn!(driver = %self.name, deaths, "driver runner died {deaths} times in a row; next start in {left:?}");
            std::thread::sleep(left);
        }
    }

    fn spawn(&self) -> Result<(Runner, DriverInfo, String), String> {
        use std::os::{fd::AsRawFd, unix::process::CommandExt};
        let memory_mb = RUNNER_MEMORY_MB.load(Ordering::Relaxed);
        let library = self.library.as_raw_fd();
        let mut command = Command::new(&self.program);
        command
            .arg("--memory-mb")
            .arg(memory_mb.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // dup2 leaves the copy open across exec (the original is
                // close-on-exec); the same number needs the flag cleared.
                let done = if library == LIBRARY_FD {
                    libc::fcntl(library, libc::F_SETFD, 0)
                } else {
                    libc::dup2(library, LIBRARY_FD)
                };
                if done < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("runner started without its pipes".to_owned());
        };
        let last_words: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (stderr_done_tx, stderr_done) = mpsc::channel::<()>();
        {
            let (name, last_words) = (self.name.clone(), last_words.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("runner-log-{pid}"))
                .spawn(move || {
                    // The driver's and the runner's stderr, in magnumd's log.
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        tracing::info!(driver = %name, pid, "runner: {line}");
                        if backtrace_line(&line) {
                            continue;
                        }
                        let mut words = last_words.lock().unwrap_or_else(PoisonError::into_inner);
                        if words.len() == 3 {
                            words.pop_front();
                        }
                        words.push_back(line.chars().take(300).collect());
                    }
                    drop(stderr_done_tx);
                });
            if let Err(e) = spawned {
                tracing::warn!(driver = %self.name, "cannot read the runner's stderr: {e}");
            }
        }
        let (tx, replies) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name(format!("runner-{pid}"))
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                loop {
                    let frame = read_frame(&mut stdout);
                    let last = !matches!(frame, Ok(Some(_)));
                    // A closed channel: the host is done with this runner.
                    if tx.send(frame).is_err() || last {
                        break;
                    }
                }
            });
        let mut runner = Runner {
            child,
            stdin: Some(stdin),
            replies,
            last_words,
            stderr_done,
        };
        if let Err(e) = spawned {
            return Err(format!("cannot start a thread to read the runner: {e}"));
        }
        let started = Instant::now();
        if runner
            .stdin
            .as_mut()
            .map(|s| write_frame(s, &self.hello))
            .transpose()
            .is_err()
        {
            let end = runner.ended();
            return Err(end.describe_start(&self.name));
        }
        match runner.replies.recv_timeout(STARTUP) {
            Ok(Ok(Some(body))) => match serde_json::from_slice::<Ready>(&body) {
                Ok(Ready::Loaded { info, abi_version }) => {
                    tracing::info!(driver = %self.name, pid, memory_mb, took = ?started.elapsed(), "driver runner started");
                    Ok((runner, *info, abi_version))
                }
                Ok(Ready::Failed(reason)) => Err(reason.replace(
                    &format!("/proc/self/fd/{LIBRARY_FD}"),
                    &self.path.display().to_string(),
                )),
                Err(e) => Err(format!("runner said something else than ready: {e}")),
            },
            Ok(Ok(None)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(runner.ended().describe_start(&self.name))
            }
            Ok(Err(e)) => Err(format!("runner sent a malformed frame: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "runner did not load the library within {} s",
                STARTUP.as_secs()
            )),
        }
    }
}

/// An anonymous in-memory file holding `bytes`, closed on exec.
fn memfd(name: &str, bytes: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let name = std::ffi::CString::new(format!("magnum-runner:{name}").replace('\0', ""))
        .map_err(std::io::Error::other)?;
    // SAFETY: a valid C string and flags; the result is checked.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    Ok(file.into())
}

/// One runner process, idle or serving one call.
struct Runner {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Frames read from the runner's stdout by its reader thread.
    replies: mpsc::Receiver<Result<Option<Vec<u8>>, FrameError>>,
    /// The last lines the runner wrote to stderr (an abort message).
    last_words: Arc<Mutex<VecDeque<String>>>,
    /// Closed when the stderr reader reached the end.
    stderr_done: mpsc::Receiver<()>,
}

/// How a runner stopped serving a call.
enum End {
    /// Killed at the call's deadline.
    Deadline,
    /// It sent something that is not a reply.
    Malformed(String),
    /// It exited or was killed, with what it said last.
    Exited(std::process::ExitStatus, Vec<String>),
    /// Its status could not be read.
    Unknown(String),
}

impl Runner {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn call(
        &mut self,
        operation: &str,
        request: &str,
        deadline: Duration,
    ) -> Result<Result<String, WireError>, End> {
        let frame = serde_json::to_vec(&Request {
            operation: operation.to_owned(),
            request: request.to_owned(),
        })
        .map_err(|e| End::Unknown(format!("cannot encode the request: {e}")))?;
        // Last words are what it said during this call.
        self.last_words
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let sent = match self.stdin.as_mut() {
            Some(stdin) => write_frame(stdin, &frame),
            None => Err(std::io::Error::other("runner input closed")),
        };
        if sent.is_err() {
            // A broken pipe: the runner is gone; say how.
            return Err(self.ended());
        }
        match self.replies.recv_timeout(deadline) {
            Ok(Ok(Some(body))) => match serde_json::from_slice::<Reply>(&body) {
                Ok(Reply::Ok(json)) => Ok(Ok(json)),
                Ok(Reply::Err(e)) => Ok(Err(e)),
                Err(e) => {
                    self.kill();
                    Err(End::Malformed(format!("not a reply: {e}")))
                }
            },
            Ok(Err(FrameError::TooLarge(n))) => {
                self.kill();
                Err(End::Malformed(format!(
                    "a reply of {n} bytes, more than the {MAX_FRAME} allowed"
                )))
            }
            Ok(Ok(None))
            | Ok(Err(FrameError::Io(_)))
            | Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.ended()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill();
                Err(End::Deadline)
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the runner's exit (its output ended) and its last words.
    fn ended(&mut self) -> End {
        self.stdin = None;
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(e) => return End::Unknown(e.to_string()),
        };
        // Its stderr ends with it (unless something it started holds it).
        let _ = self.stderr_done.recv_timeout(Duration::from_millis(500));
        let words = self
            .last_words
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        End::Exited(status, words)
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // End of input asks it to exit; the kill makes sure.
        self.stdin = None;
        self.kill();
    }
}

impl End {
    fn describe(&self, driver: &str, operation: &str, deadline: Duration, pid: u32) -> String {
        match self {
            End::Deadline => format!(
                "driver {driver}: runner killed at the {} s deadline during {operation} \
                 (pid {pid}; did not answer in time)",
                deadline.as_secs_f64()
            ),
            End::Malformed(what) => format!(
                "driver {driver}: runner sent a malformed reply to {operation} ({what}); \
                 runner killed"
            ),
            End::Exited(status, words) => format!(
                "driver {driver}: runner {} during {operation}{}",
                exit_text(*status),
                last_words(words)
            ),
            End::Unknown(why) => {
                format!("driver {driver}: runner lost during {operation}: {why}")
            }
        }
    }

    fn describe_start(&self, driver: &str) -> String {
        match self {
            End::Exited(status, words) => format!(
                "driver {driver}: runner {} while loading the library{}",
                exit_text(*status),
                last_words(words)
            ),
            other => other.describe(driver, "loading", STARTUP, 0),
        }
    }
}

/// Whether a line a runner said is a backtrace's (`RUST_BACKTRACE` may be
/// set), which says nothing to an operator reading a status reason.
fn backtrace_line(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line.starts_with("at ")
        || line.starts_with("stack backtrace")
        || line.starts_with("note: ")
        || line
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn last_words(words: &[String]) -> String {
    let words: Vec<&str> = words.iter().map(|w| w.trim()).collect();
    if words.is_empty() {
        String::new()
    } else {
        format!(" (its last words: {})", words.join(" / "))
    }
}

fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
        (None, None) => format!("ended ({status})"),
    }
}

pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        libc::SIGPIPE => "SIGPIPE",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}

/// The runner's side: limits, then load, then answer calls until the host
/// closes the pipe. Returns the process's exit status.
pub fn serve_runner(memory_mb: u64) -> i32 {
    // The protocol keeps the real stdout; fd 1 becomes stderr, so that a
    // driver's println! lands in the log instead of corrupting a frame.
    // SAFETY: plain descriptor calls; results are checked.
    let proto = unsafe { libc::dup(1) };
    if proto < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        eprintln!(
            "{RUNNER}: cannot set up its output: {}",
            std::io::Error::last_os_error()
        );
        return 70;
    }
    if let Err(e) = limit_self(memory_mb) {
        eprintln!("{RUNNER}: cannot limit itself: {e}");
        return 70;
    }
    // The calls run on a thread with a stack of a known size.
    let worker = std::thread::Builder::new()
        .name("driver-call".into())
        .stack_size(CALL_STACK)
        .spawn(move || {
            use std::os::fd::FromRawFd;
            // SAFETY: `proto` is the duplicate made above, owned here only;
            // fd 0 is the pipe from the host, read only here.
            let output = unsafe { std::fs::File::from_raw_fd(proto) };
            let input = unsafe { std::fs::File::from_raw_fd(0) };
            serve(BufReader::new(input), std::io::BufWriter::new(output))
        });
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => 70,
        Err(e) => {
            eprintln!("{RUNNER}: cannot start its call thread: {e}");
            70
        }
    }
}

fn serve(mut input: impl Read, mut output: impl Write) -> i32 {
    let hello: Hello = match read_frame(&mut input) {
        Ok(Some(body)) => match serde_json::from_slice(&body) {
            Ok(hello) => hello,
            Err(e) => {
                eprintln!("{RUNNER}: not a hello frame: {e}");
                return 65;
            }
        },
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("{RUNNER}: {e}");
            return 65;
        }
    };
    let ready = match super::loader::load(&hello.manifest, &hello.plugins_dir) {
        Ok(driver) => Ok(driver),
        Err(e) => Err(e.to_string()),
    };
    let (driver, ready) = match ready {
        Ok(driver) => {
            let ready = Ready::Loaded {
                info: Box::new(driver.info.clone()),
                abi_version: driver.abi_version.clone(),
            };
            (Some(driver), ready)
        }
        Err(reason) => (None, Ready::Failed(reason)),
    };
    let body = serde_json::to_vec(&ready).unwrap_or_default();
    if write_frame(&mut output, &body).is_err() {
        return 0;
    }
    let Some(driver) = driver else { return 0 };
    loop {
        let request: Request = match read_frame(&mut input) {
            Ok(Some(body)) => match serde_json::from_slice(&body) {
                Ok(request) => request,
                Err(e) => {
                    eprintln!("{RUNNER}: not a request frame: {e}");
                    return 65;
                }
            },
            // The host closed the pipe: done.
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("{RUNNER}: {e}");
                return 65;
            }
        };
        let reply = match driver.invoke_direct(&request.operation, &request.request) {
            Ok(json) => Reply::Ok(json),
            Err(e) => Reply::Err((&e).into()),
        };
        let body = match serde_json::to_vec(&reply) {
            Ok(body) => body,
            Err(e) => serde_json::to_vec(&Reply::Err(WireError::from(&DriverError::internal(
                format!("cannot encode the reply: {e}"),
            ))))
            .unwrap_or_default(),
        };
        if write_frame(&mut output, &body).is_err() {
            return 0;
        }
    }
}

/// Limits set before the library is loaded, so its constructor runs under
/// them too.
fn limit_self(memory_mb: u64) -> std::io::Result<()> {
    let set = |resource, value: u64| -> std::io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: a valid rlimit for a valid resource.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, memory_mb.saturating_mul(1 << 20))?;
    set(libc::RLIMIT_NOFILE, RUNNER_NOFILE)?;
    // A crashing driver leaves no core file of magnumd's memory behind.
    set(libc::RLIMIT_CORE, 0)?;
    // SAFETY: prctl with integer arguments; results are checked.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Dies with the host: an orphaned runner would hold a slot for ever.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"a\":1}").unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r).unwrap().is_none());
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let mut r = &huge[..];
        assert!(matches!(read_frame(&mut r), Err(FrameError::TooLarge(_))));
        // Cut mid-frame: an error, not a clean end.
        let mut r = &buf[..6];
        assert!(read_frame(&mut r).is_err());
    }

    #[test]
    fn last_words_skip_backtrace_frames() {
        for line in [
            "stack backtrace:",
            "   0: std::backtrace::Backtrace::create",
            "             at /rustc/library/std/src/backtrace.rs:331:13",
            "note: Some details are omitted",
            "",
        ] {
            assert!(backtrace_line(line), "{line}");
        }
        assert!(!backtrace_line(
            "memory allocation of 67108864 bytes failed"
        ));
        assert!(!backtrace_line(
            "thread 'driver-call' has overflowed its stack"
        ));
        assert_eq!(last_words(&[]), "");
    }

    /// A stand-in runner (python3) that says it is ready, then answers
    /// every call the way `mode` says.
    fn scripted_pool(dir: &Path, mode: &str) -> RunnerPool {
        let ready = serde_json::to_string(&Ready::Loaded {
            info: Box::new(DriverInfo {
                name: "scripted".into(),
                ..Default::default()
            }),
            abi_version: "1.2.0".into(),
        })
        .unwrap();
        let script = dir.join(format!("runner-{mode}"));
        std::fs::write(
            &script,
            format!(
                r#"#!/usr/bin/env python3
import os, struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
def frame():
    n = inp.read(4)
    return inp.read(struct.unpack(">I", n)[0]) if len(n) == 4 else None
def say(b):
    out.write(struct.pack(">I", len(b)) + b); out.flush()
frame()
say({ready:?}.encode())
while frame() is not None:
    mode = {mode:?}
    if mode == "oversized": out.write(b"\xff\xff\xff\xff"); out.flush()
    elif mode == "garbage": say(b"this is not json")
    elif mode == "exit": sys.stderr.write("giving up\n"); sys.exit(3)
    else: say(b'{{"Ok":"{{}}"}}')
"#
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let manifest = Manifest::parse(&format!(
            "name = \"scripted\"\nlibrary = \"x.so\"\nsha256 = \"{}\"\nenabled = true\n\
             abi = \"^1.0\"\n[registered]\nversion = \"1\"\nabi_version = \"1.2.0\"\n\
             description = \"\"\nprovides = []\ncapabilities = []\nregistered_at = \"now\"\n",
            "0".repeat(64)
        ))
        .unwrap();
        let (pool, info, _) = RunnerPool::start_program(script, &manifest, dir, b"").unwrap();
        assert_eq!(info.name, "scripted");
        pool
    }

    #[test]
    fn a_malformed_oversized_or_missing_reply_is_one_failed_call() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Duration::from_secs(10);
        for (mode, expected) in [
            (
                "oversized",
                "driver scripted: runner sent a malformed reply to create_cluster (a reply of \
                 4294967295 bytes, more than the 67108864 allowed); runner killed",
            ),
            (
                "garbage",
                "driver scripted: runner sent a malformed reply to create_cluster (not a reply",
            ),
            (
                "exit",
                "driver scripted: runner exited with status 3 during create_cluster (its last \
                 words: giving up)",
            ),
        ] {
            let pool = scripted_pool(dir.path(), mode);
            for _ in 0..2 {
                let failure = pool.call("create_cluster", "{}", deadline).expect_err(mode);
                assert!(!failure.timed_out);
                assert!(
                    failure.error.message.starts_with(expected),
                    "{mode}: {}",
                    failure.error.message
                );
            }
        }
        // A well-behaved one answers, twice on the same runner.
        let pool = scripted_pool(dir.path(), "ok");
        for _ in 0..2 {
            assert_eq!(pool.call("create_cluster", "{}", deadline).unwrap(), "{}");
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(libc::SIGABRT), "SIGABRT");
        assert_eq!(signal_name(64), "signal 64");
    }
}
