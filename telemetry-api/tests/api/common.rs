//! Test harness: the app in-process, a request builder, and fixtures that
//! create accounts directly in the database (fast: one shared password hash).

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tower::ServiceExt;
use uuid::Uuid;
use weft_telemetry_api::auth::{Role, password, token};
use weft_telemetry_api::{AppState, ServiceConfig, app, db};
use weft_telemetry_wire::Event;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub pool: PgPool,
    router: Router,
}

impl TestApp {
    pub fn new(pool: PgPool) -> TestApp {
        TestApp::with_config(pool, ServiceConfig::default())
    }

    pub fn with_config(pool: PgPool, config: ServiceConfig) -> TestApp {
        let state = AppState::new(pool.clone(), config);
        TestApp { pool, router: app(state) }
    }

    pub fn request(&self, method: Method, path: impl Into<String>) -> Req<'_> {
        Req { app: self, method, path: path.into(), token: None, body: None, addr: None }
    }

    pub fn get(&self, path: impl Into<String>) -> Req<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: impl Into<String>) -> Req<'_> {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: impl Into<String>) -> Req<'_> {
        self.request(Method::PUT, path)
    }

    pub fn delete(&self, path: impl Into<String>) -> Req<'_> {
        self.request(Method::DELETE, path)
    }

    /// Registers through the API and logs in; returns the actor.
    pub async fn register_and_login(&self, email: &str) -> Actor {
        let resp = self
            .post("/v1/auth/register")
            .json(serde_json::json!({ "email": email, "password": PASSWORD }))
            .send()
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        self.login(email, "test").await
    }

    pub async fn login(&self, email: &str, device: &str) -> Actor {
        let resp = self
            .post("/v1/auth/login")
            .json(serde_json::json!({ "email": email, "password": PASSWORD, "device": device }))
            .send()
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        let body = resp.json();
        Actor {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            email: email.to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
            session_id: body["session_id"].as_str().unwrap().parse().unwrap(),
        }
    }

    /// Posts events as `actor`; asserts the batch was taken.
    pub async fn ingest(&self, actor: &Actor, events: &[Event]) -> Value {
        let resp = self
            .post("/v1/events")
            .token(&actor.token)
            .json(serde_json::json!({
                "client": {"editor": "vscode", "editor_version": "1.99", "plugin_version": "0.1.0", "os": "linux"},
                "events": events,
            }))
            .send()
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        resp.json()
    }
}

/// A logged-in account.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: Uuid,
    pub email: String,
    pub token: String,
    pub session_id: Uuid,
}

/// Creates an account with `role` directly in the database and opens a
/// session for it.
pub async fn create_actor(pool: &PgPool, role: Role) -> Actor {
    static HASH: OnceCell<String> = OnceCell::const_new();
    let hash = HASH.get_or_init(|| async { password::hash(PASSWORD.to_owned()).await.unwrap() }).await;
    let email = format!("{}-{}@example.com", role.as_str(), Uuid::new_v4().simple());
    let user = db::users::create(pool, &email, hash, role).await.unwrap().unwrap();
    let session = open_session(pool, user.id).await;
    Actor { id: user.id, email, token: session.0, session_id: session.1 }
}

/// A further session (device) of a user: (token, session id).
pub async fn open_session(pool: &PgPool, user_id: Uuid) -> (String, Uuid) {
    let new = token::generate().unwrap();
    let expires = OffsetDateTime::now_utc() + time::Duration::days(1);
    let session = db::sessions::create(pool, user_id, &new.hash, "fixture", expires).await.unwrap();
    (new.token, session.id)
}

pub struct Req<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Vec<u8>>,
    addr: Option<SocketAddr>,
}

impl Req<'_> {
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn maybe_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(serde_json::to_vec(&body).unwrap());
        self
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Pretends the request came from this peer address.
    pub fn peer_ip(mut self, ip: &str) -> Self {
        self.addr = Some(SocketAddr::new(ip.parse().unwrap(), 40000));
        self
    }

    pub async fn send(self) -> Resp {
        let mut builder = Request::builder().method(self.method).uri(&self.path);
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match self.body {
            Some(bytes) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).unwrap();
        if let Some(addr) = self.addr {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let resp = Resp { status, headers, body };
        resp.assert_error_shape();
        resp
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of a 4xx/5xx body.
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// Every 4xx and 5xx carries `{ "error", "message" }` and nothing else.
    fn assert_error_shape(&self) {
        if self.status.is_client_error() || self.status.is_server_error() {
            let body = self.json();
            let object = body.as_object().expect("error body is an object");
            assert!(object["error"].is_string(), "{body}");
            assert!(object["message"].is_string(), "{body}");
            assert_eq!(object.len(), 2, "{body}");
        }
    }
}
