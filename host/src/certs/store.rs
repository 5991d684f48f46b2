//! A cluster's certificates and credential in the `certificate` table: the
//! newest row of a kind is current; rotation replaces the rows (the old
//! ones are deleted, unlike upstream), and the rows go with the cluster
//! (ON DELETE CASCADE).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use diesel::{prelude::*, OptionalExtension};
use rand_core::{OsRng, RngCore};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{
    x509, Authority, CertError, APP_CREDENTIAL, APP_CREDENTIAL_RETIRED, CA_KINDS, CREDENTIAL,
    KUBERNETES, MAGNUM_CLIENT,
};
use crate::db::{
    self,
    models::{Certificate, NewCertificate},
    schema::certificate,
    DbConnection,
};

/// Prefix of a cluster credential: `mcc1.<cluster uuid>.<secret>`.
pub const CREDENTIAL_PREFIX: &str = "mcc1.";

/// Which Keystone application credential a row stands for (the row's
/// `pem`, as JSON): enough to delete it, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppCredRef {
    pub id: String,
    pub user_id: String,
}

/// A certificate with its private key opened.
pub struct Material {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

impl Authority {
    fn row(
        &self,
        cluster: &str,
        kind: &str,
        cert_pem: &str,
        secret: &[u8],
    ) -> Result<NewCertificate, CertError> {
        let sealed = self.seal(secret, cluster, kind)?;
        Ok(NewCertificate::new(cluster, kind, cert_pem, &sealed))
    }

    /// New rows for the CAs and Magnum's client certificate. Key generation
    /// happens here, outside any transaction.
    fn generate_pki(
        &self,
        cluster: &str,
        common_name: &str,
    ) -> Result<Vec<NewCertificate>, CertError> {
        let mut rows = Vec::new();
        let mut main = None;
        for kind in CA_KINDS {
            let ca = x509::generate_ca(&self.settings, common_name)?;
            rows.push(self.row(cluster, kind, &ca.cert_pem, ca.key_pem.as_bytes())?);
            if kind == KUBERNETES {
                main = Some(ca);
            }
        }
        let main = main.ok_or_else(|| CertError::Crypto("no main CA".into()))?;
        let client = x509::issue_client(
            &self.settings,
            &main.cert_pem,
            &main.key_pem,
            "admin",
            "system:masters",
        )?;
        rows.push(self.row(
            cluster,
            MAGNUM_CLIENT,
            &client.cert_pem,
            client.key_pem.as_bytes(),
        )?);
        Ok(rows)
    }

    fn new_credential(&self, cluster: &str) -> Result<NewCertificate, CertError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(secret.as_mut());
        let token = Zeroizing::new(format!(
            "{CREDENTIAL_PREFIX}{cluster}.{}",
            URL_SAFE_NO_PAD.encode(secret.as_ref())
        ));
        self.row(cluster, CREDENTIAL, "", token.as_bytes())
    }

    /// Everything a new cluster needs, generated once: the CAs and client
    /// certificate (unless TLS is disabled) and the credential. A retried
    /// create finds them and generates nothing.
    pub fn ensure_cluster(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        common_name: &str,
        tls: bool,
    ) -> Result<(), CertError> {
        let have: Vec<String> = certificate::table
            .filter(certificate::cluster_uuid.eq(cluster))
            .select(certificate::kind)
            .load(conn)?;
        let mut rows = Vec::new();
        if tls && !have.iter().any(|k| k == KUBERNETES) {
            rows.extend(self.generate_pki(cluster, common_name)?);
        }
        if !have.iter().any(|k| k == CREDENTIAL) {
            rows.push(self.new_credential(cluster)?);
        }
        if rows.is_empty() {
            return Ok(());
        }
        db::write_transaction(conn, |conn| {
            for row in &rows {
                Certificate::insert(conn, row)?;
            }
            Ok::<_, CertError>(())
        })?;
        tracing::info!(
            cluster,
            generated = rows.len(),
            "cluster certificates generated"
        );
        Ok(())
    }

    /// Replaces the CAs and the client certificate (all four, as upstream)
    /// and deletes the old ones, so certificates they signed stop verifying
    /// against what the API hands out.
    pub fn rotate_cas(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        common_name: &str,
    ) -> Result<(), CertError> {
        let rows = self.generate_pki(cluster, common_name)?;
        self.replace(conn, cluster, rows)
    }

    pub fn rotate_credential(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
    ) -> Result<(), CertError> {
        let row = self.new_credential(cluster)?;
        self.replace(conn, cluster, vec![row])
    }

    fn replace(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        rows: Vec<NewCertificate>,
    ) -> Result<(), CertError> {
        db::write_transaction(conn, |conn| {
            for row in &rows {
                let new = Certificate::insert(conn, row)?;
                diesel::delete(
                    certificate::table
                        .filter(certificate::cluster_uuid.eq(cluster))
                        .filter(certificate::kind.eq(&row.kind))
                        .filter(certificate::id.ne(new.id)),
                )
                .execute(conn)?;
            }
            Ok(())
        })
    }

    /// The current certificate of `kind` with its key opened.
    pub fn material(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        kind: &str,
    ) -> Result<Option<Material>, CertError> {
        let Some(row) = Certificate::current(conn, cluster, kind).optional()? else {
            return Ok(None);
        };
        let key = self.open(&row.private_key, cluster, kind)?;
        let key_pem =
            Zeroizing::new(
                String::from_utf8(key.to_vec()).map_err(|_| CertError::Unseal {
                    cluster: cluster.to_owned(),
                    kind: kind.to_owned(),
                })?,
            );
        Ok(Some(Material {
            cert_pem: row.pem,
            key_pem,
        }))
    }

    /// The PEM of a CA (no key is opened).
    pub fn ca_pem(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        kind: &str,
    ) -> Result<Option<String>, CertError> {
        Ok(Certificate::current(conn, cluster, kind)
            .optional()?
            .map(|row| row.pem))
    }

    /// Signs `csr` with the cluster's CA of `kind`; `Ok(None)` when the
    /// cluster has no such CA (yet).
    pub fn sign(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        kind: &str,
        csr: &str,
    ) -> Result<Option<String>, CertError> {
        let Some(ca) = self.material(conn, cluster, kind)? else {
            return Ok(None);
        };
        x509::sign_csr(&self.settings, &ca.cert_pem, &ca.key_pem, csr).map(Some)
    }

    /// The cluster's credential, for the plans its nodes boot from.
    pub fn credential(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
    ) -> Result<Option<Zeroizing<String>>, CertError> {
        let Some(row) = Certificate::current(conn, cluster, CREDENTIAL).optional()? else {
            return Ok(None);
        };
        let raw = self.open(&row.private_key, cluster, CREDENTIAL)?;
        Ok(Some(Zeroizing::new(
            String::from_utf8_lossy(raw.as_slice()).into_owned(),
        )))
    }

    /// The cluster a presented credential belongs to, if it is that
    /// cluster's current credential (compared in constant time).
    pub fn check_credential(
        &self,
        conn: &mut DbConnection,
        presented: &str,
    ) -> Result<Option<String>, CertError> {
        let Some(rest) = presented.strip_prefix(CREDENTIAL_PREFIX) else {
            return Ok(None);
        };
        let Some((cluster, _)) = rest.split_once('.') else {
            return Ok(None);
        };
        if uuid::Uuid::parse_str(cluster).is_err() {
            return Ok(None);
        }
        let current = match self.credential(conn, cluster) {
            Ok(Some(current)) => current,
            Ok(None) => return Ok(None),
            // Sealed under another server key (the key file was replaced, or
            // processes disagree): the presented credential cannot be
            // verified, so the caller is not authenticated (401), and the
            // operator learns why from the log.
            Err(e @ CertError::Unseal { .. }) => {
                tracing::warn!("cluster credential refused: {e}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let a = current.as_bytes();
        let b = presented.as_bytes();
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        Ok(same.then(|| cluster.to_owned()))
    }

    /// The row of a new application credential of `cluster`, secret sealed.
    pub fn app_credential_row(
        &self,
        cluster: &str,
        cred: &AppCredRef,
        secret: &str,
    ) -> Result<NewCertificate, CertError> {
        let pem = serde_json::to_string(cred).map_err(|e| CertError::Crypto(e.to_string()))?;
        self.row(cluster, APP_CREDENTIAL, &pem, secret.as_bytes())
    }

    /// The cluster's current application credential with its secret opened.
    pub fn app_credential(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
    ) -> Result<Option<(AppCredRef, Zeroizing<String>)>, CertError> {
        let Some(row) = Certificate::current(conn, cluster, APP_CREDENTIAL).optional()? else {
            return Ok(None);
        };
        let unreadable = || CertError::Unseal {
            cluster: cluster.to_owned(),
            kind: APP_CREDENTIAL.to_owned(),
        };
        let cred: AppCredRef = serde_json::from_str(&row.pem).map_err(|_| unreadable())?;
        let raw = self.open(&row.private_key, cluster, APP_CREDENTIAL)?;
        let secret = String::from_utf8(raw.to_vec()).map_err(|_| unreadable())?;
        Ok(Some((cred, Zeroizing::new(secret))))
    }

    /// A rotation's new application credential becomes current; the ones it
    /// replaces are retired (secret dropped), to be deleted from Keystone
    /// once the stacks carry the new one. Runs in the caller's transaction.
    pub fn replace_app_credential(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
        new: &NewCertificate,
    ) -> Result<(), CertError> {
        diesel::update(
            certificate::table
                .filter(certificate::cluster_uuid.eq(cluster))
                .filter(certificate::kind.eq(APP_CREDENTIAL)),
        )
        .set((
            certificate::kind.eq(APP_CREDENTIAL_RETIRED),
            certificate::private_key.eq(""),
        ))
        .execute(conn)?;
        Certificate::insert(conn, new)?;
        Ok(())
    }

    /// What a cluster's plans pass to its nodes (`HostContext::extra`): the
    /// credential, and an id that changes when the CAs rotate, so a stack
    /// update reaches every node.
    pub fn host_extra(
        &self,
        conn: &mut DbConnection,
        cluster: &str,
    ) -> Result<Map<String, Value>, CertError> {
        let mut extra = Map::new();
        if let Some(token) = self.credential(conn, cluster)? {
            extra.insert(
                "cluster_credential".into(),
                Value::String(token.to_string()),
            );
        }
        if let Some(ca) = Certificate::current(conn, cluster, KUBERNETES).optional()? {
            extra.insert("ca_rotation_id".into(), Value::String(ca.uuid));
        }
        if let Some((cred, secret)) = self.app_credential(conn, cluster)? {
            extra.insert("openstack_app_cred_id".into(), Value::String(cred.id));
            extra.insert(
                "openstack_app_cred_secret".into(),
                Value::String(secret.to_string()),
            );
        }
        Ok(extra)
    }
}

/// Every certificate row of a cluster (for tests and the delete path).
pub fn count_of_cluster(conn: &mut DbConnection, cluster: &str) -> QueryResult<i64> {
    certificate::table
        .filter(certificate::cluster_uuid.eq(cluster))
        .count()
        .get_result(conn)
}

/// The application credentials of `cluster` recorded under `kind`
/// ([`APP_CREDENTIAL`] or [`APP_CREDENTIAL_RETIRED`]), for deletion. A row
/// whose reference cannot be read is skipped (and logged).
pub fn app_credentials_of(
    conn: &mut DbConnection,
    cluster: &str,
    kind: &str,
) -> QueryResult<Vec<AppCredRef>> {
    let pems: Vec<String> = certificate::table
        .filter(certificate::cluster_uuid.eq(cluster))
        .filter(certificate::kind.eq(kind))
        .select(certificate::pem)
        .load(conn)?;
    Ok(pems
        .iter()
        .filter_map(|p| match serde_json::from_str(p) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(cluster, "unreadable application credential row: {e}");
                None
            }
        })
        .collect())
}

/// Drops the row of an application credential deleted from Keystone.
pub fn forget_app_credential(
    conn: &mut DbConnection,
    cluster: &str,
    id: &str,
) -> QueryResult<usize> {
    let all: Vec<(i32, String)> = certificate::table
        .filter(certificate::cluster_uuid.eq(cluster))
        .filter(certificate::kind.eq_any([APP_CREDENTIAL, APP_CREDENTIAL_RETIRED]))
        .select((certificate::id, certificate::pem))
        .load(conn)?;
    let ids: Vec<i32> = all
        .into_iter()
        .filter(|(_, pem)| serde_json::from_str::<AppCredRef>(pem).is_ok_and(|c| c.id == id))
        .map(|(row, _)| row)
        .collect();
    diesel::delete(certificate::table.filter(certificate::id.eq_any(ids))).execute(conn)
}
