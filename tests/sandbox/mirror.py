#!/usr/bin/env python3
"""The download mirror and the forward proxy a sandboxed node reaches.

    mirror.py populate --dir DIR --root SANDBOX_ROOT [--tag NAME=VALUE]...
        Lays out DIR as the drivers' download_mirror_url expects
        (<mirror>/<project>/<upstream path>, driver-sdk/src/node_setup.rs) and
        prints JSON: {"tags": {label: value}, "sha256": {artifact: digest}},
        the labels a cluster template needs to download exactly these files.
        Real Debian binaries where Debian ships them (etcd, etcdctl,
        containerd, runc, taken from the sandbox root); stand-ins
        (stand-ins/mirror/) for what no registry here ships. Also a Docker
        registry's files (the v2 API's GET paths) holding the image
        magnum/swarm:1.2.5 that standalone Swarm's nodes run: a layer of
        the root's dash, sleep and libc, with stand-ins/mirror/swarm as its
        entrypoint.

    mirror.py serve --dir DIR --port-file FILE --log FILE [--host NAME]...
        Serves DIR on a free 127.0.0.1 port (the mirror) and runs a forward
        proxy on another: the proxy answers only for the mirror's host names
        (--host, default mirror.sandbox.test; any port, so the registry at
        mirror.sandbox.test:5000 too) from DIR and refuses every other URL and
        every CONNECT with 403, naming it. /v2/ answers as a registry does. Every request to either is
        a JSON line in --log: who asked (mirror or proxy), the URL, the status
        and, for a file served, its sha256. FILE gets {"mirror": port,
        "proxy": port} once both listen. Runs until killed.
"""

import argparse
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import socketserver
import sys
import tarfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
STAND_INS = os.path.join(HERE, "stand-ins", "mirror")
ARCH = "amd64"
# The standalone Swarm image's tag: the swarm driver's default swarm_version
# (drivers/swarm-fedora-atomic/src/driver.rs).
SWARM_VERSION = "1.2.5"


def debian_version(root, package):
    """The upstream version of an installed package ("3.4.23-4+b8" -> "3.4.23")."""
    with open(os.path.join(root, "var", "lib", "dpkg", "status")) as f:
        for block in f.read().split("\n\n"):
            if re.search(rf"^Package: {re.escape(package)}$", block, re.M):
                m = re.search(r"^Version: (?:\d+:)?([0-9.]+)", block, re.M)
                if m:
                    return m.group(1)
    raise SystemExit(f"mirror.py: {package} is not installed in {root}")


def stand_in(name, version):
    """The stand-in for `name`: its own script when there is one, else the
    generic one, with the version it is served as filled in."""
    path = os.path.join(STAND_INS, name)
    if not os.path.exists(path):
        path = os.path.join(STAND_INS, "generic")
    with open(path) as f:
        return f.read().replace("@NAME@", name).replace("@VERSION@", version).encode()


def tar_gz(members):
    """A .tar.gz of (name, bytes) members, all executable."""
    buf = io.BytesIO()
    # Level 1: the real binaries are large, and speed beats size here.
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def registry_image(root, repository, tag, entrypoint):
    """The files of a Docker registry (v2 API, image manifest schema 2)
    serving REPOSITORY:TAG: one layer of the root's dash (as /bin/sh),
    sleep and the C library they need, plus ENTRYPOINT (bytes) as /swarm.
    Returns {relative path: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data, mode=0o755):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        lib = "lib/x86_64-linux-gnu"
        for name, source in (("bin/sh", "usr/bin/dash"), ("bin/sleep", "usr/bin/sleep"),
                             (f"{lib}/libc.so.6", f"{lib}/libc.so.6"),
                             (f"{lib}/ld-linux-x86-64.so.2", f"{lib}/ld-linux-x86-64.so.2")):
            add(name, read(os.path.join(root, source)))
        link = tarfile.TarInfo("lib64/ld-linux-x86-64.so.2")
        link.type, link.linkname = tarfile.SYMTYPE, f"/{lib}/ld-linux-x86-64.so.2"
        tar.addfile(link)
        add("swarm", entrypoint)
    layer_tar = buf.getvalue()
    layer = gzip.compress(layer_tar, compresslevel=1, mtime=0)
    config = json.dumps({
        "architecture": ARCH, "os": "linux",
        "config": {"Entrypoint": ["/swarm"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
    }).encode()

    def digest(data):
        return "sha256:" + hashlib.sha256(data).hexdigest()

    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": digest(layer)}],
    }).encode()
    base = f"v2/{repository}"
    return {
        f"{base}/manifests/{tag}": manifest,
        f"{base}/manifests/{digest(manifest)}": manifest,
        f"{base}/blobs/{digest(config)}": config,
        f"{base}/blobs/{digest(layer)}": layer,
    }


def populate(args):
    root = os.path.abspath(args.root)
    tags = {
        # Real Debian binaries: served as the versions Debian ships.
        "etcd_tag": "v" + debian_version(root, "etcd-server"),
        "containerd_version": debian_version(root, "containerd"),
        "runc_tag": "v" + debian_version(root, "runc"),
        # Stand-ins: served as the versions the cluster asks for.
        "kube_tag": "v1.27.3",
        "cni_tag": "v1.3.0",
        "flannel_tag": "v0.22.0",
        "flannel_cni_tag": "v1.2.0",
        "cri_dockerd_tag": "0.3.4",
        "calico_tag": "v3.26.1",
    }
    for pair in args.tag:
        name, _, value = pair.partition("=")
        tags[name] = value
    t = tags
    usr_bin = os.path.join(root, "usr", "bin")
    real_bin = os.path.join(root, "opt", "sandbox-mirror-bin")
    etcd_dir = f"etcd-{t['etcd_tag']}-linux-{ARCH}"
    files = {}  # artifact -> (relative path, bytes)
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                      "kubectl", "kubelet", "kube-proxy"):
        files[component.replace("-", "_")] = (
            f"kubernetes/{t['kube_tag']}/bin/linux/{ARCH}/{component}",
            stand_in(component, t["kube_tag"]))
    files["etcd"] = (f"etcd/{t['etcd_tag']}/{etcd_dir}.tar.gz", tar_gz([
        (f"{etcd_dir}/etcd", read(os.path.join(usr_bin, "etcd"))),
        (f"{etcd_dir}/etcdctl", read(os.path.join(usr_bin, "etcdctl"))),
    ]))
    v = t["containerd_version"]
    files["containerd"] = (f"containerd/v{v}/containerd-{v}-linux-{ARCH}.tar.gz", tar_gz([
        (f"bin/{b}", read(os.path.join(real_bin, b)))
        for b in ("containerd", "containerd-shim-runc-v2", "ctr")
    ]))
    files["runc"] = (f"runc/{t['runc_tag']}/runc.{ARCH}", read(os.path.join(real_bin, "runc")))
    files["cni_plugins"] = (
        f"cni-plugins/{t['cni_tag']}/cni-plugins-linux-{ARCH}-{t['cni_tag']}.tgz",
        tar_gz([(f"./{p}", stand_in(p, t["cni_tag"]))
                for p in ("bridge", "host-local", "loopback", "portmap")]))
    files["flannel_cni"] = (f"flannel-cni-plugin/{t['flannel_cni_tag']}/flannel-{ARCH}",
                            stand_in("flannel", t["flannel_cni_tag"]))
    files["flanneld"] = (f"flannel/{t['flannel_tag']}/flanneld-{ARCH}",
                         stand_in("flanneld", t["flannel_tag"]))
    files["cri_dockerd"] = (
        f"cri-dockerd/v{t['cri_dockerd_tag']}/cri-dockerd-{t['cri_dockerd_tag']}.{ARCH}.tgz",
        tar_gz([("cri-dockerd/cri-dockerd", stand_in("cri-dockerd", t["cri_dockerd_tag"]))]))
    files["calico"] = (f"calico/{t['calico_tag']}/manifests/calico.yaml",
                       stand_in("calico.yaml", t["calico_tag"]))
    # The registry: what CONTAINER_INFRA_PREFIX mirror.sandbox.test:5000/magnum/
    # names, as standalone Swarm's nodes pull it.
    registry = registry_image(root, "magnum/swarm", SWARM_VERSION,
                              stand_in("swarm", SWARM_VERSION))
    out = os.path.abspath(args.dir)
    shutil.rmtree(out, ignore_errors=True)
    for path, data in registry.items():
        target = os.path.join(out, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
    digests, paths = {}, {}
    for artifact, (path, data) in files.items():
        target = os.path.join(out, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        digests[artifact] = hashlib.sha256(data).hexdigest()
        paths[artifact] = path
    json.dump({"tags": tags, "sha256": digests, "paths": paths}, sys.stdout, indent=2)
    print()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandbox-mirror"

    def log_message(self, *args):
        pass

    def record(self, **entry):
        entry.update(role=self.server.role, method=self.command)
        with self.server.lock:
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")

    def answer(self, status, body, content_type="text/plain", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self, url, why):
        self.record(url=url, status=403, refused=why)
        self.close_connection = True
        self.answer(403, f"sandbox proxy: refused {url}: {why}\n".encode())

    def do_CONNECT(self):
        self.refuse(self.path, "CONNECT (only the mirror, over http, is reachable)")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self.server.role == "proxy":
            url = self.path
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                return self.refuse(url, "not an absolute http URL")
            if parts.hostname not in self.server.hosts and parts.netloc not in self.server.hosts:
                return self.refuse(url, "not the mirror")
            path = parts.path
        else:
            path = urllib.parse.urlsplit(self.path).path
            url = f"http://{self.headers.get('Host', '127.0.0.1')}{path}"
        relative = os.path.normpath(urllib.parse.unquote(path)).lstrip("/")
        v2 = [("Docker-Distribution-API-Version", "registry/2.0")]
        if relative == "v2":
            # The registry's API check (what `docker pull` asks first).
            self.record(url=url, status=200, path=relative)
            return self.answer(200, b"{}", "application/json", v2)
        target = os.path.join(self.server.dir, relative)
        if relative.startswith("..") or not os.path.isfile(target):
            self.record(url=url, status=404)
            return self.answer(404, f"not on the mirror: {path}\n".encode())
        data = read(target)
        digest = hashlib.sha256(data).hexdigest()
        self.record(url=url, status=200, path=relative, bytes=len(data), sha256=digest)
        if relative.startswith("v2/") and "/manifests/" in relative:
            return self.answer(200, data, "application/vnd.docker.distribution.manifest.v2+json",
                               v2 + [("Docker-Content-Digest", "sha256:" + digest)])
        self.answer(200, data, "application/octet-stream", v2 if relative.startswith("v2/") else ())


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(args):
    servers = {}
    lock = threading.Lock()
    for role in ("mirror", "proxy"):
        s = Server(("127.0.0.1", 0), Handler)
        s.role, s.dir, s.log_path, s.lock = role, os.path.abspath(args.dir), args.log, lock
        s.hosts = set(args.host or ["mirror.sandbox.test"])
        servers[role] = s
    ports = {role: s.server_address[1] for role, s in servers.items()}
    # The mirror's own address is a mirror host too.
    for s in servers.values():
        s.hosts.add(f"127.0.0.1:{ports['mirror']}")
    for s in servers.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    part = args.port_file + ".part"
    with open(part, "w") as f:
        json.dump(ports, f)
    os.rename(part, args.port_file)
    threading.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("populate")
    p.add_argument("--dir", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--tag", action="append", default=[])
    s = sub.add_parser("serve")
    s.add_argument("--dir", required=True)
    s.add_argument("--port-file", required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--host", action="append")
    args = parser.parse_args()
    if args.command == "populate":
        populate(args)
    else:
        serve(args)


if __name__ == "__main__":
    main()
