//! Definitions and imports read off the syntax tree, one test per language.

use expect_test::{Expect, expect};

use super::trim_indent;
use crate::context::{FileSymbols, Lang, parse};

fn check(lang: Lang, text: &str, expect: Expect) {
    let text = trim_indent(text);
    let tree = parse(lang, &text, None);
    let symbols = FileSymbols::extract(lang, &tree, &text);
    let mut out = String::new();
    for def in &symbols.definitions {
        let parent = def.parent.map(|p| format!(" in {}", symbols.definitions[p as usize].name)).unwrap_or_default();
        let elided = if def.elided { " {…}" } else { "" };
        out.push_str(&format!(
            "{} {} {}-{}{parent}{elided}\n",
            def.kind.name(),
            def.name,
            def.lines.start + 1,
            def.lines.end + 1
        ));
        for line in def.signature.lines() {
            out.push_str(&format!("  | {line}\n"));
        }
        if let Some(doc) = def.doc() {
            out.push_str(&format!("  doc: {}\n", doc.replace('\n', "⏎")));
        }
    }
    for import in &symbols.imports {
        let names: Vec<String> = import
            .names
            .iter()
            .map(|n| match &n.alias {
                Some(alias) => format!("{} as {alias}", n.name),
                None => n.name.to_string(),
            })
            .collect();
        let alias = import.alias.as_deref().map(|a| format!(" as {a}")).unwrap_or_default();
        let wildcard = if import.wildcard { " *" } else { "" };
        out.push_str(&format!(
            "import {}{alias}{wildcard} [{}] line {}\n",
            import.module,
            names.join(", "),
            import.line + 1
        ));
    }
    expect.assert_eq(&out);
}

#[test]
fn python() {
    check(
        Lang::Python,
        r#"
        import os.path
        import numpy as np
        from .shapes import Circle, area as shape_area
        from ..util import *

        MAX_SIZE = 10

        # Not a doc comment in Python.
        def scale(value: float, factor: float = 2.0) -> float:
            """Scales a value."""
            return value * factor

        @dataclass
        class Point(Base):
            """A point."""
            x: int

            def norm(self) -> float:
                def inner():
                    pass
                return 0.0
        "#,
        expect![[r#"
            constant MAX_SIZE 6-6
              | MAX_SIZE = 10
            function scale 9-11 {…}
              | def scale(value: float, factor: float = 2.0) -> float:
              doc: """Scales a value."""
            class Point 13-21 {…}
              | @dataclass
              | class Point(Base):
              doc: """A point."""
            method norm 18-21 in Point {…}
              | def norm(self) -> float:
            import os.path [] line 1
            import numpy as np [] line 2
            import .shapes [Circle, area as shape_area] line 3
            import ..util * [] line 4
        "#]],
    );
}

#[test]
fn rust() {
    check(
        Lang::Rust,
        r#"
        use std::collections::HashMap;
        use crate::geometry::{self, area as shape_area, shapes::{Circle, Square}};
        use super::util::*;

        /// The largest size.
        pub const MAX_SIZE: usize = 10;

        /// A point.
        #[derive(Debug)]
        pub struct Point {
            pub x: f64,
        }

        impl Point {
            /// Makes a point.
            pub fn new(x: f64) -> Self {
                Point { x }
            }
        }

        pub trait Shape {
            fn area(&self) -> f64;
        }

        // Not a doc comment.
        fn helper<T: Clone>(value: T)
        where
            T: Send,
        {
        }
        "#,
        expect![[r#"
            constant MAX_SIZE 5-6
              | pub const MAX_SIZE: usize = 10;
              doc: /// The largest size.
            struct Point 8-12
              | #[derive(Debug)]
              | pub struct Point {
              |     pub x: f64,
              | }
              doc: /// A point.
            impl Point 14-19 {…}
              | impl Point
            method new 15-18 in Point {…}
              | pub fn new(x: f64) -> Self
              doc: /// Makes a point.
            interface Shape 21-23 {…}
              | pub trait Shape
            method area 22-22 in Shape
              | fn area(&self) -> f64;
            function helper 26-30 {…}
              | fn helper<T: Clone>(value: T)
              | where
              |     T: Send,
            import std::collections [HashMap] line 1
            import crate::geometry as geometry [] line 2
            import crate::geometry [area as shape_area] line 2
            import crate::geometry::shapes [Circle] line 2
            import crate::geometry::shapes [Square] line 2
            import super::util * [] line 3
        "#]],
    );
}

#[test]
fn typescript() {
    check(
        Lang::TypeScript,
        r#"
        import { area, Circle as C } from "./shapes";
        import * as geo from "../geo/index";
        import Default from './default';

        /** Sizes. */
        export const MAX_SIZE = 10;

        export interface Shape {
          area(): number;
        }

        export type Id = string | number;

        export enum Color { Red, Green }

        /** Scales a value. */
        export function scale(value: number, factor = 2): number {
          return value * factor;
        }

        export const double = (x: number): number => {
          return x * 2;
        };

        export class Square implements Shape {
          constructor(private side: number) {}
          area(): number {
            return this.side ** 2;
          }
        }

        namespace Inner {
          export function helper(): void {}
        }
        "#,
        expect![[r#"
            constant MAX_SIZE 5-6
              | export const MAX_SIZE = 10;
              doc: /** Sizes. */
            interface Shape 8-10
              | export interface Shape {
              |   area(): number;
              | }
            type alias Id 12-12
              | export type Id = string | number;
            enum Color 14-14
              | export enum Color { Red, Green }
            function scale 16-19 {…}
              | export function scale(value: number, factor = 2): number
              doc: /** Scales a value. */
            function double 21-23 {…}
              | export const double = (x: number): number =>
            class Square 25-30 {…}
              | export class Square implements Shape
            method constructor 26-26 in Square {…}
              | constructor(private side: number)
            method area 27-29 in Square {…}
              | area(): number
            module Inner 32-34 {…}
              | namespace Inner
            function helper 33-33 in Inner {…}
              | export function helper(): void
            import ./shapes [area, Circle as C] line 1
            import ../geo/index as geo [] line 2
            import ./default [Default] line 3
        "#]],
    );
}

#[test]
fn javascript() {
    check(
        Lang::JavaScript,
        r#"
        import { area } from './shapes.js';

        // Adds two numbers.
        function add(a, b) {
          return a + b;
        }

        class Counter {
          increment() {
            this.count += 1;
          }
        }
        "#,
        expect![[r#"
            function add 3-6 {…}
              | function add(a, b)
              doc: // Adds two numbers.
            class Counter 8-12 {…}
              | class Counter
            method increment 9-11 in Counter {…}
              | increment()
            import ./shapes.js [area] line 1
        "#]],
    );
}

#[test]
fn go() {
    check(
        Lang::Go,
        r#"
        package main

        import (
        	"fmt"
        	sh "example.com/proj/shapes"
        )

        // Pi is a constant.
        const Pi = 3.14

        type (
        	Point struct{ X, Y float64 }
        	Shape interface{ Area() float64 }
        )

        // Area of a point.
        func (p Point) Area() float64 {
        	return 0
        }

        func main() {
        	fmt.Println(sh.Area())
        }
        "#,
        expect![[r#"
            constant Pi 8-9
              | const Pi = 3.14
              doc: // Pi is a constant.
            struct Point 12-12
              | type Point struct{ X, Y float64 }
            interface Shape 13-13
              | type Shape interface{ Area() float64 }
            method Area 16-19 {…}
              | func (p Point) Area() float64
              doc: // Area of a point.
            function main 21-23 {…}
              | func main()
            import fmt [] line 4
            import example.com/proj/shapes as sh [] line 5
        "#]],
    );
}

#[test]
fn java() {
    check(
        Lang::Java,
        r#"
        package com.acme.app;

        import com.acme.util.MathUtil;
        import static com.acme.util.Strings.join;
        import com.acme.shapes.*;

        /** The application. */
        public class App {
            public static final int MAX = 10;
            private int count;

            /** Runs it. */
            public int run(int times) {
                return MathUtil.add(times, 1);
            }

            interface Listener {
                void changed(int value);
            }
        }

        enum Color { RED, GREEN }
        "#,
        expect![[r#"
            class App 7-20 {…}
              | public class App
              doc: /** The application. */
            constant MAX 9-9 in App
              | public static final int MAX = 10;
            method run 12-15 in App {…}
              | public int run(int times)
              doc: /** Runs it. */
            interface Listener 17-19 in App {…}
              | interface Listener
            method changed 18-18 in Listener
              | void changed(int value);
            enum Color 22-22
              | enum Color { RED, GREEN }
            import com.acme.util [MathUtil] line 3
            import com.acme.util.Strings [join] line 4
            import com.acme.shapes * [] line 5
        "#]],
    );
}

#[test]
fn c() {
    check(
        Lang::C,
        r#"
        #ifndef SHAPES_H
        #define SHAPES_H
        #include <stdio.h>
        #include "geometry.h"

        #define MAX_SIZE 10
        #define SQUARE(x) ((x) * (x))

        /* A point. */
        struct point {
            int x;
        };

        typedef struct { int w, h; } rect;

        /* Area of a rectangle. */
        int rect_area(const rect *r);

        static int *make(int n) {
            return 0;
        }
        #endif
        "#,
        expect![[r#"
            constant SHAPES_H 2-2
              | #define SHAPES_H
            constant MAX_SIZE 6-6
              | #define MAX_SIZE 10
            macro SQUARE 7-7
              | #define SQUARE(x) ((x) * (x))
            struct point 9-12
              | struct point {
              |     int x;
              | }
              doc: /* A point. */
            type alias rect 14-14
              | typedef struct { int w, h; } rect;
            function rect_area 16-17
              | int rect_area(const rect *r);
              doc: /* Area of a rectangle. */
            function make 19-21 {…}
              | static int *make(int n)
            import stdio.h * [] line 3
            import geometry.h * [] line 4
        "#]],
    );
}

#[test]
fn cpp() {
    check(
        Lang::Cpp,
        r#"
        #include "shapes.hpp"

        namespace geo {

        /// A circle.
        class Circle : public Shape {
        public:
            explicit Circle(double r);
            double area() const override { return 3.14 * r * r; }
        private:
            double r;
        };

        template <typename T>
        T twice(T value) {
            return value * 2;
        }

        using Size = unsigned long;

        }  // namespace geo

        double geo::Circle::perimeter() const {
            return 0;
        }
        "#,
        expect![[r#"
            module geo 3-21 {…}
              | namespace geo
            class Circle 5-12 in geo {…}
              | class Circle : public Shape
              doc: /// A circle.
            method Circle 8-8 in Circle
              | explicit Circle(double r);
            method area 9-9 in Circle {…}
              | double area() const override
            function twice 14-17 in geo {…}
              | template <typename T>
              | T twice(T value)
            type alias Size 19-19 in geo
              | using Size = unsigned long;
            function perimeter 23-25 {…}
              | double geo::Circle::perimeter() const
            import shapes.hpp * [] line 1
        "#]],
    );
}
