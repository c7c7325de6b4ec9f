//! `berth-cri`: the Kubernetes Container Runtime Interface (CRI v1) for Berth on a unix socket,
//! for kubelet (`--container-runtime-endpoint unix:///run/berth/cri.sock`) and crictl
//! (`crictl --runtime-endpoint …`). Images, container roots and records live under `--root`
//! (its own berth-image store, not berthd's); pinned namespaces, FIFOs and berth-containerd's
//! socket under `--state`. Pods and containers run on berth-containerd (`--containerd`, or one
//! it starts), in the `k8s.io` namespace; pods join the CNI network of `--cni-conf-dir`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use berth_cri::v1::image_service_server::ImageServiceServer;
use berth_cri::v1::runtime_service_server::RuntimeServiceServer;

#[derive(Parser, Debug)]
#[command(name = "berth-cri", version, about = "Berth's Kubernetes CRI server")]
struct Cli {
    /// The socket to serve on (`unix://PATH`).
    #[arg(long, default_value = "unix:///run/berth/cri.sock")]
    address: String,
    /// Its data root (images).
    #[arg(long, default_value = "/var/lib/berth-cri")]
    root: PathBuf,
    /// Its run root (state that goes with a reboot).
    #[arg(long, default_value = "/run/berth-cri")]
    state: PathBuf,
    /// The berth-containerd to use (`unix://PATH`); else it starts its own under `--state`.
    #[arg(long)]
    containerd: Option<String>,
    /// CNI configuration directory (the first `.conflist`/`.conf` by name is used).
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// CNI plugin directory.
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_bin_dir: PathBuf,
    /// The image of the pause process that holds a pod's shared PID namespace.
    #[arg(long, default_value = "registry.k8s.io/pause:3.9")]
    sandbox_image: String,
    /// Where the streaming server (Exec, PortForward) listens; port 0 for any free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    stream_address: std::net::SocketAddr,
    /// The cgroup parent of containers whose pod names none.
    #[arg(long, default_value = "/berth-cri")]
    cgroup_parent: String,
    /// A registry's mirror, HOST=URL (repeatable): pulls of HOST's images go to URL.
    #[arg(long = "registry-mirror")]
    registry_mirror: Vec<String>,
}

/// `unix://PATH` (or a bare path) as the path.
fn socket_path(address: &str) -> anyhow::Result<PathBuf> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    anyhow::ensure!(
        path.starts_with('/'),
        "--address must be unix:///absolute/path"
    );
    Ok(PathBuf::from(path))
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    // Records, roots and FIFOs of containers: readable by root alone.
    for dir in [&cli.root, &cli.state] {
        berth_proto::private_dir(dir)?;
    }
    let mut mirrors = BTreeMap::new();
    for m in &cli.registry_mirror {
        let (host, target) = berth_cri::images::parse_mirror(m).map_err(anyhow::Error::msg)?;
        mirrors.insert(host, target);
    }
    let store = {
        let root = cli.root.clone();
        tokio::task::spawn_blocking(move || berth_image::service::ImageService::open(&root)).await?
    };
    let images = berth_cri::images::Images {
        store: Arc::new(store),
        mirrors,
        root: cli.root.clone(),
    };
    let path = socket_path(&cli.address)?;
    let streams = tokio::net::TcpListener::bind(cli.stream_address)
        .await
        .with_context(|| format!("listening on {}", cli.stream_address))?;
    let stream_addr = streams.local_addr()?;
    let lower =
        berth_cri::lower::Lower::start(cli.containerd.as_deref(), &cli.root, &cli.state).await?;
    let runtime = Arc::new(berth_cri::runtime::Runtime {
        store: berth_cri::store::Store::open(&cli.root).context("opening the records")?,
        lower,
        images: images.clone(),
        cni: berth_cri::cni::Cni {
            conf_dir: cli.cni_conf_dir.clone(),
            bin_dir: cli.cni_bin_dir.clone(),
        },
        root: cli.root.clone(),
        state: cli.state.clone(),
        sandbox_image: cli.sandbox_image.clone(),
        cgroup_parent: cli.cgroup_parent.clone(),
        logs: Default::default(),
        exited: Default::default(),
        streaming: berth_cri::streaming::Streaming::new(stream_addr),
        outputs: Default::default(),
        stdins: Default::default(),
    });
    runtime.recover().await;
    tokio::spawn(berth_cri::streaming::serve(streams, runtime.clone()));
    let listener = berth_proto::bind_unix(&path, "berth-cri").await?;
    tracing::info!(address = %path.display(), "serving the CRI");
    let shutdown = berth_proto::shutdown_signal();
    // Every connection through the relay that fixes grpc-go's socket-path authority.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let relayed = berth_cri::authority::relay(conn);
                    if tx.send(Ok::<_, std::io::Error>(relayed)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    let served = tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(berth_cri::runtime::Service(
            runtime.clone(),
        )))
        .add_service(ImageServiceServer::new(images))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(rx), shutdown)
        .await
        .context("serving");
    let _ = std::fs::remove_file(&path);
    // The containers carry on without us; the berth-containerd we started does not.
    runtime.lower.stop().await;
    served
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    berth_proto::run_daemon("berth-cri", serve(cli))
}
