//! CRI's ImageService over berth-image: list, status, pull (with the request's credentials, and
//! through a registry mirror where `--registry-mirror` names one for the image's registry),
//! remove (already gone is fine, as the CRI asks) and the image file system's usage. The
//! store is synchronous; every call runs on a blocking thread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_image::Reference;
use berth_image::images::ImageRecord;
use berth_image::manifest::Platform;
use berth_image::registry::{Credentials, RegistryClient};
use berth_image::service::ImageService as Store;
use tonic::{Request, Response, Status};

use crate::v1;
use crate::v1::image_service_server::ImageService;

/// The image service a CRI server exposes.
#[derive(Clone)]
pub struct Images {
    pub store: Arc<Store>,
    /// Registry mirrors: a registry's domain → the `host[:port]` pulls go to instead.
    pub mirrors: BTreeMap<String, String>,
    /// The root the images live under (what `ImageFsInfo` reports).
    pub root: PathBuf,
}

/// `--registry-mirror HOST=URL` as (HOST, the URL's `host[:port]`).
pub fn parse_mirror(spec: &str) -> Result<(String, String), String> {
    let (host, url) = spec
        .split_once('=')
        .ok_or_else(|| format!("invalid registry mirror {spec:?}: HOST=URL"))?;
    let target = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    if host.is_empty() || target.is_empty() || target.contains('/') {
        return Err(format!("invalid registry mirror {spec:?}: HOST=URL"));
    }
    Ok((host.to_string(), target.to_string()))
}

/// An image's `User` (from its config) as the CRI splits it: a number is the uid, else a name.
fn user_of(store: &Store, r: &ImageRecord) -> (Option<v1::Int64Value>, String) {
    let user = store
        .content
        .read(&r.id, berth_image::manifest::MAX_CONFIG)
        .ok()
        .and_then(|b| berth_image::manifest::ImageConfig::parse(&b).ok())
        .and_then(|c| c.raw["config"]["User"].as_str().map(str::to_string))
        .unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default().to_string();
    match user.parse::<i64>() {
        Ok(uid) => (Some(v1::Int64Value { value: uid }), String::new()),
        Err(_) => (None, user),
    }
}

fn image_of(store: &Store, r: &ImageRecord) -> v1::Image {
    let (uid, username) = user_of(store, r);
    v1::Image {
        id: r.id.to_string(),
        uid,
        username,
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
        spec: Some(v1::ImageSpec {
            image: r.id.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn spec_name(spec: Option<&v1::ImageSpec>) -> Result<String, Status> {
    spec.map(|s| s.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("an image is required"))
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))
}

impl Images {
    /// Pulls `name` (through its registry's mirror, if it has one), with `creds` for its
    /// registry.
    pub async fn pull(
        &self,
        name: &str,
        creds: Option<Credentials>,
    ) -> Result<ImageRecord, Status> {
        let wanted = Reference::parse(name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fetch = self.fetched(&wanted)?;
        let mut client = RegistryClient::new();
        if let Some(c) = creds {
            client = client.with_credentials(fetch.domain(), c);
        }
        let store = self.store.clone();
        let name = name.to_string();
        blocking(move || -> Result<ImageRecord, Status> {
            let image = store
                .pull(&client, &fetch, &Platform::host(), &|_| {})
                .map_err(|e| Status::not_found(format!("pulling {name}: {e}")))?;
            // Through a mirror, the image is known by the name asked for, not the mirror's.
            match fetch == wanted {
                true => Ok(image),
                false => rename(&store, image, &fetch, &wanted)
                    .map_err(|e| Status::internal(e.to_string())),
            }
        })
        .await?
    }

    /// The reference a pull fetches: `r` at its registry's mirror, if it has one.
    fn fetched(&self, r: &Reference) -> Result<Reference, Status> {
        let Some(mirror) = self.mirrors.get(r.domain()) else {
            return Ok(r.clone());
        };
        let mut name = format!("{mirror}/{}", r.path());
        if let Some(d) = r.digest() {
            name = format!("{name}@{d}");
        } else if let Some(t) = r.tag() {
            name = format!("{name}:{t}");
        }
        Reference::parse(&name).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

/// Gives an image pulled as `fetch` (from a mirror) the tag and repo digests of `wanted`
/// instead: a tag only when `wanted` has one, the digests under `wanted`'s repository.
fn rename(
    store: &Store,
    image: ImageRecord,
    fetch: &Reference,
    wanted: &Reference,
) -> Result<ImageRecord, berth_image::images::ImageError> {
    let mirror_repo = fetch.repository();
    let digests: Vec<String> = image
        .repo_digests
        .iter()
        .filter_map(|d| d.strip_prefix(&format!("{mirror_repo}@")))
        .map(|digest| format!("{}@{digest}", wanted.repository()))
        .collect();
    let mut rec = store.images.untag(&image.id, fetch)?;
    for d in image
        .repo_digests
        .iter()
        .filter_map(|d| Reference::parse(d).ok())
    {
        if d.repository() == mirror_repo {
            rec = store.images.untag(&image.id, &d)?;
        }
    }
    rec.repo_tags = match wanted.digest() {
        None => vec![wanted.to_string()],
        Some(_) => Vec::new(),
    };
    rec.repo_digests = digests;
    store.images.put(rec)
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        req: Request<v1::ListImagesRequest>,
    ) -> Result<Response<v1::ListImagesResponse>, Status> {
        let want = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image);
        let store = self.store.clone();
        let images = blocking(move || {
            let found = match want.filter(|w| !w.is_empty()) {
                Some(name) => store.images.resolve(&name).into_iter().collect::<Vec<_>>(),
                None => store.images.list(),
            };
            found.iter().map(|r| image_of(&store, r)).collect()
        })
        .await?;
        Ok(Response::new(v1::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        req: Request<v1::ImageStatusRequest>,
    ) -> Result<Response<v1::ImageStatusResponse>, Status> {
        let name = spec_name(req.get_ref().image.as_ref())?;
        let store = self.store.clone();
        let found = blocking(move || {
            let image = store.images.resolve(&name).ok();
            image.map(|r| image_of(&store, &r))
        })
        .await?;
        Ok(Response::new(v1::ImageStatusResponse {
            image: found,
            info: Default::default(),
        }))
    }

    async fn pull_image(
        &self,
        req: Request<v1::PullImageRequest>,
    ) -> Result<Response<v1::PullImageResponse>, Status> {
        let req = req.into_inner();
        let name = spec_name(req.image.as_ref())?;
        let creds = req
            .auth
            .filter(|a| !a.username.is_empty() || !a.password.is_empty())
            .map(|a| Credentials {
                username: a.username,
                password: a.password,
            });
        let image = self.pull(&name, creds).await?;
        Ok(Response::new(v1::PullImageResponse {
            image_ref: image.id.to_string(),
        }))
    }

    async fn remove_image(
        &self,
        req: Request<v1::RemoveImageRequest>,
    ) -> Result<Response<v1::RemoveImageResponse>, Status> {
        let name = spec_name(req.get_ref().image.as_ref())?;
        let store = self.store.clone();
        blocking(move || -> Result<(), Status> {
            // Removing an image that is not here succeeds, as the CRI asks; one named by id
            // goes with all its tags.
            let Ok(image) = store.images.resolve(&name) else {
                return Ok(());
            };
            let id = image.id.to_string();
            store
                .remove(&id, true, &|_| None)
                .map(drop)
                .map_err(|e| Status::internal(e.to_string()))
        })
        .await??;
        Ok(Response::new(v1::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _req: Request<v1::ImageFsInfoRequest>,
    ) -> Result<Response<v1::ImageFsInfoResponse>, Status> {
        let store = self.store.clone();
        let used: u64 = blocking(move || store.images.list().iter().map(|i| i.size).sum()).await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Ok(Response::new(v1::ImageFsInfoResponse {
            image_filesystems: vec![v1::FilesystemUsage {
                timestamp: now,
                fs_id: Some(v1::FilesystemIdentifier {
                    mountpoint: self.root.display().to_string(),
                }),
                used_bytes: Some(v1::UInt64Value { value: used }),
                inodes_used: None,
            }],
        }))
    }
}
