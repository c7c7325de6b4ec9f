//! A Docker container create request plus its image config, turned into an OCI runtime spec
//! with dockerd's defaults: the command (entrypoint/cmd rules), env, user, Docker's default
//! capability set, masked and read-only paths, the standard mounts, the container's
//! `hostname`/`hosts`/`resolv.conf`, binds and tmpfs mounts, resource limits and devices.

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// Docker's default PATH.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capabilities.
const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const MASKED_PATHS: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("No command specified")]
    NoCommand,
    #[error("invalid CapAdd: unknown capability: {0:?}")]
    UnknownCap(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid mount config: {0}")]
    Mount(String),
    #[error("Duplicate mount point: {0}")]
    DuplicateMount(String),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    WorkingDir(String),
    #[error("error gathering device information while adding custom device {0:?}: {1}")]
    Device(String, String),
}

/// Everything the spec depends on besides the request.
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub create: &'a Value,
    pub image_config: &'a Value,
    pub rootfs: &'a str,
    /// Where the image's `/etc/passwd` and `/etc/group` are (its top layer that has them).
    pub user_root: &'a str,
    pub container_dir: &'a str,
    pub hard_nofile: Option<u64>,
    pub cgroup_parent: &'a str,
    pub netns_path: Option<&'a str>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Entrypoint + Cmd as Docker resolves them: a request Entrypoint replaces the image's and
/// drops the image's Cmd; a request Cmd replaces the image's Cmd.
pub fn command(create: &Value, image: &Value) -> Result<Vec<String>, SpecError> {
    let req_ep = strings(&create["Entrypoint"]);
    let req_cmd = strings(&create["Cmd"]).filter(|c| !c.is_empty());
    let (ep, cmd) = match req_ep {
        Some(ep) => (ep, req_cmd.unwrap_or_default()),
        None => (
            strings(&image["Entrypoint"]).unwrap_or_default(),
            req_cmd
                .or_else(|| strings(&image["Cmd"]))
                .unwrap_or_default(),
        ),
    };
    let ep: Vec<String> = ep.into_iter().filter(|s| !s.is_empty()).collect();
    let argv: Vec<String> = ep.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

/// Replaces `kv`'s key in place, or appends it; `KEY` alone (no `=`) removes the key.
fn replace_or_append(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or_default();
    let pos = env.iter().position(|e| e.split('=').next() == Some(key));
    match (pos, kv.contains('=')) {
        (Some(i), true) => env[i] = kv.to_string(),
        (Some(i), false) => {
            env.remove(i);
        }
        (None, true) => env.push(kv.to_string()),
        (None, false) => {}
    }
}

/// The environment as dockerd builds it: PATH (Docker's default), HOSTNAME, TERM=xterm with a
/// TTY, then the image's env with the request's merged in (replaced in place by key).
pub fn env(create: &Value, image: &Value, hostname: &str) -> Vec<String> {
    let mut config = strings(&image["Env"]).unwrap_or_default();
    for e in strings(&create["Env"]).unwrap_or_default() {
        replace_or_append(&mut config, &e);
    }
    let mut out = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if create["Tty"].as_bool() == Some(true) {
        out.push("TERM=xterm".into());
    }
    for e in config {
        replace_or_append(&mut out, &e);
    }
    out
}

/// Looks a name up in a passwd- or group-style file of the rootfs.
fn lookup(rootfs: &str, file: &str, name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(format!("{rootfs}/etc/{file}")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| {
            (
                f[2].parse().unwrap_or(0),
                f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
            )
        })
    })
}

/// `user[:group]` by number or by name from the rootfs.
pub fn user(spec_user: &str, rootfs: &str) -> Result<(u32, u32), SpecError> {
    if spec_user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match spec_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec_user, None),
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_uid_gid(rootfs, n)),
        Err(_) => lookup(rootfs, "passwd", u).ok_or_else(|| SpecError::NoUser(u.to_string()))?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup(rootfs, "group", g)
                    .ok_or_else(|| SpecError::NoGroup(g.to_string()))?
                    .0
            }
        };
    }
    Ok((uid, gid))
}

fn lookup_uid_gid(rootfs: &str, uid: u32) -> u32 {
    std::fs::read_to_string(format!("{rootfs}/etc/passwd"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid))
                    .then(|| f[3].parse().ok())
                    .flatten()
            })
        })
        .unwrap_or(0)
}

fn normalize_cap(c: &str) -> String {
    let up = c.to_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Docker's default set adjusted by CapAdd/CapDrop (or everything when privileged).
pub fn capabilities(hc: &Value) -> Result<Vec<String>, SpecError> {
    if hc["Privileged"].as_bool() == Some(true) {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let add: Vec<String> = strings(&hc["CapAdd"])
        .unwrap_or_default()
        .iter()
        .map(|c| normalize_cap(c))
        .collect();
    let drop: Vec<String> = strings(&hc["CapDrop"])
        .unwrap_or_default()
        .iter()
        .map(|c| normalize_cap(c))
        .collect();
    for c in add.iter().chain(&drop) {
        if c != "CAP_ALL" && c != "ALL" && !ALL_CAPS.contains(&c.as_str()) {
            return Err(SpecError::UnknownCap(c.clone()));
        }
    }
    let mut set: BTreeSet<String> = if drop.iter().any(|c| c == "ALL") {
        BTreeSet::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if add.iter().any(|c| c == "ALL") {
        set = ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    for c in &add {
        if c != "ALL" {
            set.insert(c.clone());
        }
    }
    for c in &drop {
        set.remove(c);
    }
    Ok(set.into_iter().collect())
}

/// One bind from `src:dst[:opts]`.
fn bind(spec: &str) -> Result<Value, SpecError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => {
            return Err(SpecError::Mount(format!(
                "invalid volume specification: '{spec}'"
            )));
        }
    };
    if !src.starts_with('/') {
        return Err(SpecError::Mount(format!(
            "named volumes are not supported yet: '{spec}'"
        )));
    }
    if !dst.starts_with('/') {
        return Err(SpecError::Mount(format!(
            "invalid volume specification: '{spec}': the destination must be absolute"
        )));
    }
    let mut options = vec!["rbind".to_string()];
    let mut prop = "rprivate";
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "rw" => options.push(o.into()),
            "z" | "Z" | "nocopy" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => prop = o,
            other => return Err(SpecError::Mount(format!("invalid mode: {other}"))),
        }
    }
    options.push(prop.into());
    Ok(json!({"destination": dst, "type": "bind", "source": src, "options": options}))
}

fn tmpfs(dst: &str, opts: &str) -> Value {
    let mut options = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        if o == "exec" {
            options.retain(|x| x != "noexec");
        } else {
            options.push(o.into());
        }
    }
    json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": options})
}

/// `major:minor` of a host device node.
fn device_numbers(path: &str) -> Result<(char, i64, i64), SpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).map_err(|e| SpecError::Device(path.into(), e.to_string()))?;
    let ft = m.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return Err(SpecError::Device(path.into(), "not a device node".into()));
    };
    let rdev = m.rdev();
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    Ok((kind, major as i64, minor as i64))
}

/// Builds the OCI spec.
pub fn build(input: &SpecInput) -> Result<Value, SpecError> {
    let c = input.create;
    let hc = &c["HostConfig"];
    let image = input.image_config;
    let args = command(c, image)?;
    let hostname = c["Hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(&input.id[..12.min(input.id.len())])
        .to_string();
    let cwd = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .or(image["WorkingDir"].as_str().filter(|w| !w.is_empty()))
        .unwrap_or("/")
        .to_string();
    if !cwd.starts_with('/') {
        return Err(SpecError::WorkingDir(cwd));
    }
    let user_spec = c["User"]
        .as_str()
        .filter(|u| !u.is_empty())
        .or(image["User"].as_str())
        .unwrap_or("");
    // Names are resolved against the image's files (the rootfs is not mounted yet).
    let (uid, gid) = user(user_spec, input.user_root)?;
    let mut groups = Vec::new();
    for g in strings(&hc["GroupAdd"]).unwrap_or_default() {
        groups.push(match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup(input.user_root, "group", &g)
                    .ok_or(SpecError::NoGroup(g))?
                    .0
            }
        });
    }
    let caps = capabilities(hc)?;
    let privileged = hc["Privileged"].as_bool() == Some(true);
    let nnp = strings(&hc["SecurityOpt"])
        .unwrap_or_default()
        .iter()
        .any(|o| {
            o == "no-new-privileges"
                || o == "no-new-privileges:true"
                || o == "no-new-privileges=true"
        });

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    let shm = hc["ShmSize"]
        .as_u64()
        .filter(|s| *s > 0)
        .unwrap_or(64 << 20);
    mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}k", shm / 1024)]}));
    for f in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(json!({
            "destination": format!("/etc/{f}"),
            "type": "bind",
            "source": format!("{}/{f}", input.container_dir),
            "options": ["rbind", "rprivate"],
        }));
    }
    let mut user_mounts = Vec::new();
    for b in strings(&hc["Binds"]).unwrap_or_default() {
        user_mounts.push(bind(&b)?);
    }
    if let Some(ms) = hc["Mounts"].as_array() {
        for m in ms {
            let dst = m["Target"].as_str().unwrap_or_default();
            if !dst.starts_with('/') {
                return Err(SpecError::Mount(format!(
                    "invalid mount target {dst:?}: must be absolute"
                )));
            }
            match m["Type"].as_str().unwrap_or_default() {
                "bind" => {
                    let src = m["Source"].as_str().unwrap_or_default();
                    if !std::path::Path::new(src).exists() {
                        return Err(SpecError::Mount(format!(
                            "bind source path does not exist: {src}"
                        )));
                    }
                    let ro = if m["ReadOnly"].as_bool() == Some(true) {
                        ":ro"
                    } else {
                        ""
                    };
                    user_mounts.push(bind(&format!("{src}:{dst}{ro}"))?);
                }
                "tmpfs" => {
                    let mut o = Vec::new();
                    if let Some(sz) = m["TmpfsOptions"]["SizeBytes"].as_u64() {
                        o.push(format!("size={sz}"));
                    }
                    if let Some(mode) = m["TmpfsOptions"]["Mode"].as_u64() {
                        o.push(format!("mode={mode:o}"));
                    }
                    user_mounts.push(tmpfs(dst, &o.join(",")));
                }
                "volume" => {
                    return Err(SpecError::Mount(
                        "named volumes are not supported yet".into(),
                    ));
                }
                other => return Err(SpecError::Mount(format!("mount type unknown: {other:?}"))),
            }
        }
    }
    if let Some(t) = hc["Tmpfs"].as_object() {
        for (dst, opts) in t {
            if !dst.starts_with('/') {
                return Err(SpecError::Mount(format!(
                    "invalid tmpfs destination {dst:?}"
                )));
            }
            user_mounts.push(tmpfs(dst, opts.as_str().unwrap_or_default()));
        }
    }
    let mut seen = BTreeSet::new();
    for m in &user_mounts {
        let d = m["destination"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if !seen.insert(d.clone()) {
            return Err(SpecError::DuplicateMount(d));
        }
    }
    // A user mount over a default one replaces it.
    mounts.retain(|m| !seen.contains(m["destination"].as_str().unwrap_or_default()));
    mounts.extend(user_mounts);

    let network_mode = hc["NetworkMode"].as_str().unwrap_or("default");
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if network_mode != "host" {
        let mut ns = json!({"type": "network"});
        if let Some(p) = input.netns_path {
            ns["path"] = json!(p);
        }
        namespaces.push(ns);
    }
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = json!({});
    let mut devices_rules = if privileged {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        let mut r = vec![json!({"allow": false, "access": "rwm"})];
        for (t, maj, min) in [
            ("c", 1, 3),
            ("c", 1, 5),
            ("c", 1, 7),
            ("c", 1, 8),
            ("c", 1, 9),
            ("c", 5, 0),
            ("c", 5, 1),
            ("c", 5, 2),
            ("c", 136, -1),
            ("c", 10, 200),
        ] {
            let mut rule = json!({"allow": true, "type": t, "major": maj, "access": "rwm"});
            if min >= 0 {
                rule["minor"] = json!(min);
            }
            r.push(rule);
        }
        r
    };
    let mut devices = Vec::new();
    if let Some(ds) = hc["Devices"].as_array() {
        for d in ds {
            let host = d["PathOnHost"].as_str().unwrap_or_default();
            let inside = d["PathInContainer"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or(host);
            let perms = d["CgroupPermissions"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("rwm");
            let (kind, major, minor) = device_numbers(host)?;
            devices.push(json!({"path": inside, "type": kind.to_string(), "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}));
            devices_rules.push(json!({"allow": true, "type": kind.to_string(), "major": major, "minor": minor, "access": perms}));
        }
    }
    resources["devices"] = json!(devices_rules);
    let mut memory = json!({});
    if let Some(m) = hc["Memory"].as_i64().filter(|m| *m > 0) {
        memory["limit"] = json!(m);
        match hc["MemorySwap"].as_i64() {
            Some(-1) => memory["swap"] = json!(-1),
            Some(s) if s > 0 => memory["swap"] = json!(s),
            _ => memory["swap"] = json!(m * 2),
        }
    }
    if let Some(r) = hc["MemoryReservation"].as_i64().filter(|m| *m > 0) {
        memory["reservation"] = json!(r);
    }
    if memory.as_object().is_some_and(|o| !o.is_empty()) {
        resources["memory"] = memory;
    }
    let mut cpu = json!({});
    if let Some(s) = hc["CpuShares"].as_u64().filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    if let Some(n) = hc["NanoCpus"].as_i64().filter(|n| *n > 0) {
        cpu["period"] = json!(100_000);
        cpu["quota"] = json!(n * 100_000 / 1_000_000_000);
    }
    if let Some(q) = hc["CpuQuota"].as_i64().filter(|q| *q > 0) {
        cpu["quota"] = json!(q);
    }
    if let Some(p) = hc["CpuPeriod"].as_u64().filter(|p| *p > 0) {
        cpu["period"] = json!(p);
    }
    for (k, f) in [("CpusetCpus", "cpus"), ("CpusetMems", "mems")] {
        if let Some(v) = hc[k].as_str().filter(|v| !v.is_empty()) {
            cpu[f] = json!(v);
        }
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        resources["cpu"] = cpu;
    }
    if let Some(p) = hc["PidsLimit"].as_i64().filter(|p| *p > 0) {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(w) = hc["BlkioWeight"].as_u64().filter(|w| *w > 0) {
        resources["blockIO"] = json!({"weight": w});
    }

    let mut rlimits = Vec::new();
    if let Some(ul) = hc["Ulimits"].as_array() {
        for u in ul {
            let name = u["Name"].as_str().unwrap_or_default().to_uppercase();
            rlimits.push(
                json!({"type": format!("RLIMIT_{name}"), "hard": u["Hard"], "soft": u["Soft"]}),
            );
        }
    } else if let Some(h) = input.hard_nofile {
        let n = h.min(1_048_576);
        rlimits.push(json!({"type": "RLIMIT_NOFILE", "hard": n, "soft": n}));
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("{}/{}", input.cgroup_parent.trim_end_matches('/'), input.id),
        "devices": devices,
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(s) = hc["Sysctls"].as_object().filter(|s| !s.is_empty()) {
        linux["sysctl"] = json!(s);
    }
    let mut process = json!({
        "terminal": c["Tty"].as_bool().unwrap_or(false),
        "user": {"uid": uid, "gid": gid, "additionalGids": groups},
        "args": args,
        "env": env(c, image, &hostname),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits,
        "noNewPrivileges": nnp,
    });
    if let Some(adj) = hc["OomScoreAdj"].as_i64().filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": input.rootfs, "readonly": hc["ReadonlyRootfs"].as_bool().unwrap_or(false)},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    });
    if let Some(dn) = c["Domainname"].as_str().filter(|d| !d.is_empty()) {
        spec["domainname"] = json!(dn);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_like_docker() {
        let img = json!({"Entrypoint": ["/ep"], "Cmd": ["a"]});
        assert_eq!(command(&json!({}), &img).unwrap(), ["/ep", "a"]);
        assert_eq!(command(&json!({"Cmd": ["b"]}), &img).unwrap(), ["/ep", "b"]);
        assert_eq!(
            command(&json!({"Entrypoint": ["/x"]}), &img).unwrap(),
            ["/x"]
        );
        assert_eq!(
            command(&json!({"Entrypoint": [], "Cmd": ["sh"]}), &img).unwrap(),
            ["sh"]
        );
        assert_eq!(command(&json!({}), &json!(null)), Err(SpecError::NoCommand));
    }

    #[test]
    fn env_caps_users_and_mounts() {
        let e = env(
            &json!({"Env": ["A=2", "NOEQ"], "Tty": true}),
            &json!({"Env": ["A=1", "B=1"]}),
            "h",
        );
        assert_eq!(
            e,
            [
                &format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h",
                "TERM=xterm",
                "A=2",
                "B=1"
            ]
        );
        let e = env(
            &json!({"Env": ["PATH=/x", "B"]}),
            &json!({"Env": ["B=1"]}),
            "h",
        );
        assert_eq!(e, ["PATH=/x", "HOSTNAME=h"]);
        let caps = capabilities(&json!({"CapAdd": ["net_admin"], "CapDrop": ["CHOWN"]})).unwrap();
        assert!(
            caps.contains(&"CAP_NET_ADMIN".to_string()) && !caps.contains(&"CAP_CHOWN".to_string())
        );
        assert_eq!(
            capabilities(&json!({"CapDrop": ["ALL"]})).unwrap(),
            Vec::<String>::new()
        );
        assert!(matches!(
            capabilities(&json!({"CapAdd": ["NOPE"]})),
            Err(SpecError::UnknownCap(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let root = dir.path().to_str().unwrap();
        assert_eq!(user("nobody", root).unwrap(), (65534, 65534));
        assert_eq!(user("1000:staff", root).unwrap(), (1000, 50));
        assert!(matches!(user("ghost", root), Err(SpecError::NoUser(_))));
        assert!(bind("rel:/x").is_err() && bind("/a:rel").is_err());
        assert_eq!(
            bind("/a:/b:ro").unwrap()["options"],
            json!(["rbind", "ro", "rprivate"])
        );
    }

    #[test]
    fn specs_carry_dockers_defaults_and_limits() {
        let create = json!({"Image": "bb", "Cmd": ["true"], "HostConfig": {
            "NanoCpus": 1_500_000_000i64, "Memory": 1 << 26, "MemorySwap": -1, "PidsLimit": 50,
            "Binds": ["/tmp:/data", "/tmp:/data"],
        }});
        let input = |c: &'static Value| SpecInput {
            id: "0123456789abcdef",
            create: c,
            image_config: &Value::Null,
            rootfs: "/r",
            user_root: "/r",
            container_dir: "/c",
            hard_nofile: Some(1024),
            cgroup_parent: "/berth",
            netns_path: None,
        };
        let c: &'static Value = Box::leak(Box::new(create));
        assert!(matches!(
            build(&input(c)),
            Err(SpecError::DuplicateMount(_))
        ));
        let ok: &'static Value = Box::leak(Box::new(json!({"Cmd": ["true"], "HostConfig": {
            "NanoCpus": 1_500_000_000i64, "Memory": 1 << 26, "MemorySwap": -1, "PidsLimit": 50,
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull"}],
        }})));
        let s = build(&input(ok)).unwrap();
        assert_eq!(
            s["linux"]["resources"]["cpu"],
            json!({"period": 100000, "quota": 150000})
        );
        assert_eq!(s["linux"]["resources"]["memory"]["swap"], -1);
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 50);
        assert_eq!(s["linux"]["devices"][0]["major"], 1);
        assert_eq!(s["linux"]["devices"][0]["minor"], 3);
        assert_eq!(s["hostname"], "0123456789ab");
        assert_eq!(s["linux"]["cgroupsPath"], "/berth/0123456789abcdef");
        assert!(
            s["linux"]["maskedPaths"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(
            s["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/etc/hosts")
        );
        let host: &'static Value = Box::leak(Box::new(
            json!({"Cmd": ["true"], "HostConfig": {"NetworkMode": "host", "Privileged": true}}),
        ));
        let s = build(&input(host)).unwrap();
        assert!(
            !s["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        );
        assert!(s["linux"].get("maskedPaths").is_none());
    }
}
