//! A verifying fake of the Kubernetes API for reconcile tests, in the spirit of
//! controller-rs's ApiServerVerifier: kube's real client talks through `tower-test`'s mock
//! service to a small in-memory object store that answers GET, LIST, server-side apply,
//! merge patch, DELETE and event POSTs, and records every call so a test can assert
//! exactly what the reconciler did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One request the reconciler made.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
}

impl Call {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// `METHOD path`, for compact assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<String, Value>,
    /// Per object, the `metadata.annotations` keys the last server-side apply set: the
    /// fields its manager owns.
    applied_annotations: BTreeMap<String, BTreeSet<String>>,
    calls: Vec<Call>,
    next_version: u64,
    next_node_port: i32,
}

/// The fake API server. Cloning shares the store.
#[derive(Clone, Default)]
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
}

/// Plural resources the fake lists, so `GET .../services` is a list and
/// `GET .../services/x` a get.
const COLLECTIONS: &[&str] = &[
    "services",
    "configmaps",
    "serviceaccounts",
    "statefulsets",
    "poddisruptionbudgets",
    "networkpolicies",
    "clusterrolebindings",
    "kafkaclusters",
    "pods",
    "kafkatopics",
];

impl FakeApi {
    /// A kube client wired to a new fake, which serves until the client is dropped.
    pub fn start() -> (Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi::default();
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = server.serve(request).await;
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), fake)
    }

    pub fn insert(&self, path: &str, object: Value) {
        self.with(|s| {
            s.objects.insert(path.to_string(), object);
        })
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.with(|s| s.objects.get(path).cloned())
    }

    /// Every call since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<Call> {
        self.with(|s| std::mem::take(&mut s.calls))
    }

    /// Deletes a stored object behind the reconciler's back.
    pub fn remove(&self, path: &str) {
        self.with(|s| {
            s.objects.remove(path);
        })
    }

    /// Changes a stored object in place, as another controller (or a user) would.
    pub fn edit(&self, path: &str, change: impl FnOnce(&mut Value)) {
        self.with(|s| {
            if let Some(object) = s.objects.get_mut(path) {
                change(object);
            }
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.store.lock().expect("fake API store lock");
        f(&mut store)
    }

    async fn serve(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let (status, answer) = self.with(|s| {
            s.calls.push(Call {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                body: body.clone(),
            });
            s.handle(&method, &path, &query, &content_type, body)
        });
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
            .expect("valid response")
    }
}

impl Store {
    fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let last = path.rsplit('/').next().unwrap_or("");
        match method {
            "GET" if COLLECTIONS.contains(&last) => (StatusCode::OK, self.list(path, query)),
            "GET" => match self.objects.get(path) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => not_found(path),
            },
            "PATCH" if path.ends_with("/status") => {
                self.patch_status(path.trim_end_matches("/status"), body)
            }
            "PATCH" if content_type.contains("apply-patch") => self.apply(path, body),
            "PATCH" => self.merge_patch(path, body),
            "DELETE" => match self.objects.remove(path).inspect(|_| {
                self.applied_annotations.remove(path);
            }) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
                None => not_found(path),
            },
            "POST" => {
                let mut event = body.unwrap_or(Value::Null);
                event["metadata"]["name"] = json!(format!("event-{}", self.version()));
                (StatusCode::CREATED, event)
            }
            _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }

    fn version(&mut self) -> String {
        self.next_version += 1;
        self.next_version.to_string()
    }

    fn list(&self, path: &str, query: &str) -> Value {
        let selector: Vec<(String, String)> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("labelSelector="))
            .flat_map(|s| {
                percent_decode(s)
                    .split(',')
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let prefix = format!("{path}/");
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .map(|(_, o)| o.clone())
            .filter(|o| {
                selector
                    .iter()
                    .all(|(k, v)| o["metadata"]["labels"][k] == json!(v))
            })
            .collect();
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})
    }

    /// Server-side apply, simplified: the applied object replaces the old one, except that
    /// server-owned fields (uid, status, node ports) survive, and so do annotations that
    /// someone else set (a user's `kubectl annotate`, a merge patch): an apply removes only
    /// the annotations its own earlier applies set, as the real field manager does.
    fn apply(&mut self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let Some(mut object) = body else {
            return (StatusCode::BAD_REQUEST, json!({"message": "no body"}));
        };
        let old = self.objects.get(path).cloned();
        let generation = old
            .as_ref()
            .and_then(|o| o["metadata"]["generation"].as_i64())
            .unwrap_or(0);
        let spec_changed = old
            .as_ref()
            .map(|o| o["spec"] != object["spec"])
            .unwrap_or(true);
        object["metadata"]["uid"] = old
            .as_ref()
            .map(|o| o["metadata"]["uid"].clone())
            .unwrap_or_else(|| json!(format!("uid-{path}")));
        object["metadata"]["resourceVersion"] = json!(self.version());
        object["metadata"]["generation"] = json!(if spec_changed {
            generation + 1
        } else {
            generation
        });
        if let Some(status) = old
            .as_ref()
            .map(|o| o["status"].clone())
            .filter(|s| !s.is_null())
        {
            object["status"] = status;
        }
        self.keep_others_annotations(path, &mut object, old.as_ref());
        self.assign_node_ports(&mut object, old.as_ref());
        self.objects.insert(path.to_string(), object.clone());
        (StatusCode::OK, object)
    }

    fn keep_others_annotations(&mut self, path: &str, object: &mut Value, old: Option<&Value>) {
        let applied: BTreeSet<String> = object["metadata"]["annotations"]
            .as_object()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        let owned = self
            .applied_annotations
            .insert(path.to_string(), applied.clone())
            .unwrap_or_default();
        let Some(old) = old.and_then(|o| o["metadata"]["annotations"].as_object()) else {
            return;
        };
        for (key, value) in old {
            if !owned.contains(key) && !applied.contains(key) {
                object["metadata"]["annotations"][key] = value.clone();
            }
        }
    }

    fn assign_node_ports(&mut self, object: &mut Value, old: Option<&Value>) {
        let kind = object["spec"]["type"].as_str().unwrap_or("");
        if kind != "NodePort" && kind != "LoadBalancer" {
            return;
        }
        let Some(ports) = object["spec"]["ports"].as_array_mut() else {
            return;
        };
        for (i, port) in ports.iter_mut().enumerate() {
            if port.get("nodePort").is_none() {
                let kept = old.and_then(|o| o["spec"]["ports"][i]["nodePort"].as_i64());
                self.next_node_port += 1;
                port["nodePort"] = json!(kept.unwrap_or(30000 + self.next_node_port as i64));
            }
        }
    }

    fn patch_status(&mut self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let version = self.version();
        match (self.objects.get_mut(path), body) {
            (Some(object), Some(body)) => {
                object["status"] = body["status"].clone();
                object["metadata"]["resourceVersion"] = json!(version);
                (StatusCode::OK, object.clone())
            }
            _ => not_found(path),
        }
    }

    /// JSON merge patch with optimistic concurrency on `metadata.resourceVersion`.
    fn merge_patch(&mut self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let version = self.version();
        let Some(object) = self.objects.get_mut(path) else {
            return not_found(path);
        };
        let patch = body.unwrap_or(Value::Null);
        let expected = &patch["metadata"]["resourceVersion"];
        if !expected.is_null() && *expected != object["metadata"]["resourceVersion"] {
            return (
                StatusCode::CONFLICT,
                json!({"kind": "Status", "code": 409, "reason": "Conflict", "message": "resourceVersion changed"}),
            );
        }
        merge(object, &patch);
        object["metadata"]["resourceVersion"] = json!(version);
        (StatusCode::OK, object.clone())
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A KafkaCluster `my-cluster` in namespace `kafka` with a uid (owner references need one),
/// from a JSON spec.
pub fn cluster(spec: Value) -> crate::crd::KafkaCluster {
    let spec = serde_json::from_value(spec).expect("fixture spec");
    let mut cluster = crate::crd::KafkaCluster::new("my-cluster", spec);
    cluster.metadata.namespace = Some("kafka".into());
    cluster.metadata.uid = Some("0000-1111".into());
    cluster
}
