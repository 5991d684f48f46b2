//! What every OpenStack client of magnum shares: the HTTP [`session`]
//! (endpoints, tokens, the 401 retry, timeouts, errors) and its [`tls`].
//! The clients are `keystone` (token validation, trusts, the service
//! user's login), the `heat` orchestrator and the `openstack` catalog
//! (Glance, Nova, Neutron).

pub mod session;
pub mod tls;

pub use session::{
    error_chain, token_header, Answer, Call, Catalog, CatalogEndpoint, CatalogService,
    EndpointError, FixedToken, SecretToken, Session, SessionError, SessionOptions, TokenSource,
};
pub use tls::{Tls, TlsSettings};
