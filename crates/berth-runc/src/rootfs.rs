//! The container's root filesystem: propagation, the bind of `root.path`, every `mounts[]`
//! entry, devices and /dev symlinks, pivot_root (or chroot with --no-pivot), the requested
//! `rootfsPropagation` on the new /, then masked and read-only paths and a read-only root.
//! Without a mount namespace of its own the container only gets devices and a chroot: nothing
//! is mounted in the caller's mount namespace. Every destination is resolved inside the rootfs with
//! openat2(RESOLVE_IN_ROOT) and mounted through its O_PATH descriptor, so a symlink in the image
//! (or one swapped in during setup) can never send a mount outside the container.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use oci_spec::runtime::{Mount, Spec};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::sys;

const MS_RDONLY: libc::c_ulong = libc::MS_RDONLY;
const MS_BIND: libc::c_ulong = libc::MS_BIND;
const MS_REC: libc::c_ulong = libc::MS_REC;
const MS_REMOUNT: libc::c_ulong = libc::MS_REMOUNT;

/// Mount options of `mounts[].options`: flags set, flags cleared, propagation, and fs data.
#[derive(Debug, Default, PartialEq)]
pub struct MountOptions {
    pub set: libc::c_ulong,
    pub clear: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub data: Vec<String>,
    /// Recursive attributes (`rro`, `rnosuid`...): applied to the mount and every mount below
    /// it with `mount_setattr(AT_RECURSIVE)`.
    pub recursive: sys::MountAttr,
}

/// The recursive option `opt` (`rro`, `rnoexec`...) as (attributes set, attributes cleared).
fn recursive_option(opt: &str) -> Option<(u64, u64)> {
    use sys::mount_attr as a;
    Some(match opt {
        "rro" => (a::RDONLY, 0),
        "rrw" => (0, a::RDONLY),
        "rnosuid" => (a::NOSUID, 0),
        "rsuid" => (0, a::NOSUID),
        "rnodev" => (a::NODEV, 0),
        "rdev" => (0, a::NODEV),
        "rnoexec" => (a::NOEXEC, 0),
        "rexec" => (0, a::NOEXEC),
        "rnodiratime" => (a::NODIRATIME, 0),
        "rdiratime" => (0, a::NODIRATIME),
        "rnosymfollow" => (a::NOSYMFOLLOW, 0),
        "rsymfollow" => (0, a::NOSYMFOLLOW),
        // The access-time modes are one field: setting one clears the others.
        "rrelatime" => (a::RELATIME, a::ATIME_MASK),
        "rnoatime" => (a::NOATIME, a::ATIME_MASK),
        "rstrictatime" => (a::STRICTATIME, a::ATIME_MASK),
        // Their negations pick the mode they leave: the kernel's default (relatime) after
        // `ratime` and `rnostrictatime`, and an always-updated access time after `rnorelatime`.
        // (The kernel refuses to clear only part of the access-time field.)
        "ratime" | "rnostrictatime" => (a::RELATIME, a::ATIME_MASK),
        "rnorelatime" => (a::STRICTATIME, a::ATIME_MASK),
        _ => return None,
    })
}

impl MountOptions {
    pub fn parse(options: &[String]) -> anyhow::Result<Self> {
        let mut o = MountOptions::default();
        for opt in options {
            let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
                "ro" => (MS_RDONLY, 0),
                "rw" => (0, MS_RDONLY),
                "nosuid" => (libc::MS_NOSUID, 0),
                "suid" => (0, libc::MS_NOSUID),
                "nodev" => (libc::MS_NODEV, 0),
                "dev" => (0, libc::MS_NODEV),
                "noexec" => (libc::MS_NOEXEC, 0),
                "exec" => (0, libc::MS_NOEXEC),
                "sync" => (libc::MS_SYNCHRONOUS, 0),
                "async" => (0, libc::MS_SYNCHRONOUS),
                "dirsync" => (libc::MS_DIRSYNC, 0),
                "remount" => (MS_REMOUNT, 0),
                "mand" => (libc::MS_MANDLOCK, 0),
                "nomand" => (0, libc::MS_MANDLOCK),
                "atime" => (0, libc::MS_NOATIME),
                "noatime" => (libc::MS_NOATIME, 0),
                "diratime" => (0, libc::MS_NODIRATIME),
                "nodiratime" => (libc::MS_NODIRATIME, 0),
                "relatime" => (libc::MS_RELATIME, 0),
                "norelatime" => (0, libc::MS_RELATIME),
                "strictatime" => (libc::MS_STRICTATIME, 0),
                "nostrictatime" => (0, libc::MS_STRICTATIME),
                "bind" => (MS_BIND, 0),
                "rbind" => (MS_BIND | MS_REC, 0),
                "silent" => (libc::MS_SILENT, 0),
                "loud" => (0, libc::MS_SILENT),
                "defaults" => continue,
                "iversion" => (libc::MS_I_VERSION, 0),
                "noiversion" => (0, libc::MS_I_VERSION),
                "lazytime" => (libc::MS_LAZYTIME, 0),
                "nolazytime" => (0, libc::MS_LAZYTIME),
                "nosymfollow" => (libc::MS_NOSYMFOLLOW, 0),
                "symfollow" => (0, libc::MS_NOSYMFOLLOW),
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    let base = match opt.trim_start_matches('r') {
                        "private" => libc::MS_PRIVATE,
                        "shared" => libc::MS_SHARED,
                        "slave" => libc::MS_SLAVE,
                        _ => libc::MS_UNBINDABLE,
                    };
                    let rec = if opt.starts_with('r') { MS_REC } else { 0 };
                    o.propagation.push(base | rec);
                    continue;
                }
                "tmpcopyup" => {
                    anyhow::bail!(
                        "mount option \"tmpcopyup\" (copying the image's files into a tmpfs) is not supported"
                    )
                }
                r if recursive_option(r).is_some() => {
                    let (set, clear) = recursive_option(r).unwrap_or_default();
                    let rec = &mut o.recursive;
                    rec.attr_set = (rec.attr_set & !clear) | set;
                    rec.attr_clr = (rec.attr_clr & !set) | clear;
                    continue;
                }
                "idmap" | "ridmap" => {
                    anyhow::bail!("mount option {opt:?} (id-mapped mounts) is not supported")
                }
                other => {
                    anyhow::ensure!(!other.contains('\n'), "invalid mount option {other:?}");
                    o.data.push(other.to_string());
                    continue;
                }
            };
            o.set = (o.set | set) & !clear;
            o.clear |= clear;
        }
        Ok(o)
    }

    fn data_cstring(&self) -> anyhow::Result<Option<CString>> {
        if self.data.is_empty() {
            return Ok(None);
        }
        Ok(Some(CString::new(self.data.join(","))?))
    }
}

/// `/proc/self/fd/N` for an open descriptor: mounting on it mounts on what the fd resolved to.
pub fn fd_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

pub(crate) fn cstr(p: &Path) -> anyhow::Result<CString> {
    Ok(CString::new(p.as_os_str().as_encoded_bytes())?)
}

/// Opens `path` (absolute, in container terms) inside `root` with O_PATH, never leaving it.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> rustix::io::Result<OwnedFd> {
    berth_inroot::open(root, path, OFlags::PATH)
}

/// Creates every missing directory of `path` inside `root` (mkdir -p that cannot escape) and
/// returns an O_PATH descriptor of the last one. A dangling symlink on the way is followed the
/// way the container would see it: its target is created inside the rootfs.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path) -> anyhow::Result<OwnedFd> {
    let mut todo: Vec<std::ffi::OsString> = normal_components(path);
    todo.reverse();
    let mut prefix = PathBuf::from("/");
    let mut fd = open_in_root(root, &prefix).context("opening the rootfs")?;
    let mut links = 0;
    while let Some(name) = todo.pop() {
        let next = prefix.join(&name);
        match open_in_root(root, &next) {
            Ok(f) => {
                fd = f;
                prefix = next;
                continue;
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", next.display())),
        }
        match rustix::fs::mkdirat(fd.as_fd(), name.as_os_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                // A dangling symlink: continue from its target, resolved inside the rootfs.
                let target = rustix::fs::readlinkat(fd.as_fd(), name.as_os_str(), Vec::new())
                    .with_context(|| format!("reading the symlink {}", next.display()))?;
                links += 1;
                anyhow::ensure!(
                    links <= 40,
                    "too many levels of symbolic links in {}",
                    path.display()
                );
                let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.to_bytes()));
                let base = if target.is_absolute() {
                    PathBuf::from("/")
                } else {
                    prefix.clone()
                };
                let mut rest = normal_components(&base.join(&target));
                rest.reverse();
                todo.extend(rest);
                prefix = PathBuf::from("/");
                fd = open_in_root(root, &prefix).context("opening the rootfs")?;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", next.display())),
        }
        fd = open_in_root(root, &next).with_context(|| format!("opening {}", next.display()))?;
        prefix = next;
    }
    anyhow::ensure!(is_dir(fd.as_fd())?, "{} is not a directory", path.display());
    Ok(fd)
}

/// The normal components of a path, with `..` applied lexically (never above the root).
pub(crate) fn normal_components(path: &Path) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Creates (if missing) the regular file `path` inside `root` and returns an O_PATH fd of it.
pub(crate) fn touch_in_root(root: BorrowedFd<'_>, path: &Path) -> anyhow::Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path) {
        return Ok(fd);
    }
    let parent = mkdir_all_in_root(root, path.parent().unwrap_or(Path::new("/")))?;
    let name = path
        .file_name()
        .context("mount destination has no file name")?;
    match rustix::fs::openat(
        parent.as_fd(),
        name,
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o755),
    ) {
        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    open_in_root(root, path).with_context(|| format!("opening {}", path.display()))
}

/// Everything done to the rootfs before pivot_root, in the container's new mount namespace.
pub struct RootfsPlan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    /// The container's cgroup directories (controller, host dir) for a `cgroup` mount on v1.
    pub cgroup_dirs: Vec<(String, PathBuf)>,
    pub cgroup_v2: bool,
    /// Devices are bind-mounted from the host instead of mknod (user namespaces).
    pub bind_devices: bool,
    /// The container has a mount namespace of its own. Without one (the caller's is inherited)
    /// nothing is mounted at all: `create` refused every setting that needs a mount.
    pub new_mount_ns: bool,
}

impl RootfsPlan<'_> {
    /// `rootfsPropagation` as mount flags (`MS_SHARED`, `MS_SLAVE|MS_REC`...), `None` if unset.
    pub fn propagation(&self) -> anyhow::Result<Option<libc::c_ulong>> {
        let linux = self.spec.linux().as_ref();
        match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            None | Some("") => Ok(None),
            Some(p) => {
                let o = MountOptions::parse(&[p.to_string()])?;
                let prop = o.propagation.first().copied();
                anyhow::ensure!(
                    prop.is_some() && o.propagation.len() == 1,
                    "invalid rootfsPropagation {p:?}"
                );
                Ok(prop)
            }
        }
    }

    /// Propagation of / and the bind of the rootfs onto itself; returns an fd of the rootfs.
    /// In a mount namespace shared with the caller nothing is mounted: the rootfs is only opened.
    pub fn prepare(&self) -> anyhow::Result<OwnedFd> {
        if self.new_mount_ns {
            // Every mount of the new namespace stops propagating to the host first, recursively,
            // so nothing made later reaches it; the requested propagation is applied to the
            // container's own / after pivot_root (shared there is not shared with the host).
            let prop = self.propagation()?.unwrap_or(libc::MS_SLAVE | MS_REC);
            let host_prop = if prop & libc::MS_PRIVATE != 0 {
                libc::MS_PRIVATE | MS_REC
            } else {
                libc::MS_SLAVE | MS_REC
            };
            sys::mount(None, c"/", None, host_prop, None)
                .context("setting the propagation of /")?;
            // pivot_root refuses a new root whose parent mount is shared.
            make_parent_private(self.rootfs)?;
            let rootfs = cstr(self.rootfs)?;
            sys::mount(Some(&rootfs), &rootfs, None, MS_BIND | MS_REC, None)
                .with_context(|| format!("bind-mounting the rootfs {}", self.rootfs.display()))?;
        }
        let fd = rustix::fs::open(
            self.rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening the rootfs {}", self.rootfs.display()))?;
        Ok(fd)
    }

    /// Switches the root to the rootfs, then gives the new / the requested propagation. With
    /// a new mount namespace: pivot_root, or with `no_pivot` a move onto / and chroot. In the
    /// caller's mount namespace: only chroot (pivot_root would re-root every process there).
    pub fn switch_root(&self, rootfs: BorrowedFd<'_>, no_pivot: bool) -> anyhow::Result<()> {
        rustix::process::fchdir(rootfs).context("entering the rootfs")?;
        if !self.new_mount_ns {
            rustix::process::chroot(".").context("chroot into the rootfs")?;
            rustix::process::chdir("/").context("chdir to the new root")?;
            return Ok(());
        }
        if no_pivot {
            sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)
                .context("moving the rootfs to /")?;
            rustix::process::chroot(".").context("chroot into the rootfs")?;
        } else {
            rustix::process::pivot_root(".", ".").context("pivot_root")?;
            // The old root now sits on top of the new one: detach it without touching the host.
            sys::mount(None, c".", None, libc::MS_SLAVE | MS_REC, None)
                .context("making the old root slave")?;
            rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
                .context("detaching the old root")?;
        }
        rustix::process::chdir("/").context("chdir to the new root")?;
        if let Some(prop) = self.propagation()? {
            sys::mount(None, c"/", None, prop, None)
                .context("setting the rootfsPropagation of the container's /")?;
        }
        Ok(())
    }

    /// Performs every `mounts[]` entry inside the rootfs.
    pub fn mount_all(&self, root: BorrowedFd<'_>) -> anyhow::Result<()> {
        let mounts = self.spec.mounts().as_deref().unwrap_or(&[]);
        anyhow::ensure!(
            self.new_mount_ns || mounts.is_empty(),
            "mounts need a private mount namespace"
        );
        for m in self.spec.mounts().iter().flatten() {
            self.mount_one(root, m)
                .with_context(|| format!("mounting {}", m.destination().display()))?;
        }
        Ok(())
    }

    fn mount_one(&self, root: BorrowedFd<'_>, m: &Mount) -> anyhow::Result<()> {
        let dest = m.destination();
        anyhow::ensure!(
            dest.is_absolute(),
            "mount destination {} is not absolute",
            dest.display()
        );
        let opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]))?;
        let typ = m.typ().as_deref().unwrap_or("");
        let is_bind = opts.set & MS_BIND != 0 || typ == "bind";
        if is_bind {
            let source = m.source().as_ref().context("bind mount without a source")?;
            let src_meta = std::fs::metadata(source)
                .with_context(|| format!("bind source {} does not exist", source.display()))?;
            let target = if src_meta.is_dir() {
                mkdir_all_in_root(root, dest)?
            } else {
                touch_in_root(root, dest)?
            };
            let tpath = fd_path(target.as_fd());
            let rec = opts.set & MS_REC;
            sys::mount(Some(&cstr(source)?), &tpath, None, MS_BIND | rec, None)
                .with_context(|| format!("binding {}", source.display()))?;
            let wanted = opts.set & !(MS_BIND | MS_REC | MS_REMOUNT);
            if wanted != 0 {
                // Re-open: the fd still names the covered directory, not the new mount.
                let target = open_in_root(root, dest)?;
                let tpath = fd_path(target.as_fd());
                remount_bind(&tpath, wanted)?;
            }
            for p in &opts.propagation {
                let target = open_in_root(root, dest)?;
                sys::mount(None, &fd_path(target.as_fd()), None, *p, None)?;
            }
            return apply_recursive(root, dest, &opts);
        }
        if typ == "cgroup" {
            return self.mount_cgroup(root, dest, &opts);
        }
        let target = mkdir_all_in_root(root, dest)?;
        if typ == "proc" || typ == "sysfs" {
            // /proc and /sys must be real directories of the image, reached through no symlink
            // at all (CVE-2019-19921, CVE-2023-27561).
            let direct = rustix::fs::openat2(
                root,
                dest,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS,
            );
            anyhow::ensure!(
                direct.is_ok(),
                "{} is a symlink or lies under one: refusing to mount {typ} there",
                dest.display()
            );
        }
        let source = CString::new(
            m.source()
                .as_ref()
                .map(|s| s.as_os_str().as_encoded_bytes())
                .unwrap_or(typ.as_bytes()),
        )?;
        let fstype = CString::new(typ)?;
        let data = opts.data_cstring()?;
        let flags = opts.set & !MS_REMOUNT;
        let tpath = fd_path(target.as_fd());
        match sys::mount(Some(&source), &tpath, Some(&fstype), flags, data.as_deref()) {
            Ok(()) => {}
            // In a user namespace sysfs/mqueue may be refused: fall back to the host's (as runc).
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM) && (typ == "sysfs" || typ == "mqueue") =>
            {
                let host = if typ == "sysfs" {
                    c"/sys"
                } else {
                    c"/dev/mqueue"
                };
                sys::mount(Some(host), &tpath, None, MS_BIND | MS_REC, None)?;
                let target = open_in_root(root, dest)?;
                remount_bind(&fd_path(target.as_fd()), flags)?;
            }
            Err(e) => return Err(e).with_context(|| format!("{typ} on {}", dest.display())),
        }
        for p in &opts.propagation {
            let target = open_in_root(root, dest)?;
            sys::mount(None, &fd_path(target.as_fd()), None, *p, None)?;
        }
        apply_recursive(root, dest, &opts)
    }

    /// A `cgroup` mount: cgroup2 directly on v2; on v1 a tmpfs with the container's own cgroup
    /// directory of each controller bound in, and of the cgroup2 hierarchy at `unified` on a
    /// hybrid host (read-only when asked).
    fn mount_cgroup(
        &self,
        root: BorrowedFd<'_>,
        dest: &Path,
        opts: &MountOptions,
    ) -> anyhow::Result<()> {
        let target = mkdir_all_in_root(root, dest)?;
        let flags = opts.set & !(MS_REMOUNT | MS_BIND | MS_REC);
        if self.cgroup_v2 {
            return sys::mount(
                Some(c"cgroup2"),
                &fd_path(target.as_fd()),
                Some(c"cgroup2"),
                flags,
                None,
            )
            .context("mounting cgroup2");
        }
        sys::mount(
            Some(c"tmpfs"),
            &fd_path(target.as_fd()),
            Some(c"tmpfs"),
            flags & !MS_RDONLY,
            Some(c"mode=755"),
        )
        .context("mounting the cgroup tmpfs")?;
        for (controller, dir) in &self.cgroup_dirs {
            // A hybrid host's cgroup2 hierarchy (no controller name) goes at `unified`, as
            // runc mounts it; at the top it would cover every v1 controller.
            let name = match controller.as_str() {
                "" => "unified",
                c => c,
            };
            let sub = dest.join(name);
            let fd = mkdir_all_in_root(root, &sub)?;
            let p = fd_path(fd.as_fd());
            sys::mount(Some(&cstr(dir)?), &p, None, MS_BIND, None)
                .with_context(|| format!("binding the {controller} cgroup"))?;
            let fd = open_in_root(root, &sub)?;
            remount_bind(&fd_path(fd.as_fd()), flags)?;
        }
        if flags & MS_RDONLY != 0 {
            let fd = open_in_root(root, dest)?;
            remount_bind(&fd_path(fd.as_fd()), flags)
                .context("making the cgroup tmpfs read-only")?;
        }
        Ok(())
    }
}

/// The recursive attributes of `opts` on the mount at `dest` and every mount below it. A
/// kernel without `mount_setattr` (before 5.12) cannot do it: the create fails, as runc's.
fn apply_recursive(root: BorrowedFd<'_>, dest: &Path, opts: &MountOptions) -> anyhow::Result<()> {
    if opts.recursive.attr_set == 0 && opts.recursive.attr_clr == 0 {
        return Ok(());
    }
    let target = open_in_root(root, dest)?;
    sys::mount_setattr_recursive(target.as_fd(), &opts.recursive).with_context(|| {
        format!(
            "applying recursive mount options to {} (mount_setattr needs Linux 5.12 or later)",
            dest.display()
        )
    })
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locked on it (nosuid,
/// nodev, noexec, ro inherited from a more privileged mount namespace).
fn remount_bind(target: &CStr, flags: libc::c_ulong) -> anyhow::Result<()> {
    let base = MS_BIND | MS_REMOUNT;
    match sys::mount(None, target, None, base | flags, None) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = sys::mount_flags_of(target)?
                & (libc::ST_NOSUID | libc::ST_NODEV | libc::ST_NOEXEC | libc::ST_RDONLY);
            // ST_* and MS_* agree for these four bits.
            sys::mount(None, target, None, base | flags | locked, None)
                .context("remounting a bind mount")
        }
        Err(e) => Err(e).context("remounting a bind mount"),
    }
}

/// Makes the mount holding `rootfs` private if it is shared (in the container's new mount
/// namespace, before the rootfs is bound onto itself): pivot_root fails with EINVAL otherwise.
fn make_parent_private(rootfs: &Path) -> anyhow::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape_mountinfo(mount_point));
        if !rootfs.starts_with(&mp) {
            continue;
        }
        // Later lines are mounted later: an equal mount point replaces an earlier one.
        if best
            .as_ref()
            .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            let optional = fields.iter().skip(6).take_while(|f| **f != "-");
            let shared = optional.clone().any(|f| f.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    match best {
        Some((mp, true)) => sys::mount(None, &cstr(&mp)?, None, libc::MS_PRIVATE, None)
            .with_context(|| format!("making {} private", mp.display())),
        _ => Ok(()),
    }
}

/// A mountinfo path with its octal escapes (`\040` for a space...) decoded.
fn unescape_mountinfo(s: &str) -> std::ffi::OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsStr::from_bytes(&out).to_os_string()
}

/// An O_PATH descriptor of the current root (after pivot_root: the container's).
fn open_root() -> anyhow::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open("/", flags, Mode::empty()).context("opening /")
}

/// `open_in_root` for paths that may be absent (masked and read-only paths are optional).
fn open_if_present(root: BorrowedFd<'_>, p: &str, what: &str) -> anyhow::Result<Option<OwnedFd>> {
    match open_in_root(root, Path::new(p)) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {what} {p}")),
    }
}

/// Whether an open file is a directory.
fn is_dir(fd: BorrowedFd<'_>) -> anyhow::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory)
}

/// Masks paths (after pivot_root): a read-only tmpfs over directories, /dev/null bound over
/// files. /dev/null is checked to be the real null device first (CVE-2025-31133).
pub fn mask_paths(paths: &[String]) -> anyhow::Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = open_root()?;
    let null = rustix::fs::open(
        "/dev/null",
        OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .context("opening /dev/null")?;
    let st = rustix::fs::fstat(&null)?;
    anyhow::ensure!(
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
            && rustix::fs::major(st.st_rdev) == 1
            && rustix::fs::minor(st.st_rdev) == 3,
        "/dev/null is not the null device: refusing to mask paths with it"
    );
    for p in paths {
        let Some(fd) = open_if_present(root.as_fd(), p, "masked path")? else {
            continue;
        };
        let target = fd_path(fd.as_fd());
        let r = if is_dir(fd.as_fd())? {
            sys::mount(Some(c"tmpfs"), &target, Some(c"tmpfs"), MS_RDONLY, None)
        } else {
            sys::mount(Some(&fd_path(null.as_fd())), &target, None, MS_BIND, None)
        };
        r.with_context(|| format!("masking {p}"))?;
    }
    Ok(())
}

/// Makes paths read-only (after pivot_root): bind each onto itself, then remount read-only.
pub fn readonly_paths(paths: &[String]) -> anyhow::Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = open_root()?;
    for p in paths {
        let Some(fd) = open_if_present(root.as_fd(), p, "read-only path")? else {
            continue;
        };
        let target = fd_path(fd.as_fd());
        sys::mount(Some(&target), &target, None, MS_BIND | MS_REC, None)
            .with_context(|| format!("binding read-only path {p}"))?;
        let fd = open_in_root(root.as_fd(), Path::new(p))?;
        remount_bind(
            &fd_path(fd.as_fd()),
            MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )
        .with_context(|| format!("making {p} read-only"))?;
    }
    Ok(())
}

/// Remounts the container's root read-only.
pub fn readonly_root() -> anyhow::Result<()> {
    remount_bind(c"/", MS_RDONLY).context("making the root read-only")
}

/// Writes `linux.sysctl` after checking that /proc/sys is a real procfs (CVE-2019-16884).
pub fn write_sysctls(sysctl: &std::collections::HashMap<String, String>) -> anyhow::Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let dir = rustix::fs::open(
        "/proc/sys",
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .context("opening /proc/sys")?;
    let fs = rustix::fs::fstatfs(&dir)?;
    anyhow::ensure!(
        fs.f_type == libc::PROC_SUPER_MAGIC,
        "/proc/sys is not procfs"
    );
    for (key, value) in sysctl {
        let rel = key.replace('.', "/");
        anyhow::ensure!(
            !rel.split('/').any(|c| c == ".." || c.is_empty()),
            "invalid sysctl {key:?}"
        );
        let fd = rustix::fs::openat2(
            &dir,
            rel.as_str(),
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .with_context(|| format!("opening sysctl {key}"))?;
        rustix::io::write(&fd, value.as_bytes())
            .with_context(|| format!("writing sysctl {key}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(o: &[&str]) -> MountOptions {
        MountOptions::parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn options_map_to_flags_and_data() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.set, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = parse(&["rbind", "ro", "rprivate"]);
        assert_eq!(o.set, MS_BIND | MS_REC | MS_RDONLY);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | MS_REC]);
        let o = parse(&["ro", "rw"]);
        assert_eq!(o.set & MS_RDONLY, 0);
        assert_eq!(parse(&["slave"]).propagation, vec![libc::MS_SLAVE]);
        assert_eq!(
            parse(&["rslave"]).propagation,
            vec![libc::MS_SLAVE | MS_REC]
        );
        let o = parse(&["defaults", "iversion", "lazytime", "nosymfollow"]);
        assert!(o.data.is_empty(), "never fs data: {:?}", o.data);
        assert_eq!(
            o.set,
            libc::MS_I_VERSION | libc::MS_LAZYTIME | libc::MS_NOSYMFOLLOW
        );
        let o = parse(&["iversion", "noiversion", "lazytime", "nolazytime"]);
        assert_eq!(o.set, 0);
        assert_eq!(o.clear, libc::MS_I_VERSION | libc::MS_LAZYTIME);
        let o = parse(&["nosymfollow", "symfollow"]);
        assert_eq!((o.set, o.clear), (0, libc::MS_NOSYMFOLLOW));
        assert!(o.data.is_empty());
    }

    #[test]
    fn recursive_options_become_mount_attributes() {
        use sys::mount_attr as a;
        let o = parse(&["rbind", "ro", "rro", "rnosuid", "rprivate"]);
        assert_eq!(o.set, MS_BIND | MS_REC | MS_RDONLY);
        assert_eq!(o.recursive.attr_set, a::RDONLY | a::NOSUID);
        assert_eq!(o.recursive.attr_clr, 0);
        assert!(
            o.data.is_empty(),
            "never passed on as fs data: {:?}",
            o.data
        );
        let o = parse(&["rro", "rrw", "rnoatime"]);
        assert_eq!(o.recursive.attr_set, a::NOATIME);
        assert_eq!(o.recursive.attr_clr, a::RDONLY | a::ATIME_MASK);
        for (opt, mode) in [
            ("ratime", a::RELATIME),
            ("rnostrictatime", a::RELATIME),
            ("rnorelatime", a::STRICTATIME),
        ] {
            let o = parse(&["rnoatime", opt]);
            assert_eq!(o.recursive.attr_set, mode, "{opt}");
            assert_eq!(o.recursive.attr_clr, a::ATIME_MASK, "{opt}");
            assert!(o.data.is_empty(), "{opt} passed on as fs data");
        }
    }

    #[test]
    fn idmap_and_newlines_are_refused() {
        assert!(MountOptions::parse(&["idmap".into()]).is_err());
        let e = MountOptions::parse(&["tmpcopyup".into()]).unwrap_err();
        assert!(e.to_string().contains("tmpcopyup"), "{e}");
        assert!(MountOptions::parse(&["size=1\nx".into()]).is_err());
    }
}
