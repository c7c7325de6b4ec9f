//! The Containers service over its real gRPC socket: create, get, list with label filters,
//! update, delete; tenants isolated by namespace; records surviving a restart (even kill -9);
//! bad input refused with the right code and nothing stored.

mod common;

use std::collections::HashMap;

use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::{
    Container, CreateContainerRequest, DeleteContainerRequest, GetContainerRequest,
    ListContainersRequest, UpdateContainerRequest,
};
use berth_proto::with_namespace;
use berth_testkit::TestRoots;
use common::Daemon;
use tonic::Code;

async fn client(roots: &TestRoots) -> ContainersClient<tonic::transport::Channel> {
    ContainersClient::new(
        berth_proto::connect_unix(&roots.containerd_socket())
            .await
            .unwrap(),
    )
}

fn container(id: &str, labels: &[(&str, &str)]) -> Container {
    Container {
        id: id.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        runtime: String::new(),
        spec: br#"{"ociVersion":"1.2.0"}"#.to_vec(),
        created_at_unix_nanos: 0,
        updated_at_unix_nanos: 0,
    }
}

fn create(ns: &str, c: Container) -> tonic::Request<CreateContainerRequest> {
    with_namespace(ns, CreateContainerRequest { container: Some(c) })
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_list_update_delete() {
    let roots = TestRoots::new().unwrap();
    let _d = Daemon::start(&roots);
    let mut c = client(&roots).await;
    let made = c
        .create(create("berth", container("web", &[("app", "web")])))
        .await
        .unwrap()
        .into_inner();
    let made = made.container.unwrap();
    assert_eq!(made.runtime, "berth-runc", "the default runtime");
    assert!(made.created_at_unix_nanos > 0);
    c.create(create(
        "berth",
        container("db", &[("app", "db"), ("tier", "back")]),
    ))
    .await
    .unwrap();

    let got = c
        .get(with_namespace(
            "berth",
            GetContainerRequest { id: "web".into() },
        ))
        .await
        .unwrap();
    let got = got.into_inner().container.unwrap();
    assert_eq!(got.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(got.spec, br#"{"ociVersion":"1.2.0"}"#.to_vec());

    let ids = |r: berth_proto::v1::ListContainersResponse| {
        r.containers.into_iter().map(|c| c.id).collect::<Vec<_>>()
    };
    let all = c
        .list(with_namespace(
            "berth",
            ListContainersRequest { filters: vec![] },
        ))
        .await
        .unwrap();
    assert_eq!(ids(all.into_inner()), ["db", "web"]);
    let f = c
        .list(with_namespace(
            "berth",
            ListContainersRequest {
                filters: vec!["labels.app==web".into()],
            },
        ))
        .await
        .unwrap();
    assert_eq!(ids(f.into_inner()), ["web"]);
    let f = c
        .list(with_namespace(
            "berth",
            ListContainersRequest {
                filters: vec!["labels.tier".into()],
            },
        ))
        .await
        .unwrap();
    assert_eq!(ids(f.into_inner()), ["db"]);

    let upd = UpdateContainerRequest {
        id: "web".into(),
        labels: [("app".to_string(), "web2".to_string())].into(),
    };
    let u = c
        .update(with_namespace("berth", upd))
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(u.labels.get("app").map(String::as_str), Some("web2"));
    assert!(u.updated_at_unix_nanos >= u.created_at_unix_nanos);

    c.delete(with_namespace(
        "berth",
        DeleteContainerRequest { id: "web".into() },
    ))
    .await
    .unwrap();
    let e = c
        .get(with_namespace(
            "berth",
            GetContainerRequest { id: "web".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_never_see_each_other() {
    let roots = TestRoots::new().unwrap();
    let _d = Daemon::start(&roots);
    let mut c = client(&roots).await;
    c.create(create("berth", container("same", &[])))
        .await
        .unwrap();
    c.create(create("k8s", container("same", &[])))
        .await
        .unwrap();
    c.create(create("k8s", container("only-k8s", &[])))
        .await
        .unwrap();
    let list = |ns: &str| with_namespace(ns, ListContainersRequest { filters: vec![] });
    assert_eq!(
        c.list(list("berth"))
            .await
            .unwrap()
            .into_inner()
            .containers
            .len(),
        1
    );
    assert_eq!(
        c.list(list("k8s"))
            .await
            .unwrap()
            .into_inner()
            .containers
            .len(),
        2
    );
    let e = c
        .get(with_namespace(
            "berth",
            GetContainerRequest {
                id: "only-k8s".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_kill_9_and_restart() {
    let roots = TestRoots::new().unwrap();
    let d = Daemon::start(&roots);
    let mut c = client(&roots).await;
    c.create(create("berth", container("keep", &[("k", "v")])))
        .await
        .unwrap();
    d.kill9();
    let _d = Daemon::start(&roots);
    let mut c = client(&roots).await;
    let got = c
        .get(with_namespace(
            "berth",
            GetContainerRequest { id: "keep".into() },
        ))
        .await
        .unwrap();
    assert_eq!(
        got.into_inner()
            .container
            .unwrap()
            .labels
            .get("k")
            .map(String::as_str),
        Some("v")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_stores_nothing() {
    let roots = TestRoots::new().unwrap();
    let _d = Daemon::start(&roots);
    let mut c = client(&roots).await;
    c.create(create("berth", container("dup", &[])))
        .await
        .unwrap();
    let e = c
        .create(create("berth", container("dup", &[])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    for bad_id in ["../escape", "a/b", ""] {
        let e = c
            .create(create("berth", container(bad_id, &[])))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad_id:?}");
    }
    let mut bad_spec = container("badspec", &[]);
    bad_spec.spec = b"{not json".to_vec();
    let e = c.create(create("berth", bad_spec)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("spec is not valid JSON"),
        "{}",
        e.message()
    );
    let mut bad_rt = container("badrt", &[]);
    bad_rt.runtime = "../../bin/sh".into();
    assert_eq!(
        c.create(create("berth", bad_rt)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let e = c
        .list(with_namespace(
            "../etc",
            ListContainersRequest { filters: vec![] },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .list(with_namespace(
            "berth",
            ListContainersRequest {
                filters: vec!["name==x".into()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .delete(with_namespace(
            "berth",
            DeleteContainerRequest { id: "ghost".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let left = c
        .list(with_namespace(
            "berth",
            ListContainersRequest { filters: vec![] },
        ))
        .await
        .unwrap();
    assert_eq!(
        left.into_inner().containers.len(),
        1,
        "only the first dup was stored"
    );
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let roots = TestRoots::new().unwrap();
    let _d = Daemon::start(&roots);
    #[allow(clippy::disallowed_methods)]
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_berth-containerd"))
        .arg("--root")
        .arg(roots.data_root().join("containerd"))
        .arg("--address")
        .arg(roots.containerd_socket())
        .arg("--state")
        .arg(roots.exec_root())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another berth-containerd is listening"));
}
