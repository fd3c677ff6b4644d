//! `weft prompt`: the exact prompt for a cursor in a fixture workspace,
//! with the real vocabularies: StarCoder2's repo-level format, and path
//! comments with DeepSeek-Coder's FIM and with Qwen2's prefix-only prompts
//! (llama.cpp's Qwen2 vocabulary has no FIM or repository tokens, so the
//! Qwen2.5-Coder repo format is covered by the inference crate's tests). Each workspace has a file A with the function
//! that file B imports and calls near the cursor, an unrelated function in
//! A, and an unrelated file C; only A's called function may appear.

use std::process::{Command, Output};

use expect_test::{Expect, expect};
use weft_e2e::{fixture, weft_binary};

fn weft_prompt(vocab_name: &str, workspace: &str, location: &str, extra: &[&str]) -> Output {
    let root = fixture(&format!("context/{workspace}"));
    let file = format!("{}/{location}", root.display());
    let model = weft_e2e::vocab_file(vocab_name);
    Command::new(weft_binary())
        .args(["prompt", "--model", model.to_str().unwrap(), "--workspace", root.to_str().unwrap()])
        .args(extra)
        .arg(&file)
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .env("WEFT_LOG", "warn")
        .output()
        .expect("run weft prompt")
}

fn check(vocab_name: &str, workspace: &str, location: &str, expect: Expect) {
    let output = weft_prompt(vocab_name, workspace, location, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let prompt = String::from_utf8(output.stdout).expect("the prompt is UTF-8");
    assert!(!prompt.to_lowercase().contains("unrelated_helper") && !prompt.contains("unrelatedHelper"), "{prompt}");
    assert!(!prompt.to_lowercase().contains("invoice"), "{prompt}");
    expect.assert_eq(&prompt);
}

#[test]
fn python_prompt_holds_the_imported_signature() {
    check(
        "qwen2",
        "python",
        "app/report.py:8:12",
        expect![[r##"
        # app/geometry.py
        def rect_area(width: float, height: float) -> float:
            """The area of a width × height rectangle."""
            ...

        # app/report.py
        from app.geometry import rect_area


        def report(rooms):
            total = 0
            for w, h in rooms:
                total += rect_area(w, h)
            return "##]],
    );
}

#[test]
fn rust_prompt_holds_the_imported_signature() {
    check(
        "deepseek-coder",
        "rust",
        "src/report.rs:8:5",
        expect![[r#"
        <｜begin▁of▁sentence｜>// src/geometry.rs
        /// The area of a rectangle.
        pub fn rect_area(width: f64, height: f64) -> f64 { ... }

        // src/report.rs
        <｜fim▁begin｜>use crate::geometry::rect_area;

        pub fn report(rooms: &[(f64, f64)]) -> f64 {
            let mut total = 0.0;
            for (w, h) in rooms {
                total += rect_area(*w, *h);
            }
            <｜fim▁hole｜>total
        }
        <｜fim▁end｜>"#]],
    );
}

#[test]
fn typescript_prompt_holds_the_imported_signature() {
    check(
        "starcoder",
        "typescript",
        "src/report.ts:8:10",
        expect![[r#"
        <repo_name>workspace
        <file_sep>src/geometry.ts
        /** The area of a rectangle. */
        export function rectArea(width: number, height: number): number { ... }
        <file_sep>src/report.ts
        <fim_prefix><fim_suffix>total;
        }
        <fim_middle>import { rectArea } from "./geometry";

        export function report(rooms: [number, number][]): number {
          let total = 0;
          for (const [w, h] of rooms) {
            total += rectArea(w, h);
          }
          return "#]],
    );
}

#[test]
fn go_prompt_holds_the_imported_signature() {
    check(
        "starcoder",
        "go",
        "report/report.go:10:9",
        expect![[r#"
        <repo_name>workspace
        <file_sep>geometry/geometry.go
        // RectArea is the area of a rectangle.
        func RectArea(width, height float64) float64 { ... }
        <file_sep>report/report.go
        <fim_prefix><fim_suffix>total
        }
        <fim_middle>package report

        import "example.com/proj/geometry"

        func Report(rooms [][2]float64) float64 {
        	total := 0.0
        	for _, r := range rooms {
        		total += geometry.RectArea(r[0], r[1])
        	}
        	return "#]],
    );
}

#[test]
fn java_prompt_holds_the_imported_signature() {
    check(
        "starcoder",
        "java",
        "src/main/java/com/acme/report/Report.java:11:16",
        expect![[r#"
        <repo_name>workspace
        <file_sep>src/main/java/com/acme/geometry/Geometry.java
        public final class Geometry {
            /** The area of a rectangle. */
            public static double rectArea(double width, double height) { ... }
        }
        <file_sep>src/main/java/com/acme/report/Report.java
        <fim_prefix><fim_suffix>total;
            }
        }
        <fim_middle>package com.acme.report;

        import com.acme.geometry.Geometry;

        public class Report {
            public double report(double[][] rooms) {
                double total = 0;
                for (double[] r : rooms) {
                    total += Geometry.rectArea(r[0], r[1]);
                }
                return "#]],
    );
}

#[test]
fn json_lists_every_source_and_no_cross_file_turns_them_off() {
    let output = weft_prompt("qwen2", "python", "app/report.py:8:12", &["--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let sources = value["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{value:#}");
    let source = &sources[0];
    assert_eq!(source["file"], "app/geometry.py");
    assert_eq!(source["symbol"], "rect_area");
    assert_eq!(source["source"], "definition");
    assert_eq!(source["lines"], serde_json::json!([4, 6]));
    assert_eq!(source["included"], true);
    assert!(source["tokens"].as_u64().unwrap() > 10, "{source}");
    assert!(source["reason"].as_str().unwrap().contains("imported from `app.geometry`"), "{source}");
    assert!(value["retrieval"]["micros"].as_u64().is_some(), "{value:#}");
    assert!(value["prompt"].as_str().unwrap().contains("def rect_area(width: float, height: float) -> float:"));

    let output = weft_prompt("qwen2", "python", "app/report.py:8:12", &["--json", "--no-cross-file"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["sources"], serde_json::json!([]), "{value:#}");
    assert_eq!(value["cross_file"], false);
    assert!(!value["prompt"].as_str().unwrap().contains("def rect_area"));
}
