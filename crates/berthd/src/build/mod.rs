//! Image build (`POST /build`): the Dockerfile front end and the classic builder that runs its
//! instructions on the engine (RUN as containers committed as layers, COPY from the context or
//! from an earlier stage's or an image's read-only root).

pub mod cache;
pub mod copy;
pub mod copy_step;
pub mod dockerfile;
pub mod glob;
pub mod image_root;
pub mod mounts;
pub mod run;
pub mod stages;
