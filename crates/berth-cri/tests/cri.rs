//! `berth-cri` as kubelet and crictl reach it, over its unix socket with the CRI v1 client:
//! the runtime's version and status; images pulled (through a registry mirror for
//! registry.k8s.io, as critest needs), listed, inspected, counted and removed; a pull of an
//! image that does not exist fails and adds nothing; what is not built yet (metric descriptors) says so.

use berth_cri::v1;
use berth_cri::v1::image_service_client::ImageServiceClient;
use berth_testkit::{BusyboxImage, Registry};

mod common;
use common::Server;

fn spec(image: &str) -> Option<v1::ImageSpec> {
    Some(v1::ImageSpec {
        image: image.into(),
        ..Default::default()
    })
}

/// The image `name` as ImageStatus gives it, if it is there.
async fn image_status(
    img: &mut ImageServiceClient<tonic::transport::Channel>,
    name: &str,
) -> Option<v1::Image> {
    let req = v1::ImageStatusRequest {
        image: spec(name),
        verbose: false,
    };
    img.image_status(req).await.unwrap().into_inner().image
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_pulled_through_a_mirror_listed_and_removed() {
    let reg = Registry::start().unwrap();
    reg.push_image(&BusyboxImage::build().unwrap(), "pause", "3.9")
        .unwrap();
    let server = Server::start(&format!("registry.k8s.io=http://{}", reg.host()), &[]);
    let (mut rt, mut img) = server.clients().await;
    let v = rt
        .version(v1::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("berth", "v1")
    );
    let status = rt
        .status(v1::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let conditions = status.status.unwrap().conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.r#type == "RuntimeReady" && c.status),
        "{conditions:?}"
    );

    let name = "registry.k8s.io/pause:3.9";
    let pulled = img
        .pull_image(v1::PullImageRequest {
            image: spec(name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
    let list = img
        .list_images(v1::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.images.len(), 1);
    assert_eq!(list.images[0].id, pulled.image_ref);
    assert!(
        list.images[0].repo_tags.iter().any(|t| t == name),
        "{:?}",
        list.images[0]
    );
    let found = image_status(&mut img, name).await;
    assert_eq!(found.map(|i| i.id), Some(pulled.image_ref.clone()));
    let fs = img
        .image_fs_info(v1::ImageFsInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0,
        "{fs:?}"
    );

    // A missing image: not found, and nothing added.
    let missing = img
        .pull_image(v1::PullImageRequest {
            image: spec("registry.k8s.io/nosuch:1"),
            ..Default::default()
        })
        .await;
    assert!(missing.is_err());
    let list = img
        .list_images(v1::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.images.len(), 1);

    for _ in 0..2 {
        img.remove_image(v1::RemoveImageRequest { image: spec(name) })
            .await
            .unwrap();
    }
    let gone = image_status(&mut img, name).await;
    assert!(gone.is_none());
    let list = img
        .list_images(v1::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.images.is_empty());

    // What is not built yet says so.
    let metrics = rt
        .list_metric_descriptors(v1::ListMetricDescriptorsRequest::default())
        .await;
    assert_eq!(metrics.unwrap_err().code(), tonic::Code::Unimplemented);
}
