//! Telemetry end to end: the real `weft` (LSP and `weft telemetry emit`)
//! sending to the real `weft-telemetry-api` on a real Postgres.
//!
//! `make test` gives `DATABASE_URL` (from `telemetry-api/scripts/test-db.sh`);
//! each test makes its own database there. The fault test starts a
//! Postgres cluster of its own, since it restarts it.

#[path = "telemetry/support.rs"]
mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Api, PgCluster, TestDatabase, database_server_url, free_port, psql, wait_for};
use weft_e2e::{LspClient, file_uri, test_model, weft_binary};

const LONG: Duration = Duration::from_secs(120);

fn write_config(path: &Path, api: &Api, token: &str, spool: &Path, extra: &str) {
    let config = format!(
        "[completion]\nmax_tokens = 12\n\n[agent]\nmax_tokens = 96\nrun_log = {run_log:?}\n\n[chat.providers.local]\nkind = \"local\"\nn_ctx = 1024\n\n[telemetry]\nendpoint = {endpoint:?}\ntoken = {token:?}\nspool_dir = {spool:?}\n{extra}",
        endpoint = api.endpoint(),
        run_log = spool.with_file_name("agent-runs.jsonl"),
    );
    std::fs::write(path, config).unwrap();
}

/// Rows of `sql` that has one column.
fn column(url: &str, sql: &str) -> Vec<String> {
    psql(url, sql).unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Opens `path` with `text`, asks for an inline completion at `position`
/// and reports it shown; returns the URI, the item and its text. One
/// document per completion, so that each is followed on its own.
fn show_completion(client: &mut LspClient, path: &Path, text: &str, position: &Value) -> (String, Value, String) {
    let uri = file_uri(path);
    client.open(&uri, "python", text);
    let inline = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": position, "context": { "triggerKind": 1 } }),
        LONG,
    );
    let item = inline["result"][0].clone();
    let insert = item["insertText"].as_str().unwrap_or_else(|| panic!("no inline completion: {inline}")).to_owned();
    client.notify("textDocument/didShowCompletion", json!({ "item": item }));
    (uri, item, insert)
}

/// The JSON value that `sql` (one row, one jsonb column) selects.
fn json_rows(url: &str, sql: &str) -> Value {
    let rows = column(url, sql);
    serde_json::from_str(rows.first().map_or("null", String::as_str)).unwrap_or_else(|err| panic!("{sql}: {err}"))
}

#[test]
fn accepted_dismissed_and_partly_accepted_completions_reach_postgres_with_ground_truth() {
    let db = TestDatabase::create(&database_server_url(), "weft_e2e_telemetry");
    let api = Api::start(&db.url, free_port());
    let (user_id, token) = api.register("e2e@example.com");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let config = dir.path().join("config.toml");
    write_config(
        &config,
        &api,
        &token,
        &spool,
        "flush_interval_ms = 100\nground_truth_delays_ms = [400, 800, 1200, 1600]\n",
    );

    let model = test_model();
    let mut client = LspClient::spawn(
        &["--model", model.to_str().unwrap()],
        &[("WEFT_CONFIG", config.to_str().unwrap()), ("WEFT_N_THREADS", "1")],
    );
    let root = dir.path().join("workspace");
    std::fs::create_dir(&root).unwrap();
    let init = client.call(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": file_uri(&root),
            "clientInfo": { "name": "weft-e2e", "version": "1.2.3" },
            "capabilities": { "textDocument": { "inlineCompletion": {} } }
        }),
        LONG,
    );
    assert!(init.get("error").is_none(), "{init}");
    client.notify("initialized", json!({}));

    let text = "def greet(name):\n    message = \"Hello, \" + name + \n    return message\n";
    let position = json!({ "line": 1, "character": 33 });
    let insert_at = |uri: &str, version: i32, at: &Value, text: &str| {
        json!({
            "textDocument": { "uri": uri, "version": version },
            "contentChanges": [{ "range": { "start": at, "end": at }, "text": text }]
        })
    };

    // Accepted whole: what an editor does is insert the text on Tab, then
    // run the item's command.
    let (uri, item, inserted) = show_completion(&mut client, &root.join("accepted.py"), text, &position);
    client.notify("textDocument/didChange", insert_at(&uri, 2, &position, &inserted));
    let command = &item["command"];
    let accepted = client.call(
        "workspace/executeCommand",
        json!({ "command": command["command"], "arguments": command["arguments"] }),
        LONG,
    );
    assert!(accepted.get("error").is_none(), "{accepted}");
    // Typing after the accepted text is not part of its ground truth.
    let last_line = inserted.rsplit('\n').next().unwrap_or_default().encode_utf16().count();
    let lines = inserted.matches('\n').count();
    let after = if lines == 0 {
        json!({ "line": 1, "character": 33 + last_line })
    } else {
        json!({ "line": 1 + lines, "character": last_line })
    };
    client.notify("textDocument/didChange", insert_at(&uri, 3, &after, "  # typed later"));

    // Dismissed with Escape.
    let (_, item, _) = show_completion(&mut client, &root.join("dismissed.py"), text, &position);
    client.notify("weft/didDismissCompletion", json!({ "item": item }));

    // Its first character accepted (word-wise acceptance).
    let (uri, item, partial) = show_completion(&mut client, &root.join("partial.py"), text, &position);
    let first: String = partial.chars().take(1).collect();
    client.notify("textDocument/didChange", insert_at(&uri, 2, &position, &first));
    client.notify(
        "textDocument/didPartiallyAcceptCompletion",
        json!({ "item": item, "acceptedLength": first.encode_utf16().count() }),
    );

    // An agent run: its steps and the run itself are telemetry too.
    let explained = root.join("explained.py");
    std::fs::write(&explained, text).unwrap();
    let explain = client.call(
        "workspace/executeCommand",
        json!({ "command": "weft.agent.explain", "arguments": [{ "uri": file_uri(&explained) }] }),
        LONG,
    );
    assert_eq!(explain["result"]["state"], "completed", "{explain}");
    let run_id = explain["result"]["runId"].as_str().unwrap().to_owned();

    let kinds = wait_for(Duration::from_secs(60), "the events and 12 snapshots in Postgres", || {
        let kinds = column(&db.url, "select kind from events order by occurred_at, kind");
        let done =
            kinds.iter().filter(|k| *k == "ground_truth").count() == 12 && kinds.iter().any(|k| k == "agent_run");
        done.then_some(kinds)
    });
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    for (kind, n) in [
        ("completion_requested", 3),
        ("completion_generated", 3),
        ("shown", 3),
        ("accepted", 1),
        ("dismissed", 1),
        ("partially_accepted", 1),
        ("typed_over", 0),
        ("superseded", 0),
        ("agent_run", 1),
        ("agent_step", 1),
    ] {
        assert_eq!(count(kind), n, "{kind} in {kinds:?}");
    }
    let owners = column(&db.url, "select distinct user_id::text || '|' || editor || '|' || editor_version from events");
    assert_eq!(owners, [format!("{user_id}|weft-e2e|1.2.3")]);
    let runs = column(&db.url, "select run_id::text || '|' || command from agent_runs");
    assert_eq!(runs, [format!("{run_id}|weft.agent.explain")]);
    let completions =
        column(&db.url, "select count(distinct completion_id) from events where completion_id is not null");
    assert_eq!(completions, ["3"]);

    let generated = json_rows(
        &db.url,
        "select jsonb_agg(g.text) from generations g join completion_outcomes o \
         on o.completion_id = g.completion_id and o.outcome = 'accepted'",
    );
    assert_eq!(generated, json!([inserted]));
    let requested = column(
        &db.url,
        "select distinct trigger_kind || '|' || language || '|' || file_extension || '|' || caret_line || '|' \
         || document_length from completion_requests",
    );
    assert_eq!(requested, [format!("invoked|python|py|1|{}", text.chars().count())]);
    let accepted_chars =
        column(&db.url, "select accepted_chars from completion_outcomes where outcome = 'partially_accepted'");
    assert_eq!(accepted_chars, ["1"]);

    let snapshots = json_rows(
        &db.url,
        "select jsonb_agg(jsonb_build_array(o.outcome, g.after_secs, g.accepted, g.text) \
                          order by o.outcome, g.after_secs) \
         from ground_truths g join completion_outcomes o on o.completion_id = g.completion_id \
         where o.outcome in ('accepted', 'dismissed', 'partially_accepted')",
    );
    let mut expected = Vec::new();
    for (outcome, accepted, text) in
        [("accepted", true, inserted.as_str()), ("dismissed", false, ""), ("partially_accepted", true, first.as_str())]
    {
        expected.extend([30, 120, 300, 600].iter().map(|s| json!([outcome, s, accepted, text])));
    }
    assert_eq!(snapshots, Value::Array(expected));

    assert!(client.shutdown().success());
    let left: usize =
        std::fs::read_dir(&spool).map(|entries| entries.filter_map(Result::ok).count()).unwrap_or_default();
    assert_eq!(left, 0, "nothing waits in the spool");
}

#[test]
fn ten_thousand_events_survive_api_kills_and_a_postgres_restart_exactly_once() {
    const EVENTS: usize = 10_000;
    let cluster = PgCluster::start();
    let db = TestDatabase::create(&cluster.url(), "weft_faults");
    let port = free_port();
    let api = Api::start(&db.url, port);
    let (_, token) = api.register("faults@example.com");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let spool = dir.path().join("spool");
    write_config(&config, &api, &token, &spool, "batch_size = 200\nflush_interval_ms = 50\nretry_max_ms = 1000\n");
    let ids_file = dir.path().join("ids.txt");

    let mut emit = Command::new(weft_binary())
        .args(["telemetry", "emit", "--count", &EVENTS.to_string(), "--rate", "800", "--drain-secs", "120"])
        .arg("--ids")
        .arg(&ids_file)
        .env("WEFT_CONFIG", &config)
        .env("WEFT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stored = |url: &str| -> Option<usize> { psql(url, "select count(*) from events").ok()?.first()?.parse().ok() };

    wait_for(Duration::from_secs(60), "1,500 events stored", || stored(&db.url).filter(|&n| n >= 1500));
    let (url, port) = api.kill();
    std::thread::sleep(Duration::from_secs(1));
    let api = Api::start(&url, port);

    wait_for(Duration::from_secs(90), "5,000 events stored", || stored(&db.url).filter(|&n| n >= 5000));
    assert!(emit.try_wait().unwrap().is_none(), "the sender must still be running when Postgres restarts");
    cluster.restart();

    let output = wait_for(Duration::from_secs(240), "weft telemetry emit to finish", || emit.try_wait().unwrap());
    let mut report = String::new();
    std::io::Read::read_to_string(&mut emit.stdout.take().unwrap(), &mut report).unwrap();
    assert!(output.success(), "weft telemetry emit failed: {report}");
    let report: Value = serde_json::from_str(report.trim()).unwrap_or_else(|_| panic!("report: {report}"));
    eprintln!("weft telemetry emit: {report}");
    assert_eq!(report["left_in_spool"], 0, "{report}");
    assert!(report["spooled"].as_u64().unwrap() > 0, "the faults made the sender spool: {report}");
    assert_eq!(report["dropped"], 0, "{report}");

    let sent: HashSet<String> = std::fs::read_to_string(&ids_file).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(sent.len(), EVENTS);
    let rows = column(&db.url, "select event_id::text from events");
    let stored_ids: HashSet<String> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), EVENTS, "every event exactly once (no duplicates)");
    assert_eq!(stored_ids, sent, "the stored ids are the sent ids");
    drop(api);
}

#[test]
fn events_spooled_while_the_api_is_down_are_replayed_on_the_next_start() {
    let db = TestDatabase::create(&database_server_url(), "weft_e2e_spool");
    let port = free_port();
    let api = Api::start(&db.url, port);
    let (_, token) = api.register("spool@example.com");
    let (url, port) = api.kill();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let spool = dir.path().join("spool");
    std::fs::write(
        &config,
        format!("[telemetry]\nendpoint = \"http://127.0.0.1:{port}\"\ntoken = {token:?}\nspool_dir = {spool:?}\n"),
    )
    .unwrap();
    let emit = |count: usize| {
        let out = Command::new(weft_binary())
            .args(["telemetry", "emit", "--count", &count.to_string(), "--drain-secs", "0"])
            .env("WEFT_CONFIG", &config)
            .env("WEFT_LOG", "error")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.success(), report)
    };

    // Nothing listens: the events wait in the spool, and the exit code says so.
    let (ok, report) = emit(50);
    assert!(!ok, "{report}");
    assert_eq!((report["spooled"].as_u64(), report["left_in_spool"].as_u64()), (Some(50), Some(50)), "{report}");

    // The next start replays them before anything else.
    let _api = Api::start(&url, port);
    let (ok, report) = emit(0);
    assert!(ok, "{report}");
    assert_eq!(report["accepted"], 50, "{report}");
    assert_eq!(column(&db.url, "select count(*) from events"), ["50"]);
}
