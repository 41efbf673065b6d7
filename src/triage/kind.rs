//! The words triage files crashes under: [`CrashKind`] (what attribution found; part of a
//! bucket's signature, so its spelling is part of every bucket id) and [`Verdict`] (how triage
//! of one death ended, as the reports name it).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What killed the target, as attribution found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashKind {
    /// One input alone.
    Single,
    /// A set of inputs sent together.
    Set,
    /// Any `count` requests of one kind.
    Cumulative,
}

impl CrashKind {
    /// The word in `meta.json`, the signature text (hence the bucket id) and the reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashKind::Single => "single",
            CrashKind::Set => "set",
            CrashKind::Cumulative => "cumulative",
        }
    }

    fn parse(s: &str) -> Option<CrashKind> {
        [CrashKind::Single, CrashKind::Set, CrashKind::Cumulative].into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for CrashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Callers and tests compare a kind with the word the files hold.
impl PartialEq<&str> for CrashKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How triage of one death ended. Written as one string (`single`, `set (by shape)`,
/// `not-reproduced`, ...) so that reports read as they always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Verdict {
    /// Attributed, then filed: minimised into a bucket, or counted against the bucket that
    /// already holds its culprit or its signature.
    Filed(CrashKind),
    /// Counted against a bucket that holds an input of the same shape as one of its hot
    /// suspects, without any replay.
    ByShape(CrashKind),
    /// Attributed but not minimised (the budget was spent): counted in the bucket of its way of
    /// dying on its route.
    ByRoute(CrashKind),
    /// Attribution found nothing that kills the target this way.
    NotReproduced,
    /// Not reached within the budget.
    Untriaged,
    /// Triage itself failed.
    Failed,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Filed(k) => f.pad(k.as_str()),
            Verdict::ByShape(k) => f.pad(&format!("{k} (by shape)")),
            Verdict::ByRoute(k) => f.pad(&format!("{k} (by route)")),
            Verdict::NotReproduced => f.pad("not-reproduced"),
            Verdict::Untriaged => f.pad("untriaged"),
            Verdict::Failed => f.pad("failed"),
        }
    }
}

impl From<Verdict> for String {
    fn from(v: Verdict) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for Verdict {
    type Error = String;
    fn try_from(s: String) -> Result<Verdict, String> {
        let kind = |k: &str| CrashKind::parse(k).ok_or_else(|| format!("unknown triage kind {s:?}"));
        Ok(match s.as_str() {
            "not-reproduced" => Verdict::NotReproduced,
            "untriaged" => Verdict::Untriaged,
            "failed" => Verdict::Failed,
            _ => match s.split_once(' ') {
                Some((k, "(by shape)")) => Verdict::ByShape(kind(k)?),
                Some((k, "(by route)")) => Verdict::ByRoute(kind(k)?),
                _ => Verdict::Filed(kind(&s)?),
            },
        })
    }
}

/// Callers and tests compare a verdict with the word the reports hold.
impl PartialEq<&str> for Verdict {
    fn eq(&self, other: &&str) -> bool {
        Verdict::try_from(other.to_string()).is_ok_and(|v| v == *self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_files_words() {
        let all = [
            (Verdict::Filed(CrashKind::Single), "single"),
            (Verdict::Filed(CrashKind::Set), "set"),
            (Verdict::Filed(CrashKind::Cumulative), "cumulative"),
            (Verdict::ByShape(CrashKind::Set), "set (by shape)"),
            (Verdict::ByRoute(CrashKind::Cumulative), "cumulative (by route)"),
            (Verdict::NotReproduced, "not-reproduced"),
            (Verdict::Untriaged, "untriaged"),
            (Verdict::Failed, "failed"),
        ];
        for (v, word) in all {
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("{word:?}"));
            assert_eq!(serde_json::from_str::<Verdict>(&format!("{word:?}")).unwrap(), v);
            assert_eq!(v, word);
            assert_ne!(v, "single (by route)x");
        }
        assert_eq!(serde_json::to_string(&CrashKind::Cumulative).unwrap(), "\"cumulative\"");
        assert_eq!(format!("{:<8}|", CrashKind::Set), "set     |");
        assert!(serde_json::from_str::<Verdict>("\"single (by magic)\"").is_err());
    }
}
