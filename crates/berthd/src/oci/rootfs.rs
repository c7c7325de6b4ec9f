//! A container's root filesystem (the overlayfs mount is berth-oci's) and the `hostname`,
//! `hosts` and `resolv.conf` files bind-mounted into it.

use std::path::{Path, PathBuf};

pub use berth_oci::rootfs::{DnsSettings, is_mounted, lower_dirs, merged, resolv_conf, unmount};

use crate::model::Error;

/// Mounts the rootfs (idempotent: an existing mount is kept); see berth-oci's `mount`.
pub fn mount(container_dir: &Path, lowers: &[PathBuf], volatile: bool) -> Result<PathBuf, Error> {
    berth_oci::rootfs::mount(container_dir, lowers, volatile)
        .map_err(|e| Error::internal(e.to_string()))
}

/// What a container's `resolv.conf` takes from its `HostConfig`: `Dns`, `DnsSearch`,
/// `DnsOptions`.
pub fn dns_settings(host_config: &berth_api::host_config::HostConfig) -> DnsSettings {
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    DnsSettings {
        servers: list(&host_config.dns),
        search: list(&host_config.dns_search),
        options: list(&host_config.dns_options),
    }
}

/// Writes `hostname`, `hosts` and `resolv.conf` for the container.
pub fn write_etc_files(
    container_dir: &Path,
    hostname: &str,
    dns: &DnsSettings,
    extra_hosts: &str,
) -> Result<(), Error> {
    let w = |name: &str, text: String| {
        let p = container_dir.join(name);
        std::fs::write(&p, text)
            .map_err(|e| Error::internal(format!("writing {}: {e}", p.display())))
    };
    w("hostname", format!("{hostname}\n"))?;
    w(
        "hosts",
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{extra_hosts}127.0.1.1\t{hostname}\n"
        ),
    )?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    w("resolv.conf", resolv_conf(&host, dns, None))
}

/// `HostConfig.ExtraHosts` (`--add-host name:ip`, or `name=ip`) as `/etc/hosts` lines, as
/// dockerd writes them; `host-gateway` is `gateway` (the default bridge's address on the host).
pub fn extra_hosts(entries: &[String], gateway: &str) -> Result<String, Error> {
    let mut out = String::new();
    for e in entries {
        let bad = || Error::invalid(format!("invalid IP address in add-host: {e:?}"));
        let (name, ip) = e
            .split_once('=')
            .or_else(|| e.split_once(':'))
            .ok_or_else(|| Error::invalid(format!("bad format for add-host: {e:?}")))?;
        let ip = match ip.trim_start_matches('[').trim_end_matches(']') {
            "host-gateway" => gateway,
            ip => ip,
        };
        ip.parse::<std::net::IpAddr>().map_err(|_| bad())?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Error::invalid(format!("bad format for add-host: {e:?}")));
        }
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    Ok(out)
}

/// The top layer (of `layers`, top first) that has an `/etc/passwd`, looked up inside each
/// layer, never through a link out of it: where the user of a create is resolved.
pub fn passwd_layer(layers: &[PathBuf]) -> Option<&PathBuf> {
    use rustix::fs::{Mode, OFlags};
    layers.iter().find(|l| {
        rustix::fs::open(*l, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .and_then(|root| {
                berth_inroot::open(
                    std::os::fd::AsFd::as_fd(&root),
                    Path::new("etc/passwd"),
                    OFlags::PATH,
                )
            })
            .is_ok()
    })
}
