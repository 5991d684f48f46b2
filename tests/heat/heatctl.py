"""Heat harness helper, run by start.sh/stop.sh with the Heat venv's python.

  heatctl.py createdb NAME           create a PostgreSQL database (fresh per run)
  heatctl.py dropdb NAME             drop it (connections are forced out)
  heatctl.py identity KS_URL HEAT_PORT
                                     Heat's Keystone objects (idempotent): user heat
                                     (service: admin, service), domain heat with
                                     heat_domain_admin, roles heat_stack_owner and
                                     heat_stack_user, the orchestration service and
                                     its endpoints; prints KEY=VALUE lines
  heatctl.py wait KS_URL HEAT_PORT PIDFILE... TIMEOUT_S
                                     until heat-api answers and an engine reports
                                     itself up; fails early when a process died

PostgreSQL is reached as $HEAT_PG_USER@$HEAT_PG_HOST:$HEAT_PG_PORT (trust auth).
The Keystone REST helpers are the Keystone harness's (tests/keystone/identity.py).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "keystone"))
import identity  # noqa: E402  (tests/keystone/identity.py)


def pg():
    import psycopg2

    conn = psycopg2.connect(host=os.environ["HEAT_PG_HOST"], port=os.environ["HEAT_PG_PORT"],
                            user=os.environ["HEAT_PG_USER"], dbname="postgres",
                            connect_timeout=10)
    conn.autocommit = True
    return conn


def check_name(name):
    if not name.replace("_", "").isalnum():
        raise SystemExit("bad database name %r" % name)
    return name


def createdb(name):
    # Not `with conn`: psycopg2 would open a transaction, and CREATE DATABASE
    # cannot run in one.
    conn = pg()
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" ENCODING \'UTF8\' TEMPLATE template0' % check_name(name))
    conn.close()


def dropdb(name):
    conn = pg()
    with conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % check_name(name))
    conn.close()


def bootstrap_heat(ks_url, heat_port):
    ks = identity.Keystone(ks_url)
    env = os.environ
    admin, service_role = ks.role("admin"), ks.role("service")
    ks.role("heat_stack_owner")
    ks.role("heat_stack_user")

    service = ks.project("service")
    heat = ks.user("heat", env["HS_HEAT_PASSWORD"], service)
    ks.grant(admin, heat, service)
    ks.grant(service_role, heat, service)

    # The stack user domain: Heat creates users there for resources that
    # signal back (none of the mapped plans do, but heat.conf must name one).
    domain = ks.get_or_create("domains", "domain", {"name": "heat"}, name="heat")
    dadmin = ks.find("users", name="heat_domain_admin", domain_id=domain["id"])
    if dadmin:
        ks.req("/users/" + dadmin["id"], "PATCH",
               {"user": {"password": env["HS_DOMAIN_ADMIN_PASSWORD"]}})
    else:
        dadmin = ks.req("/users", "POST", {"user": {
            "name": "heat_domain_admin", "domain_id": domain["id"],
            "password": env["HS_DOMAIN_ADMIN_PASSWORD"]}})["user"]
    ks.req("/domains/%s/users/%s/roles/%s" % (domain["id"], dadmin["id"], admin["id"]), "PUT")

    region = env.get("KS_REGION", "RegionOne")
    svc = ks.get_or_create("services", "service", {"name": "heat", "type": "orchestration"},
                           type="orchestration")
    url = "http://127.0.0.1:%s/v1/%%(tenant_id)s" % heat_port
    for interface in ("public", "internal", "admin"):
        ks.endpoint(svc, interface, region, url)
    print("HEAT_DOMAIN_ID=%s" % domain["id"])
    print("HEAT_USER_ID=%s" % heat["id"])


def admin_token(ks_url):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"},
            "password": os.environ["KS_ADMIN_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    _, headers, data = identity.call(ks_url.rstrip("/") + "/auth/tokens", "POST", body=body)
    token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
    return token, data["token"]["project"]["id"]


def alive(pidfile):
    try:
        with open(pidfile) as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except FileNotFoundError:
        return True  # gunicorn has not written it yet
    except (ProcessLookupError, ValueError):
        return False


def wait(ks_url, heat_port, *rest):
    pidfiles, timeout = rest[:-1], float(rest[-1])
    token, project = admin_token(ks_url)
    url = "http://127.0.0.1:%s/v1/%s/services" % (heat_port, project)
    deadline = time.time() + timeout
    last = "no answer"
    while time.time() < deadline:
        for p in pidfiles:
            if not alive(p):
                raise SystemExit("%s: process exited during start-up" % p)
        req = urllib.request.Request(url, headers={"X-Auth-Token": token,
                                                   "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                services = json.loads(resp.read()).get("services", [])
                # The database is fresh, so any engine listed is this run's.
                if any(s.get("status") == "up" for s in services):
                    return
                last = "no engine up yet"
        except urllib.error.HTTPError as e:
            last = "heat-api answered %s" % e.code
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.5)
    raise SystemExit("heat not ready within %ss (%s)" % (timeout, last))


if __name__ == "__main__":
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd == "createdb" and len(args) == 1:
        createdb(*args)
    elif cmd == "dropdb" and len(args) == 1:
        dropdb(*args)
    elif cmd == "identity" and len(args) == 2:
        bootstrap_heat(*args)
    elif cmd == "wait" and len(args) >= 3:
        wait(*args)
    else:
        raise SystemExit(__doc__)
