use expect_test::expect;

use super::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/eval/repo-mini")
}

fn show(tasks: &[Task]) -> String {
    let mut out = String::new();
    for task in tasks {
        let before = task.prefix.rsplit('\n').next().unwrap_or("");
        let after = task.suffix.split('\n').nth(1).unwrap_or("");
        out.push_str(&format!("{} {before:?} [{}] next {after:?}\n", task.id, task.ground_truth));
    }
    out
}

#[test]
fn lines_that_use_names_from_other_files_are_tasks() {
    let tasks = tasks(&fixture(), RepoOptions { tasks_per_repo: 100, seed: 42 }).unwrap();
    for task in &tasks {
        let text = std::fs::read_to_string(fixture().join(task.path.as_ref().unwrap())).unwrap();
        assert_eq!(format!("{}{}{}", task.prefix, task.ground_truth, task.suffix), text, "{}", task.id);
    }
    // Not tasks: the docstring, a string literal, a name from a module
    // that is not in the repository, imports.
    expect![[r#"
        repo-mini/shapes/path.py:16 "        " [self.points = [Point(x, y) for x, y in points]] next ""
        repo-mini/shapes/path.py:21 "            " [total += distance(a, b)  # Uses distance.] next "        return total"
        repo-mini/shapes/path.py:25 "        " [return self.length() / units.feet(1)] next ""
    "#]]
    .assert_eq(&show(&tasks));
}

#[test]
fn the_sample_is_fixed_by_the_seed_and_nested() {
    let ids = |n, seed| -> Vec<String> {
        tasks(&fixture(), RepoOptions { tasks_per_repo: n, seed }).unwrap().into_iter().map(|t| t.id).collect()
    };
    let all = ids(100, 7);
    let two = ids(2, 7);
    assert_eq!(two.len(), 2);
    assert!(two.iter().all(|id| all.contains(id)));
    assert_eq!(ids(2, 7), two);
    assert_eq!(ids(1, 7)[0], *two.iter().find(|id| ids(1, 7).contains(id)).unwrap());
}

#[test]
fn imports_are_parsed_across_lines_and_with_aliases() {
    let text = "from .a import (\n    x,\n    y as z,  # why\n)\nimport pkg.mod as m, os\nfrom b import \\\n    w\n";
    let found: Vec<String> =
        imports(text).into_iter().map(|i| format!("{} <- {} {:?}", i.name, i.module, i.thing)).collect();
    expect![[r#"
        x <- .a Some("x")
        z <- .a Some("y")
        m <- pkg.mod None
        os <- os None
        w <- b Some("w")"#]]
    .assert_eq(&found.join("\n"));
}

#[test]
fn attributes_are_not_names() {
    let names: Vec<&str> = used_names("self.prompt = prompt(x . prompt, sub.x)").collect();
    assert_eq!(names, ["self", "prompt", "x", "sub"]);
}

#[test]
fn strings_and_comments_are_not_code() {
    assert_eq!(strip_strings_and_comment(r#"f("a # b", 'it\'s') # c"#), r#"f("", '') "#);
}
