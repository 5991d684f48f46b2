#!/usr/bin/env python3
"""How long a cluster takes to show CREATE_COMPLETE against the local cloud's
boot time: the same magnumd binary, side by side, with the conductor's own
poll backoff (1, 2, 4, 8 s: `[local] poll_cap_ms = 10000`, as before the local
cloud gave its own cap) and with the default (a sixth of the boot time).
Prints each run's seconds, the medians and their ratio. Bounded: N clusters
per configuration, 60 s each at most."""

import argparse, json, threading, os, re, statistics, subprocess, tempfile, time, urllib.request

def call(addr, method, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 "OpenStack-API-Version": "container-infra latest"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read() or b"null")

def run(binary, plugins, boot, cap, n):
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "magnum.toml")
        with open(conf, "w") as f:
            f.write(f"log = \"info\"\n[local]\nboot_seconds = {boot}\n"
                    + (f"poll_cap_ms = {cap}\n" if cap else "")
                    + "[certificates]\nkey_algorithm = \"ecdsa-p256\"\n")
        p = subprocess.Popen([f"{binary}/magnumd", "--config", conf, "serve", "--bind", "127.0.0.1:0",
                              "--plugins-dir", plugins, "--data-dir", os.path.join(d, "var")],
                             stderr=subprocess.PIPE, text=True)
        try:
            addr = None
            deadline = time.time() + 30
            while addr is None and time.time() < deadline:
                m = re.search(r"listening=(\S+)", p.stderr.readline())
                addr = m and m.group(1)
            if addr is None:
                raise SystemExit("magnumd did not start")
            # Keep reading its log, or a full pipe stops it.
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            call(addr, "POST", "/v1/clustertemplates", {"name": "k", "coe": "kubernetes",
                 "image_id": "fedora-atomic-latest", "external_network_id": "public",
                 "flavor_id": "m1.small", "keypair_id": "default"})
            times = []
            for i in range(n):
                t0 = time.monotonic()
                uuid = call(addr, "POST", "/v1/clusters",
                            {"name": f"c{i}", "cluster_template_id": "k", "node_count": 1})["uuid"]
                while time.monotonic() - t0 < 60:
                    status = call(addr, "GET", f"/v1/clusters/{uuid}")["status"]
                    if status != "CREATE_IN_PROGRESS":
                        break
                    time.sleep(0.02)
                if status != "CREATE_COMPLETE":
                    raise SystemExit(f"cluster {i}: {status}")
                times.append(time.monotonic() - t0)
            return times
        finally:
            p.terminate()
            p.wait(timeout=30)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug")
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--boot", type=float, default=3.0)
    ap.add_argument("-n", type=int, default=5)
    a = ap.parse_args()
    before = run(a.bin, a.plugins, a.boot, 10000, a.n)
    after = run(a.bin, a.plugins, a.boot, None, a.n)
    mb, ma = statistics.median(before), statistics.median(after)
    print(f"boot_seconds = {a.boot}, {a.n} clusters each, create -> CREATE_COMPLETE seen by a client polling every 20 ms")
    print(f"  conductor backoff (poll_cap_ms = 10000): " + ", ".join(f"{t:.2f}" for t in before) + f"  median {mb:.2f} s")
    print(f"  local cloud's cap (default)            : " + ", ".join(f"{t:.2f}" for t in after) + f"  median {ma:.2f} s")
    # A k8s stack boots in two phases: the masters, then the workers (they
    # need the master's address).
    print(f"  ratio default / backoff: {ma / mb:.2f}; time past the two boot phases (2 x {a.boot} s): "
          f"{mb - 2 * a.boot:.2f} s -> {ma - 2 * a.boot:.2f} s")

main()
