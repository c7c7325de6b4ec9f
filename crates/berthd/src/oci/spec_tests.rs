//! Tests of the Docker config → OCI spec conversion (a table of create requests and the spec
//! fields each must produce or the error it must get).

use super::*;
use serde_json::{Value, json};

/// A container config or HostConfig from JSON, or the decode's error.
fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("invalid: {e}"))
}

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Each case is `[create, {key: expected}]`, built over `create.rootfs` (or none) and
/// joining `create.netns`. A key is a JSON pointer into the spec (`/error`: the rejection's
/// message) or `@<mount destination>`, optionally followed by ` <field>`.
fn check(cases: Value) {
    let image = typed(&json!({"Cmd": ["sh"], "Env": ["A=image"], "WorkingDir": "/w"})).unwrap();
    for case in cases.as_array().unwrap() {
        let (create, netns_path) = (&case[0], case[0]["netns"].as_str());
        let rootfs = create["rootfs"].as_str().unwrap_or("/nonexistent");
        let hc = match &create["HostConfig"] {
            Value::Null => Ok(HostConfig::default()),
            hc => typed::<HostConfig>(hc),
        };
        let built = typed::<ContainerConfig>(create).and_then(|config| {
            let host = hc?;
            let input = SpecInput {
                id: ID,
                config: &config,
                host: &host,
                image_config: &image,
                rootfs,
                user_root: rootfs,
                container_dir: "/run/c/",
                hard_nofile: Some(4096),
                cgroup_parent: "/berth",
                netns_path,
                init_path: Some("/usr/bin/docker-init"),
            };
            build(&input).map_err(|e| e.to_string())
        });
        let spec = match built {
            Ok(spec) => serde_json::to_value(spec).unwrap(),
            Err(e) => json!({ "error": e }),
        };
        for (key, want) in case[1].as_object().unwrap() {
            let (path, field) = key.split_once(' ').unwrap_or((key, ""));
            let mut mounts = spec["mounts"].as_array().into_iter().flatten();
            let got = match path.strip_prefix('@') {
                Some(d) => mounts
                    .rfind(|m| m["destination"] == d)
                    .map(|m| m.get(field).unwrap_or(m)),
                None => spec.pointer(path),
            };
            let (mut got, mut want) = (got.cloned().unwrap_or(Value::Null), want.clone());
            // Capability sets have no order.
            if path.starts_with("/process/capabilities") {
                for list in [&mut got, &mut want] {
                    if let Value::Array(items) = list {
                        items.sort_by_key(Value::to_string);
                    }
                }
            }
            assert_eq!(got, want, "{key} for {}", case[0]);
        }
    }
}

#[test]
fn command_and_env_follow_dockers_rules() {
    let image = json!({"Entrypoint": ["/ep"], "Cmd": ["img"], "Env": ["PATH=/img", "A=image", "B=image", "C=image"]});
    let cases = json!([
        [{}, ["/ep", "img"]], [{"Cmd": ["ls", "-l"]}, ["/ep", "ls", "-l"]],
        [{"Entrypoint": ["/other"]}, ["/other"]], [{"Entrypoint": "/str", "Cmd": "x"}, ["/str", "x"]],
        [{"Entrypoint": [""], "Cmd": ["ls"]}, ["ls"]], [{"Entrypoint": [], "Cmd": null}, ["img"]],
        [{"Entrypoint": [""]}, "No command specified"],
    ]);
    let image: ContainerConfig = typed(&image).unwrap();
    for case in cases.as_array().unwrap() {
        let config: ContainerConfig = typed(&case[0]).unwrap();
        let got = command(&config, &image).map_or_else(|e| json!(e.to_string()), |a| json!(a));
        assert_eq!(got, case[1], "for {}", case[0]);
    }
    assert!(typed::<ContainerConfig>(&json!({"Cmd": 5})).is_err());
    let config = typed(&json!({"Env": ["A=request", "B", "D=new"], "Tty": true})).unwrap();
    let want = "PATH=/img HOSTNAME=h TERM=xterm A=request D=new C=image";
    assert_eq!(env(&config, &image, "h").join(" "), want);
}

#[test]
fn user_is_resolved_by_number_or_by_name_in_the_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let (etc, root) = (dir.path().join("etc"), dir.path().to_str().unwrap());
    let group = "root:x:0:\nwheel:x:10:app,x\nstaff:x:50:\n";
    let passwd = "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin\napp:x:1000:1000::/:/bin";
    fs::create_dir_all(etc.join("real")).unwrap();
    fs::write(etc.join("real/passwd"), passwd).unwrap();
    fs::write(etc.join("group"), group).unwrap();
    std::os::unix::fs::symlink("real/passwd", etc.join("passwd")).unwrap();
    let user = |uid: u32, gid: u32, gids: &[u32]| json!({"/process/user": {"uid": uid, "gid": gid, "additionalGids": gids}});
    let no_group = "unable to find group ghosts: no matching entries in group file";
    let mut cases = json!([
        [{}, user(0, 0, &[0])], [{"User": "nobody"}, user(65534, 65534, &[65534])],
        [{"User": "app", "HostConfig": {"GroupAdd": ["staff", "7"]}}, user(1000, 1000, &[1000, 10, 50, 7])],
        [{"User": "1000:staff"}, user(1000, 50, &[50])], [{"User": "4242:4343"}, user(4242, 4343, &[4343])],
        [{"User": "4242"}, user(4242, 0, &[0])], [{"User": "app"}, {"/process/capabilities/permitted": []}],
        [{"User": "ghost"}, {"/error": "unable to find user ghost: no matching entries in passwd file"}],
        [{"User": "app:ghosts"}, {"/error": no_group}], [{"User": "app", "HostConfig": {"GroupAdd": ["ghosts"]}}, {"/error": no_group}],
        [{"User": "-1"}, {"/error": "uids and gids must be in range 0-2147483647"}],
    ]);
    for case in cases.as_array_mut().unwrap() {
        case[0]["rootfs"] = json!(root);
    }
    check(cases);
    // A symlink out of the rootfs reads as no file: the host's /etc/group is never used.
    fs::remove_file(etc.join("group")).unwrap();
    std::os::unix::fs::symlink("/etc/group", etc.join("group")).unwrap();
    let no_root = "unable to find group root: no matching entries in group file";
    check(json!([[{"User": "app:root", "rootfs": root}, {"/error": no_root}]]));
    let resolved = (
        berth_oci::users::user("app", root).unwrap(),
        berth_oci::users::user("", "").unwrap(),
    );
    assert_eq!(resolved, ((1000, 1000), (0, 0)));
}

#[test]
fn capabilities_follow_cap_add_cap_drop_and_privileged() {
    let caps = "/process/capabilities/bounding";
    let default = words(DEFAULT_CAPS, "CAP_");
    let mut all = berth_oci::caps::host();
    all.retain(|c| c != "CAP_SYS_ADMIN");
    let mut tweaked = default.clone();
    tweaked.retain(|c| c != "CAP_MKNOD" && c != "CAP_CHOWN");
    tweaked.extend(["CAP_SYS_ADMIN".into(), "CAP_NET_ADMIN".into()]);
    check(json!([
        [{}, {caps: default, "/process/capabilities/effective": default, "/process/capabilities/inheritable": []}],
        [{"HostConfig": {"CapAdd": ["sys_admin", "CAP_NET_ADMIN", "kill"], "CapDrop": ["mknod", "Cap_Chown"]}}, {caps: tweaked}],
        [{"HostConfig": {"CapDrop": ["ALL"], "CapAdd": ["kill"]}}, {caps: ["CAP_KILL"]}],
        [{"HostConfig": {"CapAdd": ["ALL"], "CapDrop": ["sys_admin"]}}, {caps: all}],
        [{"HostConfig": {"Privileged": true, "CapDrop": ["kill"]}}, {caps: berth_oci::caps::host()}],
        [{"HostConfig": {"CapAdd": ["CAP_FOO"]}}, {"/error": "invalid CapAdd: unknown capability: \"CAP_FOO\""}],
        [{"HostConfig": {"CapDrop": ["bar"]}}, {"/error": "invalid CapDrop: unknown capability: \"CAP_BAR\""}],
    ]));
}

#[test]
fn spec_carries_the_process_root_and_dockers_defaults() {
    let ulimits = json!([{"Name": "nofile", "Soft": 1024, "Hard": -1}, {"Name": "nproc", "Soft": 10, "Hard": 20}]);
    let hc = json!({"ReadonlyRootfs": true, "OomScoreAdj": 100, "SecurityOpt": ["no-new-privileges:true", "seccomp=unconfined"],
        "CgroupParent": "/custom", "Sysctls": {"net.core.somaxconn": "1024"}, "Ulimits": ulimits});
    let create = json!({"Hostname": "web", "Domainname": "example.org", "WorkingDir": "/srv/./app/", "Tty": true, "HostConfig": hc,
        "rootfs": "/rootfs"});
    let want = json!({"/mounts/0/destination": "/proc", "/mounts/6/destination": "/dev/shm", "/mounts/7/destination": "/etc/hostname",
        "/mounts/9/destination": "/etc/resolv.conf", "/mounts/10": null, "/ociVersion": "1.2.0", "/hostname": "web",
        "/domainname": "example.org", "/process/terminal": true,
        "/process/cwd": "/srv/app", "/process/args": ["sh"], "/process/noNewPrivileges": true, "/process/oomScoreAdj": 100,
        "/process/rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}, {"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}],
        "/process/env": [format!("PATH={DEFAULT_PATH}"), "HOSTNAME=web", "TERM=xterm", "A=image"],
        "/root": {"path": "/rootfs", "readonly": true}, "/linux/cgroupsPath": format!("/custom/{ID}"),
        "/linux/sysctl": {"net.core.somaxconn": "1024", "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
        "@/etc/hostname": {"destination": "/etc/hostname", "type": "bind", "source": "/run/c/hostname", "options": ["rbind", "ro", "rprivate"]},
        "@/sys/fs/cgroup options": ["ro", "nosuid", "noexec", "nodev"], "@/dev/mqueue options": ["nosuid", "noexec", "nodev"]});
    check(json!([[create, want],
        [{}, {"/hostname": &ID[..12], "/process/cwd": "/w", "/process/rlimits": [], "/process/env/1": format!("HOSTNAME={}", &ID[..12]),
            "/linux/cgroupsPath": format!("/berth/{ID}"), "/linux/resources/memory": null, "/domainname": null, "/root/readonly": false,
            "/process/terminal": false, "/process/noNewPrivileges": false, "@/etc/resolv.conf options": ["rbind", "rprivate"],
            "@/proc": {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            "@/dev/pts options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}],
        [{"WorkingDir": "rel"}, {"/error": "the working directory 'rel' is invalid, it needs to be an absolute path"}],
        [{"HostConfig": {"OomScoreAdj": 2000}}, {"/error": "Invalid value 2000, range for oom score adj is [-1000, 1000]"}],
        [{"HostConfig": {"Privileged": "yes"}}, {"/error": "invalid: invalid type: string \"yes\", expected a boolean"}],
        // Found by the create_body fuzz target: it used to reach the runtime as RLIMIT_LOFILE.
        [{"HostConfig": {"Ulimits": [{"Name": "lofile", "Soft": 1, "Hard": 1}]}}, {"/error": "invalid ulimit type: lofile"}],
    ]));
}

#[test]
fn binds_mounts_and_tmpfs_parse_like_dockers_volume_parser() {
    let bind = json!({"destination": "/dst", "type": "bind", "source": "/src", "options": ["rbind", "rprivate"]});
    let mounts = json!([{"Type": "bind", "Source": "/tmp", "Target": "/t", "ReadOnly": true, "BindOptions": {"NonRecursive": true,
        "Propagation": "rslave"}}, {"Type": "tmpfs", "Target": "/c", "ReadOnly": true, "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1023}}]);
    let shm = "nosuid noexec nodev mode=1777";
    let invalid = "invalid mount config for type \"bind\":";
    // `ro` is recursive where the kernel has mount_setattr (Linux 5.12).
    let ro_rec_shared: Vec<&str> = if super::recursive_attrs_supported() {
        vec!["rbind", "ro", "rro", "rshared"]
    } else {
        vec!["rbind", "ro", "rshared"]
    };
    check(json!([
        [{"HostConfig": {"Binds": ["/src:/dst", "/a/:/b/c/:ro,rshared", "/tmp:/etc/hosts:rw"]}}, {"@/dst": bind, "@/b/c source": "/a",
            "@/b/c options": ro_rec_shared, "@/etc/hosts source": "/tmp"}],
        [{"HostConfig": {"Binds": ["/a:/n:ro-non-recursive", "/a:/f:ro-force-recursive"]}},
            {"@/n options": ["rbind", "ro", "rprivate"], "@/f options": ["rbind", "ro", "rro", "rprivate"]}],
        [{"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/m", "ReadOnly": true, "BindOptions": {"ReadOnlyNonRecursive": true}},
            {"Type": "bind", "Source": "/tmp", "Target": "/r", "ReadOnly": true, "BindOptions": {"ReadOnlyForceRecursive": true}}]}},
            {"@/m options": ["rbind", "ro", "rprivate"], "@/r options": ["rbind", "ro", "rro", "rprivate"]}],
        [{"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/m", "BindOptions": {"ReadOnlyNonRecursive": true}}]}},
            {"/error": format!("{invalid} option 'ReadOnlyNonRecursive' requires 'ReadOnly' to be set")}],
        [{"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/m", "ReadOnly": true,
            "BindOptions": {"ReadOnlyNonRecursive": true, "ReadOnlyForceRecursive": true}}]}},
            {"/error": format!("{invalid} option 'ReadOnlyForceRecursive' conflicts with 'ReadOnlyNonRecursive'")}],
        [{"HostConfig": {"Mounts": mounts, "Tmpfs": {"/run": "rw,size=64m,exec"}}}, {"@/t options": ["bind", "ro", "rslave"],
            "@/run options": ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=64m", "exec"], "@/c type": "tmpfs",
            "@/c options": ["noexec", "nosuid", "nodev", "rprivate", "ro", "mode=1777", "size=1048576"]}],
        [{}, {"@/dev/shm options": words(&format!("{shm} size=67108864"), "")}], [{"HostConfig": {"IpcMode": "none"}}, {"@/dev/shm": null}],
        [{"HostConfig": {"ShmSize": 1048576}}, {"@/dev/shm options": words(&format!("{shm} size=1048576"), "")}],
        [{"HostConfig": {"Binds": ["vol:/data"]}}, {"/error": "named volumes are not supported yet: vol:/data"}],
        [{"HostConfig": {"Binds": ["/s:rel"]}}, {"/error": format!("invalid volume specification: '/s:rel': {invalid} invalid mount path: 'rel' mount path must be absolute")}],
        [{"HostConfig": {"Binds": ["/s:/"]}}, {"/error": format!("invalid volume specification: '/s:/': {invalid} invalid specification: destination can't be '/'")}],
        [{"HostConfig": {"Binds": ["/s:/x:nocopy,z"]}}, {"@/x options": ["rbind", "rprivate"]}],
        [{"HostConfig": {"Binds": ["/s:/x:ro,rw"]}}, {"/error": "invalid mode: ro,rw"}],
        [{"HostConfig": {"Binds": ["/a:/x", "/b:/x/"]}}, {"/error": "Duplicate mount point: /x"}],
        [{"HostConfig": {"Binds": ["/a:/x"], "Tmpfs": {"/x": ""}}}, {"/error": "Duplicate mount point: /x"}],
        [{"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/no/x", "Target": "/x"}]}}, {"/error": format!("{invalid} bind source path does not exist: /no/x")}],
        [{"HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x"}]}}, {"/error": "named volumes are not supported yet: v:/x"}],
        [{"HostConfig": {"Tmpfs": {"/x": "size=1m,bogus"}}}, {"/error": "invalid tmpfs option \"bogus\""}],
        [{"HostConfig": {"Tmpfs": {"rel": ""}}}, {"/error": "invalid mount config for type \"tmpfs\": invalid mount path: 'rel' mount path must be absolute"}],
    ]));
}

#[test]
fn resources_devices_and_namespaces() {
    let hc = json!({"Memory": 268435456, "MemorySwap": -1, "CpuShares": 512, "CpusetCpus": "0", "NanoCpus": 1_500_000_000u64,
        "PidsLimit": 100, "BlkioWeight": 300, "OomKillDisable": true});
    check(json!([
        [{"HostConfig": hc}, {"/linux/resources/cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0"},
            "/linux/resources/memory": {"limit": 268435456, "swap": -1, "disableOOMKiller": true},
            "/linux/resources/pids": {"limit": 100}, "/linux/resources/blockIO": {"weight": 300}}],
        [{"HostConfig": {"Memory": 10485760}}, {"/linux/resources/memory": {"limit": 10485760, "swap": 20971520}}],
        [{"HostConfig": {"PidsLimit": -1, "CpuQuota": 50000}}, {"/linux/resources/pids": null, "/linux/resources/cpu": {"quota": 50000}}],
        [{"HostConfig": {"Memory": 1024}}, {"/error": "Minimum memory limit allowed is 6MB"}],
        [{"HostConfig": {"NanoCpus": 1000000000, "CpuQuota": 50000}}, {"/error": "Conflicting options: Nano CPUs and CPU Quota cannot both be set"}],
        [{"HostConfig": {"Memory": "1g"}}, {"/error": "invalid: invalid type: string \"1g\", expected i64"}],
        [{"HostConfig": {"CpuRealtimePeriod": 1000000, "CpuRealtimeRuntime": 950000}},
            {"/linux/resources/cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 950000}}],
        [{"HostConfig": {"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1}]}}, {"/error": "/dev/null is not a block device"}],
        [{"HostConfig": {"BlkioDeviceWriteIOps": [{"Path": "/dev/nope", "Rate": 1}]}}, {"/error": "stat /dev/nope"}],
        [{"HostConfig": {"BlkioWeightDevice": [{"Path": "/dev/null", "Weight": 5}]}}, {"/error": "Range of blkio weight is from 10 to 1000"}],
    ]));
    // Per-device limits name the device by its numbers; any block device of this host will do.
    let block = std::fs::read_dir("/dev").unwrap().flatten().find(|e| {
        use std::os::unix::fs::FileTypeExt;
        e.file_type().is_ok_and(|t| t.is_block_device())
    });
    match block {
        Some(e) => {
            use std::os::unix::fs::MetadataExt;
            let rdev = std::fs::metadata(e.path()).unwrap().rdev();
            let (major, minor) = (rdev >> 8 & 0xfff, (rdev & 0xff) | (rdev >> 12 & 0xfff00));
            let path = e.path().display().to_string();
            check(json!([[{"HostConfig": {
                "BlkioWeightDevice": [{"Path": path, "Weight": 200}],
                "BlkioDeviceReadBps": [{"Path": path, "Rate": 1048576}],
                "BlkioDeviceWriteIOps": [{"Path": path, "Rate": 100}]}},
                {"/linux/resources/blockIO": {
                    "weightDevice": [{"major": major, "minor": minor, "weight": 200}],
                    "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}}]]));
        }
        None => {
            eprintln!("no block device node under /dev: per-device blkio mapping not exercised")
        }
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let dev_null = json!({"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"});
    let gathering = "error gathering device information while adding custom device";
    check(json!([
        [{"HostConfig": {"Devices": [dev_null]}}, {"/linux/devices/0/path": "/dev/mynull", "/linux/devices/0/type": "c",
            "/linux/devices/0/major": 1, "/linux/devices/0/minor": 3, "/linux/resources/devices/0": {"allow": false, "access": "rwm"},
            "/linux/resources/devices/8": {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}}],
        [{"HostConfig": {"Devices": [{"PathOnHost": file}]}}, {"/error": format!("{gathering} {file:?}: not a device node")}],
        [{"HostConfig": {"Devices": [{"PathOnHost": "/dev/nope"}]}}, {"/error": format!("{gathering} \"/dev/nope\"")}],
        [{"HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]}}, {"/error": "invalid device mode: rwx"}],
        [{"HostConfig": {"CgroupnsMode": "private"}}, {"/linux/maskedPaths": words(MASKED_PATHS, ""), "/linux/readonlyPaths": words(READONLY_PATHS, ""), "/linux/devices": [],
            "@/sys options": ["nosuid", "noexec", "nodev", "ro"], "/linux/namespaces": [{"type": "mount"}, {"type": "network"},
            {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}, {"type": "cgroup"}]}],
        [{"HostConfig": {"Privileged": true}}, {"/linux/maskedPaths": [], "/linux/readonlyPaths": [], "@/sys options": ["nosuid", "noexec", "nodev"],
            "@/sys/fs/cgroup options": ["nosuid", "noexec", "nodev"], "/linux/resources/devices": [{"allow": true, "access": "rwm"}]}],
        [{"HostConfig": {"MaskedPaths": ["/proc/x"], "ReadonlyPaths": []}}, {"/linux/maskedPaths": ["/proc/x"], "/linux/readonlyPaths": []}],
        [{"HostConfig": {"NetworkMode": "bridge"}, "netns": "/run/netns/x"}, {"/linux/namespaces/1": {"type": "network", "path": "/run/netns/x"}}],
        [{"HostConfig": {"NetworkMode": "host", "PidMode": "host", "IpcMode": "host", "UTSMode": "host", "CgroupnsMode": "host"},
            "netns": "/x"}, {"/linux/namespaces": [{"type": "mount"}], "/hostname": null, "/linux/sysctl": null, "@/dev/shm source": "/dev/shm"}],
        [{"HostConfig": {"PidMode": "container:abc"}}, {"/error": "joining another container's PID namespace is not supported yet"}],
        [{"HostConfig": {"NetworkMode": "container:abc"}}, {"/linux/namespaces/1": {"type": "network"}}],
        [{"HostConfig": {"IpcMode": "bogus"}}, {"/error": "invalid IPC mode: bogus"}],
    ]));
}
