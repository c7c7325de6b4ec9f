//! The Containers service: metadata records of containers per tenant namespace (the
//! `berth-namespace` request metadata), stored durably by `store.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::v1::containers_server::Containers;
use berth_proto::v1::{
    Container, CreateContainerRequest, CreateContainerResponse, DeleteContainerRequest,
    DeleteContainerResponse, GetContainerRequest, GetContainerResponse, ListContainersRequest,
    ListContainersResponse, UpdateContainerRequest, UpdateContainerResponse,
};
use tonic::{Request, Response, Status};

use crate::store::{Record, Store, StoreError};

/// The tenant namespace of a request (`default` when none is given).
pub fn namespace_of<T>(req: &Request<T>) -> Result<String, Status> {
    let ns = match req.metadata().get(berth_proto::NAMESPACE_HEADER) {
        Some(v) => v
            .to_str()
            .map_err(|_| Status::invalid_argument("namespace is not ASCII"))?
            .to_string(),
        None => berth_proto::DEFAULT_NAMESPACE.to_string(),
    };
    crate::store::validate_name("namespace", &ns).map_err(to_status)?;
    Ok(ns)
}

/// Maps store errors to gRPC codes; the message says which container and namespace.
pub fn to_status(e: StoreError) -> Status {
    match &e {
        StoreError::Exists { .. } => Status::already_exists(e.to_string()),
        StoreError::NotFound { .. } => Status::not_found(e.to_string()),
        StoreError::InvalidName { .. } => Status::invalid_argument(e.to_string()),
        StoreError::Io { .. } | StoreError::Corrupt { .. } => {
            tracing::error!(error = %e, "metadata store");
            Status::internal(e.to_string())
        }
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A label filter: `labels.KEY==VALUE` or `labels.KEY` (present).
#[derive(Debug, PartialEq)]
pub enum Filter {
    LabelEquals(String, String),
    LabelPresent(String),
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, Status> {
        let rest = s.strip_prefix("labels.").ok_or_else(|| {
            Status::invalid_argument(format!("unsupported filter {s:?}: use labels.KEY[==VALUE]"))
        })?;
        match rest.split_once("==") {
            Some((k, v)) if !k.is_empty() => Ok(Filter::LabelEquals(k.into(), v.into())),
            None if !rest.is_empty() => Ok(Filter::LabelPresent(rest.into())),
            _ => Err(Status::invalid_argument(format!("invalid filter {s:?}"))),
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Filter::LabelEquals(k, v) => labels.get(k) == Some(v),
            Filter::LabelPresent(k) => labels.contains_key(k),
        }
    }
}

fn to_proto(r: Record) -> Container {
    Container {
        id: r.id,
        labels: r.labels.into_iter().collect(),
        runtime: r.runtime,
        spec: serde_json::to_vec(&r.spec).unwrap_or_default(),
        created_at_unix_nanos: r.created_at_unix_nanos,
        updated_at_unix_nanos: r.updated_at_unix_nanos,
    }
}

/// Checks the runtime name: berth-runc (default), runc, crun, or an absolute path.
pub fn validate_runtime(runtime: &str) -> Result<String, Status> {
    match runtime {
        "" => Ok("berth-runc".into()),
        "berth-runc" | "runc" | "crun" => Ok(runtime.into()),
        p if p.starts_with('/') && !p.contains('\0') => Ok(p.into()),
        other => Err(Status::invalid_argument(format!(
            "unknown runtime {other:?}: use berth-runc, runc, crun or an absolute path"
        ))),
    }
}

pub struct ContainersService {
    pub store: Arc<Store>,
    pub registry: Arc<crate::registry::Registry>,
}

#[tonic::async_trait]
impl Containers for ContainersService {
    async fn create(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let ns = namespace_of(&req)?;
        let c = req
            .into_inner()
            .container
            .ok_or_else(|| Status::invalid_argument("container is required"))?;
        let spec: serde_json::Value = serde_json::from_slice(&c.spec)
            .map_err(|e| Status::invalid_argument(format!("spec is not valid JSON: {e}")))?;
        let now = now_nanos();
        let rec = Record {
            id: c.id,
            labels: c.labels.into_iter().collect(),
            runtime: validate_runtime(&c.runtime)?,
            spec,
            created_at_unix_nanos: now,
            updated_at_unix_nanos: now,
        };
        self.store.create(&ns, &rec).map_err(to_status)?;
        Ok(Response::new(CreateContainerResponse {
            container: Some(to_proto(rec)),
        }))
    }

    async fn get(
        &self,
        req: Request<GetContainerRequest>,
    ) -> Result<Response<GetContainerResponse>, Status> {
        let ns = namespace_of(&req)?;
        let rec = self
            .store
            .get(&ns, &req.into_inner().id)
            .map_err(to_status)?;
        Ok(Response::new(GetContainerResponse {
            container: Some(to_proto(rec)),
        }))
    }

    async fn list(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let ns = namespace_of(&req)?;
        let filters = req
            .into_inner()
            .filters
            .iter()
            .map(|f| Filter::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        let containers = self
            .store
            .list(&ns)
            .map_err(to_status)?
            .into_iter()
            .filter(|r| filters.is_empty() || filters.iter().any(|f| f.matches(&r.labels)))
            .map(to_proto)
            .collect();
        Ok(Response::new(ListContainersResponse { containers }))
    }

    async fn update(
        &self,
        req: Request<UpdateContainerRequest>,
    ) -> Result<Response<UpdateContainerResponse>, Status> {
        let ns = namespace_of(&req)?;
        let u = req.into_inner();
        let mut rec = self.store.get(&ns, &u.id).map_err(to_status)?;
        rec.labels = u.labels.into_iter().collect();
        rec.updated_at_unix_nanos = now_nanos();
        self.store.update(&ns, &rec).map_err(to_status)?;
        Ok(Response::new(UpdateContainerResponse {
            container: Some(to_proto(rec)),
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteContainerRequest>,
    ) -> Result<Response<DeleteContainerResponse>, Status> {
        let ns = namespace_of(&req)?;
        let id = req.into_inner().id;
        if self.registry.get(&ns, &id).is_ok() {
            return Err(Status::failed_precondition(format!(
                "container {id} has a task: delete the task first"
            )));
        }
        self.store.delete(&ns, &id).map_err(to_status)?;
        Ok(Response::new(DeleteContainerResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert!(Filter::parse("labels.app==web").unwrap().matches(&labels));
        assert!(!Filter::parse("labels.app==db").unwrap().matches(&labels));
        assert!(Filter::parse("labels.app").unwrap().matches(&labels));
        assert!(Filter::parse("name==x").is_err());
        assert!(Filter::parse("labels.").is_err());
    }
}
