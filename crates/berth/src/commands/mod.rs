//! The commands, one module per family, and the dispatch from the parsed command line.

pub mod auth;
pub mod container_flags;
pub mod container_views;
pub mod containers;
pub mod copy;
pub mod create;
pub mod exec;
pub mod images;
pub mod inspect;
pub mod networks;
pub mod ps;
pub mod run;
pub mod system;
pub mod volumes;

use crate::api::{Client, DaemonError};
use crate::cli::Command;

/// How an error of one item of a multi-item command is printed.
pub fn error_line(e: &anyhow::Error) -> String {
    match e.downcast_ref::<DaemonError>() {
        Some(d) => d.to_string(),
        None => format!("Error: {e:#}"),
    }
}

/// Runs one command; returns the exit status.
pub fn dispatch(client: &Client, cmd: Command) -> anyhow::Result<i32> {
    use Command as C;
    match cmd {
        C::Run(a) => run::run(client, &a),
        C::Create(a) => create::create(client, &a),
        C::Start(a) => containers::start(client, &a),
        C::Stop(a) => containers::stop(client, &a, "stop"),
        C::Restart(a) => containers::stop(client, &a, "restart"),
        C::Kill(a) => containers::kill(client, &a),
        C::Rm(a) => containers::rm(client, &a),
        C::Ps(a) => ps::ps(client, &a),
        C::Logs(a) => container_views::logs(client, &a),
        C::Exec(a) => exec::exec(client, &a),
        C::Attach(a) => exec::attach(client, &a),
        C::Inspect(a) => inspect::inspect(client, &a),
        C::Top(a) => container_views::top(client, &a),
        C::Stats(a) => container_views::stats(client, &a),
        C::Wait(a) => containers::wait(client, &a),
        C::Pause(a) => containers::pause(client, &a, "pause"),
        C::Unpause(a) => containers::pause(client, &a, "unpause"),
        C::Rename(a) => containers::rename(client, &a),
        C::Update(a) => containers::update(client, &a),
        C::Port(a) => container_views::port(client, &a),
        C::Diff(a) => container_views::diff(client, &a),
        C::Commit(a) => container_views::commit(client, &a),
        C::Export(a) => container_views::export(client, &a),
        C::Cp(a) => copy::cp(client, &a),
        C::Events(a) => system::events(client, &a),
        C::Images(a) => images::images(client, &a),
        C::Pull(a) => images::pull(client, &a),
        C::Push(a) => images::push(client, &a),
        C::Tag(a) => images::tag(client, &a),
        C::Rmi(a) => images::rmi(client, &a),
        C::Save(a) => images::save(client, &a),
        C::Load(a) => images::load(client, &a),
        C::Import(a) => images::import(client, &a),
        C::Build(a) => images::build(client, &a),
        C::History(a) => images::history(client, &a),
        C::Login(a) => auth::login(client, &a),
        C::Logout(a) => auth::logout(&a),
        C::Version(a) => system::version(client, &a),
        C::Info(a) => system::info(client, &a),
        C::Container(c) => match c.into_command() {
            Ok(cmd) => dispatch(client, cmd),
            Err(prune) => containers::prune(client, &prune),
        },
        C::Image(c) => match c.into_command() {
            Ok(cmd) => dispatch(client, cmd),
            Err(prune) => images::prune(client, &prune),
        },
        C::Network(c) => networks::run(client, &c),
        C::Volume(c) => volumes::run(client, &c),
        C::System(c) => match c {
            system::SystemCmd::Check(a) => system::check(client, &a),
            system::SystemCmd::Df(a) => system::df(client, &a),
            system::SystemCmd::Events(a) => system::events(client, &a),
            system::SystemCmd::Info(a) => system::info(client, &a),
            system::SystemCmd::Prune(a) => system::prune(client, &a),
        },
        C::Completion(a) => crate::completion::generate(&a.shell),
    }
}
