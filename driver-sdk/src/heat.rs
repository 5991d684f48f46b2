//! A one-stack Heat driver made of its parameters and templates.
//!
//! Upstream's Swarm and Mesos drivers are one driver but for names: a single
//! Heat stack per cluster holding the network, the masters and the workers;
//! no additional nodegroups and no upgrades; the workers scaled by a count
//! parameter; the status read from the stack's outputs. [`HeatDriver`] is
//! what such a driver has of its own, and [`HeatCoeDriver`] makes a whole
//! [`CoeDriver`] of it:
//!
//! ```ignore
//! pub struct Acme;
//! impl HeatDriver for Acme { /* names, labels, templates, parameters */ }
//! pub type AcmeDriver = HeatCoeDriver<Acme>;
//! magnum_driver_sdk::export_driver!(AcmeDriver);
//! ```
//!
//! A driver that needs more (nodegroup stacks, upgrades: the Kubernetes
//! driver) implements [`CoeDriver`] itself with the [`helpers`].

use std::marker::PhantomData;

use serde_json::{Map, Value};

use crate::{
    boot_volume, capability as op, environment,
    helpers::{self, check_at_least, effective_template, stack_plan, StackRef},
    node_setup::{self, Download},
    rexray, scale, ClusterRequest, ClusterTemplate, ClusterUpdate, CoeDriver, DriverConfig,
    DriverInfo, DriverResult, LabelSpec, NodeTemplate, NodeTemplateRequest, Provides,
    ResizeRequest, StackPlan, StackSnapshot, StatusRequest, StatusUpdate, SubDriverConfig,
    SubDriverInfo, SubDriverRequest, TemplateRequest, Validation,
};

/// The node role of the masters.
pub const MASTER: &str = helpers::MASTER_ROLE;
/// The node role of the workers.
pub const WORKER: &str = "worker";

/// The names the cluster template gives the workers' parameters.
#[derive(Debug, Clone, Copy)]
pub struct WorkerParameters {
    /// How many workers (`number_of_nodes`).
    pub count: &'static str,
    /// The workers a resize removes (`nodes_to_remove`).
    pub to_remove: &'static str,
    /// The workers' image (`node_image`).
    pub image: &'static str,
    /// The workers' flavor (`node_flavor`).
    pub flavor: &'static str,
}

/// What a one-stack Heat driver has of its own. Drivers are stateless: what
/// the manifest's config sets (`nodes_affinity_policy`,
/// `cluster_user_trust`) is read by [`HeatCoeDriver`].
pub trait HeatDriver: Send + Sync + 'static {
    /// `DriverInfo::name`.
    const NAME: &'static str;
    /// `DriverInfo::version`: the driver crate's own,
    /// `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// `DriverInfo::description`.
    const DESCRIPTION: &'static str;
    /// The container runtime's version the status reports.
    const CONTAINER_VERSION: &'static str;
    /// The top-level template: the key in [`TEMPLATES`](Self::TEMPLATES) a
    /// plan starts from.
    const CLUSTER_FILE: &'static str;
    /// `(role, file)` of the node templates the cluster template nests.
    const NODE_FILES: &'static [(&'static str, &'static str)];
    /// Every file of the stack, as `(file name, text)`.
    const TEMPLATES: &'static [(&'static str, &'static str)];
    /// Host-supplied parameters (`HostContext::extra`) that the cluster
    /// template declares; Heat rejects a stack given an undeclared one.
    const HOST_PARAMETERS: &'static [&'static str];
    /// Labels passed on as parameters of the same names (the boot volume's
    /// are added).
    const LABEL_PARAMETERS: &'static [&'static str];
    /// The workers' parameter names.
    const WORKERS: WorkerParameters;
    /// Per role, masters then workers: the stack output listing the nodes'
    /// addresses and the parameter holding their count.
    const NODE_OUTPUTS: [(&'static str, &'static str); 2];
    /// What the nodes download. When there is any, the driver takes part
    /// in [`node_setup`]: its labels, checks and parameters are added, so
    /// the cluster template declares `registry_enabled`,
    /// `insecure_registry_url`, `container_infra_prefix`,
    /// `artifact_sha256`, `openstack_ca` and each download's URL and
    /// version parameters. None (the default): nothing is added, and an
    /// older driver's templates stay valid.
    const DOWNLOADS: &'static [Download] = &[];

    /// `DriverInfo::provides`.
    fn provides() -> Vec<Provides>;
    /// The network drivers offered.
    fn network_drivers() -> Vec<SubDriverInfo>;
    /// The volume drivers offered.
    fn volume_drivers() -> Vec<SubDriverInfo>;
    /// The driver's own labels (the boot volume's are added).
    fn labels() -> Vec<LabelSpec>;

    /// The driver's own template rules, checked after the shared ones; the
    /// warnings follow the shared ones.
    fn check_template(_template: &ClusterTemplate) -> DriverResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// The driver's own cluster-stack parameters, set after
    /// [`helpers::common_parameters`] and before the shared ones.
    fn parameters(
        _req: &ClusterRequest,
        _template: &ClusterTemplate,
        _parameters: &mut Map<String, Value>,
    ) {
    }

    /// The driver's own reading of the cluster stack (API address, COE
    /// version...), over the shared one.
    fn cluster_status(_req: &StatusRequest, _stack: &StackSnapshot, _update: &mut ClusterUpdate) {}
}

/// The [`CoeDriver`] of a [`HeatDriver`].
pub struct HeatCoeDriver<D> {
    info: DriverInfo,
    /// Upstream's `[cluster] nodes_affinity_policy`.
    nodes_affinity_policy: String,
    driver: PhantomData<fn() -> D>,
}

impl<D: HeatDriver> CoeDriver for HeatCoeDriver<D> {
    fn info() -> DriverInfo {
        DriverInfo {
            name: D::NAME.into(),
            version: D::VERSION.into(),
            description: D::DESCRIPTION.into(),
            provides: D::provides(),
            capabilities: [
                op::VALIDATE_TEMPLATE,
                op::VALIDATE_CLUSTER,
                op::CREATE_CLUSTER,
                op::UPDATE_CLUSTER,
                op::RESIZE_CLUSTER,
                op::DELETE_CLUSTER,
                op::NODE_TEMPLATE,
                op::NETWORK_DRIVER,
                op::VOLUME_DRIVER,
                op::MAP_STATUS,
            ]
            .map(String::from)
            .to_vec(),
            network_drivers: D::network_drivers(),
            volume_drivers: D::volume_drivers(),
            labels: D::labels()
                .into_iter()
                .chain(boot_volume::label_specs())
                .chain(node_setup_labels::<D>())
                .collect(),
            node_roles: vec![MASTER.into(), WORKER.into()],
            template_path: Some(format!("templates/{}", D::CLUSTER_FILE)),
            beta: false,
        }
    }

    fn new(config: &DriverConfig) -> DriverResult<Self> {
        // Still read so a bad value is refused; nodes of these COEs get no
        // OpenStack credential either way (rexray is refused).
        rexray::cluster_user_trust(config)?;
        Ok(Self {
            info: Self::info(),
            nodes_affinity_policy: helpers::nodes_affinity_policy(config)?,
            driver: PhantomData,
        })
    }

    fn validate_template(&self, req: &TemplateRequest) -> DriverResult<Validation> {
        self.check_template(&req.template)
    }

    fn validate_cluster(&self, req: &ClusterRequest) -> DriverResult<Validation> {
        let validation = self.check_template(&effective_template(req))?;
        check_at_least("master_count", req.cluster.master_count, 1)?;
        check_at_least("node_count", req.cluster.node_count, 0)?;
        // Node labels and taints are Kubernetes node settings: refused
        // rather than accepted and silently not applied.
        if let Some(group) = req
            .nodegroups
            .iter()
            .find(|g| !g.node_labels.is_empty() || !g.node_taints.is_empty())
        {
            let field = if group.node_labels.is_empty() {
                "node_taints"
            } else {
                "node_labels"
            };
            return Err(crate::DriverError::invalid(
                field,
                format!(
                    "driver {} does not apply {field} (a Kubernetes node setting); nodegroup {} has some",
                    D::NAME,
                    group.name
                ),
            ));
        }
        Ok(validation)
    }

    fn create_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        self.validate_cluster(req)?;
        let mut operation = StackRef::cluster(req).create(
            D::CLUSTER_FILE,
            D::TEMPLATES,
            self.parameters(req)?,
            req.cluster.create_timeout,
        );
        operation.environment = optional_pieces(&effective_template(req)).environment();
        Ok(stack_plan([operation]))
    }

    fn update_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        let workers = scale::default_worker_count(req);
        check_at_least("node_count", workers, 0)?;
        let parameters = scale_parameters::<D>(workers, &[]);
        Ok(stack_plan([StackRef::cluster(req).update(parameters)?]))
    }

    fn resize_cluster(&self, req: &ResizeRequest) -> DriverResult<StackPlan> {
        helpers::check_default_worker_resize(req)?;
        let parameters = scale_parameters::<D>(req.node_count, &req.nodes_to_remove);
        Ok(stack_plan([
            StackRef::cluster(&req.base).update(parameters)?
        ]))
    }

    fn delete_cluster(&self, req: &ClusterRequest) -> DriverResult<StackPlan> {
        // Never created: nothing to delete.
        Ok(stack_plan(StackRef::cluster(req).delete()))
    }

    fn node_template(&self, req: &NodeTemplateRequest) -> DriverResult<NodeTemplate> {
        helpers::node_template(D::NODE_FILES, D::TEMPLATES, &req.role)
    }

    fn network_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        helpers::network_config(&self.info, &req.coe, req.name.as_deref(), &req.labels)
    }

    fn volume_driver(&self, req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        helpers::volume_config(&self.info, &req.coe, req.name.as_deref(), &req.labels)
    }

    fn map_status(&self, req: &StatusRequest) -> DriverResult<StatusUpdate> {
        let base = &req.base;
        let public = effective_template(base).floating_ip_enabled;
        let mut update = StatusUpdate::default();
        // Upstream never creates nodegroup stacks for these drivers.
        let Some(stack) = helpers::cluster_snapshot(&req.stacks) else {
            return Ok(update);
        };
        update.cluster = ClusterUpdate {
            container_version: Some(D::CONTAINER_VERSION.into()),
            ..helpers::cluster_stack_status(stack)
        };
        D::cluster_status(req, stack, &mut update.cluster);
        let [(masters, master_count), (workers, worker_count)] = D::NODE_OUTPUTS;
        let defaults = [
            (MASTER, masters, master_count),
            (WORKER, workers, worker_count),
        ];
        update.nodegroups = helpers::default_nodegroup_statuses(base, stack, public, &defaults);
        Ok(update)
    }
}

impl<D: HeatDriver> HeatCoeDriver<D> {
    /// Template-level rules; cluster requests pass their effective template.
    fn check_template(&self, template: &ClusterTemplate) -> DriverResult<Validation> {
        helpers::check_provides(&self.info, template)?;
        let labels = &template.labels;
        helpers::validate_labels(&self.info.labels, labels)?;
        boot_volume::check(labels)?;
        let (_, volume) = helpers::template_sub_drivers(&self.info, template, labels)?;
        if let Some(refused) = rexray::refusal(&volume.name) {
            return Err(refused);
        }
        helpers::check_networks(template)?;
        let nodes = if D::DOWNLOADS.is_empty() {
            Vec::new()
        } else {
            node_setup::check(template, D::DOWNLOADS)?
        };
        let own = D::check_template(template)?;
        let mut validation = Validation::default();
        validation.warnings.extend(nodes);
        validation.warnings.extend(own);
        Ok(validation)
    }

    fn parameters(&self, req: &ClusterRequest) -> DriverResult<Map<String, Value>> {
        let template = effective_template(req);
        let labels = &template.labels;
        let mut p = helpers::common_parameters(req, &template, &self.nodes_affinity_policy);
        D::parameters(req, &template, &mut p);
        let workers = D::WORKERS;
        let mut set = |name: &str, value: Value| {
            p.insert(name.into(), value);
        };
        set("is_cluster_stack", true.into());
        let optional = optional_pieces(&template);
        set("master_lb_enabled", optional.master_lb.into());
        set("docker_volume_enabled", optional.docker_volume.into());
        set(
            "master_lb_floating_ip_enabled",
            (optional.master_lb && optional.master_lb_floating_ip).into(),
        );
        set(workers.count, scale::default_worker_count(req).into());
        set(workers.image, template.image_id.as_str().into());
        if let Some(flavor) = &template.flavor_id {
            set(workers.flavor, flavor.as_str().into());
        }
        p.extend(helpers::label_parameters(
            &self.info.labels,
            labels,
            D::LABEL_PARAMETERS
                .iter()
                .copied()
                .chain(boot_volume::LABELS),
        ));
        let (network, volume) = helpers::template_sub_drivers(&self.info, &template, labels)?;
        p.extend(network.parameters);
        p.extend(volume.parameters);
        if !D::DOWNLOADS.is_empty() {
            p.extend(node_setup::parameters(
                &template,
                labels,
                &req.context,
                D::DOWNLOADS,
            ));
        }
        p.extend(helpers::host_parameters(&req.context, D::HOST_PARAMETERS));
        // Nodes never get the trustee's password or the trust: rexray, the
        // one node service that would call OpenStack with them, is refused.
        p.remove("trustee_password");
        p.remove("trust_id");
        Ok(p)
    }
}

/// The node setup's labels of a driver with downloads (see
/// [`HeatDriver::DOWNLOADS`]).
fn node_setup_labels<D: HeatDriver>() -> Vec<LabelSpec> {
    if D::DOWNLOADS.is_empty() {
        Vec::new()
    } else {
        node_setup::label_specs(D::DOWNLOADS)
    }
}

/// The optional pieces of a one-stack cluster, switched by its environment:
/// the load balancer has a floating IP when the nodes have (upstream's
/// `floating_ip_enabled`); no etcd volumes.
pub fn optional_pieces(template: &ClusterTemplate) -> environment::Optional {
    environment::Optional {
        private_network: template.fixed_network.is_none(),
        floating_ip: template.floating_ip_enabled,
        master_lb: template.master_lb_enabled,
        master_lb_floating_ip: template.floating_ip_enabled,
        docker_volume: template.docker_volume_size.is_some_and(|size| size > 0),
        etcd_volume: None,
    }
}

/// The parameters scaling the workers to `node_count`.
fn scale_parameters<D: HeatDriver>(
    node_count: i64,
    nodes_to_remove: &[String],
) -> Map<String, Value> {
    helpers::scale_parameters(
        D::WORKERS.count,
        D::WORKERS.to_remove,
        node_count,
        nodes_to_remove,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LabelType, Labels};

    struct Toy;

    impl HeatDriver for Toy {
        const NAME: &'static str = "toy_v1";
        const VERSION: &'static str = "0.0.1";
        const DESCRIPTION: &'static str = "a toy";
        const CONTAINER_VERSION: &'static str = "1.0";
        const CLUSTER_FILE: &'static str = "cluster.yaml";
        const NODE_FILES: &'static [(&'static str, &'static str)] =
            &[(MASTER, "master.yaml"), (WORKER, "worker.yaml")];
        const TEMPLATES: &'static [(&'static str, &'static str)] = &[
            ("cluster.yaml", "heat_template_version: 2021-04-16\n"),
            ("master.yaml", "heat_template_version: 2021-04-16\n"),
            ("worker.yaml", "heat_template_version: 2021-04-16\n"),
        ];
        const HOST_PARAMETERS: &'static [&'static str] = &[];
        const LABEL_PARAMETERS: &'static [&'static str] = &["toy_label"];
        const WORKERS: WorkerParameters = WorkerParameters {
            count: "number_of_toys",
            to_remove: "toys_to_remove",
            image: "toy_image",
            flavor: "toy_flavor",
        };
        const NODE_OUTPUTS: [(&'static str, &'static str); 2] = [
            ("toy_masters", "number_of_masters"),
            ("toy_nodes", "number_of_toys"),
        ];

        fn provides() -> Vec<Provides> {
            vec![Provides::new("vm", "toy-os", "toy")]
        }
        fn network_drivers() -> Vec<SubDriverInfo> {
            Vec::new()
        }
        fn volume_drivers() -> Vec<SubDriverInfo> {
            Vec::new()
        }
        fn labels() -> Vec<LabelSpec> {
            vec![helpers::label_spec(
                "toy_label",
                LabelType::Integer,
                None,
                &[],
                "a toy's label",
            )]
        }
        fn check_template(template: &ClusterTemplate) -> DriverResult<Vec<String>> {
            Ok(template
                .labels
                .contains_key("toy_label")
                .then(|| "toy_label is a toy".to_owned())
                .into_iter()
                .collect())
        }
    }

    fn template() -> ClusterTemplate {
        ClusterTemplate {
            coe: "toy".into(),
            server_type: "vm".into(),
            cluster_distro: "toy-os".into(),
            image_id: "toy-image".into(),
            external_network_id: Some("public".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_info_is_the_drivers_with_the_shared_parts() {
        let info = HeatCoeDriver::<Toy>::info();
        assert_eq!(info.name, "toy_v1");
        assert_eq!(
            info.template_path.as_deref(),
            Some("templates/cluster.yaml")
        );
        assert_eq!(info.node_roles, [MASTER, WORKER]);
        assert!(info.capabilities.iter().any(|c| c == op::RESIZE_CLUSTER));
        assert!(!info.capabilities.iter().any(|c| c == op::UPGRADE_CLUSTER));
        let labels: Vec<&str> = info.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(labels[0], "toy_label");
        // No downloads: no node setup, whose parameters its templates
        // would not declare.
        assert_eq!(labels[1..], boot_volume::LABELS, "{labels:?}");
    }

    #[test]
    fn checks_and_parameters_run_the_drivers_hooks_after_the_shared_ones() {
        let driver = HeatCoeDriver::<Toy>::new(&DriverConfig::new()).unwrap();
        let mut labels = Labels::new();
        labels.insert("toy_label".into(), "3".into());
        let mut req = TemplateRequest {
            template: ClusterTemplate {
                labels: labels.clone(),
                ..template()
            },
        };
        let validation = driver.validate_template(&req).unwrap();
        assert_eq!(validation.warnings, ["toy_label is a toy"]);
        // A shared check fails first: the label's type.
        req.template.labels.insert("toy_label".into(), "x".into());
        let err = driver.validate_template(&req).unwrap_err();
        assert_eq!(err.field.as_str(), "labels.toy_label");

        let cluster = ClusterRequest {
            template: ClusterTemplate {
                labels,
                ..template()
            },
            ..Default::default()
        };
        let cluster = ClusterRequest {
            cluster: crate::Cluster {
                master_count: 1,
                node_count: 2,
                ..cluster.cluster
            },
            ..cluster
        };
        let p = driver.parameters(&cluster).unwrap();
        assert_eq!(p["number_of_toys"], 2);
        assert_eq!(p["toy_image"], "toy-image");
        assert_eq!(p["toy_label"], 3);
        assert_eq!(p["is_cluster_stack"], true);
        let plan = driver.resize_cluster(&ResizeRequest::default());
        assert!(plan.is_err(), "an empty resize request is refused");
    }
}
