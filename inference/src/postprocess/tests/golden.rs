//! Golden cases for completion post-processing, grouped by language.
//!
//! The format of the expectations is described in the parent module.

use expect_test::expect;

use super::{check, check_mode};
use crate::language::Language;
use crate::postprocess::LineMode;

// Python.

#[test]
fn python_single_line_mid_line() {
    check(
        Language::Python,
        "total = compute($0, y)\n",
        "x\nprint(total)\n",
        expect![[r#"
        mode=Single stop=1/15
        ---
        |x
    "#]],
    );
}

#[test]
fn python_single_line_end_of_line() {
    check(
        Language::Python,
        "x = compute(1)$0\n",
        " + 2  \nprint(x)",
        expect![[r#"
        mode=Single stop=4/15
        ---
        | + 2
    "#]],
    );
}

#[test]
fn python_leading_newline_ends_single_line() {
    check(
        Language::Python,
        "x = 1$0\ny = 2\n",
        "\nz = 3\n",
        expect![[r#"
        mode=Single stop=0/7
        ---
        <empty>
    "#]],
    );
}

#[test]
fn python_closing_paren_overlap() {
    check(
        Language::Python,
        "print($0)\n",
        "\"hello\")\nprint(\"bye\")\n",
        expect![[r#"
        mode=Multi stop=8/22
        ---
        |"hello"
    "#]],
    );
}

#[test]
fn python_function_body_stops_at_next_def() {
    check(
        Language::Python,
        "def add(a, b):$0\n",
        "\n    return a + b\n\ndef sub(a, b):\n    return a - b\n",
        expect![[r#"
            mode=Multi stop=17/51
            ---
            |
            |    return a + b
        "#]],
    );
}

#[test]
fn python_blank_line_in_block_repeats_suffix() {
    check(
        Language::Python,
        "def total(xs):\n    acc = 0\n    $0\n    return acc\n",
        "for x in xs:\n        acc += x\n    return acc\n",
        expect![[r#"
            mode=Multi stop=29/45
            ---
            |for x in xs:
            |        acc += x
        "#]],
    );
}

#[test]
fn python_first_line_repeats_suffix() {
    check(
        Language::Python,
        "def f(x):\n    y = x * 2\n    $0\n    return y\n",
        "return y\n",
        expect![[r#"
            mode=Multi stop=0/9
            ---
            <empty>
        "#]],
    );
}

#[test]
fn python_blank_line_after_block_opener() {
    check(
        Language::Python,
        "class A:\n    def f(self):\n$0",
        "        return 1\n\n    def g(self):\n        return 2\n",
        expect![[r#"
            mode=Multi stop=16/52
            ---
            |        return 1
        "#]],
    );
}

#[test]
fn python_dedent_to_else_stops() {
    check(
        Language::Python,
        "def f(x):\n    if x:$0",
        "\n        return 1\n    else:\n        return 2\n",
        expect![[r#"
            mode=Multi stop=17/45
            ---
            |
            |        return 1
        "#]],
    );
}

#[test]
fn python_top_level_stop_words() {
    check(
        Language::Python,
        "import os\n\n$0",
        "def main():\n    print(os.getcwd())\n\nif __name__ == \"__main__\":\n    main()\n",
        expect![[r#"
            mode=Multi stop=34/74
            ---
            |def main():
            |    print(os.getcwd())
        "#]],
    );
}

#[test]
fn python_two_blank_lines_stop() {
    check(
        Language::Python,
        "import os\n$0",
        "import sys\n\n\nclass Config:\n    pass\n",
        expect![[r#"
            mode=Multi stop=10/36
            ---
            |import sys
        "#]],
    );
}

#[test]
fn python_multi_byte_text() {
    check(
        Language::Python,
        "# 注釈\ndef grüß():$0",
        "\n    return \"héllo 🦀\"\n\ndef 漢():\n    pass\n",
        expect![[r#"
            mode=Multi stop=25/47
            ---
            |
            |    return "héllo 🦀"
        "#]],
    );
}

#[test]
fn python_whitespace_only_result() {
    check(
        Language::Python,
        "def f():\n    $0",
        "   \n  \n\n",
        expect![[r#"
        mode=Multi stop=none
        ---
        <empty>
    "#]],
    );
}

#[test]
fn python_forced_single_line_on_blank_line() {
    check_mode(
        Language::Python,
        LineMode::Single,
        "def f():\n    $0",
        "\n    return 1\n    pass\n",
        expect![[r#"
            mode=Single stop=13/23
            ---
            |return 1
        "#]],
    );
}

// Rust.

#[test]
fn rust_single_line_mid_line() {
    check(
        Language::Rust,
        "let v = compute($0, 2);",
        "1\n",
        expect![[r#"
        mode=Single stop=1/2
        ---
        |1
    "#]],
    );
}

#[test]
fn rust_repeated_rest_of_line() {
    check(
        Language::Rust,
        "let y = $0bar();\n",
        "1 + bar();\nlet z = 2;",
        expect![[r#"
        mode=Single stop=10/21
        ---
        |1 +·
    "#]],
    );
}

#[test]
fn rust_balanced_parens_survive_overlap() {
    check(
        Language::Rust,
        "    call($0)\n",
        "inner(1)",
        expect![[r#"
        mode=Multi stop=none
        ---
        |inner(1)
    "#]],
    );
}

#[test]
fn rust_format_args_overlap() {
    check(
        Language::Rust,
        "fn f(name: &str) {\n    let s = format!($0);\n}\n",
        "\"{}\", name.trim());\n    println!(\"{s}\");\n",
        expect![[r#"
            mode=Multi stop=19/41
            ---
            |"{}", name.trim()
        "#]],
    );
}

#[test]
fn rust_fn_body_with_closing_brace_in_suffix() {
    check(
        Language::Rust,
        "fn main() {$0\n}\n\nfn other() {}\n",
        "\n    println!(\"hi\");\n}\n\nfn other() {}\n",
        expect![[r#"
            mode=Multi stop=20/38
            ---
            |
            |    println!("hi");
        "#]],
    );
}

#[test]
fn rust_fn_body_without_closing_brace() {
    check(
        Language::Rust,
        "fn main() {$0",
        "\n    if ok() {\n        run();\n    } else {\n        stop();\n    }\n}\n\nfn ok() -> bool {\n",
        expect![[r#"
            mode=Multi stop=66/86
            ---
            |
            |    if ok() {
            |        run();
            |    } else {
            |        stop();
            |    }
            |}
        "#]],
    );
}

#[test]
fn rust_top_level_stop_words() {
    check(
        Language::Rust,
        "use std::fmt;\n\n$0",
        "struct Point;\n\n#[derive(Debug)]\nstruct Other;\n",
        expect![[r#"
            mode=Multi stop=13/46
            ---
            |struct Point;
        "#]],
    );
}

#[test]
fn rust_multi_line_arguments() {
    check(
        Language::Rust,
        "fn f() {\n    foo($0)\n}\n",
        "\n        a,\n        b,\n    )\n    bar();\n",
        expect![[r#"
            mode=Multi stop=28/40
            ---
            |
            |        a,
            |        b,
            |····
        "#]],
    );
}

#[test]
fn rust_multi_byte_string_overlap() {
    check(
        Language::Rust,
        "let s = \"é漢$0\";\n",
        "🦀 crab\";\n",
        expect![[r#"
        mode=Single stop=11/12
        ---
        |🦀 crab
    "#]],
    );
}

// JavaScript and TypeScript.

#[test]
fn js_function_body_then_export() {
    check(
        Language::JavaScript,
        "function a() {$0\n}\n",
        "\n  return 1;\n}\n\nexport function b() {}\n",
        expect![[r#"
            mode=Multi stop=12/39
            ---
            |
            |  return 1;
        "#]],
    );
}

#[test]
fn js_object_literal_closer_overlap() {
    check(
        Language::JavaScript,
        "const o = {$0};\n",
        "\n  a: 1,\n  b: 'é',\n};\nconsole.log(o);\n",
        expect![[r#"
            mode=Multi stop=22/39
            ---
            |
            |  a: 1,
            |  b: 'é',
            |
        "#]],
    );
}

#[test]
fn ts_arrow_body_stops_at_export() {
    check(
        Language::TypeScript,
        "const add = (a: number, b: number) =>$0\n",
        " a + b;\n\nexport const sub = (a: number, b: number) => a - b;\n",
        expect![[r#"
            mode=Multi stop=7/61
            ---
            | a + b;
        "#]],
    );
}

#[test]
fn tsx_attribute_overlap() {
    check(
        Language::Tsx,
        "return <div className=\"$0\">\n",
        "container\">\n  <span />\n",
        expect![[r#"
            mode=Single stop=11/23
            ---
            |container
        "#]],
    );
}

// Go.

#[test]
fn go_blank_line_with_tabs() {
    check(
        Language::Go,
        "func main() {\n\t$0\n}\n",
        "fmt.Println(\"héllo\")\n}\n",
        expect![[r#"
            mode=Multi stop=21/24
            ---
            |fmt.Println("héllo")
        "#]],
    );
}

#[test]
fn go_top_level_stop_words() {
    check(
        Language::Go,
        "package main\n\n$0",
        "type T struct{}\n\nfunc (t T) M() {}\n",
        expect![[r#"
            mode=Multi stop=15/35
            ---
            |type T struct{}
        "#]],
    );
}

// Java.

#[test]
fn java_method_body() {
    check(
        Language::Java,
        "class A {\n    void run() {$0\n    }\n}\n",
        "\n        go();\n    }\n\n    void stop() {\n",
        expect![[r#"
            mode=Multi stop=14/40
            ---
            |
            |        go();
        "#]],
    );
}

#[test]
fn java_single_line_repeats_rest_of_line() {
    check(
        Language::Java,
        "String s = name.$0toString();\n",
        "trim().toString();\n",
        expect![[r#"
        mode=Single stop=18/19
        ---
        |trim().
    "#]],
    );
}

// C.

#[test]
fn c_include_stop_word() {
    check(
        Language::C,
        "#include <stdio.h>\n$0",
        "#include <stdlib.h>\n#include <string.h>\n",
        expect![[r#"
            mode=Multi stop=19/40
            ---
            |#include <stdlib.h>
        "#]],
    );
}

#[test]
fn c_function_then_main() {
    check(
        Language::C,
        "#include <stdio.h>\n\n$0",
        "int add(int a, int b) {\n    return a + b;\n}\n\nint main(void) {\n",
        expect![[r#"
            mode=Multi stop=43/62
            ---
            |int add(int a, int b) {
            |    return a + b;
            |}
        "#]],
    );
}

#[test]
fn c_crlf_document() {
    check(
        Language::C,
        "int main(void) {\r\n    $0\r\n}\r\n",
        "printf(\"hi\\n\");\r\n    return 0;\r\n}\r\n",
        expect![[r#"
            mode=Multi stop=30/35
            ---
            |printf("hi\n");␍
            |    return 0;
        "#]],
    );
}

#[test]
fn c_crlf_document_with_lf_output() {
    check(
        Language::C,
        "int main(void) {$0\r\n}\r\n",
        "\n    puts(\"é\");\n    return 0;\n}\n",
        expect![[r#"
            mode=Multi stop=30/33
            ---
            |␍
            |    puts("é");␍
            |    return 0;
        "#]],
    );
}

#[test]
fn crlf_single_line() {
    check(
        Language::Python,
        "x = 1$0\r\ny = 2\r\n",
        " + 1\r\nz = 3",
        expect![[r#"
        mode=Single stop=4/11
        ---
        | + 1
    "#]],
    );
}

// Languages with keyword closers.

#[test]
fn lua_end_closes_block() {
    check(
        Language::Lua,
        "if x then$0",
        "\n  print(x)\nend\nprint('after')\n",
        expect![[r#"
        mode=Multi stop=15/31
        ---
        |
        |  print(x)
        |end
    "#]],
    );
}

#[test]
fn shell_done_closes_loop() {
    check(
        Language::Shell,
        "for f in *; do$0",
        "\n  echo \"$f\"\ndone\necho x\n",
        expect![[r#"
        mode=Multi stop=17/25
        ---
        |
        |  echo "$f"
        |done
    "#]],
    );
}

#[test]
fn empty_generation() {
    check(
        Language::Rust,
        "fn f() {\n    $0\n}\n",
        "",
        expect![[r#"
        mode=Multi stop=none
        ---
        <empty>
    "#]],
    );
}
