#!/usr/bin/env python3
"""Scale benchmark of the conductor (issue 5): N clusters created through the
API against the `local` orchestrator with a zero boot time. Reports the time
until all are CREATE_COMPLETE, the conductor process's CPU time per cluster
and RSS, and the conductor's idle CPU once everything is complete.

Runs `magnumd serve` (API only, [conductor] in_process = false) and a separate
`magnumd conductor` process on the same SQLite database, so the conductor's
CPU is measured on its own. Every loop is bounded in count and time.

Creates come from --clients concurrent clients (16 by default), each on its
own keep-alive connection. Apart from the zero boot time, the quota and the
health interval, the configuration is magnumd's default (CA keys included)
unless --key-algorithm or --concurrency say otherwise. The database size is
the SQLite file plus its WAL and shared-memory files, per cluster.

Usage: bench_scale.py --bin target/release --plugins DIR [--clusters N] [--clients N]
"""
import argparse, http.client, json, os, shutil, sqlite3, subprocess, sys, tempfile, threading, time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json", "OpenStack-API-Version": "container-infra latest"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, (json.loads(data) if data else None)


def start(cmd, log):
    return subprocess.Popen(cmd, stderr=log, stdout=log, env={**os.environ, "MAGNUM_LOG": "warn", "NO_COLOR": "1"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--clusters", type=int, default=10000)
    ap.add_argument("--port", type=int, default=19711)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument("--health-interval", type=int, default=600,
                    help="[conductor] health_interval_seconds; below --idle-seconds the idle "
                         "figure includes health passes over every complete cluster")
    ap.add_argument("--key-algorithm", choices=["rsa-2048", "ecdsa-p256"],
                    help="the clusters' CA keys ([certificates] key_algorithm; default: magnumd's)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent API clients")
    ap.add_argument("--keep-db", action="store_true", help="keep the database (its path is printed)")
    ap.add_argument("--concurrency", type=int,
                    help="[conductor] concurrency (default: magnumd's)")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="magnum-scale-")
    cfg = os.path.join(work, "magnum.toml")
    with open(cfg, "w") as f:
        f.write(
            "[local]\nboot_seconds = 0.0\ndelete_seconds = 0.0\nfloating_ip_cidr = \"127.128.0.0/9\"\n"
            "[api]\nmax_clusters_per_project = 1000000\n"
            f"[conductor]\nin_process = false\nhealth_interval_seconds = {a.health_interval}\n"
            + (f"concurrency = {a.concurrency}\n" if a.concurrency else "")
            + (f"[certificates]\nkey_algorithm = \"{a.key_algorithm}\"\n" if a.key_algorithm else "")
        )
    common = ["--config", cfg, "--plugins-dir", a.plugins, "--data-dir", os.path.join(work, "var")]
    log = open(os.path.join(work, "magnumd.log"), "w")
    api = start([os.path.join(a.bin, "magnumd"), *common, "serve", "--bind", f"127.0.0.1:{a.port}"], log)
    conductor = None
    try:
        conn = None
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
                if request(conn, "GET", "/v1")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        status, body = request(conn, "POST", "/v1/clustertemplates", {
            "name": "k8s", "coe": "kubernetes", "image_id": "fedora-atomic-latest",
            "external_network_id": "public", "flavor_id": "m1.small"})
        assert status == 201, (status, body)
        conductor = start([os.path.join(a.bin, "magnumd"), *common, "conductor"], log)
        t0 = time.time()
        errors = []

        def client(k):
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
            for i in range(k, a.clusters, a.clients):
                status, body = request(c, "POST", "/v1/clusters", {"name": f"c{i}", "cluster_template_id": "k8s", "node_count": 1})
                if status != 202:
                    errors.append((i, status, body))
                    return

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=a.timeout)
        assert not errors, errors[:3]
        t_api = time.time() - t0
        done = 0
        deadline = t0 + a.timeout
        db = sqlite3.connect(f"file:{os.path.join(work, 'var', 'magnum.sqlite')}?mode=ro", uri=True, timeout=30)
        failed = 0
        while time.time() < deadline:
            # Read the counts from the database: the API pages 1000 at a time.
            counts = dict(db.execute("SELECT status, COUNT(*) FROM cluster GROUP BY status").fetchall())
            done = counts.get("CREATE_COMPLETE", 0)
            failed = sum(n for s, n in counts.items() if s.endswith("FAILED"))
            if done + failed == a.clusters:
                break
            time.sleep(1)
        t_all = time.time() - t0
        cpu_busy = cpu_seconds(conductor.pid)
        rss = rss_mib(conductor.pid)
        time.sleep(a.idle_seconds)
        cpu_idle = cpu_seconds(conductor.pid) - cpu_busy
        api_rss = rss_mib(api.pid)
        print(f"clusters                      {a.clusters} (CA keys {a.key_algorithm or 'default'}, {a.clients} clients)")
        print(f"CREATE_COMPLETE               {done}  (failed {failed})")
        print(f"API accepted all creates in   {t_api:.1f} s ({a.clusters / t_api:.0f} creates/s)")
        print(f"all terminal after            {t_all:.1f} s (from the first create)")
        print(f"conductor CPU                 {cpu_busy:.1f} s = {1000 * cpu_busy / a.clusters:.2f} ms per cluster")
        print(f"conductor RSS                 {rss:.0f} MiB (API process {api_rss:.0f} MiB)")
        print(f"conductor idle CPU            {cpu_idle:.2f} s over {a.idle_seconds} s with every cluster complete ({100 * cpu_idle / a.idle_seconds:.2f}% of a core; health interval {a.health_interval} s)")
        db.close()
        base = os.path.join(work, "var", "magnum.sqlite")
        size = sum(os.path.getsize(base + sfx) for sfx in ("", "-wal", "-shm") if os.path.exists(base + sfx))
        print(f"database                      {size / 2**20:.0f} MiB with WAL = {size / a.clusters / 1024:.1f} KiB per cluster")
        return 0 if done == a.clusters else 1
    finally:
        for p in (conductor, api):
            if p:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        # The database of 10,000 clusters is hundreds of MiB; the log stays.
        if a.keep_db:
            print(f"database kept in              {os.path.join(work, 'var')}")
        else:
            shutil.rmtree(os.path.join(work, "var"), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
