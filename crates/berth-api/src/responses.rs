//! Engine API response bodies whose pinned `bollard-stubs` model differs from what dockerd
//! sends; clients written against dockerd read these exact shapes:
//! - [`IdResponse`]: the bollard model renames its field to `ID` (`rename_all = "UPPERCASE"`),
//!   where dockerd's `POST /containers/{id}/exec` answers `{"Id": ...}`;
//! - [`ContainerWaitResponse`]: the bollard model leaves `Error` out when there is none, where
//!   dockerd 20.10 sends `"Error": null`;
//! - [`ImageInspect`]: the bollard model leaves out unset fields and types `Config` with its
//!   own sparse container config, where dockerd always writes every field (`Parent: ""`,
//!   `ContainerConfig` as an object, `Config` with all of `container.Config`);
//! - [`HistoryItem`]: the bollard model makes `Tags` a list, where dockerd writes `null` for
//!   every entry but the top one;
//! - [`NetworkResource`]: the bollard model has no `ConfigFrom` and `ConfigOnly`, and leaves
//!   out `IPAM.Options` where dockerd writes `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ContainerConfig;

/// `{"Id": ...}`: the answer of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    #[serde(rename = "Id")]
    pub id: String,
}

/// The body of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerWaitResponse {
    #[serde(rename = "StatusCode")]
    pub status_code: i64,
    /// Why waiting failed; `null` when it did not.
    #[serde(rename = "Error")]
    pub error: Option<WaitError>,
}

/// A failed wait's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitError {
    #[serde(rename = "Message")]
    pub message: String,
}

/// `GET /images/{name}/json`, as dockerd 20.10 writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageInspect {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "RepoTags")]
    pub repo_tags: Vec<String>,
    #[serde(rename = "RepoDigests")]
    pub repo_digests: Vec<String>,
    #[serde(rename = "Parent")]
    pub parent: String,
    #[serde(rename = "Comment")]
    pub comment: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Container")]
    pub container: String,
    #[serde(rename = "ContainerConfig")]
    pub container_config: ContainerConfig,
    #[serde(rename = "DockerVersion")]
    pub docker_version: String,
    #[serde(rename = "Author")]
    pub author: String,
    #[serde(rename = "Config")]
    pub config: Option<ContainerConfig>,
    #[serde(rename = "Architecture")]
    pub architecture: String,
    #[serde(rename = "Variant", skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(rename = "Os")]
    pub os: String,
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "VirtualSize")]
    pub virtual_size: i64,
    #[serde(rename = "GraphDriver")]
    pub graph_driver: bollard_stubs::models::GraphDriverData,
    #[serde(rename = "RootFS")]
    pub root_fs: ImageRootFs,
    #[serde(rename = "Metadata")]
    pub metadata: ImageMetadata,
}

/// An image's layers in inspect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Layers", skip_serializing_if = "Vec::is_empty", default)]
    pub layers: Vec<String>,
}

/// What the daemon knows of an image besides its config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMetadata {
    #[serde(rename = "LastTagTime")]
    pub last_tag_time: String,
}

/// One line of `GET /images/{name}/history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
    #[serde(rename = "Tags")]
    pub tags: Option<Vec<String>>,
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "Comment")]
    pub comment: String,
}

/// `GET /networks/{id}` and each entry of `GET /networks`, as dockerd 20.10 writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkResource {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: NetworkIpam,
    #[serde(rename = "Internal")]
    pub internal: bool,
    #[serde(rename = "Attachable")]
    pub attachable: bool,
    #[serde(rename = "Ingress")]
    pub ingress: bool,
    #[serde(rename = "ConfigFrom")]
    pub config_from: ConfigReference,
    #[serde(rename = "ConfigOnly")]
    pub config_only: bool,
    #[serde(rename = "Containers")]
    pub containers: BTreeMap<String, bollard_stubs::models::NetworkContainer>,
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
}

/// A network's address management.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkIpam {
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "Config")]
    pub config: Vec<bollard_stubs::models::IpamConfig>,
}

/// The network a config-only network's settings come from (none here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReference {
    #[serde(rename = "Network")]
    pub network: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_are_dockerds() {
        let id = serde_json::to_string(&IdResponse { id: "ab".into() }).unwrap();
        assert_eq!(id, r#"{"Id":"ab"}"#);
        let wait = ContainerWaitResponse {
            status_code: 3,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&wait).unwrap(),
            r#"{"StatusCode":3,"Error":null}"#
        );
        let item = serde_json::to_value(HistoryItem::default()).unwrap();
        assert!(item["Tags"].is_null());
        let image = serde_json::to_value(ImageInspect::default()).unwrap();
        assert!(image["ContainerConfig"].is_object() && image["Config"].is_null());
        assert_eq!(image["Parent"], "");
        let net = serde_json::to_value(NetworkResource::default()).unwrap();
        assert!(net["IPAM"]["Options"].is_null() && net["ConfigFrom"]["Network"] == "");
    }
}
