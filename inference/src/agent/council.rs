//! How the council's verdicts combine into one decision.

use serde::{Deserialize, Serialize};

use super::schema::Verdict;

/// The council's decision rule (`[agent] decision_rule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionRule {
    /// APPROVE only when every judge approves; any REJECT rejects; else
    /// REVISE.
    Unanimous,
    /// The verdict more than half the judges gave; without one, REVISE.
    Majority,
    /// Any REJECT rejects; otherwise APPROVE (REVISE findings are reported
    /// but do not block).
    AnyRejectBlocks,
}

/// The council's decision from its judges' verdicts (REVISE when there are
/// none: nobody approved).
pub fn decide(rule: DecisionRule, verdicts: &[Verdict]) -> Verdict {
    let count = |v: Verdict| verdicts.iter().filter(|&&x| x == v).count();
    let (approve, reject) = (count(Verdict::Approve), count(Verdict::Reject));
    if verdicts.is_empty() {
        return Verdict::Revise;
    }
    match rule {
        DecisionRule::Unanimous if approve == verdicts.len() => Verdict::Approve,
        DecisionRule::Unanimous if reject > 0 => Verdict::Reject,
        DecisionRule::Unanimous => Verdict::Revise,
        DecisionRule::Majority => {
            let majority = verdicts.len() / 2 + 1;
            if approve >= majority {
                Verdict::Approve
            } else if reject >= majority {
                Verdict::Reject
            } else {
                Verdict::Revise
            }
        }
        DecisionRule::AnyRejectBlocks if reject > 0 => Verdict::Reject,
        DecisionRule::AnyRejectBlocks => Verdict::Approve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Approve as A, Reject as X, Revise as R};

    #[test]
    fn each_rule_on_each_mix_of_three_verdicts() {
        // (verdicts, unanimous, majority, any-reject-blocks)
        let cases = [
            ([A, A, A], A, A, A),
            ([A, A, R], R, A, A),
            ([A, R, R], R, R, A),
            ([R, R, R], R, R, A),
            ([A, A, X], X, A, X),
            ([A, X, X], X, X, X),
            ([A, R, X], X, R, X),
            ([X, X, X], X, X, X),
            ([R, R, X], X, R, X),
        ];
        for (verdicts, unanimous, majority, any_reject) in cases {
            assert_eq!(decide(DecisionRule::Unanimous, &verdicts), unanimous, "unanimous {verdicts:?}");
            assert_eq!(decide(DecisionRule::Majority, &verdicts), majority, "majority {verdicts:?}");
            assert_eq!(decide(DecisionRule::AnyRejectBlocks, &verdicts), any_reject, "any-reject {verdicts:?}");
        }
        assert_eq!(decide(DecisionRule::AnyRejectBlocks, &[]), R);
    }
}
