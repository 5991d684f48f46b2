"""Fill an upstream Magnum database with upstream Magnum's own code.

Run with the venv of tests/upstream-magnum/install.sh after
`magnum-db-manage upgrade` made the schema. Every row is written by
upstream's object layer (magnum.objects, the same calls its API and
conductor make), and the clusters' CAs and client certificate by its
conductor's certificate code with the `x509keypair` cert manager, which
keeps them in the database. Prints what it made as JSON on stdout, for the
test to compare the import against.

    python fill.py --config-file magnum.conf
"""

import json
import sys

from oslo_config import cfg

import magnum.conf
from magnum.common import context as magnum_context
from magnum.conductor.handlers.common import cert_manager
from magnum import objects

CONF = magnum.conf.CONF

PROJECT = "7f1c0bd8ad0e4b6c9a3f5e2d1c0b9a81"
OTHER_PROJECT = "9a0b1c2d3e4f405162738495a6b7c8d9"
USER = "c3a1e0f2b4d64e8f9a7b6c5d4e3f2a10"


def context(project=PROJECT):
    return magnum_context.RequestContext(
        user_id=USER, project_id=project, is_admin=True, all_tenants=True
    )


def template(ctx, name, coe, distro, **extra):
    values = dict(
        name=name,
        coe=coe,
        cluster_distro=distro,
        server_type="vm",
        image_id="fedora-atomic-latest",
        flavor_id="m1.small",
        master_flavor_id="m1.medium",
        keypair_id="ops-key",
        external_network_id="public",
        network_driver="flannel",
        dns_nameserver="8.8.8.8",
        docker_volume_size=10,
        labels={"kube_tag": "v1.27.3", "availability_zone": "nova"},
        tls_disabled=False,
        public=False,
        hidden=False,
        registry_enabled=False,
        master_lb_enabled=False,
        floating_ip_enabled=True,
        project_id=ctx.project_id,
        user_id=ctx.user_id,
    )
    values.update(extra)
    ct = objects.ClusterTemplate(ctx, **values)
    ct.create()
    return ct


def cluster(ctx, name, ct, status, groups, tls=True, **extra):
    values = dict(
        name=name,
        cluster_template_id=ct.uuid,
        keypair="ops-key",
        docker_volume_size=10,
        labels={"kube_tag": "v1.27.3"},
        master_flavor_id="m1.medium",
        flavor_id="m1.small",
        stack_id="5e1b8c4a-0000-4000-8000-%012d" % (abs(hash(name)) % 10**12),
        api_address="https://172.24.4.10:6443",
        status=status,
        status_reason="Stack CREATE completed successfully",
        create_timeout=60,
        discovery_url="https://discovery.etcd.io/abc",
        coe_version="v1.27.3",
        container_version="1.12.6",
        fixed_network=None,
        fixed_subnet=None,
        floating_ip_enabled=True,
        master_lb_enabled=False,
        project_id=ctx.project_id,
        user_id=ctx.user_id,
    )
    values.update(extra)
    c = objects.Cluster(ctx, **values)
    c.create()
    made = []
    for role, gname, count, is_default, addresses in groups:
        ng = objects.NodeGroup(
            ctx,
            name=gname,
            cluster_id=c.uuid,
            project_id=ctx.project_id,
            docker_volume_size=10,
            labels={"kube_tag": "v1.27.3"},
            flavor_id="m1.medium" if role == "master" else "m1.small",
            image_id="fedora-atomic-latest",
            node_addresses=addresses,
            node_count=count,
            role=role,
            max_node_count=None,
            min_node_count=0 if role == "worker" else 1,
            is_default=is_default,
            stack_id=c.stack_id,
            status=status,
            version=None,
        )
        ng.create()
        made.append(
            dict(uuid=ng.uuid, name=gname, role=role, node_count=count,
                 node_addresses=addresses)
        )
    if tls:
        # Upstream's conductor code: three CAs and Magnum's client
        # certificate, each an x509keypair row (PEM, passphrase-encrypted
        # key, passphrase), their uuids in the cluster's *_cert_ref.
        cert_manager.generate_certificates_to_cluster(c, context=ctx)
        c.save()
    return c, made


def main():
    CONF(sys.argv[1:], project="magnum")
    CONF.set_override("cert_manager_type", "x509keypair", group="certificates")
    ctx = context()

    k8s = template(ctx, "k8s-atomic", "kubernetes", "fedora-atomic",
                   tags="prod,k8s")
    # Magnum 2023.1 and later take only the kubernetes COE.
    calico = template(ctx, "k8s-atomic-calico", "kubernetes", "fedora-atomic",
                      network_driver="calico", labels={})
    coreos = template(ctx, "k8s-coreos", "kubernetes", "fedora-coreos",
                      public=True)

    prod, prod_groups = cluster(
        ctx, "prod", k8s, "CREATE_COMPLETE",
        [("master", "default-master", 1, True, ["10.0.0.5"]),
         ("worker", "default-worker", 2, True, ["10.0.0.6", "10.0.0.7"]),
         ("worker", "gpu", 1, False, ["10.0.0.8"])],
    )
    web, web_groups = cluster(
        ctx, "web", calico, "UPDATE_FAILED",
        [("master", "default-master", 1, True, ["10.0.1.5"]),
         ("worker", "default-worker", 1, True, ["10.0.1.6"])],
        status_reason="Resource UPDATE failed: timed out",
        labels={},
    )
    busy, _ = cluster(
        ctx, "busy", k8s, "CREATE_IN_PROGRESS",
        [("master", "default-master", 1, True, []),
         ("worker", "default-worker", 1, True, [])],
        tls=False,
    )
    core, _ = cluster(
        ctx, "coreos", coreos, "CREATE_COMPLETE",
        [("master", "default-master", 1, True, ["10.0.2.5"]),
         ("worker", "default-worker", 1, True, ["10.0.2.6"])],
        tls=False,
    )

    quota = objects.Quota(ctx, project_id=PROJECT, resource="Cluster",
                          hard_limit=7)
    quota.create()
    other = objects.Quota(ctx, project_id=OTHER_PROJECT, resource="Cluster",
                          hard_limit=3)
    other.create()

    fed = objects.Federation(
        ctx, name="fed-1", project_id=PROJECT, hostcluster_id=prod.uuid,
        member_ids=[web.uuid], status="CREATE_COMPLETE",
        status_reason=None, properties={"dns-zone": "example.com."},
    )
    fed.create()

    certs = {}
    for c in (prod, web):
        entry = {}
        for field in ("ca_cert_ref", "etcd_ca_cert_ref",
                      "front_proxy_ca_cert_ref", "magnum_cert_ref"):
            ref = getattr(c, field)
            kp = objects.X509KeyPair.get_by_uuid(ctx, ref)
            entry[field] = dict(ref=ref, certificate=kp.certificate)
        certs[c.uuid] = entry

    json.dump(dict(
        project=PROJECT,
        templates={t.name: t.uuid for t in (k8s, calico, coreos)},
        clusters={c.name: c.uuid for c in (prod, web, busy, core)},
        groups={"prod": prod_groups, "web": web_groups},
        federation=fed.uuid,
        certs=certs,
    ), sys.stdout, indent=1)


if __name__ == "__main__":
    cfg.CONF = CONF
    main()
