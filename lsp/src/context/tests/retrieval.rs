//! Retrieval on fixture workspaces: for a cursor in one file, the snippets
//! chosen from the others, with why.

use std::ops::Range;

use expect_test::{Expect, expect};

use super::Fixture;
use crate::context::{ContextConfig, ContextEngine, ContextQuery, Retrieval};

/// Indexes the fixture, opens the file with the cursor and retrieves; the
/// prompt's window is `window` (lines, zero-based) or the whole file.
fn retrieve(fixture: &str, config: ContextConfig, window: Option<Range<usize>>) -> Retrieval {
    let fixture = Fixture::new(fixture);
    let engine = ContextEngine::new(config);
    engine.set_roots_blocking(vec![fixture.root().to_path_buf()]);
    let (path, text, cursor) = fixture.cursor_file.clone().expect("the fixture has a `$0`");
    engine.open(&path, "", &text);
    let window = match window {
        None => 0..text.len(),
        Some(lines) => {
            let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
            starts[lines.start]..starts.get(lines.end).copied().unwrap_or(text.len())
        }
    };
    engine.retrieve(&ContextQuery { path: &path, cursor, window })
}

fn render(retrieval: &Retrieval) -> String {
    let mut out = String::new();
    for s in &retrieval.snippets {
        let symbol = s.symbol.as_deref().unwrap_or("-");
        out.push_str(&format!("{:?} {}:{}-{} {symbol}\n", s.source, s.path, s.first_line, s.last_line));
        out.push_str(&format!("  why: {}\n", s.reason));
        for line in s.text.lines() {
            out.push_str(&format!("  | {line}\n"));
        }
    }
    out
}

fn check(fixture: &str, expect: Expect) {
    expect.assert_eq(&render(&retrieve(fixture, ContextConfig::default(), None)));
}

#[test]
fn python_imported_function() {
    check(
        r#"
        //- /app/geometry.py
        """Geometry helpers."""

        def rect_area(width: float, height: float) -> float:
            """The area of a width × height rectangle."""
            return width * height

        def unrelated_helper():
            return 42
        //- /app/billing.py
        def compute_invoice(items):
            return sum(items)
        //- /app/main.py
        from app.geometry import rect_area

        def report(rooms):
            total = 0
            for w, h in rooms:
                total += rect_area(w, h)
            return $0
        "#,
        expect![[r#"
            Definition app/geometry.py:3-5 rect_area
              why: `rect_area` is imported from `app.geometry`
              | def rect_area(width: float, height: float) -> float:
              |     """The area of a width × height rectangle."""
              |     ...
        "#]],
    );
}

#[test]
fn python_module_alias_and_outline() {
    check(
        r#"
        //- /app/geometry.py
        def rect_area(width, height):
            return width * height

        def circle_area(radius):
            return 3.14 * radius * radius

        def _private():
            pass
        //- /app/main.py
        import app.geometry as geo

        def report(rooms):
            return geo.$0
        "#,
        expect![[r#"
            Module app/geometry.py:1-5 geo
              why: a member of `geo` (imported from `app.geometry`) is being typed
              | def rect_area(width, height): ...
              | def circle_area(radius): ...
        "#]],
    );
}

#[test]
fn rust_use_and_path() {
    check(
        r#"
        //- /Cargo.toml
        [package]
        name = "demo"
        //- /src/lib.rs
        pub mod billing;
        pub mod geometry;
        pub mod report;
        //- /src/geometry.rs
        /// The area of a rectangle.
        pub fn rect_area(width: f64, height: f64) -> f64 {
            width * height
        }

        pub fn unrelated_helper() -> u32 {
            42
        }

        pub struct Point {
            pub x: f64,
        }

        impl Point {
            pub fn new(x: f64) -> Self {
                Point { x }
            }
        }
        //- /src/billing.rs
        pub fn compute_invoice(items: &[f64]) -> f64 {
            items.iter().sum()
        }
        //- /src/report.rs
        use crate::geometry::{self, rect_area};

        pub fn report(rooms: &[(f64, f64)]) -> f64 {
            let origin = geometry::Point::new(0.0);
            let mut total = 0.0;
            for (w, h) in rooms {
                total += rect_area(*w, *h);
            }
            $0
        }
        "#,
        expect![[r#"
            Definition src/geometry.rs:1-4 rect_area
              why: `rect_area` is imported from `crate::geometry`
              | /// The area of a rectangle.
              | pub fn rect_area(width: f64, height: f64) -> f64 { ... }
            Definition src/geometry.rs:15-17 new
              why: `new` found by name (1 definition(s) in the workspace)
              | impl Point {
              |     pub fn new(x: f64) -> Self { ... }
              | }
        "#]],
    );
}

#[test]
fn typescript_named_import() {
    check(
        r#"
        //- /src/geometry.ts
        /** The area of a rectangle. */
        export function rectArea(width: number, height: number): number {
          return width * height;
        }

        export function unrelatedHelper(): number {
          return 42;
        }
        //- /src/billing.ts
        export function computeInvoice(items: number[]): number {
          return items.reduce((a, b) => a + b, 0);
        }
        //- /src/report.ts
        import { rectArea } from "./geometry";

        export function report(rooms: [number, number][]): number {
          let total = 0;
          for (const [w, h] of rooms) {
            total += rectArea(w, h);
          }
          return $0
        }
        "#,
        expect![[r#"
            Definition src/geometry.ts:1-4 rectArea
              why: `rectArea` is imported from `./geometry`
              | /** The area of a rectangle. */
              | export function rectArea(width: number, height: number): number { ... }
        "#]],
    );
}

#[test]
fn go_package_import() {
    check(
        r#"
        //- /go.mod
        module example.com/proj
        //- /geometry/geometry.go
        package geometry

        // RectArea is the area of a rectangle.
        func RectArea(width, height float64) float64 {
        	return width * height
        }

        func UnrelatedHelper() int {
        	return 42
        }
        //- /billing/billing.go
        package billing

        func ComputeInvoice(items []float64) float64 {
        	return 0
        }
        //- /report/report.go
        package report

        import "example.com/proj/geometry"

        func Report(rooms [][2]float64) float64 {
        	total := 0.0
        	for _, r := range rooms {
        		total += geometry.RectArea(r[0], r[1])
        	}
        	return $0
        }
        "#,
        expect![[r#"
            Definition geometry/geometry.go:3-6 RectArea
              why: `geometry.RectArea`: `geometry` is imported from `example.com/proj/geometry`
              | // RectArea is the area of a rectangle.
              | func RectArea(width, height float64) float64 { ... }
        "#]],
    );
}

#[test]
fn java_class_import() {
    check(
        r#"
        //- /src/main/java/com/acme/geometry/Geometry.java
        package com.acme.geometry;

        public final class Geometry {
            /** The area of a rectangle. */
            public static double rectArea(double width, double height) {
                return width * height;
            }

            public static int unrelatedHelper() {
                return 42;
            }
        }
        //- /src/main/java/com/acme/billing/Billing.java
        package com.acme.billing;

        public class Billing {
            public static double computeInvoice(double[] items) {
                return 0;
            }
        }
        //- /src/main/java/com/acme/report/Report.java
        package com.acme.report;

        import com.acme.geometry.Geometry;

        public class Report {
            public double report(double[][] rooms) {
                double total = 0;
                for (double[] r : rooms) {
                    total += Geometry.rectArea(r[0], r[1]);
                }
                return $0
            }
        }
        "#,
        expect![[r#"
            Definition src/main/java/com/acme/geometry/Geometry.java:4-7 rectArea
              why: `Geometry.rectArea`: `Geometry` is imported from `com.acme.geometry`
              | public final class Geometry {
              |     /** The area of a rectangle. */
              |     public static double rectArea(double width, double height) { ... }
              | }
        "#]],
    );
}

#[test]
fn c_include() {
    check(
        r#"
        //- /src/geometry.h
        /* The area of a rectangle. */
        double rect_area(double width, double height);
        int unrelated_helper(void);
        //- /src/geometry.c
        #include "geometry.h"
        double rect_area(double width, double height) { return width * height; }
        //- /src/billing.h
        double compute_invoice(const double *items, int n);
        //- /src/report.c
        #include "geometry.h"

        double report(const double *w, const double *h, int n) {
            double total = 0;
            for (int i = 0; i < n; i++) {
                total += rect_area(w[i], h[i]);
            }
            return $0
        }
        "#,
        expect![[r#"
            Definition src/geometry.h:1-2 rect_area
              why: `rect_area` is defined in `geometry.h`, imported whole
              | /* The area of a rectangle. */
              | double rect_area(double width, double height);
        "#]],
    );
}

#[test]
fn definitions_already_in_the_window_are_not_repeated() {
    check(
        r#"
        //- /app/geometry.py
        def rect_area(width: float, height: float) -> float:
            return width * height
        //- /app/main.py
        from app.geometry import rect_area
        # def rect_area(width: float, height: float) -> float:
        def local_helper(x):
            return x

        print(rect_area(1, 2), local_helper($0))
        "#,
        expect![[""]],
    );
}

#[test]
fn scopes_above_the_window_and_hidden_local_definitions() {
    let fixture = r#"
        //- /app/shapes.py
        def helper_far_away(value):
            return value

        class Shape:
            """A shape."""

            def area(self, scale: float) -> float:
                x = 1
                y = 2
                z = 3
                return helper_far_away(x + y + z) * scale$0
        "#;
    let retrieval = retrieve(fixture, ContextConfig::default(), Some(8..11));
    expect![[r#"
        Definition app/shapes.py:1-2 helper_far_away
          why: `helper_far_away` is defined in this file, outside the prompt's window
          | def helper_far_away(value):
          |     ...
        Scope app/shapes.py:4-11 area
          why: encloses the cursor; its header is above the prompt's window
          | class Shape:
          |     """A shape."""
          |     def area(self, scale: float) -> float:
          |         ...
    "#]]
    .assert_eq(&render(&retrieval));
}

#[test]
fn without_cross_file_sources_only_the_current_file_is_used() {
    let fixture = r#"
        //- /app/geometry.py
        def rect_area(width, height):
            return width * height
        //- /app/main.py
        from app.geometry import rect_area

        def far():
            pass



        print(rect_area(1, 2), far($0))
        "#;
    let config = ContextConfig { cross_file: false, ..ContextConfig::default() };
    let retrieval = retrieve(fixture, config, Some(6..9));
    expect![[r#"
        Definition app/main.py:3-4 far
          why: `far` is defined in this file, outside the prompt's window
          | def far():
          |     ...
    "#]]
    .assert_eq(&render(&retrieval));
}

#[test]
fn similar_windows_come_from_recently_used_files() {
    let fixture = Fixture::new(
        r#"
        //- /shop/old.py
        def total_price(items):
            subtotal = sum(item.price * item.quantity for item in items)
            tax = subtotal * TAX_RATE
            return subtotal + tax
        //- /shop/unrelated.py
        def parse_args(argv):
            return argv[1:]
        //- /shop/new.py
        def order_total(order):
            subtotal = sum(item.price * item.quantity for item in order.items)
            $0
        "#,
    );
    let engine = ContextEngine::new(ContextConfig::default());
    engine.set_roots_blocking(vec![fixture.root().to_path_buf()]);
    for name in ["old.py", "unrelated.py"] {
        let path = fixture.root().join("shop").join(name);
        engine.open(&path, "python", &std::fs::read_to_string(&path).unwrap());
    }
    let (path, text, cursor) = fixture.cursor_file.clone().unwrap();
    engine.open(&path, "python", &text);
    let retrieval = engine.retrieve(&ContextQuery { path: &path, cursor, window: 0..text.len() });
    expect![[r#"
        Similar shop/old.py:1-4 -
          why: recently used file; Jaccard similarity 0.60 with the lines before the cursor
          | def total_price(items):
          |     subtotal = sum(item.price * item.quantity for item in items)
          |     tax = subtotal * TAX_RATE
          |     return subtotal + tax
    "#]]
    .assert_eq(&render(&retrieval));
}

#[test]
fn deleted_files_and_pushed_files_change_what_is_found() {
    let fixture = Fixture::new(
        r#"
        //- /app/geometry.py
        def rect_area(width, height):
            return width * height
        //- /app/main.py
        from app.geometry import rect_area
        from app.extra import pushed_helper

        print(rect_area(1, 2), pushed_helper($0))
        "#,
    );
    let engine = ContextEngine::new(ContextConfig::default());
    engine.set_roots_blocking(vec![fixture.root().to_path_buf()]);
    let (path, text, cursor) = fixture.cursor_file.clone().unwrap();
    engine.open(&path, "python", &text);
    let query = ContextQuery { path: &path, cursor, window: 0..text.len() };
    let symbols = |r: Retrieval| r.snippets.into_iter().filter_map(|s| s.symbol).collect::<Vec<_>>().join(", ");
    assert_eq!(symbols(engine.retrieve(&query)), "rect_area");

    // `weft/contextUpdate` brings a file the workspace does not have.
    let extra = fixture.root().join("app/extra.py");
    engine.push(vec![(extra.clone(), "def pushed_helper(x: int) -> int:\n    return x\n".to_owned())]);
    assert_eq!(symbols(engine.retrieve(&query)), "pushed_helper, rect_area");

    // A deletion outside the editor takes the definition away.
    let geometry = fixture.root().join("app/geometry.py");
    std::fs::remove_file(&geometry).unwrap();
    engine.file_events(vec![crate::context::FileEvent::Deleted(geometry)]);
    assert_eq!(symbols(engine.retrieve(&query)), "pushed_helper");
}

#[test]
fn until_the_index_is_ready_only_the_current_file_is_used() {
    let fixture = Fixture::new(
        r#"
        //- /app/geometry.py
        def rect_area(width, height):
            return width * height
        //- /app/main.py
        from app.geometry import rect_area
        print(rect_area(1, $0))
        "#,
    );
    let engine = ContextEngine::new(ContextConfig::default());
    let (path, text, cursor) = fixture.cursor_file.clone().unwrap();
    engine.open(&path, "python", &text);
    let query = ContextQuery { path: &path, cursor, window: 0..text.len() };
    let before = engine.retrieve(&query);
    assert!(!before.index_ready && before.snippets.is_empty(), "{before:?}");
    engine.set_roots(vec![fixture.root().to_path_buf()]);
    assert!(engine.wait_until_indexed(std::time::Duration::from_secs(30)));
    assert_eq!(engine.retrieve(&query).snippets.len(), 1);
}

#[test]
fn typing_near_the_last_retrieval_keeps_its_snippets_until_the_cursor_or_another_file_moves_on() {
    let filler: String = (0..60).map(|i| format!("value_{i} = {i}\n")).collect();
    let fixture = Fixture::new(&format!(
        r#"
        //- /app/geometry.py
        def rect_area(width, height):
            return width * height
        def circle_area(radius):
            return 3.14 * radius * radius
        //- /app/notes.py
        NOTE = 1
        //- /app/main.py
        from app.geometry import rect_area
        print(rect_area(1, $0))
        {}"#,
        filler.replace('\n', "\n        ")
    ));
    let engine = ContextEngine::new(ContextConfig::default());
    engine.set_roots_blocking(vec![fixture.root().to_path_buf()]);
    let (path, text, cursor) = fixture.cursor_file.clone().unwrap();
    engine.open(&path, "python", &text);
    let symbols = |r: &Retrieval| r.snippets.iter().filter_map(|s| s.symbol.clone()).collect::<Vec<_>>().join(", ");
    let at = |text: &str, cursor: usize| {
        let retrieval = engine.retrieve(&ContextQuery { path: &path, cursor, window: 0..text.len() });
        (symbols(&retrieval), retrieval.sticky)
    };
    assert_eq!(at(&text, cursor), ("rect_area".to_owned(), false));

    // The user types a call of another function on the next line: the
    // snippets stay, so the prompt's start (and its cached state) does too.
    let typed = "2))\nprint(circle_area(";
    let edited = format!("{}{typed}{}", &text[..cursor], &text[cursor + 2..]);
    engine.change(&path, &[], &[], &ropey::Rope::from_str(&edited));
    let cursor = cursor + typed.len();
    assert_eq!(at(&edited, cursor), ("rect_area".to_owned(), true));
    // Without stickiness the new call's definition would have come in.
    let fresh = ContextEngine::new(ContextConfig { sticky_lines: 0, ..ContextConfig::default() });
    fresh.set_roots_blocking(vec![fixture.root().to_path_buf()]);
    fresh.open(&path, "python", &edited);
    let retrieval = fresh.retrieve(&ContextQuery { path: &path, cursor, window: 0..edited.len() });
    assert_eq!((symbols(&retrieval).as_str(), retrieval.sticky), ("rect_area, circle_area", false));

    // A change to another file retrieves again.
    let notes = fixture.root().join("app/notes.py");
    engine.open(&notes, "python", "NOTE = 2\n");
    assert_eq!(at(&edited, cursor), ("rect_area, circle_area".to_owned(), false));
    assert!(at(&edited, cursor).1, "kept after the fresh retrieval");
    // So does a cursor far from the last retrieval: at the end of the file,
    // where no call is near, the definitions go.
    assert_eq!(at(&edited, edited.len()), (String::new(), false));
}
