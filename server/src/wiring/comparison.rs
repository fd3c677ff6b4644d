//! Several models behind one [`CompletionProvider`], by the `[comparison]`
//! policy: one model (`single`), one model per document (`ab`), or every
//! model concurrently (`all`, side by side as in Code4me's comparisons).
//!
//! Every output is labelled with its model's configured name. In `all` mode a
//! model that fails is logged and left out; the request fails only when every
//! model failed.
//!
//! A/B assignment is a pure function of the session, the document URI and
//! the weights ([`assign`]): a 64-bit FNV-1a hash of `session`, a separator
//! and `uri`, mixed by SplitMix64's finaliser, scaled to `[0, 1)` and looked
//! up in the cumulative weights. A document keeps its model for the whole
//! session; with `[comparison] session` set, across restarts too.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use weft_inference::CancellationToken;
use weft_lsp::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError};

/// One model of the set.
pub struct Member {
    pub name: String,
    pub provider: Arc<dyn CompletionProvider>,
}

/// Which members answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Always this member.
    Single(usize),
    /// One member per document, by weight.
    Ab {
        weights: Vec<f64>,
        session: String,
    },
    All,
}

/// The models of `[[models]]` under the `[comparison]` policy.
pub struct ComparisonProvider {
    members: Arc<[Member]>,
    choice: Choice,
    description: String,
}

impl ComparisonProvider {
    pub fn new(members: Vec<Member>, choice: Choice, description: String) -> Self {
        ComparisonProvider { members: members.into(), choice, description }
    }
}

/// Labels a member's outputs with its name.
fn labelled(name: &str, outputs: Vec<CompletionOutput>) -> Vec<CompletionOutput> {
    outputs.into_iter().map(|output| CompletionOutput { model: name.to_owned(), ..output }).collect()
}

/// A member's error, naming the member.
fn named(name: &str, err: ProviderError) -> ProviderError {
    match err {
        ProviderError::Cancelled => ProviderError::Cancelled,
        ProviderError::Busy(message) => ProviderError::Busy(format!("model {name}: {message}")),
        ProviderError::Failed(message) => ProviderError::Failed(format!("model {name}: {message}")),
    }
}

impl CompletionProvider for ComparisonProvider {
    fn complete(
        &self,
        input: CompletionInput,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>> {
        let one = match &self.choice {
            Choice::Single(index) => Some(*index),
            Choice::Ab { weights, session } => Some(assign(session, &input.uri, weights)),
            Choice::All => None,
        };
        if let Some(index) = one {
            let member = &self.members[index];
            let name = member.name.clone();
            let answer = member.provider.complete(input, cancel);
            return async move {
                match answer.await {
                    Ok(outputs) => Ok(labelled(&name, outputs)),
                    Err(err) => Err(named(&name, err)),
                }
            }
            .boxed();
        }
        let answers: Vec<_> = self
            .members
            .iter()
            .map(|member| {
                let answer = member.provider.complete(input.clone(), cancel.clone());
                let name = member.name.clone();
                async move { (name, answer.await) }
            })
            .collect();
        async move {
            let mut outputs = Vec::new();
            let mut errors = Vec::new();
            for (name, answer) in join_all(answers).await {
                match answer {
                    Ok(answer) => outputs.extend(labelled(&name, answer)),
                    Err(ProviderError::Cancelled) => errors.push(ProviderError::Cancelled),
                    Err(err) => {
                        tracing::warn!(model = %name, "completion failed; the other models answer: {err}");
                        errors.push(named(&name, err));
                    }
                }
            }
            if !outputs.is_empty() || errors.is_empty() {
                return Ok(outputs);
            }
            if errors.contains(&ProviderError::Cancelled) {
                return Err(ProviderError::Cancelled);
            }
            let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            if errors.iter().all(|err| matches!(err, ProviderError::Busy(_))) {
                Err(ProviderError::Busy(message))
            } else {
                Err(ProviderError::Failed(message))
            }
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    /// Ready when the models the policy needs are: in `all` mode at least
    /// one (the others' failures are logged), otherwise every one.
    fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
        let members = self.members.clone();
        let choice = self.choice.clone();
        async move {
            let indexes: Vec<usize> = match choice {
                Choice::Single(index) => vec![index],
                Choice::Ab { .. } | Choice::All => (0..members.len()).collect(),
            };
            let states = join_all(indexes.iter().map(|&i| members[i].provider.ready())).await;
            let mut failures = Vec::new();
            for (&i, state) in indexes.iter().zip(&states) {
                if let Err(message) = state {
                    tracing::error!(model = %members[i].name, "{message}");
                    failures.push(format!("model {}: {message}", members[i].name));
                }
            }
            let any_ready = failures.len() < states.len();
            match choice {
                Choice::All if any_ready => Ok(()),
                _ if failures.is_empty() => Ok(()),
                _ => Err(failures.join("; ")),
            }
        }
        .boxed()
    }
}

/// The member a document is assigned in an A/B comparison (see the module
/// documentation). Members of weight 0 are never chosen; `weights` must have
/// one weight above 0.
pub fn assign(session: &str, uri: &str, weights: &[f64]) -> usize {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    // 0xff never occurs in UTF-8: "ab"+"c" and "a"+"bc" hash apart.
    for byte in session.bytes().chain([0xff]).chain(uri.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
    // SplitMix64's finaliser: every input bit reaches the top bits.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    let unit = (hash >> 11) as f64 / (1u64 << 53) as f64;
    let total: f64 = weights.iter().sum();
    let target = unit * total;
    let mut cumulative = 0.0;
    for (index, &weight) in weights.iter().enumerate() {
        cumulative += weight;
        if weight > 0.0 && target < cumulative {
            return index;
        }
    }
    // Rounding at the top end: the last member with a weight.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(i: usize) -> String {
        format!("file:///work/project/src/module_{i}.rs")
    }

    #[test]
    fn assignment_is_deterministic_and_stable_per_document() {
        let weights = [1.0, 1.0, 1.0];
        for i in 0..200 {
            let first = assign("session-1", &uri(i), &weights);
            assert!(first < 3);
            for _ in 0..3 {
                assert_eq!(assign("session-1", &uri(i), &weights), first, "{}", uri(i));
            }
        }
        // A known value guards against the hash changing between releases
        // (assignments with a configured session must survive upgrades).
        let known: Vec<usize> = (0..12).map(|i| assign("study-7", &uri(i), &[1.0, 1.0])).collect();
        expect_test::expect!["[0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0]"].assert_eq(&format!("{known:?}"));
    }

    #[test]
    fn assignment_follows_the_weights_roughly() {
        let n = 20_000;
        let mut counts = [0usize; 3];
        for i in 0..n {
            counts[assign("s", &uri(i), &[1.0, 3.0, 0.0])] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never chosen");
        let share = counts[1] as f64 / n as f64;
        assert!((0.73..0.77).contains(&share), "3:1 gave {counts:?}");
        // A single model with a weight gets everything.
        assert!((0..100).all(|i| assign("s", &uri(i), &[0.0, 2.0]) == 1));
    }

    #[test]
    fn sessions_reshuffle_assignments() {
        let moved = (0..1000).filter(|&i| assign("a", &uri(i), &[1.0, 1.0]) != assign("b", &uri(i), &[1.0, 1.0]));
        let moved = moved.count();
        assert!((400..600).contains(&moved), "{moved} of 1000 documents changed model");
    }

    /// A scripted member: answers with its text, or fails.
    struct Scripted(Result<&'static str, ProviderError>);

    impl CompletionProvider for Scripted {
        fn complete(
            &self,
            _input: CompletionInput,
            _cancel: CancellationToken,
        ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>> {
            let answer = self.0.clone().map(|text| {
                vec![CompletionOutput {
                    id: text.to_owned(),
                    text: text.to_owned(),
                    model: "engine-name".to_owned(),
                    latency_ms: 1.0,
                    snippet_tokens: None,
                    details: serde_json::Value::Null,
                }]
            });
            async move { answer }.boxed()
        }

        fn describe(&self) -> String {
            "scripted".to_owned()
        }

        fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
            let state = self.0.clone().map(drop).map_err(|err| err.to_string());
            async move { state }.boxed()
        }
    }

    fn provider(members: &[(&str, Result<&'static str, ProviderError>)], choice: Choice) -> ComparisonProvider {
        let members = members
            .iter()
            .map(|(name, answer)| Member { name: (*name).to_owned(), provider: Arc::new(Scripted(answer.clone())) })
            .collect();
        ComparisonProvider::new(members, choice, "test".to_owned())
    }

    fn input(uri: &str) -> CompletionInput {
        CompletionInput {
            uri: uri.to_owned(),
            path: None,
            relative_path: None,
            language_id: "python".to_owned(),
            prefix: "x = ".to_owned(),
            suffix: String::new(),
            trigger: weft_lsp::Trigger::Invoked,
            prefix_is_complete: true,
            snippets: Vec::new(),
        }
    }

    async fn complete(provider: &ComparisonProvider, uri: &str) -> Result<Vec<(String, String)>, ProviderError> {
        let outputs = provider.complete(input(uri), CancellationToken::new()).await?;
        Ok(outputs.into_iter().map(|o| (o.model, o.text)).collect())
    }

    fn failed(message: &str) -> ProviderError {
        ProviderError::Failed(message.to_owned())
    }

    #[tokio::test]
    async fn all_mode_answers_with_every_model_that_did_not_fail() {
        let all = provider(&[("a", Ok("1")), ("b", Err(failed("boom"))), ("c", Ok("3"))], Choice::All);
        let answers = complete(&all, "file:///x.py").await.unwrap();
        assert_eq!(answers, [("a".to_owned(), "1".to_owned()), ("c".to_owned(), "3".to_owned())]);
        assert_eq!(all.ready().await, Ok(()));

        let none = provider(&[("a", Err(failed("boom"))), ("b", Err(ProviderError::Busy("full".into())))], Choice::All);
        assert_eq!(complete(&none, "file:///x.py").await, Err(failed("model a: boom; model b: full")));
        assert_eq!(none.ready().await, Err("model a: boom; model b: full".to_owned()));
        let busy = provider(&[("a", Err(ProviderError::Busy("full".into())))], Choice::All);
        assert_eq!(complete(&busy, "file:///x.py").await, Err(ProviderError::Busy("model a: full".into())));
    }

    #[tokio::test]
    async fn ab_mode_answers_with_the_documents_model_only() {
        let weights = vec![1.0, 1.0];
        let ab =
            provider(&[("a", Ok("1")), ("b", Ok("2"))], Choice::Ab { weights: weights.clone(), session: "s".into() });
        for i in 0..20 {
            let expected = ["a", "b"][assign("s", &uri(i), &weights)];
            for _ in 0..2 {
                let answers = complete(&ab, &uri(i)).await.unwrap();
                assert_eq!(answers.len(), 1);
                assert_eq!(answers[0].0, expected);
            }
        }
        // A failing model's documents fail, with the model named.
        let broken = provider(
            &[("a", Err(failed("gone"))), ("b", Ok("2"))],
            Choice::Ab { weights: vec![1.0, 0.0], session: "s".into() },
        );
        assert_eq!(complete(&broken, &uri(0)).await, Err(failed("model a: gone")));
        assert_eq!(broken.ready().await, Err("model a: gone".to_owned()));
    }

    #[tokio::test]
    async fn single_mode_answers_with_its_model() {
        let single = provider(&[("a", Err(failed("unused"))), ("b", Ok("2"))], Choice::Single(1));
        assert_eq!(complete(&single, &uri(0)).await.unwrap(), [("b".to_owned(), "2".to_owned())]);
        assert_eq!(single.ready().await, Ok(()));
    }
}
