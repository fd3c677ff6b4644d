//! The workflows, step by step. Each writes what it has into an
//! [`Output`] as it goes, so a run that stops early still reports its plan,
//! its last edits and its last review.

use serde_json::json;

use super::council::decide;
use super::edits::ProposedEdit;
use super::parse::strip_fences;
use super::prompts::{clip, file_block, numbered, system};
use super::schema::{
    self, CodeAnswer, Explanation, FileContent, Finding, JudgeReview, Plan, RawReview, Review, TestAnalysis, Verdict,
};
use super::session::{Session, Stop};
use super::test_step::{TestOutcome, TestStatus};
use super::{AgentRole, AgentTask, Selection, Workflow};
use crate::chat::ChatMessage;

/// Files of the workspace listed to a planner at most; beyond it, plan
/// paths are free strings (validated after).
const MAX_LISTED_FILES: usize = 200;

/// What a workflow produced.
#[derive(Clone, Debug, Default)]
pub(crate) struct Output {
    pub summary: String,
    pub verdict: Option<Verdict>,
    pub plan: Option<Plan>,
    pub edits: Vec<ProposedEdit>,
    pub reviews: Vec<JudgeReview>,
    pub tests: Option<TestOutcome>,
    pub test_analysis: Option<TestAnalysis>,
    pub explanation: Option<Explanation>,
    pub iterations: u32,
}

pub(crate) async fn run(session: &mut Session, task: &AgentTask, out: &mut Output) -> Result<(), Stop> {
    match task.workflow {
        Workflow::Plan => {
            let plan = make_plan(session, task).await?;
            out.summary = format!("a plan of {} steps", plan.steps.len());
            out.plan = Some(plan);
            Ok(())
        }
        Workflow::Implement => implement(session, task, out).await,
        Workflow::Test => test(session, task, out).await,
        Workflow::Review => review(session, task, out).await,
        Workflow::Council => council(session, task, out).await,
        Workflow::Explain => explain(session, task, out).await,
    }
}

/// The selected text: its path, its lines (numbered as in the file) and
/// its first line (zero-based).
struct Excerpt {
    path: String,
    numbered: String,
    start_line: u32,
    end_line: u32,
}

fn excerpt(session: &Session, selection: Option<&Selection>) -> Result<Excerpt, Stop> {
    let Some(selection) = selection else {
        return Err(Stop::NeedsInput("select the code to work on".to_owned()));
    };
    let text = session.workspace.read(&selection.path).map_err(|err| Stop::Failed(err.to_string()))?;
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.len().saturating_sub(1) as u32;
    let start = selection.start_line.min(last);
    let end = selection.end_line.clamp(start, last);
    let mut body: String =
        lines.get(start as usize..=end as usize).unwrap_or_default().iter().map(|l| format!("{l}\n")).collect();
    body = clip(&body, session.config.max_context_bytes);
    Ok(Excerpt {
        path: super::workspace::normalize(&selection.path).map_err(|err| Stop::Failed(err.to_string()))?,
        numbered: numbered(&body, start + 1),
        start_line: start,
        end_line: end,
    })
}

fn instruction(task: &AgentTask) -> Result<&str, Stop> {
    let text = task.instruction.trim();
    if text.is_empty() {
        return Err(Stop::NeedsInput("describe the task to carry out".to_owned()));
    }
    Ok(text)
}

fn step_budget(session: &Session) -> schema::Budget {
    schema::Budget::for_tokens(session.config.max_tokens)
}

/// Problems that keep a plan from being carried out.
pub fn validate_plan(plan: &Plan, workspace: &super::Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    if plan.steps.is_empty() {
        problems.push("the plan has no steps".to_owned());
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let n = i + 1;
        if step.description.trim().is_empty() {
            problems.push(format!("step {n} has no description"));
        }
        if step.files.is_empty() {
            problems.push(format!("step {n} names no file"));
        }
        for file in &step.files {
            if !workspace.exists(file) {
                problems.push(format!("step {n} names {file}, which is not a file of the workspace"));
            }
        }
    }
    problems
}

async fn make_plan(session: &mut Session, task: &AgentTask) -> Result<Plan, Stop> {
    let instruction = instruction(task)?;
    let files = session.workspace.files(MAX_LISTED_FILES + 1);
    let listed = if files.len() > MAX_LISTED_FILES { &[][..] } else { &files[..] };
    let mut prompt = format!("Task: {instruction}\n\nFiles of the workspace:\n");
    for file in files.iter().take(MAX_LISTED_FILES) {
        prompt.push_str(&format!("- {file}\n"));
    }
    if let Some(selection) = &task.selection {
        let excerpt = excerpt(session, Some(selection))?;
        prompt.push_str(&format!("\nSelected code in {}:\n{}", excerpt.path, excerpt.numbered));
    }
    let mut messages = vec![ChatMessage::system(system(AgentRole::Planner)), ChatMessage::user(prompt)];
    let schema = schema::plan_schema(listed, step_budget(session));
    let (plan, _) = session.ask::<Plan>("plan", AgentRole::Planner, messages.clone(), schema.clone()).await?;
    let problems = validate_plan(&plan, &session.workspace);
    if problems.is_empty() {
        return Ok(plan);
    }
    // One more try, told what was wrong.
    messages.push(ChatMessage::assistant(json!(plan_json(&plan)).to_string()));
    messages.push(ChatMessage::user(format!("This plan cannot be used: {}. Fix it.", problems.join("; "))));
    let (plan, _) = session.ask::<Plan>("plan (retry)", AgentRole::Planner, messages, schema).await?;
    let problems = validate_plan(&plan, &session.workspace);
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(Stop::NeedsInput(format!(
            "the plan cannot be carried out ({}); name the files to change",
            problems.join("; ")
        )))
    }
}

fn plan_json(plan: &Plan) -> serde_json::Value {
    serde_json::to_value(plan).unwrap_or_default()
}

fn plan_text(plan: &Plan) -> String {
    let mut text = String::new();
    for (i, step) in plan.steps.iter().enumerate() {
        text.push_str(&format!("{}. {} ({})\n", i + 1, step.description.trim(), step.files.join(", ")));
    }
    text
}

/// The files of a code answer that may be written: paths normalized and
/// checked against the workspace (and against `allowed` when given), code
/// fences removed. Fails when none is left.
fn accept_files(session: &Session, answer: &CodeAnswer, allowed: Option<&[String]>) -> Result<Vec<FileContent>, Stop> {
    let mut accepted: Vec<FileContent> = Vec::new();
    let mut rejected = Vec::new();
    for file in &answer.files {
        match session.workspace.resolve_for_edit(&file.path) {
            Ok((path, _)) if allowed.is_none_or(|allowed| allowed.contains(&path)) => {
                let content = strip_fences(&file.content);
                accepted.retain(|f| f.path != path);
                accepted.push(FileContent { path, content });
            }
            Ok((path, _)) => rejected.push(format!("{path} is not in the plan")),
            Err(err) => rejected.push(err.to_string()),
        }
    }
    if accepted.is_empty() {
        let why = if rejected.is_empty() { "no files".to_owned() } else { rejected.join("; ") };
        return Err(Stop::Failed(format!("the code step proposed nothing that can be applied ({why})")));
    }
    Ok(accepted)
}

fn edits_for(session: &Session, files: &[FileContent]) -> Vec<ProposedEdit> {
    files
        .iter()
        .filter_map(|file| {
            let old = session.workspace.read(&file.path).ok();
            ProposedEdit::between(&file.path, old.as_deref(), &file.content)
        })
        .collect()
}

/// A review with its findings checked: paths among `texts`, lines clamped
/// into the file and made zero-based.
fn checked_review(raw: RawReview, source: &str, texts: &[(String, String)]) -> Review {
    let findings = raw
        .findings
        .into_iter()
        .filter_map(|finding| {
            let path = super::workspace::normalize(&finding.path).ok()?;
            let (path, text) =
                texts.iter().find(|(p, _)| *p == path).or_else(|| (texts.len() == 1).then(|| &texts[0]))?;
            let last = text.lines().count().max(1) as u32;
            let start = finding.start_line.clamp(1, last);
            let end = finding.end_line.clamp(start, last);
            Some(Finding {
                path: path.clone(),
                start_line: start - 1,
                end_line: end - 1,
                severity: finding.severity,
                message: finding.message.trim().to_owned(),
                source: source.to_owned(),
            })
        })
        .collect();
    Review { verdict: raw.verdict, summary: raw.summary.trim().to_owned(), findings }
}

fn review_feedback(review: &Review, analysis: Option<&TestAnalysis>) -> String {
    let mut text = format!("The reviewer said {}: {}\n", review.verdict.name(), review.summary);
    for finding in &review.findings {
        text.push_str(&format!("- {} line {}: {}\n", finding.path, finding.start_line + 1, finding.message));
    }
    if let Some(analysis) = analysis.filter(|a| !a.passed) {
        text.push_str(&format!("The tests failed: {}\n", analysis.analysis));
    }
    text
}

async fn analyze(session: &mut Session, tests: &TestOutcome) -> Result<Option<TestAnalysis>, Stop> {
    if tests.status == TestStatus::Skipped {
        return Ok(None);
    }
    let output = clip(&tests.output, 4000);
    let prompt =
        format!("Test status: {:?}, exit code {:?}.\nOutput:\n```\n{output}```", tests.status, tests.exit_code);
    let messages = vec![ChatMessage::system(system(AgentRole::TestAnalyzer)), ChatMessage::user(prompt)];
    let (analysis, index) = session
        .ask::<TestAnalysis>(
            "analyze",
            AgentRole::TestAnalyzer,
            messages,
            schema::test_analysis_schema(step_budget(session)),
        )
        .await?;
    session.set_verdict(index, if analysis.passed { "passed" } else { "failed" });
    Ok(Some(analysis))
}

async fn implement(session: &mut Session, task: &AgentTask, out: &mut Output) -> Result<(), Stop> {
    let plan = make_plan(session, task).await?;
    out.plan = Some(plan.clone());
    let mut targets: Vec<String> = Vec::new();
    for file in plan.steps.iter().flat_map(|s| &s.files) {
        if let Ok(path) = super::workspace::normalize(file) {
            if !targets.contains(&path) {
                targets.push(path);
            }
        }
    }
    let max_iterations = session.config.max_iterations.max(1);
    let mut feedback: Option<String> = None;
    for iteration in 1..=max_iterations {
        out.iterations = iteration;
        let suffix = if iteration > 1 { format!(" (iteration {iteration})") } else { String::new() };
        let mut prompt = format!("Task: {}\n\nPlan:\n{}\n", task.instruction.trim(), plan_text(&plan));
        let budget = session.config.max_context_bytes / targets.len().max(1);
        for path in &targets {
            let text = session.workspace.read(path).map_err(|err| Stop::Failed(err.to_string()))?;
            prompt.push_str(&file_block(path, &clip(&text, budget)));
        }
        if let Some(feedback) = &feedback {
            prompt.push_str(&format!("\nYour previous change needs revision.\n{feedback}"));
        }
        let messages = vec![ChatMessage::system(system(AgentRole::Coder)), ChatMessage::user(prompt)];
        let (answer, _) = session
            .ask::<CodeAnswer>(
                &format!("code{suffix}"),
                AgentRole::Coder,
                messages,
                schema::code_schema(&targets, step_budget(session)),
            )
            .await?;
        let files = accept_files(session, &answer, Some(&targets))?;
        out.edits = edits_for(session, &files);
        out.summary = answer.summary.trim().to_owned();

        let tests = session.run_tests(&files).await?;
        let tests_failed = matches!(tests.status, TestStatus::Failed | TestStatus::TimedOut);
        out.tests = Some(tests.clone());
        out.test_analysis = analyze(session, &tests).await?;

        let mut prompt = format!("Task: {}\n\nPlan:\n{}\nChanged files:\n", task.instruction.trim(), plan_text(&plan));
        let budget = session.config.max_context_bytes / files.len().max(1);
        for file in &files {
            prompt.push_str(&file_block(&file.path, &numbered(&clip(&file.content, budget), 1)));
        }
        match &out.test_analysis {
            Some(analysis) => prompt.push_str(&format!("\nTests: {}\n", analysis.analysis)),
            None => prompt.push_str("\nNo tests were run.\n"),
        }
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let messages = vec![ChatMessage::system(system(AgentRole::Reviewer)), ChatMessage::user(prompt)];
        let (raw, index) = session
            .ask::<RawReview>(
                &format!("review{suffix}"),
                AgentRole::Reviewer,
                messages,
                schema::review_schema(&paths, step_budget(session)),
            )
            .await?;
        let texts: Vec<(String, String)> = files.iter().map(|f| (f.path.clone(), f.content.clone())).collect();
        let mut review = checked_review(raw, "reviewer", &texts);
        if tests_failed && review.verdict == Verdict::Approve {
            // Failing tests block approval, whatever the reviewer thought.
            review.verdict = Verdict::Revise;
            review.summary = format!("the tests failed; {}", review.summary);
        }
        session.set_verdict(index, review.verdict.name());
        out.verdict = Some(review.verdict);
        out.reviews = vec![JudgeReview { judge: "reviewer".to_owned(), review: review.clone() }];
        if review.verdict != Verdict::Revise {
            break;
        }
        feedback = Some(review_feedback(&review, out.test_analysis.as_ref()));
    }
    Ok(())
}

async fn test(session: &mut Session, task: &AgentTask, out: &mut Output) -> Result<(), Stop> {
    let excerpt = excerpt(session, task.selection.as_ref())?;
    let mut prompt = format!("Write tests for this code from {}:\n{}", excerpt.path, excerpt.numbered);
    if !task.instruction.trim().is_empty() {
        prompt.push_str(&format!("\nAlso: {}\n", task.instruction.trim()));
    }
    let messages = vec![ChatMessage::system(system(AgentRole::Tester)), ChatMessage::user(prompt)];
    let (answer, _) = session
        .ask::<CodeAnswer>("write tests", AgentRole::Tester, messages, schema::code_schema(&[], step_budget(session)))
        .await?;
    let files = accept_files(session, &answer, None)?;
    out.edits = edits_for(session, &files);
    out.summary = answer.summary.trim().to_owned();
    let tests = session.run_tests(&files).await?;
    out.tests = Some(tests.clone());
    out.test_analysis = analyze(session, &tests).await?;
    Ok(())
}

async fn review_by(
    session: &mut Session,
    role: AgentRole,
    step: &str,
    excerpt: &Excerpt,
    instruction: &str,
) -> Result<Review, Stop> {
    let mut prompt = format!(
        "Code from {} (lines {}-{}):\n{}",
        excerpt.path,
        excerpt.start_line + 1,
        excerpt.end_line + 1,
        excerpt.numbered
    );
    if !instruction.trim().is_empty() {
        prompt.push_str(&format!("\nContext: {}\n", instruction.trim()));
    }
    let messages = vec![ChatMessage::system(system(role)), ChatMessage::user(prompt)];
    let paths = vec![excerpt.path.clone()];
    let (raw, index) =
        session.ask::<RawReview>(step, role, messages, schema::review_schema(&paths, step_budget(session))).await?;
    let text = session.workspace.read(&excerpt.path).map_err(|err| Stop::Failed(err.to_string()))?;
    let review = checked_review(raw, role.name(), &[(excerpt.path.clone(), text)]);
    session.set_verdict(index, review.verdict.name());
    Ok(review)
}

async fn review(session: &mut Session, task: &AgentTask, out: &mut Output) -> Result<(), Stop> {
    let excerpt = excerpt(session, task.selection.as_ref())?;
    let review = review_by(session, AgentRole::Reviewer, "review", &excerpt, &task.instruction).await?;
    out.verdict = Some(review.verdict);
    out.summary = review.summary.clone();
    out.reviews = vec![JudgeReview { judge: AgentRole::Reviewer.name().to_owned(), review }];
    Ok(())
}

async fn council(session: &mut Session, task: &AgentTask, out: &mut Output) -> Result<(), Stop> {
    let excerpt = excerpt(session, task.selection.as_ref())?;
    let judges = [AgentRole::SecurityJudge, AgentRole::PerformanceJudge, AgentRole::MaintainabilityJudge];
    for judge in judges {
        let review = review_by(session, judge, judge.name(), &excerpt, &task.instruction).await?;
        out.reviews.push(JudgeReview { judge: judge.name().to_owned(), review });
    }
    let verdicts: Vec<Verdict> = out.reviews.iter().map(|r| r.review.verdict).collect();
    let decision = decide(session.config.decision_rule, &verdicts);
    out.verdict = Some(decision);
    let votes: Vec<String> = out.reviews.iter().map(|r| format!("{} {}", r.judge, r.review.verdict.name())).collect();
    out.summary = format!("{} ({})", decision.name(), votes.join(", "));
    Ok(())
}

async fn explain(session: &mut Session, task: &AgentTask, out: &mut Output) -> Result<(), Stop> {
    let excerpt = excerpt(session, task.selection.as_ref())?;
    let mut prompt = format!("Explain this code from {}:\n{}", excerpt.path, excerpt.numbered);
    if !task.instruction.trim().is_empty() {
        prompt.push_str(&format!("\nThe reader asks: {}\n", task.instruction.trim()));
    }
    let messages = vec![ChatMessage::system(system(AgentRole::Explainer)), ChatMessage::user(prompt)];
    let (explanation, _) = session
        .ask::<Explanation>("explain", AgentRole::Explainer, messages, schema::explanation_schema(step_budget(session)))
        .await?;
    out.summary = explanation.summary.clone();
    out.explanation = Some(explanation);
    Ok(())
}
