//! dockerd's `container.HostConfig`: the `HostConfig` of a create request and of container
//! inspect, with its `Resources` (also the body of `POST /containers/{id}/update`) and the
//! mount, device and port types it holds; and the create request these make with the
//! container config.
//!
//! Ours, not the pinned bollard-stubs model, for the reasons [`crate::config`] gives: dockerd
//! writes every field that is not `omitempty` (as `""`, `0`, `false` or `null`) and clients
//! index them directly, and it reads as leniently as Go (`null` is the zero value; `CapAdd` and
//! `CapDrop` take one string as a list of one). A field of the wrong type fails the decode.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{is_false, is_zero, none_or_empty, null_default, str_slice};

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// A string map as Go's `map[string]string`.
pub type StringMap = BTreeMap<String, String>;

/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    #[serde(rename = "Type", deserialize_with = "null_default")]
    pub kind: String,
    #[serde(rename = "Config")]
    pub config: Option<StringMap>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    #[serde(rename = "Name", deserialize_with = "null_default")]
    pub name: String,
    #[serde(rename = "MaximumRetryCount", deserialize_with = "null_default")]
    pub maximum_retry_count: i64,
}

/// One host address a container port is published on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortBinding {
    #[serde(rename = "HostIp", deserialize_with = "null_default")]
    pub host_ip: String,
    #[serde(rename = "HostPort", deserialize_with = "null_default")]
    pub host_port: String,
}

/// nat's `PortMap`: `"80/tcp"` to its bindings (`null` when none).
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

/// A `Devices` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMapping {
    #[serde(rename = "PathOnHost", deserialize_with = "null_default")]
    pub path_on_host: String,
    #[serde(rename = "PathInContainer", deserialize_with = "null_default")]
    pub path_in_container: String,
    #[serde(rename = "CgroupPermissions", deserialize_with = "null_default")]
    pub cgroup_permissions: String,
}

/// A `DeviceRequests` entry (kept and shown; no driver here serves one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceRequest {
    #[serde(rename = "Driver", deserialize_with = "null_default")]
    pub driver: String,
    #[serde(rename = "Count", deserialize_with = "null_default")]
    pub count: i64,
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Option<Vec<String>>,
    #[serde(rename = "Capabilities")]
    pub capabilities: Option<Vec<Vec<String>>>,
    #[serde(rename = "Options")]
    pub options: Option<StringMap>,
}

/// blkiodev's `WeightDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightDevice {
    #[serde(rename = "Path", deserialize_with = "null_default")]
    pub path: String,
    #[serde(rename = "Weight", deserialize_with = "null_default")]
    pub weight: u16,
}

/// blkiodev's `ThrottleDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleDevice {
    #[serde(rename = "Path", deserialize_with = "null_default")]
    pub path: String,
    #[serde(rename = "Rate", deserialize_with = "null_default")]
    pub rate: u64,
}

/// go-units' `Ulimit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ulimit {
    #[serde(rename = "Name", deserialize_with = "null_default")]
    pub name: String,
    #[serde(rename = "Hard", deserialize_with = "null_default")]
    pub hard: i64,
    #[serde(rename = "Soft", deserialize_with = "null_default")]
    pub soft: i64,
}

/// `Mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BindOptions {
    #[serde(
        rename = "Propagation",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub propagation: String,
    #[serde(
        rename = "NonRecursive",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub non_recursive: bool,
    #[serde(
        rename = "CreateMountpoint",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub create_mountpoint: bool,
    #[serde(
        rename = "ReadOnlyNonRecursive",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub read_only_non_recursive: bool,
    #[serde(
        rename = "ReadOnlyForceRecursive",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub read_only_force_recursive: bool,
}

/// `VolumeOptions.DriverConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeDriver {
    #[serde(
        rename = "Name",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(rename = "Options", skip_serializing_if = "none_or_empty")]
    pub options: Option<StringMap>,
}

/// `Mount.VolumeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeOptions {
    #[serde(
        rename = "NoCopy",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub no_copy: bool,
    #[serde(rename = "Labels", skip_serializing_if = "none_or_empty")]
    pub labels: Option<StringMap>,
    #[serde(
        rename = "Subpath",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub subpath: String,
    #[serde(rename = "DriverConfig", skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<VolumeDriver>,
}

/// `Mount.TmpfsOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TmpfsOptions {
    #[serde(
        rename = "SizeBytes",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub size_bytes: i64,
    #[serde(
        rename = "Mode",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_u64"
    )]
    pub mode: u64,
    #[serde(rename = "Options", skip_serializing_if = "none_or_empty")]
    pub options: Option<Vec<Vec<String>>>,
}

/// A `HostConfig.Mounts` entry (the API's `mount.Mount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    #[serde(
        rename = "Type",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    #[serde(
        rename = "Source",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub source: String,
    #[serde(
        rename = "Target",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub target: String,
    #[serde(
        rename = "ReadOnly",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub read_only: bool,
    #[serde(
        rename = "Consistency",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub consistency: String,
    #[serde(rename = "BindOptions", skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(rename = "VolumeOptions", skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(rename = "TmpfsOptions", skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// dockerd's `container.Resources`: the cgroup limits of `HostConfig`, and what
/// `docker update` changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    #[serde(rename = "CpuShares", deserialize_with = "null_default")]
    pub cpu_shares: i64,
    #[serde(rename = "Memory", deserialize_with = "null_default")]
    pub memory: i64,
    #[serde(rename = "NanoCpus", deserialize_with = "null_default")]
    pub nano_cpus: i64,
    #[serde(rename = "CgroupParent", deserialize_with = "null_default")]
    pub cgroup_parent: String,
    #[serde(rename = "BlkioWeight", deserialize_with = "null_default")]
    pub blkio_weight: u16,
    #[serde(rename = "BlkioWeightDevice")]
    pub blkio_weight_device: Option<Vec<WeightDevice>>,
    #[serde(rename = "BlkioDeviceReadBps")]
    pub blkio_device_read_bps: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteBps")]
    pub blkio_device_write_bps: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "CpuPeriod", deserialize_with = "null_default")]
    pub cpu_period: i64,
    #[serde(rename = "CpuQuota", deserialize_with = "null_default")]
    pub cpu_quota: i64,
    #[serde(rename = "CpuRealtimePeriod", deserialize_with = "null_default")]
    pub cpu_realtime_period: i64,
    #[serde(rename = "CpuRealtimeRuntime", deserialize_with = "null_default")]
    pub cpu_realtime_runtime: i64,
    #[serde(rename = "CpusetCpus", deserialize_with = "null_default")]
    pub cpuset_cpus: String,
    #[serde(rename = "CpusetMems", deserialize_with = "null_default")]
    pub cpuset_mems: String,
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<DeviceMapping>>,
    #[serde(rename = "DeviceCgroupRules")]
    pub device_cgroup_rules: Option<Vec<String>>,
    #[serde(rename = "DeviceRequests")]
    pub device_requests: Option<Vec<DeviceRequest>>,
    #[serde(
        rename = "KernelMemory",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub kernel_memory: i64,
    #[serde(
        rename = "KernelMemoryTCP",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub kernel_memory_tcp: i64,
    #[serde(rename = "MemoryReservation", deserialize_with = "null_default")]
    pub memory_reservation: i64,
    #[serde(rename = "MemorySwap", deserialize_with = "null_default")]
    pub memory_swap: i64,
    #[serde(rename = "MemorySwappiness")]
    pub memory_swappiness: Option<i64>,
    #[serde(rename = "OomKillDisable")]
    pub oom_kill_disable: Option<bool>,
    #[serde(rename = "PidsLimit")]
    pub pids_limit: Option<i64>,
    #[serde(rename = "Ulimits")]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(rename = "CpuCount", deserialize_with = "null_default")]
    pub cpu_count: i64,
    #[serde(rename = "CpuPercent", deserialize_with = "null_default")]
    pub cpu_percent: i64,
    #[serde(rename = "IOMaximumIOps", deserialize_with = "null_default")]
    pub io_maximum_iops: u64,
    #[serde(rename = "IOMaximumBandwidth", deserialize_with = "null_default")]
    pub io_maximum_bandwidth: u64,
}

/// The body of `POST /containers/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(rename = "RestartPolicy")]
    pub restart_policy: Option<RestartPolicy>,
}

/// dockerd's `container.HostConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    #[serde(rename = "Binds")]
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile", deserialize_with = "null_default")]
    pub container_id_file: String,
    #[serde(rename = "LogConfig", deserialize_with = "null_default")]
    pub log_config: LogConfig,
    #[serde(rename = "NetworkMode", deserialize_with = "null_default")]
    pub network_mode: String,
    #[serde(rename = "PortBindings")]
    pub port_bindings: Option<PortMap>,
    #[serde(rename = "RestartPolicy", deserialize_with = "null_default")]
    pub restart_policy: RestartPolicy,
    #[serde(rename = "AutoRemove", deserialize_with = "null_default")]
    pub auto_remove: bool,
    #[serde(rename = "VolumeDriver", deserialize_with = "null_default")]
    pub volume_driver: String,
    #[serde(rename = "VolumesFrom")]
    pub volumes_from: Option<Vec<String>>,
    #[serde(rename = "ConsoleSize", deserialize_with = "null_default")]
    pub console_size: [u64; 2],
    #[serde(rename = "Annotations", skip_serializing_if = "none_or_empty")]
    pub annotations: Option<StringMap>,
    #[serde(rename = "CapAdd", deserialize_with = "str_slice")]
    pub cap_add: Option<Vec<String>>,
    #[serde(rename = "CapDrop", deserialize_with = "str_slice")]
    pub cap_drop: Option<Vec<String>>,
    #[serde(rename = "CgroupnsMode", deserialize_with = "null_default")]
    pub cgroupns_mode: String,
    #[serde(rename = "Dns")]
    pub dns: Option<Vec<String>>,
    #[serde(rename = "DnsOptions")]
    pub dns_options: Option<Vec<String>>,
    #[serde(rename = "DnsSearch")]
    pub dns_search: Option<Vec<String>>,
    #[serde(rename = "ExtraHosts")]
    pub extra_hosts: Option<Vec<String>>,
    #[serde(rename = "GroupAdd")]
    pub group_add: Option<Vec<String>>,
    #[serde(rename = "IpcMode", deserialize_with = "null_default")]
    pub ipc_mode: String,
    #[serde(rename = "Cgroup", deserialize_with = "null_default")]
    pub cgroup: String,
    #[serde(rename = "Links")]
    pub links: Option<Vec<String>>,
    #[serde(rename = "OomScoreAdj", deserialize_with = "null_default")]
    pub oom_score_adj: i64,
    #[serde(rename = "PidMode", deserialize_with = "null_default")]
    pub pid_mode: String,
    #[serde(rename = "Privileged", deserialize_with = "null_default")]
    pub privileged: bool,
    #[serde(rename = "PublishAllPorts", deserialize_with = "null_default")]
    pub publish_all_ports: bool,
    #[serde(rename = "ReadonlyRootfs", deserialize_with = "null_default")]
    pub readonly_rootfs: bool,
    #[serde(rename = "SecurityOpt")]
    pub security_opt: Option<Vec<String>>,
    #[serde(rename = "StorageOpt", skip_serializing_if = "none_or_empty")]
    pub storage_opt: Option<StringMap>,
    #[serde(rename = "Tmpfs", skip_serializing_if = "none_or_empty")]
    pub tmpfs: Option<StringMap>,
    #[serde(rename = "UTSMode", deserialize_with = "null_default")]
    pub uts_mode: String,
    #[serde(rename = "UsernsMode", deserialize_with = "null_default")]
    pub userns_mode: String,
    #[serde(rename = "ShmSize", deserialize_with = "null_default")]
    pub shm_size: i64,
    #[serde(rename = "Sysctls", skip_serializing_if = "none_or_empty")]
    pub sysctls: Option<StringMap>,
    #[serde(
        rename = "Runtime",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub runtime: String,
    #[serde(rename = "Isolation", deserialize_with = "null_default")]
    pub isolation: String,
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(rename = "Mounts", skip_serializing_if = "none_or_empty")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(rename = "MaskedPaths")]
    pub masked_paths: Option<Vec<String>>,
    #[serde(rename = "ReadonlyPaths")]
    pub readonly_paths: Option<Vec<String>>,
    #[serde(rename = "Init", skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
}

/// A create request's `NetworkingConfig`: the endpoint settings per network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkingConfig {
    #[serde(rename = "EndpointsConfig")]
    pub endpoints_config: Option<BTreeMap<String, bollard_stubs::models::EndpointSettings>>,
}

/// The body of `POST /containers/create`: the container config with its `HostConfig` and
/// `NetworkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: crate::config::ContainerConfig,
    #[serde(rename = "HostConfig", default)]
    pub host_config: HostConfig,
    #[serde(
        rename = "NetworkingConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub networking_config: Option<NetworkingConfig>,
}

impl HostConfig {
    /// `Binds`, or none.
    pub fn binds(&self) -> &[String] {
        self.binds.as_deref().unwrap_or_default()
    }

    /// `Mounts`, or none.
    pub fn mounts(&self) -> &[Mount] {
        self.mounts.as_deref().unwrap_or_default()
    }

    /// `Links`, or none.
    pub fn links(&self) -> &[String] {
        self.links.as_deref().unwrap_or_default()
    }

    /// `VolumesFrom`, or none.
    pub fn volumes_from(&self) -> &[String] {
        self.volumes_from.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_config_reads_as_leniently_as_go_and_writes_what_dockerd_writes() {
        let hc: HostConfig = serde_json::from_str(
            r#"{"Binds": ["/a:/b"], "CapAdd": "NET_ADMIN", "Memory": 1048576, "ShmSize": null,
                "PidsLimit": null, "RestartPolicy": {"Name": "always"}, "LogConfig": null,
                "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 300}], "Unknown": 1,
                "Mounts": [{"Type": "bind", "Source": "/s", "Target": "/t",
                    "BindOptions": {"Propagation": "rshared"}}]}"#,
        )
        .unwrap();
        assert_eq!(hc.binds(), ["/a:/b"]);
        assert_eq!(hc.cap_add.as_deref(), Some(&["NET_ADMIN".to_string()][..]));
        assert_eq!(hc.resources.memory, 1_048_576);
        assert_eq!(hc.resources.pids_limit, None);
        assert_eq!(hc.restart_policy.name, "always");
        assert_eq!(
            hc.mounts()[0].bind_options.as_ref().unwrap().propagation,
            "rshared"
        );
        let v = serde_json::to_value(&hc).unwrap();
        for always in [
            "Memory",
            "CpuShares",
            "PidsLimit",
            "Ulimits",
            "NetworkMode",
            "Dns",
        ] {
            assert!(v.get(always).is_some(), "{always} missing from {v}");
        }
        for omitted in [
            "Runtime",
            "Tmpfs",
            "Sysctls",
            "Init",
            "KernelMemory",
            "Unknown",
        ] {
            assert!(v.get(omitted).is_none(), "{omitted} written in {v}");
        }
        assert_eq!(v["BlkioWeightDevice"][0]["Weight"], 300);
        assert_eq!(
            v["Mounts"][0]["BindOptions"],
            serde_json::json!({"Propagation": "rshared"})
        );
        for bad in [
            r#"{"Privileged": "yes"}"#,
            r#"{"Memory": "1g"}"#,
            r#"{"Binds": "/a:/b"}"#,
        ] {
            assert!(serde_json::from_str::<HostConfig>(bad).is_err(), "{bad}");
        }
        let u: UpdateConfig =
            serde_json::from_str(r#"{"Memory": 7, "RestartPolicy": null}"#).unwrap();
        assert_eq!((u.resources.memory, u.restart_policy), (7, None));
    }
}
