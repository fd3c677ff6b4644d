//! Authorization matrix: every endpoint × every role (anonymous, user,
//! researcher, admin) × own vs someone else's data.
//!
//! Each case runs in a fresh world: one account per role plus `other`, a
//! plain user with data of their own (model `other-model`). Roles run in
//! the order anonymous, user, researcher, admin, each with its own account,
//! so a destructive case (logout, delete account) only ever hits the
//! caller. After every call the test checks
//!
//! * the status code against the table;
//! * that the response holds none of `other`'s identifiers (id, email,
//!   session ids, event ids, model name), unless the case lets privileged
//!   roles read everyone's data and the caller has such a role;
//! * that `other` is untouched: still logged in, same role, same events.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use weft_telemetry_api::auth::Role;
use weft_telemetry_wire::{Event, example};

use crate::common::{Actor, PASSWORD, TestApp, create_actor, open_session};

const ROLES: [Option<Role>; 4] = [None, Some(Role::User), Some(Role::Researcher), Some(Role::Admin)];

/// Where a request goes, resolved per caller.
#[derive(Clone, Copy)]
enum Target {
    Path(&'static str),
    /// `{}` replaced by a session of the caller (a spare one).
    OwnSession(&'static str),
    /// `{}` replaced by a session of `other`.
    OtherSession(&'static str),
    /// `{}` replaced by the caller's user id.
    OwnUser(&'static str),
    /// `{}` replaced by `other`'s user id.
    OtherUser(&'static str),
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Json(fn() -> Value),
    /// A registration with a fresh email address.
    Registration,
    /// Login as `other` (knowing their password).
    LoginAsOther,
    /// A batch of the caller's own events.
    OwnBatch,
    /// A batch that reuses one of `other`'s event ids.
    BatchWithOthersEventId,
}

/// Who may see `other`'s data in a successful response.
#[derive(Clone, Copy, PartialEq)]
enum Sees {
    /// Nobody: the endpoint returns the caller's data only.
    OwnOnly,
    /// Researchers and admins see everyone's data; users their own.
    AllIfResearcher,
    /// Admins see every account.
    AllIfAdmin,
    /// The caller is `other` here (login with their password).
    Other,
}

struct Case {
    method: Method,
    target: Target,
    body: Body,
    /// Status for anonymous, user, researcher, admin.
    expect: [u16; 4],
    sees: Sees,
    /// The case legitimately changes `other` (an admin changing their role).
    changes_other_role: bool,
}

fn case(method: Method, target: Target, body: Body, expect: [u16; 4], sees: Sees) -> Case {
    Case { method, target, body, expect, sees, changes_other_role: false }
}

fn cases() -> Vec<Case> {
    use Body as B;
    use Method as M;
    use Sees::*;
    use Target::*;
    let mut cases = vec![
        case(M::GET, Path("/health"), B::None, [200, 200, 200, 200], OwnOnly),
        case(M::GET, Path("/metrics"), B::None, [200, 200, 200, 200], OwnOnly),
        case(M::GET, Path("/openapi.json"), B::None, [200, 200, 200, 200], OwnOnly),
        case(M::GET, Path("/docs"), B::None, [200, 200, 200, 200], OwnOnly),
        case(M::POST, Path("/v1/auth/register"), B::Registration, [201, 201, 201, 201], OwnOnly),
        case(M::POST, Path("/v1/auth/login"), B::LoginAsOther, [200, 200, 200, 200], Other),
        case(M::POST, Path("/v1/auth/logout"), B::None, [401, 204, 204, 204], OwnOnly),
        case(M::GET, Path("/v1/me"), B::None, [401, 200, 200, 200], OwnOnly),
        case(
            M::PUT,
            Path("/v1/me/consent"),
            B::Json(|| json!({"usage": true, "code": true})),
            [401, 200, 200, 200],
            OwnOnly,
        ),
        case(
            M::PUT,
            Path("/v1/me/password"),
            B::Json(|| json!({"current_password": PASSWORD, "new_password": "another long password"})),
            [401, 204, 204, 204],
            OwnOnly,
        ),
        case(M::GET, Path("/v1/me/sessions"), B::None, [401, 200, 200, 200], OwnOnly),
        case(M::DELETE, OwnSession("/v1/me/sessions/{}"), B::None, [401, 204, 204, 204], OwnOnly),
        case(M::DELETE, OtherSession("/v1/me/sessions/{}"), B::None, [401, 404, 404, 404], OwnOnly),
        case(M::GET, Path("/v1/me/export"), B::None, [401, 200, 200, 200], OwnOnly),
        case(M::DELETE, Path("/v1/me"), B::Json(|| json!({"password": PASSWORD})), [401, 204, 204, 204], OwnOnly),
        case(M::POST, Path("/v1/me/totp"), B::None, [401, 200, 200, 200], OwnOnly),
        case(
            M::POST,
            Path("/v1/me/totp/confirm"),
            B::Json(|| json!({"code": "000000"})),
            [401, 409, 409, 409],
            OwnOnly,
        ),
        case(M::DELETE, Path("/v1/me/totp"), B::Json(|| json!({"code": "000000"})), [401, 409, 409, 409], OwnOnly),
        case(M::GET, Path("/v1/admin/users"), B::None, [401, 403, 403, 200], AllIfAdmin),
        case(
            M::PUT,
            OwnUser("/v1/admin/users/{}/role"),
            B::Json(|| json!({"role": "user"})),
            [401, 403, 403, 409],
            OwnOnly,
        ),
        Case {
            changes_other_role: true,
            ..case(
                M::PUT,
                OtherUser("/v1/admin/users/{}/role"),
                B::Json(|| json!({"role": "researcher"})),
                [401, 403, 403, 200],
                AllIfAdmin,
            )
        },
        case(M::POST, Path("/v1/events"), B::OwnBatch, [401, 200, 200, 200], OwnOnly),
        case(M::POST, Path("/v1/events"), B::BatchWithOthersEventId, [401, 200, 200, 200], OwnOnly),
    ];
    for query in ["acceptance", "funnel", "latency", "quality", "calibration", "arms", "events", "events?format=csv"] {
        let path = |p: &str| -> &'static str { Box::leak(p.to_owned().into_boxed_str()) };
        let sep = if query.contains('?') { '&' } else { '?' };
        cases.push(case(
            M::GET,
            Path(path(&format!("/v1/research/{query}"))),
            B::None,
            [401, 200, 200, 200],
            AllIfResearcher,
        ));
        cases.push(case(
            M::GET,
            OwnUser(path(&format!("/v1/research/{query}{sep}user_id={{}}"))),
            B::None,
            [401, 200, 200, 200],
            OwnOnly,
        ));
        cases.push(case(
            M::GET,
            OtherUser(path(&format!("/v1/research/{query}{sep}user_id={{}}"))),
            B::None,
            [401, 403, 200, 200],
            AllIfResearcher,
        ));
    }
    cases
}

struct World {
    /// Indexed like `ROLES`; `None` for anonymous.
    actors: [Option<Actor>; 4],
    /// A second session per actor, to revoke.
    spare_sessions: [Option<Uuid>; 4],
    other: Actor,
    other_spare_session: Uuid,
    other_events: Vec<Event>,
}

async fn world(app: &TestApp) -> World {
    let pool = &app.pool;
    let now = OffsetDateTime::now_utc();
    let mut actors = [None, None, None, None];
    let mut spare_sessions = [None; 4];
    for (i, role) in ROLES.iter().enumerate() {
        if let Some(role) = role {
            let actor = create_actor(pool, *role).await;
            app.ingest(&actor, &example::accepted_completion("own-model", "rust", now)).await;
            spare_sessions[i] = Some(open_session(pool, actor.id).await.1);
            actors[i] = Some(actor);
        }
    }
    let other = create_actor(pool, Role::User).await;
    let mut other_events = example::accepted_completion("other-model", "cobol", now);
    for event in &mut other_events {
        if let weft_telemetry_wire::EventBody::CompletionRequested(r) = &mut event.body {
            r.study_arm = Some("other-arm".to_owned());
        }
    }
    other_events.extend(example::agent_run(now));
    app.ingest(&other, &other_events).await;
    let other_spare_session = open_session(pool, other.id).await.1;
    World { actors, spare_sessions, other, other_spare_session, other_events }
}

impl World {
    fn resolve(&self, target: Target, i: usize) -> String {
        let own_user = self.actors[i].as_ref().map_or(Uuid::new_v4(), |a| a.id);
        match target {
            Target::Path(p) => p.to_owned(),
            Target::OwnSession(p) => p.replace("{}", &self.spare_sessions[i].unwrap_or_else(Uuid::new_v4).to_string()),
            Target::OtherSession(p) => p.replace("{}", &self.other_spare_session.to_string()),
            Target::OwnUser(p) => p.replace("{}", &own_user.to_string()),
            Target::OtherUser(p) => p.replace("{}", &self.other.id.to_string()),
        }
    }

    fn body(&self, body: Body) -> Option<Value> {
        match body {
            Body::None => None,
            Body::Json(make) => Some(make()),
            Body::Registration => Some(json!({
                "email": format!("new-{}@example.com", Uuid::new_v4().simple()),
                "password": PASSWORD,
            })),
            Body::LoginAsOther => Some(json!({"email": self.other.email, "password": PASSWORD})),
            Body::OwnBatch => Some(json!({
                "events": example::agent_run(OffsetDateTime::now_utc()),
            })),
            Body::BatchWithOthersEventId => {
                let mut forged = example::agent_run(OffsetDateTime::now_utc());
                forged[0].id = self.other_events[0].id;
                Some(json!({ "events": forged }))
            }
        }
    }

    /// Strings that identify `other` or their data.
    fn markers(&self) -> Vec<String> {
        let mut markers = vec![
            self.other.id.to_string(),
            self.other.email.clone(),
            self.other.session_id.to_string(),
            self.other_spare_session.to_string(),
            "other-model".to_owned(),
            "cobol".to_owned(),
            "other-arm".to_owned(),
        ];
        markers.extend(self.other_events.iter().map(|e| e.id.to_string()));
        markers
    }
}

/// `other` still logged in, with the same role and all their events.
async fn assert_other_untouched(app: &TestApp, world: &World, role_may_change: bool, label: &str) {
    let me = app.get("/v1/me").token(&world.other.token).send().await;
    assert_eq!(me.status, StatusCode::OK, "{label}: other's session was revoked");
    if !role_may_change {
        assert_eq!(me.json()["role"], "user", "{label}: other's role changed");
    }
    let owned: i64 = sqlx::query_scalar("select count(*) from events where user_id = $1 and event_id = any($2)")
        .bind(world.other.id)
        .bind(world.other_events.iter().map(|e| e.id).collect::<Vec<_>>())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owned as usize, world.other_events.len(), "{label}: other's events changed");
}

#[sqlx::test(migrations = "./migrations")]
async fn every_endpoint_by_every_role_on_own_and_others_data(pool: PgPool) {
    let app = TestApp::new(pool);
    let cases = cases();
    let mut covered = std::collections::BTreeSet::new();
    for case in &cases {
        let world = world(&app).await;
        let mut markers = world.markers();
        if matches!(case.body, Body::BatchWithOthersEventId) {
            // The caller sent this id; seeing it echoed back is no leak.
            let forged = world.other_events[0].id.to_string();
            markers.retain(|m| *m != forged);
        }
        for (i, role) in ROLES.iter().enumerate() {
            let path = world.resolve(case.target, i);
            let role_name = role.map_or("anonymous", Role::as_str);
            let label = format!("{} {path} as {role_name}", case.method);
            let mut req = app
                .request(case.method.clone(), path.clone())
                .maybe_token(world.actors[i].as_ref().map(|a| a.token.as_str()));
            if let Some(body) = world.body(case.body) {
                req = req.json(body);
            }
            let resp = req.send().await;
            assert_eq!(resp.status.as_u16(), case.expect[i], "{label}: {}", resp.text());

            let privileged = match case.sees {
                Sees::OwnOnly => false,
                Sees::AllIfResearcher => role.is_some_and(|r| r >= Role::Researcher),
                Sees::AllIfAdmin => *role == Some(Role::Admin),
                Sees::Other => true,
            };
            let text = resp.text();
            if !privileged {
                for marker in &markers {
                    assert!(!text.contains(marker.as_str()), "{label}: leaked {marker}: {text}");
                }
            } else if resp.status.is_success() && case.sees == Sees::AllIfResearcher && !path.contains("funnel") {
                // The check above is not vacuous: privileged callers do see
                // other's data through the same endpoint.
                assert!(
                    text.contains("other-model") || text.contains("other-arm"),
                    "{label}: researcher sees all: {text}"
                );
            }
            assert_other_untouched(&app, &world, case.changes_other_role, &label).await;
        }
        covered.insert(case.target_template());
    }

    // The matrix covers every route of the OpenAPI document.
    let spec: Value = serde_json::from_str(weft_telemetry_api::routes::system::openapi_text()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let key = format!("{} {path}", method.to_uppercase());
            assert!(covered.contains(&key), "the matrix misses {key}");
        }
    }
}

impl Case {
    /// `METHOD /path/{id}` as in the OpenAPI document.
    fn target_template(&self) -> String {
        let raw = match self.target {
            Target::Path(p)
            | Target::OwnSession(p)
            | Target::OtherSession(p)
            | Target::OwnUser(p)
            | Target::OtherUser(p) => p,
        };
        let path = raw.split('?').next().unwrap().replace("{}", "{id}");
        format!("{} {path}", self.method)
    }
}
