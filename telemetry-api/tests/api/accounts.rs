//! Registration, login, sessions, password, two-factor, throttling, export
//! and deletion.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use weft_telemetry_api::auth::totp;
use weft_telemetry_wire::example;

use crate::common::{PASSWORD, TestApp};

#[sqlx::test(migrations = "./migrations")]
async fn register_login_me_logout(pool: PgPool) {
    let app = TestApp::new(pool);
    let ada = app.register_and_login("Ada@example.com").await;

    let cases = [
        (json!({"email": "ada@EXAMPLE.com", "password": PASSWORD}), 409, "email_taken"),
        (json!({"email": "bob@example.com", "password": "short"}), 422, "weak_password"),
        (json!({"email": "not-an-email", "password": PASSWORD}), 422, "invalid_email"),
        (json!({"email": "bob@example.com"}), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let resp = app.post("/v1/auth/register").json(body.clone()).send().await;
        assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (status, code), "{body}");
    }
    let resp = app.post("/v1/auth/register").raw("{not json").send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (400, "malformed_json"));

    let resp =
        app.post("/v1/auth/login").json(json!({"email": "ada@example.com", "password": "wrong password"})).send().await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.error_code(), "invalid_credentials");

    let me = app.get("/v1/me").token(&ada.token).send().await.json();
    assert_eq!(me["email"], "Ada@example.com");
    assert_eq!(me["role"], "user");
    assert_eq!(me["consent"], json!({"usage": true, "code": false}));

    let resp = app.post("/v1/auth/logout").token(&ada.token).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let resp = app.get("/v1/me").token(&ada.token).send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (401, "invalid_token"));
    let resp = app.get("/v1/me").send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (401, "unauthenticated"));
}

#[sqlx::test(migrations = "./migrations")]
async fn tokens_are_stored_only_as_hashes(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let (hash,): (Vec<u8>,) = sqlx::query_as("select token_hash from sessions where id = $1")
        .bind(ada.session_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hash, weft_telemetry_api::auth::token::hash(&ada.token));
    let (password_hash,): (String,) = sqlx::query_as("select password_hash from users").fetch_one(&pool).await.unwrap();
    assert!(password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
}

#[sqlx::test(migrations = "./migrations")]
async fn sessions_on_several_devices(pool: PgPool) {
    let app = TestApp::new(pool);
    let laptop = app.register_and_login("ada@example.com").await;
    let desktop = app.login("ada@example.com", "desktop").await;

    let sessions = app.get("/v1/me/sessions").token(&laptop.token).send().await.json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop.session_id.to_string());

    let path = format!("/v1/me/sessions/{}", desktop.session_id);
    let resp = app.delete(&path).token(&laptop.token).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/me").token(&desktop.token).send().await.status, 401);
    assert_eq!(app.delete(&path).token(&laptop.token).send().await.status, 404);
    let resp = app.delete("/v1/me/sessions/not-a-uuid").token(&laptop.token).send().await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/me").token(&laptop.token).send().await.status, 200);
}

#[sqlx::test(migrations = "./migrations")]
async fn change_password_revokes_other_sessions(pool: PgPool) {
    let app = TestApp::new(pool);
    let laptop = app.register_and_login("ada@example.com").await;
    let desktop = app.login("ada@example.com", "desktop").await;
    let new_password = "a much better passphrase";

    let resp = app
        .put("/v1/me/password")
        .token(&laptop.token)
        .json(json!({"current_password": "wrong one!!", "new_password": new_password}))
        .send()
        .await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (403, "wrong_password"));
    let resp = app
        .put("/v1/me/password")
        .token(&laptop.token)
        .json(json!({"current_password": PASSWORD, "new_password": "short"}))
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);

    let resp = app
        .put("/v1/me/password")
        .token(&laptop.token)
        .json(json!({"current_password": PASSWORD, "new_password": new_password}))
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/me").token(&laptop.token).send().await.status, 200);
    assert_eq!(app.get("/v1/me").token(&desktop.token).send().await.status, 401);
    let login = |password: &'static str| {
        app.post("/v1/auth/login").json(json!({"email": "ada@example.com", "password": password})).send()
    };
    assert_eq!(login(PASSWORD).await.status, 401);
    assert_eq!(login(new_password).await.status, 200);
}

/// Waits until at least `margin` seconds remain in the current TOTP step,
/// so that a test using neighbouring steps does not straddle a boundary.
async fn steady_totp_step(margin: i64) -> i64 {
    loop {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if totp::STEP_SECS - now.rem_euclid(totp::STEP_SECS) > margin {
            return totp::step_of(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn totp_enrol_confirm_login_disable(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;

    let resp = app.post("/v1/me/totp/confirm").token(&ada.token).json(json!({"code": "123456"})).send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (409, "totp_not_enrolled"));

    let enrolment = app.post("/v1/me/totp").token(&ada.token).send().await.json();
    let (secret,): (Vec<u8>,) =
        sqlx::query_as("select totp_secret from users where id = $1").bind(ada.id).fetch_one(&pool).await.unwrap();
    assert_eq!(enrolment["secret"], totp::base32(&secret));
    assert!(enrolment["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/Weft:"));

    let step = steady_totp_step(5).await;
    let code = |s: i64| totp::code_at_step(&secret, s);
    let confirm = |code: String| app.post("/v1/me/totp/confirm").token(&ada.token).json(json!({ "code": code })).send();
    let wrong = if code(step) == "000000" { "111111" } else { "000000" };
    let resp = confirm(wrong.to_owned()).await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (422, "invalid_totp"));
    assert_eq!(confirm(code(step - 1)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/me").token(&ada.token).send().await.json()["totp_enabled"], true);

    let login = |totp_code: Option<String>| {
        app.post("/v1/auth/login")
            .json(json!({"email": "ada@example.com", "password": PASSWORD, "totp_code": totp_code}))
            .send()
    };
    let resp = login(None).await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (401, "totp_required"));
    let resp = login(Some(wrong.to_owned())).await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (401, "invalid_totp"));
    // A used code (step - 1) does not work twice.
    let resp = login(Some(code(step - 1))).await;
    assert_eq!(resp.error_code(), "invalid_totp");
    assert_eq!(login(Some(code(step))).await.status, StatusCode::OK);

    let resp = app.delete("/v1/me/totp").token(&ada.token).json(json!({ "code": code(step + 1) })).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(login(None).await.status, StatusCode::OK);
}

#[sqlx::test(migrations = "./migrations")]
async fn login_throttling_per_account_and_per_address(pool: PgPool) {
    let app = TestApp::new(pool);
    app.register_and_login("ada@example.com").await;
    let attempt = |email: &'static str, password: &'static str, ip: &'static str| {
        app.post("/v1/auth/login").peer_ip(ip).json(json!({"email": email, "password": password})).send()
    };
    // Five failures for one account, from different addresses...
    for i in 0..5 {
        let ip = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"][i];
        assert_eq!(attempt("ada@example.com", "wrong password", ip).await.status, 401);
    }
    // ...lock the account, even with the right password.
    let resp = attempt("ada@example.com", PASSWORD, "10.0.0.9").await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (429, "rate_limited"));
    let retry_after: u64 = resp.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");

    // Twenty failures from one address, over many accounts, lock the address.
    for i in 0..20 {
        let email: &'static str = Box::leak(format!("nobody{i}@example.com").into_boxed_str());
        assert_eq!(attempt(email, "wrong password", "192.0.2.7").await.status, 401);
    }
    assert_eq!(attempt("someone@example.com", "x", "192.0.2.7").await.status, 429);
    assert_eq!(attempt("someone@example.com", "x", "192.0.2.8").await.status, 401);
}

#[sqlx::test(migrations = "./migrations")]
async fn export_and_delete_account_cascades(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let bob = app.register_and_login("bob@example.com").await;
    let now = OffsetDateTime::now_utc();
    app.ingest(&ada, &example::accepted_completion("m", "rust", now)).await;
    app.ingest(&bob, &example::agent_run(now)).await;
    let resp = app.put("/v1/me/consent").token(&ada.token).json(json!({"usage": true, "code": true})).send().await;
    assert_eq!(resp.json(), json!({"usage": true, "code": true}));

    let export = app.get("/v1/me/export").token(&ada.token).send().await.json();
    assert_eq!(export["user"]["email"], "ada@example.com");
    assert_eq!(export["consent"]["code"], true);
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1);
    let events = export["events"].as_array().unwrap();
    assert_eq!(events.len(), 8);
    assert!(events.iter().all(|e| e["user_id"] == ada.id.to_string()));

    let resp = app.delete("/v1/me").token(&ada.token).json(json!({"password": "not my password"})).send().await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    let resp = app.delete("/v1/me").token(&ada.token).json(json!({"password": PASSWORD})).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);

    for table in ["users", "sessions", "consents", "events"] {
        let column = if table == "users" { "id" } else { "user_id" };
        let (n,): (i64,) = sqlx::query_as(&format!("select count(*) from {table} where {column} = $1"))
            .bind(ada.id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} still holds rows of the deleted account");
    }
    let (bobs,): (i64,) =
        sqlx::query_as("select count(*) from events where user_id = $1").bind(bob.id).fetch_one(&pool).await.unwrap();
    assert_eq!(bobs, 3);
    assert_eq!(app.get("/v1/me").token(&ada.token).send().await.status, 401);
}

#[sqlx::test(migrations = "./migrations")]
async fn admin_changes_roles(pool: PgPool) {
    use weft_telemetry_api::auth::Role;
    let app = TestApp::new(pool.clone());
    let admin = crate::common::create_actor(&pool, Role::Admin).await;
    let user = crate::common::create_actor(&pool, Role::User).await;
    let set = |id: String, role: &'static str| {
        app.put(format!("/v1/admin/users/{id}/role")).token(&admin.token).json(json!({ "role": role })).send()
    };
    let resp = set(user.id.to_string(), "researcher").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["role"], "researcher");
    let me = app.get("/v1/me").token(&user.token).send().await.json();
    assert_eq!(me["role"], "researcher");
    assert_eq!(set(admin.id.to_string(), "user").await.status, StatusCode::CONFLICT);
    assert_eq!(set(uuid::Uuid::new_v4().to_string(), "user").await.status, 404);
    assert_eq!(set(user.id.to_string(), "overlord").await.status, 422);
}

#[sqlx::test(migrations = "./migrations")]
async fn limits_and_fallbacks_answer_in_json(pool: PgPool) {
    let app = TestApp::new(pool);
    let huge = json!({"email": "a@example.com", "password": "x".repeat(100 * 1024)});
    let resp = app.post("/v1/auth/register").json(huge).send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (413, "payload_too_large"));
    let resp = app.get("/v1/nothing-here").send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (404, "not_found"));
    let resp = app.delete("/v1/auth/login").send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (405, "method_not_allowed"));
    let resp = app.get("/v1/me").token("wft_forged").send().await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
}
