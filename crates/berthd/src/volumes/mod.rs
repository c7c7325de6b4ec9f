//! Named volumes with the `local` driver: `<data-root>/volumes/<name>/_data`, with the volume's
//! record in `<name>/volume.json`, and the resolution of volume names in a container's binds
//! and mounts into host paths. It knows nothing of containers: which ones use a volume is the
//! engine's to say.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use berth_api::config::ContainerConfig;
use berth_api::host_config::{HostConfig, Mount};
use berth_api::models::{MountPoint, MountPointTypeEnum, Volume, VolumeScopeEnum};

use crate::model::Error;
use crate::model::ids::valid_name;
use crate::model::record::Subpath;

/// The label Docker puts on an anonymous volume.
pub const ANONYMOUS: &str = "com.docker.volume.anonymous";

/// A local volume's name must follow Docker's rule.
pub fn check_name(name: &str) -> Result<(), Error> {
    if valid_name(name) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// The volumes under `<data-root>/volumes`.
pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    pub fn new(data_root: &Path) -> Volumes {
        Volumes {
            root: data_root.join("volumes"),
        }
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("volume.json")
    }

    /// The volume's record, if it exists.
    pub fn get(&self, name: &str) -> Option<Volume> {
        if !valid_name(name) {
            return None;
        }
        std::fs::read(self.record_path(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Creates a volume (or returns the existing one of that name, as dockerd does).
    pub fn ensure(
        &self,
        name: &str,
        mut labels: HashMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume, Error> {
        check_name(name)?;
        if let Some(v) = self.get(name) {
            return Ok(v);
        }
        let dir = self.root.join(name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data)
            .map_err(|e| Error::io(format_args!("creating {}", data.display()), e))?;
        if anonymous {
            labels.insert(ANONYMOUS.into(), String::new());
        }
        let v = Volume {
            name: name.into(),
            driver: "local".into(),
            mountpoint: data.display().to_string(),
            created_at: Some(berth_clock::rfc3339_now()),
            labels,
            scope: Some(VolumeScopeEnum::LOCAL),
            options: HashMap::new(),
            ..Default::default()
        };
        berth_failpoint::point("volume.before-record");
        let tmp = dir.join("volume.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())
            .and_then(|()| std::fs::rename(&tmp, self.record_path(name)))
            .map_err(|e| Error::internal(format!("storing volume {name}: {e}")))?;
        Ok(v)
    }

    /// Volumes a crashed create left half made: a directory without its record (and with nothing
    /// in `_data`), or a record's temp file never renamed into place.
    pub fn half_made(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = e.path();
            let tmp = dir.join("volume.json.tmp");
            if dir.join("volume.json").exists() {
                if tmp.exists() {
                    out.push(tmp);
                }
                continue;
            }
            let empty =
                std::fs::read_dir(dir.join("_data")).map_or(true, |mut rd| rd.next().is_none());
            if dir.is_dir() && empty {
                out.push(dir);
            }
        }
        out
    }
}

/// The `Volumes` of a config (the request's, or the image's `VOLUME`s) that no bind, mount or
/// tmpfs of the request covers become anonymous volume mounts (as Docker makes them).
pub fn add_anonymous_volumes(hc: &mut HostConfig, config: &ContainerConfig) {
    let Some(vols) = &config.volumes else {
        return;
    };
    let mut taken: Vec<String> = Vec::new();
    for b in hc.binds() {
        if let Some(t) = b.split(':').nth(1) {
            taken.push(t.trim_end_matches('/').to_string());
        }
    }
    for m in hc.mounts() {
        taken.push(m.target.trim_end_matches('/').to_string());
    }
    taken.extend(hc.tmpfs.iter().flat_map(|t| t.keys().cloned()));
    for target in vols.keys() {
        let t = target.trim_end_matches('/');
        if t.is_empty() || taken.iter().any(|x| x == t) {
            continue;
        }
        hc.mounts.get_or_insert_with(Vec::new).push(Mount {
            kind: "volume".into(),
            target: t.into(),
            ..Default::default()
        });
    }
}

/// What `resolve` found: the volume names used and Docker's `Mounts` entries for inspect.
pub struct Resolved {
    pub names: Vec<String>,
    pub points: Vec<MountPoint>,
    pub subpaths: Vec<Subpath>,
}

/// dockerd's rule for `VolumeOptions.Subpath`: relative, and inside the volume.
fn check_subpath(sub: &str) -> Result<(), Error> {
    if sub.starts_with('/') || sub.split('/').any(|c| c == "..") {
        return Err(Error::invalid(
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume",
        ));
    }
    Ok(())
}

/// Bind-mounts each subpath (resolved inside its volume by descriptors, never following a link
/// out of it) on its staging point, made as a directory or file like what it holds; a subpath
/// the volume lacks fails the start as dockerd's does.
pub fn stage_subpaths(subpaths: &[Subpath]) -> Result<(), Error> {
    use rustix::fs::{Mode, OFlags};
    for s in subpaths {
        let missing = |e: rustix::io::Errno| {
            Error::invalid(format!(
                "cannot access path {}/{}: {}",
                s.volume,
                s.subpath,
                std::io::Error::from(e)
            ))
        };
        let root = rustix::fs::open(
            &s.volume,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(missing)?;
        let rel = berth_inroot::clean(&format!("/{}", s.subpath));
        let target = berth_inroot::open(
            std::os::fd::AsFd::as_fd(&root),
            Path::new(rel.trim_start_matches('/')),
            OFlags::PATH | OFlags::CLOEXEC,
        )
        .map_err(missing)?;
        let st = rustix::fs::fstat(&target).map_err(missing)?;
        let is_dir =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
        if let Some(parent) = s.staging.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::internal(e.to_string()))?;
        }
        let made = match is_dir {
            true => std::fs::create_dir(&s.staging),
            false => std::fs::File::create(&s.staging).map(drop),
        };
        match made {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(Error::internal(format!(
                    "making {}: {e}",
                    s.staging.display()
                )));
            }
            _ => {}
        }
        // The descriptor's magic link names exactly what was opened, whatever the path now is.
        let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
        rustix::mount::mount_bind(source.as_str(), &s.staging)
            .map_err(|e| Error::internal(format!("mounting subpath {}: {e}", s.subpath)))?;
    }
    Ok(())
}

/// A volume's inspect entry.
fn volume_point(name: &str, mountpoint: &str, target: &str, rw: bool, mode: &str) -> MountPoint {
    MountPoint {
        name: Some(name.into()),
        driver: Some("local".into()),
        ..other_point(MountPointTypeEnum::VOLUME, mountpoint, target, rw, mode)
    }
}

/// A bind's or tmpfs' inspect entry; a bind's propagation is the one its mode names, else
/// `rprivate`.
fn other_point(
    kind: MountPointTypeEnum,
    source: &str,
    target: &str,
    rw: bool,
    mode: &str,
) -> MountPoint {
    let named = crate::oci::spec::propagation_of(mode);
    MountPoint {
        typ: Some(kind),
        name: None,
        source: Some(source.into()),
        destination: Some(target.into()),
        driver: None,
        mode: Some(mode.into()),
        rw: Some(rw),
        propagation: Some(match kind {
            MountPointTypeEnum::BIND => named.unwrap_or("rprivate").into(),
            _ => String::new(),
        }),
    }
}

/// Rewrites `Binds` and `Mounts` of type volume to host paths, creating missing volumes; a new
/// volume gets what the image has at its target (Docker's copy-up; `layers` top first).
/// Anonymous volumes (`Mounts` without a source) get new names.
impl Volumes {
    pub fn resolve(
        &self,
        hc: &mut HostConfig,
        layers: &[PathBuf],
        staging: &Path,
    ) -> Result<Resolved, Error> {
        let mut out = Resolved {
            names: Vec::new(),
            points: Vec::new(),
            subpaths: Vec::new(),
        };
        let make = |name: &str, labels: HashMap<String, String>, anon: bool, target: &str| {
            // One copy-up at a time: a create that finds the volume existing while another fills
            // it waits until it is full (and no container uses a half-filled volume meanwhile).
            static COPY_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _filling = COPY_UP.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = self.get(name).is_none();
            let v = self.ensure(name, labels, anon)?;
            let mp = v.mountpoint;
            if fresh {
                // The target as the container will see it: `/../../etc/x` is `/etc/x`.
                let target = berth_inroot::clean(target);
                copy_up(layers, &target, std::path::Path::new(&mp)).map_err(|e| {
                    Error::internal(format!(
                        "copying the image's content at {target} into volume {name}: {e}"
                    ))
                })?;
            }
            Ok::<_, Error>(mp)
        };
        if let Some(binds) = hc.binds.as_mut() {
            for b in binds.iter_mut() {
                let spec = b.clone();
                let mut parts = spec.splitn(3, ':');
                let (src, target, mode) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let rw = !mode.split(',').any(|o| o == "ro");
                if src.starts_with('/') || target.is_empty() {
                    let point = other_point(MountPointTypeEnum::BIND, src, target, rw, mode);
                    out.points.push(point);
                    continue;
                }
                let mp = make(src, HashMap::new(), false, target)?;
                out.points.push(volume_point(src, &mp, target, rw, mode));
                out.names.push(src.to_string());
                let rest = spec.split_once(':').map(|x| x.1).unwrap_or_default();
                *b = format!("{mp}:{rest}");
            }
        }
        if let Some(mounts) = hc.mounts.as_mut() {
            for m in mounts.iter_mut() {
                let target = m.target.clone();
                let rw = !m.read_only;
                let kind = match m.kind.as_str() {
                    "volume" => None,
                    "bind" => Some(MountPointTypeEnum::BIND),
                    "tmpfs" => Some(MountPointTypeEnum::TMPFS),
                    "npipe" => Some(MountPointTypeEnum::NPIPE),
                    "" => continue,
                    _ => Some(MountPointTypeEnum::EMPTY),
                };
                if let Some(kind) = kind {
                    let mut point = other_point(kind, &m.source, &target, rw, "");
                    let given = m.bind_options.as_ref().map(|b| b.propagation.as_str());
                    if let Some(p) = given.filter(|p| !p.is_empty()) {
                        point.propagation = Some(p.to_string());
                    }
                    out.points.push(point);
                    continue;
                }
                let given = m.source.clone();
                let (name, anon) = if given.is_empty() {
                    (crate::model::ids::new_id(), true)
                } else {
                    (given, false)
                };
                let labels = m
                    .volume_options
                    .as_ref()
                    .and_then(|o| o.labels.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let sub = m.volume_options.as_ref().map(|o| o.subpath.clone());
                let sub = sub.unwrap_or_default();
                if !sub.is_empty() {
                    check_subpath(&sub)?;
                }
                let mp = make(&name, labels, anon, &target)?;
                out.points.push(volume_point(&name, &mp, &target, rw, "z"));
                out.names.push(name);
                m.kind = "bind".into();
                m.source = mp.clone();
                if !sub.is_empty() {
                    // The runtime mounts the staging point, bound at each start.
                    let point = staging.join(out.subpaths.len().to_string());
                    m.source = point.display().to_string();
                    m.bind_options.get_or_insert_default().create_mountpoint = true;
                    out.subpaths.push(Subpath {
                        staging: point,
                        volume: mp,
                        subpath: sub,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Fills a new volume with what the image has at `target` (Docker's copy-up): the image's
/// layers merged by a read-only overlayfs that is never attached anywhere (a detached mount
/// from `fsmount`, reached only through its descriptor), `target` resolved inside it (a
/// `VOLUME` through a symlink such as `x -> /` stays in the image), and the tree copied by
/// descriptors into the volume, links kept as links. An image with nothing (or no directory)
/// at `target` leaves the volume empty.
fn copy_up(layers: &[PathBuf], target: &str, dest: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    if berth_inroot::clean(target) == "/" || layers.is_empty() {
        return Ok(());
    }
    let scratch = dest.with_file_name(".copy-up");
    let image = image_root(layers, &scratch)?;
    let src = match berth_inroot::open_dir(image.as_fd(), std::path::Path::new(target)) {
        Ok(fd) => fd,
        // Nothing, or no directory, at the target.
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let dest = rustix::fs::open(
        dest,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    berth_inroot::copy_tree(src.as_fd(), dest.as_fd())
}

/// The image's filesystem as one directory descriptor: its only layer, or its layers (top
/// first) merged by a read-only overlayfs that nothing but this descriptor reaches. `scratch`
/// (a path of berthd's own, absent) is where an older kernel's mount is made for a moment.
fn image_root(layers: &[PathBuf], scratch: &std::path::Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    if let [only] = layers {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        return Ok(rustix::fs::open(only, flags, Mode::empty())?);
    }
    match detached_overlay(layers) {
        Ok(fd) => Ok(fd),
        Err(_) => mounted_overlay(layers, scratch),
    }
}

/// The overlay built with the mount API and never attached anywhere: one `lowerdir+` per layer
/// (Linux 6.8; a single `lowerdir` string may not exceed 255 bytes there).
fn detached_overlay(layers: &[PathBuf]) -> rustix::io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in layers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
}

/// The overlay mounted on `at` (made 0700 for it), opened, and detached again at once: the
/// descriptor keeps it alive, no path leads to it.
fn mounted_overlay(layers: &[PathBuf], at: &std::path::Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    use rustix::mount::{MountFlags, UnmountFlags};
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(at)?;
    let data = std::ffi::CString::new(format!(
        "lowerdir={}",
        crate::oci::rootfs::lower_dirs(layers)
    ))
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mounted = rustix::mount::mount("overlay", at, "overlay", flags, data.as_c_str());
    let opened = mounted.and_then(|()| {
        let fd = rustix::fs::open(
            at,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let _ = rustix::mount::unmount(at, UnmountFlags::DETACH);
        fd
    });
    let _ = std::fs::remove_dir(at);
    Ok(opened?)
}

impl Volumes {
    /// Removes a volume's directory (the caller checked it is unused); the bytes it held.
    pub fn destroy(&self, name: &str) -> u64 {
        let dir = self.root.join(name);
        let size = dir_size(&dir.join("_data"));
        let _ = std::fs::remove_dir_all(&dir);
        size
    }

    /// Every volume's record, by name.
    pub fn all(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| self.get(&e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// The bytes of the files under `p` (a volume's data or a container's upper dir: containers
/// write there, so the walk goes by descriptors and never follows a link out).
pub fn dir_size(p: &std::path::Path) -> u64 {
    fn walk(dir: std::os::fd::BorrowedFd<'_>, depth: usize) -> u64 {
        use std::os::fd::AsFd;
        if depth >= berth_inroot::MAX_DEPTH {
            return 0;
        }
        berth_inroot::read_dir(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.kind() {
                rustix::fs::FileType::Directory => berth_inroot::open_child_dir(dir, &e.name)
                    .map_or(0, |(sub, _)| walk(sub.as_fd(), depth + 1)),
                _ => u64::try_from(e.stat.st_size).unwrap_or(0),
            })
            .sum()
    }
    let flags = rustix::fs::OFlags::RDONLY
        | rustix::fs::OFlags::DIRECTORY
        | rustix::fs::OFlags::NOFOLLOW
        | rustix::fs::OFlags::CLOEXEC;
    rustix::fs::open(p, flags, rustix::fs::Mode::empty())
        .map_or(0, |fd| walk(std::os::fd::AsFd::as_fd(&fd), 0))
}
