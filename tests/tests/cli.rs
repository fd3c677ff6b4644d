//! The `weft` command line, run as a user would.

use std::process::{Command, Output};

use weft_e2e::{fixture, test_model, weft_binary};

fn weft(args: &[&str]) -> Output {
    Command::new(weft_binary())
        .args(args)
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .env("WEFT_N_THREADS", "1")
        .output()
        .expect("run weft")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn complete_prints_a_completion_at_a_one_based_location() {
    let model = test_model();
    let file = fixture("demo/greeting.py");
    // Line 7 is `    return "Hello, " + name + "!"`; column 5 is before `return`.
    let location = format!("{}:7:5", file.display());
    let output = weft(&["complete", "--model", model.to_str().unwrap(), "--max-tokens", "8", "--json", &location]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["model"]["detection"]["format"], "prefix-only");
    let completion = &value["completion"];
    assert!(completion["generated_tokens"].as_u64().unwrap() >= 1, "{completion}");
    assert!(completion["prompt_tokens"].as_u64().unwrap() > 10, "{completion}");
}

#[test]
fn complete_rejects_a_bad_location_clearly() {
    let model = test_model();
    let output = weft(&["complete", "--model", model.to_str().unwrap(), "greeting.py:zero:1"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("LINE must be a number from 1 up"), "{}", stderr(&output));
}

#[test]
fn lsp_without_a_model_file_fails_with_an_actionable_message() {
    let output = weft(&["lsp", "--model", "/nonexistent/model.gguf"]);
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty(), "nothing may reach stdout: {}", stdout(&output));
    assert!(stderr(&output).contains("/nonexistent/model.gguf does not exist"), "{}", stderr(&output));
}

#[test]
fn lsp_without_any_model_says_how_to_configure_one() {
    let output = Command::new(weft_binary())
        .args(["lsp"])
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .env_remove("WEFT_MODEL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no model configured: pass --model PATH"), "{}", stderr(&output));
}

#[test]
fn models_list_shows_the_registry() {
    let output = weft(&["models", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for name in [
        "smollm2-135m-instruct",
        "deepseek-coder-1.3b-base",
        "deepseek-coder-6.7b-base",
        "starcoder2-3b",
        "starcoder2-7b",
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-7b",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[test]
fn a_bad_config_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[engine]\nn_ctxx = 1\n").unwrap();
    let output = Command::new(weft_binary()).args(["models", "list"]).env("WEFT_CONFIG", &config).output().unwrap();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("invalid config file") && err.contains("n_ctxx"), "{err}");
}

#[test]
fn doctor_passes_the_test_model_and_warns_that_it_has_no_fim_tokens() {
    let model = test_model();
    let output = weft(&["doctor", "--model", model.to_str().unwrap()]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    assert!(out.contains("[ok  ] model file:") && out.contains("GGUF"), "{out}");
    assert!(out.contains("[warn] prompt format:") && out.contains("has no FIM tokens"), "{out}");
    assert!(out.contains("fix: for fill-in-the-middle use a base coder model"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn doctor_recognises_a_fim_family_from_its_real_vocabulary() {
    let vocab = weft_e2e::vocab_file("deepseek-coder");
    let output = weft(&["doctor", "--json", "--model", vocab.to_str().unwrap()]);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    let findings: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let format = findings.as_array().unwrap().iter().find(|f| f["check"] == "prompt format").unwrap();
    assert_eq!(format["verdict"], "ok", "{format}");
    assert!(format["detail"].as_str().unwrap().contains("deepseek-coder"), "{format}");
}

#[test]
fn doctor_fails_on_a_missing_model_and_says_what_to_do() {
    let output = weft(&["doctor", "--model", "/nonexistent/model.gguf"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("[FAIL] model: model file /nonexistent/model.gguf does not exist"), "{out}");
    assert!(out.contains("fix: `weft models list`"), "{out}");
}

#[test]
fn doctor_reports_a_broken_config_instead_of_failing_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[engine]\nn_ctxx = 5\n").unwrap();
    let output = Command::new(weft_binary()).args(["doctor"]).env("WEFT_CONFIG", &config).output().unwrap();
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("[FAIL] config:") && out.contains("n_ctxx"), "{out}");
}
