//! runc's command line: global options and commands, with the flags its callers (containerd,
//! dockerd through containerd, podman through conmon) pass.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default state root, under Berth's default exec root.
pub const DEFAULT_ROOT: &str = "/run/berth/runc";

#[derive(Parser, Debug)]
#[command(
    name = "berth-runc",
    about = "An OCI runtime, drop-in for runc",
    disable_version_flag = true,
    override_usage = "berth-runc [global options] command [command options] [arguments...]"
)]
pub struct Cli {
    /// Root directory for storage of container state (tmpfs is best).
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", default_value = "text")]
    pub log_format: LogFormat,
    /// Enable debug logging.
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: cgroupfs only).
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Ignored: rootless mode is detected from the spec's user namespace.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Ignored (checkpointing is not supported).
    #[arg(long, hide = true)]
    pub criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory (default: the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to receive the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot after moving the rootfs to / instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra file descriptors (from 3) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Create a container, ready to start.
    Create(CreateArgs),
    /// Start the user process of a created container.
    Start { id: String },
    /// Create and start a container, then wait for it (or return with --detach).
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or to all its processes.
    Kill {
        /// Send the signal to every process in the container's cgroup.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container's resources.
    Delete {
        /// Kill the container first if it is running.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// List the processes of a container.
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: ListFormat,
        id: String,
        /// Options for the host's ps(1) (`-ef` without any); only the container's lines are shown.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List the containers under --root.
    List {
        #[arg(short = 'f', long, default_value = "table")]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Suspend every process of a container (cgroup freezer).
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// Update a container's resource limits.
    Update(UpdateArgs),
    /// Show container events; with --stats, one stats record.
    Events {
        #[arg(long)]
        stats: bool,
        /// Interval between stats (ignored with --stats).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the features this runtime supports (OCI features JSON).
    Features,
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// Write a spec for a rootless container.
        #[arg(long)]
        rootless: bool,
    },
    /// Print the version.
    Version,
    /// Not supported: checkpointing needs CRIU.
    Checkpoint {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Not supported: restoring needs CRIU.
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Path to a process.json (an OCI process object).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Current working directory in the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set environment variables (KEY=VALUE).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID[:GID] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding set.
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Detach from the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Ignored (SELinux is not supported on this host).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Ignored (AppArmor is not supported on this host).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Sub-cgroup to join (v2): refused, berth-runc does not support it.
    #[arg(long)]
    pub cgroup: Vec<String>,
    pub id: String,
    /// The command and its arguments (when --process is not given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Resources as OCI LinuxResources JSON; `-` reads stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    pub id: String,
}

/// runc (urfave/cli) also accepts single-dash long options (`-root`); rewrite the known ones.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    const LONG: [&str; 12] = [
        "root",
        "log",
        "log-format",
        "debug",
        "systemd-cgroup",
        "rootless",
        "criu",
        "bundle",
        "pid-file",
        "console-socket",
        "detach",
        "force",
    ];
    args.into_iter()
        .map(|a| match a.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') => {
                let name = rest.split('=').next().unwrap_or(rest);
                if LONG.contains(&name) {
                    format!("-{a}")
                } else {
                    a
                }
            }
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn single_dash_long_options_are_accepted() {
        let args =
            normalize_args(["berth-runc", "-root", "/x", "delete", "-f", "id"].map(String::from));
        let cli = Cli::try_parse_from(args).unwrap();
        assert_eq!(cli.root, PathBuf::from("/x"));
        assert!(matches!(
            cli.command,
            Some(Command::Delete { force: true, .. })
        ));
    }

    #[test]
    fn containerd_style_create() {
        let cli = Cli::try_parse_from([
            "berth-runc",
            "--root",
            "/run/r",
            "--log",
            "/tmp/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "abc",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let Some(Command::Create(c)) = cli.command else {
            panic!("not create")
        };
        assert_eq!((c.id.as_str(), c.bundle.to_str()), ("abc", Some("/b")));
    }

    #[test]
    fn exec_takes_trailing_command() {
        let cli =
            Cli::try_parse_from(["berth-runc", "exec", "-t", "abc", "sh", "-c", "ls -l"]).unwrap();
        let Some(Command::Exec(e)) = cli.command else {
            panic!("not exec")
        };
        assert!(e.tty);
        assert_eq!(e.command, ["sh", "-c", "ls -l"]);
    }
}
