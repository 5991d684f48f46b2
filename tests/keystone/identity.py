"""Keystone harness helper (stdlib only, run by start.sh with the venv's python).

  identity.py wait URL PIDFILE TIMEOUT_S   until GET URL answers 200, or fail
                                           early when the server process died
  identity.py bootstrap URL                create the harness's users/projects

bootstrap talks REST as the bootstrap admin and is idempotent (get or create).
It creates:
  project service: user magnum (admin + service)  -- the service user
  project demo:    user demo (member), user reader1 (reader)
  region RegionTwo, and a container-infra (magnum) service with a public and an
  internal endpoint in $KS_REGION and a public one in RegionTwo, so a client's
  region/interface choice can be checked.
Passwords come from the KS_*_PASSWORD variables set by lib.sh.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def call(url, method="GET", token=None, body=None, ok=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), (json.loads(raw) if raw else {})
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, dict(e.headers), {}
        # the body names what failed; it holds no password
        raise SystemExit("%s %s -> %s %s" % (method, url, e.code, e.read()[:300]))


def wait(url, pidfile, timeout):
    deadline = time.time() + float(timeout)
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), 0)
        except FileNotFoundError:
            pass  # gunicorn has not written it yet
        except (ProcessLookupError, ValueError):
            raise SystemExit("keystone exited during start-up")
        time.sleep(0.3)
    raise SystemExit("keystone did not answer %s within %ss" % (url, timeout))


class Keystone:
    def __init__(self, base):
        self.base = base.rstrip("/")
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"},
                "password": os.environ["KS_ADMIN_PASSWORD"]}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        _, headers, _ = call(self.base + "/auth/tokens", "POST", body=body)
        self.token = headers.get("X-Subject-Token") or headers.get("x-subject-token")

    def req(self, path, method="GET", body=None, ok=(200, 201, 204)):
        return call(self.base + path, method, self.token, body, ok)[2]

    def find(self, collection, **filters):
        query = urllib.parse.urlencode(filters)
        items = self.req("/%s?%s" % (collection, query))[collection]
        return items[0] if items else None

    def get_or_create(self, collection, singular, body, **filters):
        found = self.find(collection, **filters)
        if found:
            return found
        return self.req("/" + collection, "POST", {singular: body})[singular]

    def role(self, name):
        return self.get_or_create("roles", "role", {"name": name}, name=name)

    def project(self, name):
        return self.get_or_create("projects", "project",
                                  {"name": name, "domain_id": "default"},
                                  name=name, domain_id="default")

    def user(self, name, password, project):
        user = self.find("users", name=name, domain_id="default")
        if user:
            self.req("/users/" + user["id"], "PATCH", {"user": {"password": password}})
            return user
        return self.req("/users", "POST", {"user": {
            "name": name, "domain_id": "default", "password": password,
            "default_project_id": project["id"]}})["user"]

    def grant(self, role, user, project):
        self.req("/projects/%s/users/%s/roles/%s" % (project["id"], user["id"], role["id"]), "PUT")

    def region(self, region_id):
        code, _, body = call(self.base + "/regions/" + region_id, token=self.token, ok=(200, 404))
        if code == 200:
            return body["region"]
        return self.req("/regions", "POST", {"region": {"id": region_id}})["region"]

    def endpoint(self, service, interface, region, url):
        for e in self.req("/endpoints?%s" % urllib.parse.urlencode(
                {"service_id": service["id"], "interface": interface, "region_id": region}))["endpoints"]:
            if e["url"] == url:
                return e
            self.req("/endpoints/" + e["id"], "DELETE")
        return self.req("/endpoints", "POST", {"endpoint": {
            "service_id": service["id"], "interface": interface, "region_id": region,
            "url": url}})["endpoint"]


def bootstrap(url):
    ks = Keystone(url)
    env = os.environ
    admin, member, reader, service_role = (ks.role(n) for n in ("admin", "member", "reader", "service"))

    service = ks.project("service")
    magnum = ks.user("magnum", env["KS_MAGNUM_PASSWORD"], service)
    ks.grant(admin, magnum, service)
    ks.grant(service_role, magnum, service)

    demo = ks.project("demo")
    demo_user = ks.user("demo", env["KS_DEMO_PASSWORD"], demo)
    ks.grant(member, demo_user, demo)
    reader1 = ks.user("reader1", env["KS_READER_PASSWORD"], demo)
    ks.grant(reader, reader1, demo)

    region = env.get("KS_REGION", "RegionOne")
    ks.region("RegionTwo")
    svc = ks.get_or_create("services", "service",
                           {"name": "magnum", "type": "container-infra"},
                           type="container-infra")
    api = env["KS_MAGNUM_API_URL"].rstrip("/")
    internal = api.replace("127.0.0.1", "localhost", 1)
    two = api.replace("127.0.0.1", "127.0.0.2", 1)
    ks.endpoint(svc, "public", region, api)
    ks.endpoint(svc, "internal", region, internal)
    ks.endpoint(svc, "public", "RegionTwo", two)

    for name, value in (("SERVICE_PROJECT_ID", service["id"]), ("DEMO_PROJECT_ID", demo["id"]),
                        ("MAGNUM_USER_ID", magnum["id"]), ("DEMO_USER_ID", demo_user["id"]),
                        ("READER_USER_ID", reader1["id"])):
        print("KEYSTONE_%s=%s" % (name, value))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "wait":
        wait(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "bootstrap":
        bootstrap(sys.argv[2])
    else:
        raise SystemExit(__doc__)
