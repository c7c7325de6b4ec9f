//! Image build (`POST /build`): the Dockerfile front end so far; the builder that runs its
//! instructions on the engine comes next.

pub mod dockerfile;
