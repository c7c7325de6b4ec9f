//! `berthd`: the daemon's command line and start-up. It locks and secures its roots, starts or
//! reuses berth-containerd, rebuilds the engine's state from disk and serves the Engine API;
//! the engine and the API themselves are the `berthd` library (`lib.rs`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use berthd::api::server;
use berthd::engine::{self, Daemon, check, endpoints, events, exec, reconcile, run};
use berthd::oci::sysinfo;
use berthd::{containerd, net, volumes};

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about = "The Berth daemon: Docker Engine API server"
)]
struct Cli {
    /// Root of persistent state: images, layers, containers, volumes, metadata.
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Root of runtime state: sockets, task bundles, runtime state.
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Address to serve the Engine API on (unix://PATH).
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// Use this berth-containerd instead of starting one under the exec root.
    #[arg(long)]
    containerd: Option<String>,
    /// Registries' own CA certificates, Docker's layout: DIR/<host:port>/*.crt (a loopback
    /// registry listed there is spoken to over HTTPS).
    #[arg(long, default_value = "/etc/docker/certs.d")]
    registry_certs_dir: PathBuf,
    /// Name of the default bridge.
    #[arg(long, default_value = "berth0")]
    bridge: String,
    /// Address and prefix of the default bridge (default: the first free /16 of the pool).
    #[arg(long)]
    bip: Option<String>,
    /// Where networks get subnets from: `base=CIDR,size=PREFIX`.
    #[arg(long, default_value = "base=172.17.0.0/12,size=16")]
    default_address_pool: String,
    /// MTU of the bridges and containers' interfaces.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Parent cgroup of the containers' cgroups.
    #[arg(long, default_value = "/berth")]
    cgroup_parent: String,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// The daemon's id: random once, kept in the data root (like dockerd's engine id).
fn daemon_id(data_root: &std::path::Path) -> anyhow::Result<String> {
    let path = data_root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let mut buf = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)
        .context("reading random bytes")?;
    let id: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// One berthd per exec root: an exclusive lock on `<exec>/berthd.lock`, held until the process
/// exits. A restart waits (up to 30 s) for the previous daemon to finish its shutdown, which
/// stops its berth-containerd after its sockets are gone, instead of adopting that dying
/// containerd.
async fn lock_exec_root(exec_root: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = exec_root.join("berthd.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let try_lock = || rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive);
    if try_lock().is_ok() {
        return Ok(f);
    }
    tracing::info!(lock = %path.display(), "waiting for the previous berthd on this exec root to exit");
    for _ in 0..300 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if try_lock().is_ok() {
            return Ok(f);
        }
    }
    anyhow::bail!(
        "another berthd is running with exec root {} (it holds {})",
        exec_root.display(),
        path.display()
    )
}

fn socket_path(host: &str) -> anyhow::Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        Some(_) => Ok(PathBuf::from("/run/berth/berth.sock")),
        None if host.starts_with("tcp://") => {
            anyhow::bail!("{host}: TCP listeners are not supported yet; use unix://PATH")
        }
        None => anyhow::bail!("{host}: use unix://PATH"),
    }
}

/// Mode of the data and exec roots and the directories right below them (Docker's since
/// CVE-2021-41091): root may do anything, the roots' group only pass through (to reach the API
/// socket), every other user nothing: no planted setuid binary in a rootfs can be run, no
/// record with a container's environment read.
const ROOT_DIR_MODE: u32 = 0o710;

/// The directories right below the roots that hold containers' files and records.
const DATA_DIRS: [&str; 6] = ["containers", "volumes", "layers", "content", "meta", "tmp"];
const EXEC_DIRS: [&str; 2] = ["containers", "netns"];

/// Creates the data and exec roots, or repairs an existing one's modes: the roots and berthd's
/// directories right below them get [`ROOT_DIR_MODE`], so whatever an older version or a user
/// made more open is out of other users' reach again. (berth-containerd's and the runtime's
/// directories keep the modes they set themselves.)
fn secure_roots(data_root: &std::path::Path, exec_root: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mode = std::fs::Permissions::from_mode(ROOT_DIR_MODE);
    for (root, subdirs) in [(data_root, &DATA_DIRS[..]), (exec_root, &EXEC_DIRS[..])] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(ROOT_DIR_MODE)
            .create(root)
            .with_context(|| format!("creating {}", root.display()))?;
        std::fs::set_permissions(root, mode.clone())
            .with_context(|| format!("restricting {}", root.display()))?;
        for sub in subdirs {
            let p = root.join(sub);
            // Never through a symlink; a failure is reported, the roots already keep others out.
            let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            if is_dir {
                if let Err(e) = std::fs::set_permissions(&p, mode.clone()) {
                    tracing::warn!(path = %p.display(), error = %e, "restricting a directory");
                }
            }
        }
    }
    Ok(())
}

/// Every 10 s, returns to the system the memory the allocator keeps free after a burst of work
/// (concurrent runs left tens of MiB in glibc's thread arenas).
async fn give_back_memory() {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        let _ = tokio::task::spawn_blocking(berth_alloc::trim).await;
    }
}

/// Raises the soft limit of open descriptors to the hard one (dockerd runs with no limit of
/// its own either): every connection, container stream and layer takes some.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "raising the open file limit");
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    raise_fd_limit();
    secure_roots(&cli.data_root, &cli.exec_root)?;
    let _lock = lock_exec_root(&cli.exec_root).await?;
    let hosts = if cli.host.is_empty() {
        vec!["unix://".to_string() + &cli.exec_root.join("berth.sock").display().to_string()]
    } else {
        cli.host.clone()
    };
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for h in &hosts {
        let p = socket_path(h)?;
        listeners.push(server::bind_unix(&p).await?);
        sockets.push(p);
    }
    let data_root = cli.data_root.clone();
    let images =
        tokio::task::spawn_blocking(move || berth_image::service::ImageService::open(&data_root))
            .await?;
    let containerd = Arc::new(
        containerd::Containerd::start(cli.containerd.as_deref(), &cli.data_root, &cli.exec_root)
            .await?,
    );
    let mut net_config = network_config(&cli)?;
    net_config.forward_only_bridges = enable_forwarding(&cli.exec_root);
    let networks = Arc::new(net::Networks::open(
        &cli.data_root,
        &cli.exec_root,
        net_config,
    )?);
    let containers = engine::store::Store::open(&cli.data_root.join("containers"));
    // Again, now that the stores have made their directories.
    secure_roots(&cli.data_root, &cli.exec_root)?;
    let d = Arc::new(Daemon {
        id: daemon_id(&cli.data_root)?,
        data_root: cli.data_root.clone(),
        exec_root: cli.exec_root.clone(),
        cgroup_parent: format!("/{}", cli.cgroup_parent.trim_matches('/')),
        images,
        containers,
        runs: run::Runs::default(),
        execs: exec::Execs::default(),
        events: events::Events::default(),
        containerd,
        networks,
        volumes: volumes::Volumes::new(&cli.data_root),
        init_path: find_init(),
        registry_certs_dir: cli.registry_certs_dir.clone(),
        sysinfo: sysinfo::SysInfo::detect(),
    });
    endpoints::restore(&d).await;
    run::recover(&d).await;
    reconcile::purge_unrecorded_tasks(&d).await;
    check::sweep_at_start(&d).await;
    run::start_by_policy(&d).await;
    tokio::spawn(run::watch_events(d.clone()));
    tokio::spawn(d.containerd.clone().supervise());
    tokio::spawn(reconcile::reconcile_tasks(d.clone()));
    tokio::spawn(give_back_memory());
    for (l, p) in listeners.into_iter().zip(&sockets) {
        tracing::info!(socket = %p.display(), "serving the Engine API");
        tokio::spawn(server::serve(l, d.clone()));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    for p in &sockets {
        let _ = std::fs::remove_file(p);
    }
    // Containers keep running under their shims; our own containerd stops (when we started it).
    d.containerd.stop();
    endpoints::shutdown(&d).await;
    remove_cgroup_parent(&d.cgroup_parent);
    Ok(())
}

/// A static init for `--init`: `docker-init` next to berthd, then `docker-init` or
/// `tini-static` on PATH (Debian's tini package; a dynamic tini would not run in most images).
fn find_init() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("docker-init")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    beside
        .into_iter()
        .chain(["docker-init", "tini-static"].iter().flat_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        }))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// The network flags, checked.
/// Containers on bridges reach other hosts only through forwarding, which dockerd turns on at
/// start too (its default `--ip-forward`). Returns whether berthd is the one that turned it on
/// (now, or earlier since the host booted: a marker in the exec root, which is on the run-time
/// tmpfs on a usual host), in which case the firewall forwards only for the bridges, as
/// dockerd then sets the `FORWARD` policy to drop.
fn enable_forwarding(exec_root: &std::path::Path) -> bool {
    let marker = exec_root.join("ip-forward-enabled");
    let on =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1");
    if on {
        return marker.exists();
    }
    match berth_net::netns::sysctl("net/ipv4/ip_forward", "1") {
        Ok(()) => {
            let _ = std::fs::write(&marker, "");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "enabling IPv4 forwarding");
            false
        }
    }
}

fn network_config(cli: &Cli) -> anyhow::Result<net::Config> {
    let mut base = None;
    let mut start = None;
    let mut size = None;
    for kv in cli.default_address_pool.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => {
                base = Some(v.parse::<berth_net::ipam::Subnet>()?);
                start = v.split('/').next().and_then(|a| a.parse().ok());
            }
            Some(("size", v)) => size = v.parse::<u8>().ok(),
            _ => anyhow::bail!("--default-address-pool: expected base=CIDR,size=PREFIX"),
        }
    }
    let (Some(pool), Some(pool_prefix)) = (base, size) else {
        anyhow::bail!("--default-address-pool: expected base=CIDR,size=PREFIX");
    };
    if pool_prefix < pool.prefix() || pool_prefix > 30 {
        anyhow::bail!("--default-address-pool: size must be between the base's prefix and 30");
    }
    if cli.bridge.is_empty() || cli.bridge.len() > 15 {
        anyhow::bail!("--bridge: a device name of 1 to 15 characters");
    }
    Ok(net::Config {
        bridge: cli.bridge.clone(),
        bip: cli.bip.clone(),
        pool,
        pool_prefix,
        pool_start: start.unwrap_or(pool.network()),
        mtu: cli.mtu,
        forward_only_bridges: false,
    })
}

/// Removes the containers' parent cgroup from every hierarchy where it is empty (no
/// containers left); one that still has containers stays.
fn remove_cgroup_parent(parent: &str) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if matches!(fields.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            if let Some(mnt) = fields.get(4) {
                let _ = std::fs::remove_dir(format!("{mnt}{parent}"));
            }
        }
    }
}

fn main() -> ExitCode {
    // Returns only if executing itself again failed; the daemon then runs with the caches.
    if let Some(e) = berth_alloc::without_thread_caches() {
        eprintln!("berthd: running with glibc's thread caches ({e})");
    }
    berth_alloc::single_arena();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // Blocking pulls still running must not hold the process open.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
