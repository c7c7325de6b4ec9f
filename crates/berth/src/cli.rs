//! The command tree: Docker's top-level commands and the `container …`, `image …`, `network …`,
//! `volume …` and `system …` management forms, each holding the argument struct of the module
//! that implements it (so a flag is defined once for both spellings).

use clap::{Parser, Subcommand};

use crate::commands::{
    container_views as cv, containers as c, create, exec, images as i, inspect, networks as n, run,
    system as s, volumes as v,
};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A Docker-compatible client for berthd (and dockerd)",
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port); also BERTH_HOST, then
    /// DOCKER_HOST.
    #[arg(short = 'H', long = "host", global = true)]
    pub host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long, global = true)]
    pub tls: bool,
    /// Use TLS and verify the remote (also DOCKER_TLS_VERIFY)
    #[arg(long, global = true)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA (default $DOCKER_CERT_PATH/ca.pem)
    #[arg(long, global = true)]
    pub tlscacert: Option<String>,
    /// Path to TLS certificate file (default $DOCKER_CERT_PATH/cert.pem)
    #[arg(long, global = true)]
    pub tlscert: Option<String>,
    /// Path to TLS key file (default $DOCKER_CERT_PATH/key.pem)
    #[arg(long, global = true)]
    pub tlskey: Option<String>,
    /// Location of client config files (credentials); default ~/.docker.
    #[arg(long, global = true)]
    pub config: Option<String>,
    /// Log level (accepted for compatibility).
    #[arg(short = 'l', long = "log-level", hide = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(create::CreateArgs),
    /// Start one or more stopped containers
    Start(c::StartArgs),
    /// Stop one or more running containers
    Stop(c::StopArgs),
    /// Restart one or more containers
    Restart(c::StopArgs),
    /// Kill one or more running containers
    Kill(c::KillArgs),
    /// Remove one or more containers
    Rm(c::RmArgs),
    /// List containers
    Ps(c::PsArgs),
    /// Fetch the logs of a container
    Logs(c::LogsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(exec::AttachArgs),
    /// Return low-level information on Docker objects
    Inspect(inspect::InspectArgs),
    /// Display the running processes of a container
    Top(c::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(c::StatsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(c::Names),
    /// Pause all processes within one or more containers
    Pause(c::Names),
    /// Unpause all processes within one or more containers
    Unpause(c::Names),
    /// Rename a container
    Rename(c::RenameArgs),
    /// Update configuration of one or more containers
    Update(c::UpdateArgs),
    /// List port mappings or a specific mapping for the container
    Port(c::PortArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(c::One),
    /// Create a new image from a container's changes
    Commit(cv::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(c::ExportArgs),
    /// Copy files between a container and the local filesystem (tar streams: `-` as one side)
    Cp(c::CpArgs),
    /// Get real time events from the server
    Events(s::EventsArgs),
    /// List images
    Images(i::ImagesArgs),
    /// Download an image from a registry
    Pull(i::PullArgs),
    /// Upload an image to a registry
    Push(i::PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(i::TagArgs),
    /// Remove one or more images
    Rmi(i::RmiArgs),
    /// Save one or more images to a tar archive
    Save(i::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(i::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(i::ImportArgs),
    /// Build an image from a Dockerfile
    Build(i::BuildArgs),
    /// Show the history of an image
    History(i::HistoryArgs),
    /// Log in to a registry
    Login(i::LoginArgs),
    /// Log out from a registry
    Logout(i::LogoutArgs),
    /// Show the Docker version information
    Version(s::VersionArgs),
    /// Display system-wide information
    Info(s::InfoArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(n::NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(v::VolumeCmd),
    /// Manage Docker
    #[command(subcommand)]
    System(s::SystemCmd),
    /// Generate shell completions (bash, zsh, fish)
    Completion(s::CompletionArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ContainerCmd {
    Run(run::RunArgs),
    Create(create::CreateArgs),
    Start(c::StartArgs),
    Stop(c::StopArgs),
    Restart(c::StopArgs),
    Kill(c::KillArgs),
    #[command(alias = "remove")]
    Rm(c::RmArgs),
    #[command(alias = "list", alias = "ps")]
    Ls(c::PsArgs),
    Logs(c::LogsArgs),
    Exec(exec::ExecArgs),
    Attach(exec::AttachArgs),
    Inspect(inspect::ObjectInspectArgs),
    Top(c::TopArgs),
    Stats(c::StatsArgs),
    Wait(c::Names),
    Pause(c::Names),
    Unpause(c::Names),
    Rename(c::RenameArgs),
    Update(c::UpdateArgs),
    Port(c::PortArgs),
    Diff(c::One),
    Commit(cv::CommitArgs),
    Export(c::ExportArgs),
    Cp(c::CpArgs),
    /// Remove all stopped containers
    Prune(c::PruneArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ImageCmd {
    #[command(alias = "list")]
    Ls(i::ImagesArgs),
    Pull(i::PullArgs),
    Push(i::PushArgs),
    Tag(i::TagArgs),
    #[command(alias = "remove")]
    Rm(i::RmiArgs),
    Save(i::SaveArgs),
    Load(i::LoadArgs),
    Import(i::ImportArgs),
    Build(i::BuildArgs),
    History(i::HistoryArgs),
    Inspect(inspect::ObjectInspectArgs),
    /// Remove unused images
    Prune(i::PruneArgs),
}

impl ContainerCmd {
    /// The top-level command this one is another spelling of.
    pub fn into_command(self) -> Result<Command, c::PruneArgs> {
        Ok(match self {
            ContainerCmd::Run(a) => Command::Run(a),
            ContainerCmd::Create(a) => Command::Create(a),
            ContainerCmd::Start(a) => Command::Start(a),
            ContainerCmd::Stop(a) => Command::Stop(a),
            ContainerCmd::Restart(a) => Command::Restart(a),
            ContainerCmd::Kill(a) => Command::Kill(a),
            ContainerCmd::Rm(a) => Command::Rm(a),
            ContainerCmd::Ls(a) => Command::Ps(a),
            ContainerCmd::Logs(a) => Command::Logs(a),
            ContainerCmd::Exec(a) => Command::Exec(a),
            ContainerCmd::Attach(a) => Command::Attach(a),
            ContainerCmd::Inspect(a) => Command::Inspect(a.with_type("container")),
            ContainerCmd::Top(a) => Command::Top(a),
            ContainerCmd::Stats(a) => Command::Stats(a),
            ContainerCmd::Wait(a) => Command::Wait(a),
            ContainerCmd::Pause(a) => Command::Pause(a),
            ContainerCmd::Unpause(a) => Command::Unpause(a),
            ContainerCmd::Rename(a) => Command::Rename(a),
            ContainerCmd::Update(a) => Command::Update(a),
            ContainerCmd::Port(a) => Command::Port(a),
            ContainerCmd::Diff(a) => Command::Diff(a),
            ContainerCmd::Commit(a) => Command::Commit(a),
            ContainerCmd::Export(a) => Command::Export(a),
            ContainerCmd::Cp(a) => Command::Cp(a),
            ContainerCmd::Prune(a) => return Err(a),
        })
    }
}

impl ImageCmd {
    /// The top-level command this one is another spelling of.
    pub fn into_command(self) -> Result<Command, i::PruneArgs> {
        Ok(match self {
            ImageCmd::Ls(a) => Command::Images(a),
            ImageCmd::Pull(a) => Command::Pull(a),
            ImageCmd::Push(a) => Command::Push(a),
            ImageCmd::Tag(a) => Command::Tag(a),
            ImageCmd::Rm(a) => Command::Rmi(a),
            ImageCmd::Save(a) => Command::Save(a),
            ImageCmd::Load(a) => Command::Load(a),
            ImageCmd::Import(a) => Command::Import(a),
            ImageCmd::Build(a) => Command::Build(a),
            ImageCmd::History(a) => Command::History(a),
            ImageCmd::Inspect(a) => Command::Inspect(a.with_type("image")),
            ImageCmd::Prune(a) => return Err(a),
        })
    }
}
