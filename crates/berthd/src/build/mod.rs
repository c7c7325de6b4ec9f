//! Image build (`POST /build`): the Dockerfile front end and the classic builder that runs its
//! instructions on the engine (RUN as containers committed as layers, COPY from the context).

pub mod dockerfile;
pub mod run;
