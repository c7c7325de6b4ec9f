//! The registries the engine talks to: a client with the daemon's certificates and the
//! caller's credentials, and pull failures as Docker reports them.

use berth_image::Reference;
use berth_image::registry::{Credentials, RegistryClient, RegistryError};
use berth_image::service::PullError;

use crate::engine::Daemon;
use crate::model::Error;

/// A registry client with the daemon's `certs.d` and, for `domain`, `creds`.
pub fn client_for(d: &Daemon, domain: &str, creds: Option<Credentials>) -> RegistryClient {
    let c = RegistryClient::new().with_certs_dir(&d.registry_certs_dir);
    match creds {
        Some(cr) => c.with_credentials(domain, cr),
        None => c,
    }
}

/// A failed pull as dockerd answers it.
pub fn pull_error(r: &Reference, e: &PullError) -> Error {
    match e {
        PullError::Registry(RegistryError::NotFound { .. }) => Error::not_found(format!(
            "manifest for {} not found: manifest unknown: manifest unknown",
            r.familiar()
        )),
        // dockerd answers "pull access denied" as not found: a 401 would make the CLI prompt.
        PullError::Registry(RegistryError::Unauthorized { .. } | RegistryError::Denied(_)) => {
            Error::not_found(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {e}",
                r.familiar_repository()
            ))
        }
        PullError::Manifest(_) => Error::invalid(e.to_string()),
        _ => Error::internal(e.to_string()),
    }
}
