"""Cloud harness helper, run by start.sh/stop.sh/smoke.sh with the cloud venv's python.

  cloudctl.py createdb NAME...        create PostgreSQL databases (fresh per run)
  cloudctl.py dropdb NAME...          drop them (connections are forced out)
  cloudctl.py ovsagent DBNAME HOST     an Open vSwitch agent row on HOST in Neutron's
                                      database (no agent runs; see start.sh)
  cloudctl.py identity KS_URL GLANCE_PORT NOVA_PORT NEUTRON_PORT [PLACEMENT_PORT]
                                      service users glance/nova/neutron (service:
                                      admin, service), services image/compute/
                                      network (and placement) with public +
                                      internal endpoints in $KS_REGION; prints
                                      KEY=VALUE lines
  cloudctl.py unregister KS_URL SERVICE_ID...
                                      delete those catalog services (and so their
                                      endpoints) from a shared Keystone
  cloudctl.py wait KS_URL NAME PIDFILE TIMEOUT_S
                                      until service NAME (glance|nova|neutron),
                                      found through the catalog, answers an
                                      authenticated list call; fails early when
                                      its process died
  cloudctl.py hypervisor KS_URL PIDFILE TIMEOUT_S
                                      until nova-compute is up in os-services and
                                      its resource provider is in placement
  cloudctl.py seed KS_URL             images, flavors, demo's keypair, networks;
                                      prints KEY=VALUE lines
  cloudctl.py check KS_URL            the smoke check, as demo through the catalog

PostgreSQL is reached as $CLOUD_PG_USER@$CLOUD_PG_HOST:$CLOUD_PG_PORT (trust
auth). The Keystone REST helpers are the Keystone harness's
(tests/keystone/identity.py); the service clients here are stdlib urllib,
going through the token's catalog like a real client.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "keystone"))
import identity  # noqa: E402  (tests/keystone/identity.py)

# A fixed test-only key: Nova only stores the public half and checks that it
# parses. Nobody holds the private half.
DEMO_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHucLlR3XfZtwrpjQy7ufqCSPi1SuIIeO1pLp"
                   "JgC5gMc magnum-harness-demo")
NOVA_MICROVERSION = "2.92"


# ---------------------------------------------------------------- postgres
def pg():
    import psycopg2

    conn = psycopg2.connect(host=os.environ["CLOUD_PG_HOST"], port=os.environ["CLOUD_PG_PORT"],
                            user=os.environ["CLOUD_PG_USER"], dbname="postgres",
                            connect_timeout=10)
    conn.autocommit = True
    return conn


def check_name(name):
    if not name.replace("_", "").isalnum() or len(name) > 63:
        raise SystemExit("bad database name %r" % name)
    return name


def createdb(*names):
    # Not `with conn`: psycopg2 would open a transaction, and CREATE DATABASE
    # cannot run in one.
    conn = pg()
    with conn.cursor() as cur:
        for name in names:
            cur.execute('CREATE DATABASE "%s" ENCODING \'UTF8\' TEMPLATE template0'
                        % check_name(name))
    conn.close()


def dropdb(*names):
    conn = pg()
    with conn.cursor() as cur:
        for name in names:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % check_name(name))
    conn.close()


def ovsagent(dbname, host):
    """Registers an Open vSwitch agent on `host` the way its heartbeat would
    (neutron.db.agents_db create_or_update_agent), so that ML2's openvswitch
    mechanism driver binds ports there. Nothing runs behind it: neutron.conf's
    agent_down_time keeps it alive for the run."""
    import psycopg2
    import uuid

    conn = psycopg2.connect(host=os.environ["CLOUD_PG_HOST"], port=os.environ["CLOUD_PG_PORT"],
                            user=os.environ["CLOUD_PG_USER"], dbname=check_name(dbname),
                            connect_timeout=10)
    configurations = {
        "bridge_mappings": {"public": "br-ex"},
        "tunnel_types": ["vxlan"],
        "integration_bridge": "br-int",
        "datapath_type": "system",
        "ovs_hybrid_plug": False,
        "ovs_capabilities": {"iface_types": ["internal", "system", "vxlan"]},
        "l2_population": False,
    }
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO agents (id, agent_type, \"binary\", topic, host, admin_state_up,"
            " created_at, started_at, heartbeat_timestamp, description, configurations, load)"
            " VALUES (%s, 'Open vSwitch agent', 'neutron-openvswitch-agent', 'N/A', %s, true,"
            " now() at time zone 'utc', now() at time zone 'utc', now() at time zone 'utc',"
            " 'stand-in: no agent runs (magnum cloud harness)', %s, 0)",
            (str(uuid.uuid4()), host, json.dumps(configurations)))
    conn.close()


# ---------------------------------------------------------------- keystone
SERVICES = {
    # name: (catalog type, URL path on the service's port)
    "glance": ("image", ""),
    "nova": ("compute", "/v2.1"),
    "neutron": ("network", ""),
    "placement": ("placement", ""),
}


def bootstrap(ks_url, glance_port, nova_port, neutron_port, placement_port=None):
    ks = identity.Keystone(ks_url)
    env = os.environ
    admin, service_role = ks.role("admin"), ks.role("service")
    ks.role("member")
    ks.role("reader")
    service = ks.project("service")
    region = env.get("KS_REGION", "RegionOne")
    ports = {"glance": glance_port, "nova": nova_port, "neutron": neutron_port,
             "placement": placement_port}
    for name, (stype, path) in SERVICES.items():
        if ports[name] is None:
            continue
        user = ks.user(name, env["CLOUD_%s_PASSWORD" % name.upper()], service)
        ks.grant(admin, user, service)
        ks.grant(service_role, user, service)
        svc = ks.get_or_create("services", "service", {"name": name, "type": stype}, type=stype)
        url = "http://127.0.0.1:%s%s" % (ports[name], path)
        for interface in ("public", "internal"):
            ks.endpoint(svc, interface, region, url)
        print("%s_URL=%s" % (name.upper(), url))
        print("%s_USER_ID=%s" % (name.upper(), user["id"]))
        print("%s_SERVICE_ID=%s" % (name.upper(), svc["id"]))


def unregister(ks_url, *service_ids):
    ks = identity.Keystone(ks_url)
    for sid in service_ids:
        identity.call(ks.base + "/services/" + sid, "DELETE", ks.token, ok=(204, 404))


class Session:
    """A password-scoped token and the endpoints of its catalog."""

    def __init__(self, ks_url, user, password, project):
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        _, headers, data = identity.call(ks_url.rstrip("/") + "/auth/tokens", "POST", body=body)
        self.token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
        self.project_id = data["token"]["project"]["id"]
        self.user_id = data["token"]["user"]["id"]
        self.catalog = data["token"].get("catalog", [])

    def endpoint(self, stype, interface="public", region=None):
        region = region or os.environ.get("KS_REGION", "RegionOne")
        for svc in self.catalog:
            if svc["type"] != stype:
                continue
            for ep in svc["endpoints"]:
                if ep["interface"] == interface and ep.get("region_id", ep.get("region")) == region:
                    return ep["url"].rstrip("/")
        raise SystemExit("no %s %s endpoint in %s in the catalog" % (interface, stype, region))

    def call(self, stype, path, method="GET", body=None, raw=None, headers=None,
             ok=(200, 201, 202, 204)):
        url = self.endpoint(stype) + path
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("X-Auth-Token", self.token)
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if stype == "compute":
            req.add_header("OpenStack-API-Version", "compute %s" % NOVA_MICROVERSION)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read()
                return resp.status, (json.loads(text) if text else {})
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return e.code, {}
            raise SystemExit("%s %s -> %s %s" % (method, url, e.code, e.read()[:500]))


def session(ks_url, who):
    env = os.environ
    if who == "admin":
        return Session(ks_url, "admin", env["KEYSTONE_ADMIN_PASSWORD"], "admin")
    return Session(ks_url, "demo", env["KEYSTONE_DEMO_PASSWORD"], "demo")


# ---------------------------------------------------------------- wait
def alive(pidfile, started):
    try:
        with open(pidfile) as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except FileNotFoundError:
        # gunicorn may not have written it yet; a master that failed to boot
        # its worker exits and removes it.
        return time.time() - started < 15
    except (ProcessLookupError, ValueError):
        return False


PROBES = {"glance": ("image", "/v2/images?limit=1"),
          "nova": ("compute", "/flavors?limit=1"),
          "neutron": ("network", "/v2.0/networks?limit=1"),
          "placement": ("placement", "/resource_providers")}


def wait(ks_url, name, pidfile, timeout):
    started = time.time()
    deadline = started + float(timeout)
    admin = session(ks_url, "admin")
    stype, path = PROBES[name]
    url = admin.endpoint(stype) + path
    last = "no answer"
    while time.time() < deadline:
        if not alive(pidfile, started):
            raise SystemExit("%s: process exited during start-up" % name)
        req = urllib.request.Request(url, headers={"X-Auth-Token": admin.token,
                                                   "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status == 200:
                    return
                last = "answered %s" % resp.status
        except urllib.error.HTTPError as e:
            last = "answered %s %s" % (e.code, e.read()[:200])
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.5)
    raise SystemExit("%s did not answer %s within %ss (%s)" % (name, url, timeout, last))


def hypervisor(ks_url, pidfile, timeout):
    """Until nova-compute reports itself up and has its resource provider."""
    started = time.time()
    deadline = started + float(timeout)
    admin = session(ks_url, "admin")
    last = "no answer"
    while time.time() < deadline:
        if not alive(pidfile, started):
            raise SystemExit("nova-compute: process exited during start-up")
        _, body = admin.call("compute", "/os-services?binary=nova-compute")
        up = [s["host"] for s in body.get("services", []) if s.get("state") == "up"]
        _, rps = admin.call("placement", "/resource_providers")
        names = [rp["name"] for rp in rps.get("resource_providers", [])]
        if up and names:
            print("compute host %s, resource providers %s" % (up[0], names), file=sys.stderr)
            return
        last = "services up %s, resource providers %s" % (up, names)
        time.sleep(1)
    raise SystemExit("nova-compute not ready within %ss (%s)" % (timeout, last))


# ---------------------------------------------------------------- seed
IMAGES = [
    # (env key or None, name, os_distro or None)
    ("IMAGE_FEDORA_ID", "fedora-atomic-latest", "fedora-atomic"),
    ("IMAGE_UBUNTU_ID", "ubuntu-mesos", "ubuntu"),
    ("IMAGE_NODISTRO_ID", "no-distro-image", None),
    ("IMAGE_DUP1_ID", "dup-image", "fedora-atomic"),
    ("IMAGE_DUP2_ID", "dup-image", "fedora-atomic"),
]
FLAVORS = [
    ("FLAVOR_SMALL_ID", "m1.small", 1, 2048, 20),
    ("FLAVOR_MEDIUM_ID", "m1.medium", 2, 4096, 40),
    ("FLAVOR_LARGE_ID", "m1.large", 4, 8192, 80),
    # No root disk: magnum refuses it unless boot_volume_size > 0.
    ("FLAVOR_DISKLESS_ID", "m1.diskless", 1, 2048, 0),
]


def wait_image_active(admin, image_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, img = admin.call("image", "/v2/images/" + image_id)
        if img["status"] == "active":
            return img
        time.sleep(0.3)
    raise SystemExit("image %s not active after %ss (status %s)" % (image_id, timeout, img["status"]))


def seed(ks_url):
    admin = session(ks_url, "admin")
    demo = session(ks_url, "demo")
    out = []

    # Glance: public, active images (a few bytes in the file store).
    for key, name, distro in IMAGES:
        # raw: Glance checks the bytes against disk_format, and these are raw.
        body = {"name": name, "visibility": "public", "disk_format": "raw",
                "container_format": "bare"}
        if distro:
            body["os_distro"] = distro
        _, img = admin.call("image", "/v2/images", "POST", body)
        admin.call("image", "/v2/images/%s/file" % img["id"], "PUT",
                   raw=("magnum harness image %s\n" % name).encode(),
                   headers={"Content-Type": "application/octet-stream"})
        wait_image_active(admin, img["id"])
        out.append((key, img["id"]))

    # Nova: public flavors (admin), demo's keypair (with demo's token: keypairs
    # belong to the user who creates them).
    for key, name, vcpus, ram, disk in FLAVORS:
        _, fl = admin.call("compute", "/flavors", "POST", {"flavor": {
            "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
            "os-flavor-access:is_public": True}})
        out.append((key, fl["flavor"]["id"]))
    demo.call("compute", "/os-keypairs", "POST", {"keypair": {
        "name": "default", "type": "ssh", "public_key": DEMO_PUBLIC_KEY}})
    out.append(("KEYPAIR_NAME", "default"))
    out.append(("KEYPAIR_OWNER_USER_ID", demo.user_id))

    # Neutron: the external network (admin), demo's private and internal ones.
    _, net = admin.call("network", "/v2.0/networks", "POST", {"network": {
        "name": "public", "router:external": True, "shared": False,
        "provider:network_type": "flat", "provider:physical_network": "public"}})
    _, sub = admin.call("network", "/v2.0/subnets", "POST", {"subnet": {
        "name": "public-subnet", "network_id": net["network"]["id"], "ip_version": 4,
        "cidr": "172.24.4.0/24", "gateway_ip": "172.24.4.1", "enable_dhcp": False}})
    out += [("NET_PUBLIC_ID", net["network"]["id"]), ("SUBNET_PUBLIC_ID", sub["subnet"]["id"])]
    _, net = demo.call("network", "/v2.0/networks", "POST", {"network": {"name": "private"}})
    _, sub = demo.call("network", "/v2.0/subnets", "POST", {"subnet": {
        "name": "private-subnet", "network_id": net["network"]["id"], "ip_version": 4,
        "cidr": "10.0.0.0/24"}})
    out += [("NET_PRIVATE_ID", net["network"]["id"]), ("SUBNET_PRIVATE_ID", sub["subnet"]["id"])]
    _, net = demo.call("network", "/v2.0/networks", "POST", {"network": {"name": "internal"}})
    out.append(("NET_INTERNAL_ID", net["network"]["id"]))

    for key, value in out:
        print("%s=%s" % (key, value))


# ---------------------------------------------------------------- check
def check(ks_url):
    """The smoke check: what a Magnum client sees as demo, through the catalog."""
    demo = session(ks_url, "demo")
    failures = []

    def expect(what, cond):
        print("%s %s" % ("ok  " if cond else "FAIL", what))
        if not cond:
            failures.append(what)

    for stype in ("image", "compute", "network"):
        print("catalog %s public: %s" % (stype, demo.endpoint(stype)))

    _, body = demo.call("image", "/v2/images?name=fedora-atomic-latest")
    imgs = body["images"]
    print("glance GET /v2/images?name=fedora-atomic-latest ->",
          json.dumps([{k: i.get(k) for k in ("id", "name", "status", "visibility", "os_distro")}
                      for i in imgs]))
    expect("one fedora-atomic-latest image, active, os_distro=fedora-atomic",
           len(imgs) == 1 and imgs[0].get("os_distro") == "fedora-atomic"
           and imgs[0]["status"] == "active")
    _, body = demo.call("image", "/v2/images?name=dup-image")
    expect("two images named dup-image", len(body["images"]) == 2)
    _, body = demo.call("image", "/v2/images?name=no-distro-image")
    expect("no-distro-image has no os_distro",
           len(body["images"]) == 1 and "os_distro" not in body["images"][0])

    _, body = demo.call("compute", "/flavors/detail")
    fl = {f["name"]: (f["vcpus"], f["ram"], f["disk"]) for f in body["flavors"]}
    print("nova GET /v2.1/flavors/detail ->", json.dumps(fl, sort_keys=True))
    expect("flavors m1.small/medium/large/diskless with the seeded sizes",
           fl.get("m1.small") == (1, 2048, 20) and fl.get("m1.medium") == (2, 4096, 40)
           and fl.get("m1.large") == (4, 8192, 80) and fl.get("m1.diskless") == (1, 2048, 0))
    _, body = demo.call("compute", "/os-keypairs/default")
    kp = body["keypair"]
    print("nova GET /v2.1/os-keypairs/default ->",
          json.dumps({k: kp.get(k) for k in ("name", "type", "user_id", "fingerprint")}))
    expect("keypair default belongs to demo", kp["user_id"] == demo.user_id)
    code, _ = demo.call("compute", "/os-keypairs/nope", ok=(404,))
    expect("missing keypair answers 404", code == 404)

    _, body = demo.call("network", "/v2.0/networks?name=public")
    nets = body["networks"]
    print("neutron GET /v2.0/networks?name=public ->",
          json.dumps([{k: n.get(k) for k in ("id", "name", "router:external", "shared",
                                              "status", "subnets", "project_id")} for n in nets]))
    expect("public is router:external with one subnet",
           len(nets) == 1 and nets[0]["router:external"] is True and len(nets[0]["subnets"]) == 1)
    if nets and nets[0]["subnets"]:
        code, body = demo.call("network", "/v2.0/subnets/" + nets[0]["subnets"][0], ok=(404,))
        print("neutron GET /v2.0/subnets/%s -> %s %s" % (
            nets[0]["subnets"][0], code,
            json.dumps({k: body.get("subnet", {}).get(k) for k in ("name", "cidr")})))
    _, body = demo.call("network", "/v2.0/networks?router:external=true")
    expect("demo sees exactly one external network",
           [n["name"] for n in body["networks"]] == ["public"])
    _, body = demo.call("network", "/v2.0/networks?name=private")
    expect("demo sees its private network with private-subnet",
           len(body["networks"]) == 1 and len(body["networks"][0]["subnets"]) == 1)
    _, body = demo.call("network", "/v2.0/networks?name=internal")
    expect("internal is not external",
           len(body["networks"]) == 1 and body["networks"][0]["router:external"] is False)

    print("%d failed" % len(failures))
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd == "createdb" and args:
        createdb(*args)
    elif cmd == "dropdb" and args:
        dropdb(*args)
    elif cmd == "ovsagent" and len(args) == 2:
        ovsagent(*args)
    elif cmd == "identity" and len(args) in (4, 5):
        bootstrap(*args)
    elif cmd == "unregister" and len(args) >= 1:
        unregister(*args)
    elif cmd == "wait" and len(args) == 4:
        wait(*args)
    elif cmd == "hypervisor" and len(args) == 3:
        hypervisor(*args)
    elif cmd == "seed" and len(args) == 1:
        seed(*args)
    elif cmd == "check" and len(args) == 1:
        check(*args)
    else:
        raise SystemExit(__doc__)
