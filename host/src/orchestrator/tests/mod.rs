//! Tests of the HOT evaluator over the simulated cloud (`sim`; the
//! evaluator's own tests are in hot/tests), the `local` cloud on both
//! databases (`cloud`) and the bundled drivers' real plans run through it
//! (`drivers`).

mod cloud;
mod drivers;
mod sim;

pub(super) use magnum_hot::testing::{files, hot, map};

/// One node: a port, an optional floating IP, a server.
pub(super) const NODE: &str = r#"
heat_template_version: 2018-08-31
parameters:
  name: {type: string}
  subnet: {type: string}
  public: {type: boolean, default: true}
  role: {type: string, default: worker, constraints: [{allowed_values: [worker, master]}]}
  peer: {type: string, default: ""}
conditions:
  public: {get_param: public}
resources:
  port:
    type: OS::Neutron::Port
    properties: {network: private, fixed_ips: [{subnet: {get_param: subnet}}]}
  fip:
    type: OS::Neutron::FloatingIP
    condition: public
    properties: {floating_network: public, port_id: {get_resource: port}}
  server:
    type: OS::Nova::Server
    properties: {name: {get_param: name}, image: fedora, networks: [{port: {get_resource: port}}]}
outputs:
  ip: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
  external_ip: {value: {if: [public, {get_attr: [fip, floating_ip_address]}, {get_attr: [port, fixed_ips, 0, ip_address]}]}}
  name: {value: {get_attr: [server, name]}}
  OS::stack_id: {value: {get_resource: server}}
"#;
