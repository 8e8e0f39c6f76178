//! The closed operator scope set and OpenClaw's implication rules (`operatorScopeSatisfied`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One operator scope. The set is closed: anything else is rejected at `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Admin,
    Read,
    Write,
    Approvals,
    Questions,
    Pairing,
    Talk,
    TalkSecrets,
    SessionsRead,
    SessionsWrite,
}

/// A scope name outside the closed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScope(pub String);

impl std::fmt::Display for UnknownScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown scope: {}", self.0)
    }
}

impl std::error::Error for UnknownScope {}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::Admin,
        Scope::Read,
        Scope::Write,
        Scope::Approvals,
        Scope::Questions,
        Scope::Pairing,
        Scope::Talk,
        Scope::TalkSecrets,
        Scope::SessionsRead,
        Scope::SessionsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "operator.admin",
            Scope::Read => "operator.read",
            Scope::Write => "operator.write",
            Scope::Approvals => "operator.approvals",
            Scope::Questions => "operator.questions",
            Scope::Pairing => "operator.pairing",
            Scope::Talk => "operator.talk",
            Scope::TalkSecrets => "operator.talk.secrets",
            Scope::SessionsRead => "operator.sessions.read",
            Scope::SessionsWrite => "operator.sessions.write",
        }
    }

    pub fn parse(name: &str) -> Result<Scope, UnknownScope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name).ok_or_else(|| UnknownScope(name.to_string()))
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Scopes that a holder of `self` also satisfies, besides itself.
    fn implies(self, required: Scope) -> bool {
        use Scope::*;
        self == required
            || self == Admin
            || matches!(
                (self, required),
                (Write, Read | Talk | SessionsRead | SessionsWrite)
                    | (Read, SessionsRead)
                    | (SessionsWrite, SessionsRead)
            )
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of operator scopes held by a connection, a device token or a pairing grant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u16);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    pub fn of(scopes: &[Scope]) -> ScopeSet {
        ScopeSet(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Parses scope names, rejecting the first unknown one.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<ScopeSet, UnknownScope> {
        let mut set = ScopeSet::EMPTY;
        for name in names {
            set.insert(Scope::parse(name.as_ref())?);
        }
        Ok(set)
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// True when some held scope satisfies `required` under OpenClaw's implication rules.
    pub fn satisfies(self, required: Scope) -> bool {
        self.iter().any(|held| held.implies(required))
    }

    /// True when every scope of `other` is satisfied by this set.
    pub fn covers(self, other: ScopeSet) -> bool {
        other.iter().all(|s| self.satisfies(s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        ScopeSet::parse(&names).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implication_rules_match_openclaw() {
        use Scope::*;
        let cases: &[(Scope, Scope, bool)] = &[
            (Admin, Write, true),
            (Admin, Pairing, true),
            (Admin, TalkSecrets, true),
            (Write, Read, true),
            (Write, Talk, true),
            (Write, SessionsRead, true),
            (Write, SessionsWrite, true),
            (Write, Admin, false),
            (Write, Pairing, false),
            (Write, TalkSecrets, false),
            (Read, Write, false),
            (Read, SessionsRead, true),
            (Read, SessionsWrite, false),
            (SessionsWrite, SessionsRead, true),
            (SessionsWrite, Write, false),
            (Pairing, Read, false),
            (Approvals, Approvals, true),
            (Talk, TalkSecrets, false),
        ];
        for &(held, required, expected) in cases {
            assert_eq!(ScopeSet::of(&[held]).satisfies(required), expected, "{held} satisfies {required}");
        }
    }

    #[test]
    fn parses_and_rejects_unknown() {
        let set = ScopeSet::parse(&["operator.read", "operator.pairing"]).unwrap();
        assert_eq!(set.names(), ["operator.read", "operator.pairing"]);
        assert_eq!(ScopeSet::parse(&["operator.root"]).unwrap_err().to_string(), "unknown scope: operator.root");
        assert!(ScopeSet::of(&[Scope::Write]).covers(ScopeSet::of(&[Scope::Read, Scope::SessionsRead])));
        assert!(!ScopeSet::of(&[Scope::Read]).covers(ScopeSet::of(&[Scope::Read, Scope::Write])));
    }
}
