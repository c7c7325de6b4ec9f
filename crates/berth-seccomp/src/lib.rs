//! OCI seccomp profiles compiled and loaded with libseccomp (being written).
