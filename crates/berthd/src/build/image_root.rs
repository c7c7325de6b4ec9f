//! An image's root filesystem, read-only, for `COPY --from`: its one layer directory as it is,
//! or its layers stacked by a read-only overlayfs mount (no upper directory) under the
//! daemon's temp dir, unmounted and removed when the caller is done.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::model::Error;

/// Runs `f` on a descriptor of the root of the image made of `lowers` (top layer first).
pub fn with_root<T>(
    lowers: &[PathBuf],
    tmp_dir: &Path,
    f: impl FnOnce(BorrowedFd<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::internal(format!("opening {}: {e}", p.display())))
    };
    match lowers {
        [] => Err(Error::invalid("the image has no layers")),
        [one] => f(open(one)?.as_fd()),
        _ => {
            std::fs::create_dir_all(tmp_dir)
                .map_err(|e| Error::internal(format!("making the temp dir: {e}")))?;
            let point = tempfile::Builder::new()
                .prefix("from-")
                .tempdir_in(tmp_dir)
                .map_err(|e| Error::internal(format!("making a mount point: {e}")))?;
            let data = format!("lowerdir={}", crate::oci::rootfs::lower_dirs(lowers));
            let data = std::ffi::CString::new(data)
                .map_err(|_| Error::internal("a layer path holds a NUL byte"))?;
            rustix::mount::mount(
                "overlay",
                point.path(),
                "overlay",
                rustix::mount::MountFlags::RDONLY,
                Some(data.as_c_str()),
            )
            .map_err(|e| Error::internal(format!("mounting the image's layers: {e}")))?;
            let out = open(point.path()).and_then(|root| f(root.as_fd()));
            let _ = rustix::mount::unmount(point.path(), rustix::mount::UnmountFlags::DETACH);
            out
        }
    }
}
