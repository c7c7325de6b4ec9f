//! The container's device nodes: the default devices, `linux.devices` (anywhere in the
//! container, each path resolved inside the rootfs), and the /dev symlinks and /dev/ptmx.
//! A file already at a requested device's path must be that device, or the create fails.
//! When `mounts[]` binds something at /dev, nothing here is done at all (as runc does): that
//! /dev belongs to the host, and its nodes are never unlinked, replaced or added to.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::Context;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use rustix::fs::{AtFlags, FileType, Mode};

use crate::rootfs::{
    RootfsPlan, cstr, fd_path, mkdir_all_in_root, normal_components, touch_in_root,
};
use crate::sys;

/// Default devices every container gets (as runc): null, zero, full, random, urandom, tty.
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// One device node to make.
struct Device {
    path: PathBuf,
    kind: FileType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Listed in `linux.devices`: a different file at its path is an error. A default device
    /// replaces whatever the image has there.
    requested: bool,
}

impl Device {
    fn from_spec(d: &LinuxDevice) -> anyhow::Result<Self> {
        let kind = match d.typ() {
            LinuxDeviceType::B => FileType::BlockDevice,
            LinuxDeviceType::P => FileType::Fifo,
            LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
            LinuxDeviceType::A => anyhow::bail!("device {} has type 'a'", d.path().display()),
        };
        Ok(Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u32,
            minor: d.minor() as u32,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            requested: true,
        })
    }

    /// Whether the file with this `stat` is this device (type, and numbers unless a fifo).
    fn is(&self, st: &rustix::fs::Stat) -> bool {
        FileType::from_raw_mode(st.st_mode) == self.kind
            && (self.kind == FileType::Fifo
                || st.st_rdev == rustix::fs::makedev(self.major, self.minor))
    }
}

impl RootfsPlan<'_> {
    /// Whether `mounts[]` binds something at /dev (runc's `needsSetupDev` is false then).
    pub fn dev_is_bound(&self) -> bool {
        self.spec.mounts().iter().flatten().any(|m| {
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind");
            bind && normal_components(m.destination()) == [std::ffi::OsString::from("dev")]
        })
    }

    /// Creates the default devices and `linux.devices`, and runc's /dev symlinks and ptmx,
    /// unless /dev is a bind mount.
    pub fn create_devices(&self, root: BorrowedFd<'_>) -> anyhow::Result<()> {
        if self.dev_is_bound() {
            return Ok(());
        }
        let old = rustix::process::umask(Mode::empty());
        let result = self.create_devices_inner(root);
        rustix::process::umask(old);
        result
    }

    fn create_devices_inner(&self, root: BorrowedFd<'_>) -> anyhow::Result<()> {
        let mut devices: Vec<Device> = DEFAULT_DEVICES
            .iter()
            .map(|&(p, major, minor)| Device {
                path: PathBuf::from(p),
                kind: FileType::CharacterDevice,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
                requested: false,
            })
            .collect();
        for d in self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            devices.retain(|x| x.path != *d.path());
            devices.push(Device::from_spec(d)?);
        }
        for d in &devices {
            self.create_device(root, d)?;
        }
        let dev = mkdir_all_in_root(root, Path::new("/dev"))?;
        let links = [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ];
        for (name, target) in links {
            match rustix::fs::symlinkat(target, dev.as_fd(), name) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("creating /dev/{name}")),
            }
        }
        if Path::new("/proc/kcore").exists() {
            let _ = rustix::fs::symlinkat("/proc/kcore", dev.as_fd(), "core");
        }
        // /dev/ptmx always points at the container's own devpts instance.
        let _ = rustix::fs::unlinkat(dev.as_fd(), "ptmx", AtFlags::empty());
        rustix::fs::symlinkat("pts/ptmx", dev.as_fd(), "ptmx").context("creating /dev/ptmx")?;
        Ok(())
    }

    /// One device at its path inside the rootfs (its directories resolved in the rootfs).
    fn create_device(&self, root: BorrowedFd<'_>, d: &Device) -> anyhow::Result<()> {
        let path = &d.path;
        anyhow::ensure!(
            path.is_absolute(),
            "device path {} is not absolute",
            path.display()
        );
        let parent = mkdir_all_in_root(root, path.parent().unwrap_or(Path::new("/")))?;
        let name = path.file_name().context("device without a name")?;
        let existing = match rustix::fs::statat(parent.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
        };
        let matches = existing.as_ref().map(|st| d.is(st));
        if matches == Some(false) && d.requested {
            anyhow::bail!(
                "a file that is not the requested device already exists at device path {}",
                path.display()
            );
        }
        if self.bind_devices {
            anyhow::ensure!(
                self.new_mount_ns,
                "devices cannot be bind-mounted without a private mount namespace"
            );
            let target = touch_in_root(root, path)?;
            sys::mount(
                Some(&cstr(path)?),
                &fd_path(target.as_fd()),
                None,
                libc::MS_BIND,
                None,
            )
            .with_context(|| format!("binding device {}", path.display()))?;
            return Ok(());
        }
        if matches == Some(true) {
            // The image already has this very device: only its mode and owner are set.
            rustix::fs::chmodat(
                parent.as_fd(),
                name,
                Mode::from_raw_mode(d.mode & 0o7777),
                AtFlags::empty(),
            )
            .with_context(|| format!("chmod of device {}", path.display()))?;
        } else {
            if existing.is_some() {
                // A default device over something else of the image's: replaced, as ever.
                let _ = rustix::fs::unlinkat(parent.as_fd(), name, AtFlags::empty());
            }
            rustix::fs::mknodat(
                parent.as_fd(),
                name,
                d.kind,
                Mode::from_raw_mode(d.mode & 0o7777),
                rustix::fs::makedev(d.major, d.minor),
            )
            .with_context(|| format!("creating device {}", path.display()))?;
        }
        rustix::fs::chownat(
            parent.as_fd(),
            name,
            Some(rustix::fs::Uid::from_raw(d.uid)),
            Some(rustix::fs::Gid::from_raw(d.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("chown of device {}", path.display()))?;
        Ok(())
    }
}
