//! The container config and the image config, as dockerd reads and writes them.
//!
//! [`ContainerConfig`] is dockerd's `container.Config`: the `Config` of a create request and of
//! container inspect, and the `config` (and `container_config`) of an image config. It is ours,
//! not the pinned bollard-stubs model, because that model leaves out every field that is unset,
//! where dockerd always writes `Hostname`, `Env`, `Cmd`, `Volumes`, `Entrypoint`, `OnBuild`,
//! `Labels` and the rest (as `""`, `false` or `null`), and clients index them directly. Decoding
//! is as lenient as Go's: `null` reads as the zero value, and `Cmd`, `Entrypoint` and `Shell`
//! take a single string as well as a list (moby's `strslice`).
//!
//! [`ImageConfig`] is the image config blob Docker writes (`application/vnd.docker.container.
//! image.v1+json`): the OCI fields plus `container`, `container_config` and `docker_version`,
//! which the OCI models lack. Fields it does not know are kept, so a config read and written
//! back loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Reads `null` as the type's zero value, as Go's decoder does.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// moby's `strslice.StrSlice`: a list of strings, or one string meaning a list of one.
pub(crate) fn str_slice<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Go's `omitempty` for a slice or map behind a pointer-free field: absent when empty.
pub(crate) fn none_or_empty<T: IsEmpty>(v: &Option<T>) -> bool {
    v.as_ref().is_none_or(IsEmpty::is_empty)
}

pub(crate) trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl<K, V> IsEmpty for BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

/// The `{}` of a set written as a map (`ExposedPorts`, `Volumes`). Whatever a client sends
/// there (`{}`, `null`, anything) reads as it, as Go's `struct{}` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Empty {})
    }
}

/// A set of strings, as Docker writes one: `{"80/tcp": {}}`.
pub type StringSet = BTreeMap<String, Empty>;

/// dockerd's `container.Config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    #[serde(rename = "Hostname", deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(rename = "Domainname", deserialize_with = "null_default")]
    pub domainname: String,
    #[serde(rename = "User", deserialize_with = "null_default")]
    pub user: String,
    #[serde(rename = "AttachStdin", deserialize_with = "null_default")]
    pub attach_stdin: bool,
    #[serde(rename = "AttachStdout", deserialize_with = "null_default")]
    pub attach_stdout: bool,
    #[serde(rename = "AttachStderr", deserialize_with = "null_default")]
    pub attach_stderr: bool,
    #[serde(rename = "ExposedPorts", skip_serializing_if = "none_or_empty")]
    pub exposed_ports: Option<StringSet>,
    #[serde(rename = "Tty", deserialize_with = "null_default")]
    pub tty: bool,
    #[serde(rename = "OpenStdin", deserialize_with = "null_default")]
    pub open_stdin: bool,
    #[serde(rename = "StdinOnce", deserialize_with = "null_default")]
    pub stdin_once: bool,
    #[serde(rename = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Cmd", deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Healthcheck", skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        rename = "ArgsEscaped",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
    #[serde(rename = "Image", deserialize_with = "null_default")]
    pub image: String,
    #[serde(rename = "Volumes")]
    pub volumes: Option<StringSet>,
    #[serde(rename = "WorkingDir", deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(rename = "Entrypoint", deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(
        rename = "NetworkDisabled",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub network_disabled: bool,
    #[serde(
        rename = "MacAddress",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
    #[serde(rename = "OnBuild")]
    pub on_build: Option<Vec<String>>,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(rename = "StopTimeout", skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        rename = "Shell",
        deserialize_with = "str_slice",
        skip_serializing_if = "none_or_empty"
    )]
    pub shell: Option<Vec<String>>,
}

impl ContainerConfig {
    /// Sets `key=value` in `Env`, replacing an earlier value of `key` in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        let same = |e: &String| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key;
        match env.iter_mut().find(|e| same(e)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }

    /// Sets one label.
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
    }

    /// Adds a port (`80/tcp`) to `ExposedPorts`.
    pub fn expose(&mut self, port: &str) {
        self.exposed_ports
            .get_or_insert_with(BTreeMap::new)
            .insert(port.to_string(), Empty {});
    }

    /// Adds a path to `Volumes`.
    pub fn add_volume(&mut self, path: &str) {
        self.volumes
            .get_or_insert_with(BTreeMap::new)
            .insert(path.to_string(), Empty {});
    }
}

/// dockerd's `container.HealthConfig`; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    #[serde(rename = "Test", skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(
        rename = "Interval",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub interval: i64,
    #[serde(
        rename = "Timeout",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub timeout: i64,
    #[serde(
        rename = "StartPeriod",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub start_period: i64,
    #[serde(
        rename = "Retries",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub retries: i64,
}

/// One entry of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    /// The step made no layer (ENV, CMD...).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// The layers of an image, bottom first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootFs {
    #[serde(rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    #[serde(deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

/// An image config blob, as Docker writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub architecture: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub os: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    pub rootfs: RootFs,
    /// Fields this model does not name (`os.version`, `os.features`, ...), kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ImageConfig {
    /// The config's `config`, or an empty one.
    pub fn container_config(&self) -> ContainerConfig {
        self.config.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_config_writes_what_dockerd_writes() {
        let c = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        for always in [
            "Hostname",
            "Env",
            "Volumes",
            "Entrypoint",
            "OnBuild",
            "Labels",
        ] {
            assert!(v.get(always).is_some(), "{always} missing from {v}");
        }
        for omitted in [
            "ExposedPorts",
            "Healthcheck",
            "StopSignal",
            "Shell",
            "MacAddress",
        ] {
            assert!(v.get(omitted).is_none(), "{omitted} written in {v}");
        }
        assert_eq!(v["Cmd"], serde_json::json!(["sh"]));
    }

    #[test]
    fn container_config_reads_as_leniently_as_go() {
        let c: ContainerConfig = serde_json::from_str(
            r#"{"Hostname": null, "Cmd": "echo hi", "Entrypoint": null, "Tty": null,
                "ExposedPorts": {"80/tcp": {}}, "Unknown": 1}"#,
        )
        .unwrap();
        assert_eq!(c.hostname, "");
        assert_eq!(c.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(c.entrypoint, None);
        assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(serde_json::from_str::<ContainerConfig>(r#"{"Env": "A=1"}"#).is_err());
        let c: ContainerConfig =
            serde_json::from_str(r#"{"Volumes": {"/a": null, "/b": {"x": 1}}}"#).unwrap();
        assert_eq!(c.volumes.unwrap().len(), 2);
    }

    #[test]
    fn env_and_sets() {
        let mut c = ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            ..Default::default()
        };
        c.set_env("A", "2");
        c.set_env("B", "3");
        assert_eq!(c.env.as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        c.expose("80/tcp");
        c.add_volume("/data");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        assert_eq!(v["Volumes"], serde_json::json!({"/data": {}}));
    }

    #[test]
    fn image_config_keeps_unknown_fields() {
        let raw = r#"{"architecture":"amd64","os":"linux","os.version":"x",
            "config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:a"]},
            "history":[{"created_by":"ADD x","empty_layer":false}]}"#;
        let c: ImageConfig = serde_json::from_str(raw).unwrap();
        assert_eq!(c.rootfs.diff_ids, ["sha256:a"]);
        assert_eq!(c.history[0].created_by, "ADD x");
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["os.version"], "x");
        assert_eq!(back["config"]["Cmd"], serde_json::json!(["sh"]));
    }
}
