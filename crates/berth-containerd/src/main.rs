//! `berth-containerd`: container and task lifecycle over gRPC. It starts one berth-shim per
//! container and rebuilds its view from disk and from live shims when it starts. It owns no
//! images. It serves the Containers, Tasks and Events services.
#![forbid(unsafe_code)]

mod containers;
mod events;
mod metrics;
mod registry;
mod shim_client;
mod store;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berth-containerd",
    version,
    about = "Container and task lifecycle over gRPC"
)]
struct Cli {
    /// Persistent state directory.
    #[arg(long, default_value = "/var/lib/berth/containerd")]
    root: PathBuf,
    /// Runtime state directory (task bundles, shim sockets).
    #[arg(long, default_value = "/run/berth")]
    state: PathBuf,
    /// gRPC socket to listen on.
    #[arg(long, default_value = "/run/berth/containerd.sock")]
    address: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    // Bundles hold containers' environments: other users may not enter.
    for dir in [&cli.root, &cli.state] {
        berth_proto::private_dir(dir)?;
    }
    let store = Arc::new(store::Store::new(&cli.root));
    let listener = berth_proto::bind_unix(&cli.address, "berth-containerd").await?;
    let publisher = events::Publisher::default();
    let registry = Arc::new(registry::Registry::new(&cli.state, publisher.clone()));
    // Before serving: every task on disk is re-attached or buried first, so no caller ever
    // sees a half-known task.
    registry.recover().await;
    tracing::info!(address = %cli.address.display(), "serving");
    let shutdown = berth_proto::shutdown_signal();
    let result = tonic::transport::Server::builder()
        .add_service(berth_proto::v1::containers_server::ContainersServer::new(
            containers::ContainersService {
                store: store.clone(),
                registry: registry.clone(),
            },
        ))
        .add_service(berth_proto::v1::tasks_server::TasksServer::new(
            tasks::TasksService { store, registry },
        ))
        .add_service(berth_proto::v1::events_server::EventsServer::new(
            events::EventsService { publisher },
        ))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown,
        )
        .await;
    let _ = std::fs::remove_file(&cli.address);
    result.context("serving gRPC")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    berth_proto::run_daemon("berth-containerd", serve(cli))
}
