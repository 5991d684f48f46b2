//! A database that stops answering: the API must say 503 (Magnum's error
//! envelope) within seconds, and `/healthcheck` within about one, so a load
//! balancer can act. The database is the real PostgreSQL behind a TCP proxy
//! the test owns, so it can be made to vanish without touching the server.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicU8, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use magnum_host::db::{testing::TestDatabase, Backend, DbPool};

use crate::api::{Resp, TestApp};

const FORWARD: u8 = 0;
/// Existing connections stay open but nothing passes; new ones are
/// accepted and never answered (a partition, or a server that hangs).
const BLACKHOLE: u8 = 1;
/// Every connection is closed and new ones refused (a stopped server).
const REFUSE: u8 = 2;

/// A TCP proxy on 127.0.0.1 in front of `upstream`, switchable between
/// the modes above.
pub(crate) struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (m, c) = (mode.clone(), conns.clone());
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            loop {
                let current = m.load(Ordering::SeqCst);
                if current == REFUSE {
                    // Closing the listener makes new connections refused.
                    listener = None;
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let client = match l.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                if current == BLACKHOLE {
                    c.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for s in [&client, &server] {
                    c.lock().unwrap().push(s.try_clone().expect("clone"));
                }
                pump(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                    m.clone(),
                );
                pump(server, client, m.clone());
            }
        });
        Self { addr, mode, conns }
    }

    pub fn blackhole(&self) {
        self.mode.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// Forwards again. Connections that lived through a blackhole lost
    /// bytes in both directions, so their protocol streams are out of step
    /// and would wait forever (no timeout applies to a connection a request
    /// already holds): they are closed, as a network path that came back
    /// after its state was lost would reset them.
    pub fn forward(&self) {
        let previous = self.mode.swap(FORWARD, Ordering::SeqCst);
        if previous == BLACKHOLE {
            for s in self.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn refuse(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` while forwarding; drops what arrives otherwise.
fn pump(mut from: TcpStream, mut to: TcpStream, mode: Arc<AtomicU8>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if mode.load(Ordering::SeqCst) == FORWARD && to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `url` (postgres://user@host:port/db?…) pointed at `addr` instead.
pub(crate) fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}{tail}")
}

/// The upstream PostgreSQL server of `url`.
fn server_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host)
        .expect("resolve")
        .next()
        .expect("an address")
}

/// `GET path`, answered within `limit` or the test fails (a hung request
/// must not hang the suite).
fn timed_get(app: &Arc<TestApp>, path: &str, limit: Duration) -> (Resp, Duration) {
    let (tx, rx) = mpsc::channel();
    let (app, path_owned) = (app.clone(), path.to_owned());
    std::thread::spawn(move || {
        let start = Instant::now();
        let r = app.get(&path_owned);
        let _ = tx.send((r, start.elapsed()));
    });
    match rx.recv_timeout(limit) {
        Ok(answer) => answer,
        Err(_) => panic!("GET {path} got no answer within {limit:?}"),
    }
}

fn assert_unavailable(r: &Resp, elapsed: Duration, bound: Duration, what: &str) {
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        r.body
    );
    assert!(elapsed < bound, "{what} took {elapsed:?} (bound {bound:?})");
}

fn app_through_proxy() -> Option<(Arc<TestApp>, Proxy)> {
    let db = TestDatabase::new(Backend::Postgres)?;
    let proxy = Proxy::start(server_of(&db.url()));
    let pool = DbPool::connect_with(&via(&db.url(), proxy.addr), 4).expect("pool via proxy");
    let app = Arc::new(TestApp::with(db, |s| s.pool = pool));
    Some((app, proxy))
}

#[test]
fn database_gone_after_start_is_a_fast_503() {
    let Some((app, proxy)) = app_through_proxy() else {
        return;
    };
    // The pool holds working connections.
    let (r, _) = timed_get(&app, "/v1/clusters", Duration::from_secs(10));
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (r, _) = timed_get(&app, "/healthcheck", Duration::from_secs(10));
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    proxy.blackhole();
    let (r, took) = timed_get(&app, "/healthcheck", Duration::from_secs(40));
    eprintln!(
        "healthcheck, database not answering: {} in {took:?}",
        r.status
    );
    assert_unavailable(&r, took, Duration::from_secs(2), "healthcheck");
    let (r, took) = timed_get(&app, "/v1/clusters", Duration::from_secs(40));
    eprintln!(
        "GET /v1/clusters, database not answering: {} in {took:?}",
        r.status
    );
    assert_unavailable(&r, took, Duration::from_secs(5), "GET /v1/clusters");
    assert_eq!(
        r.body["errors"][0]["status"], 503,
        "Magnum's envelope: {}",
        r.body
    );
    assert!(r.detail().contains("database"), "{}", r.body);

    // Back again: the service recovers without a restart.
    proxy.forward();
    let mut healthy = false;
    for _ in 0..100 {
        let (r, _) = timed_get(&app, "/healthcheck", Duration::from_secs(10));
        if r.status == StatusCode::OK {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        healthy,
        "healthcheck is 200 again once the database answers"
    );
}

#[test]
fn database_stopped_after_start_is_a_fast_503() {
    let Some((app, proxy)) = app_through_proxy() else {
        return;
    };
    let (r, _) = timed_get(&app, "/v1/clusters", Duration::from_secs(10));
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    proxy.refuse();
    let (r, took) = timed_get(&app, "/healthcheck", Duration::from_secs(40));
    eprintln!("healthcheck, database refusing: {} in {took:?}", r.status);
    assert_unavailable(&r, took, Duration::from_secs(2), "healthcheck");
    let (r, took) = timed_get(&app, "/v1/clusters", Duration::from_secs(40));
    eprintln!(
        "GET /v1/clusters, database refusing: {} in {took:?}",
        r.status
    );
    assert_unavailable(&r, took, Duration::from_secs(5), "GET /v1/clusters");
    assert_eq!(r.body["errors"][0]["code"], "server", "{}", r.body);
}

/// A service whose database was never there: a port where a listener
/// accepts and never answers, and one where nothing listens.
#[test]
fn database_away_from_the_start_is_a_fast_503() {
    let Some(db) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let url = db.url();
    for (what, addr) in [
        ("never answers", silent.local_addr().expect("addr")),
        ("nothing listens", closed),
    ] {
        let pool = DbPool::open_lazy(&via(&url, addr), 4, Default::default()).expect("pool");
        let db = TestDatabase::new(Backend::Postgres).expect("reachable a moment ago");
        let app = Arc::new(TestApp::with(db, |s| s.pool = pool));
        let (r, took) = timed_get(&app, "/healthcheck", Duration::from_secs(40));
        eprintln!("healthcheck, database {what}: {} in {took:?}", r.status);
        assert_unavailable(&r, took, Duration::from_secs(2), "healthcheck");
        let (r, took) = timed_get(&app, "/v1/clusters", Duration::from_secs(40));
        eprintln!(
            "GET /v1/clusters, database {what}: {} in {took:?}",
            r.status
        );
        assert_unavailable(&r, took, Duration::from_secs(5), "GET /v1/clusters");
        assert_eq!(r.body["errors"][0]["status"], 503, "{}", r.body);
    }
}

/// SQLite's "database does not answer": another process holds the write
/// lock. A write waits `sqlite_busy_timeout_ms` (5 s), then is a 503.
#[test]
fn a_sqlite_write_lock_held_elsewhere_is_a_503() {
    use diesel::connection::SimpleConnection;
    let Some(db) = TestDatabase::new(Backend::Sqlite) else {
        return;
    };
    let target = magnum_host::db::DbTarget::parse(&db.url()).expect("SQLite URL");
    let mut holder = magnum_host::db::establish(&target).expect("second connection");
    holder
        .batch_execute("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let app = TestApp::new(db);
    let start = Instant::now();
    let r = app.post(
        "/v1/clustertemplates",
        crate::api::template_body("t", "kubernetes", "fedora-atomic-latest"),
    );
    let took = start.elapsed();
    eprintln!("POST while SQLite is locked: {} in {took:?}", r.status);
    assert_unavailable(
        &r,
        took,
        Duration::from_secs(8),
        "POST /v1/clustertemplates",
    );
    assert!(r.detail().contains("busy"), "{}", r.body);
    holder.batch_execute("ROLLBACK").expect("release");
    let r = app.post(
        "/v1/clustertemplates",
        crate::api::template_body("t", "kubernetes", "fedora-atomic-latest"),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
