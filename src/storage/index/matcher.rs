//! Prometheus-flavoured label matchers and how each resolves against the index.

use std::fmt;

use regex::Regex;

use super::IndexError;

/// The comparison a [`Matcher`] applies to a label value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOp {
    /// `name="value"`.
    Equal,
    /// `name!="value"`.
    NotEqual,
    /// `name=~"regex"`, anchored at both ends.
    RegexMatch,
    /// `name!~"regex"`, anchored at both ends.
    NotRegexMatch,
    /// The value is one of the listed values (the matcher's `value` is unused).
    In(Vec<String>),
    /// The value is none of the listed values (the matcher's `value` is unused).
    NotIn(Vec<String>),
}

/// How the index finds the values a matcher accepts, decided once at construction so
/// that repeated selections do not re-analyse the pattern.
#[derive(Debug, Clone)]
pub(super) enum Plan {
    /// A finite set of values, sorted and deduplicated: `=`, `IN`, and regexes that are
    /// plain alternations of literals (`a|b|c`), which become direct lookups.
    Literals(Vec<String>),
    /// `.*`: every value, including the empty one.
    Any,
    /// `.+`: every non-empty value.
    NonEmpty,
    /// Run the regex over the distinct values that start with `prefix`; an anchored
    /// regex can only match those, so a sorted range scan skips the rest.
    Scan { regex: Regex, prefix: String },
}

/// A Prometheus label matcher: `name op value`, with Prometheus semantics.
///
/// A missing label counts as the empty string, so `foo=""` selects series without
/// `foo` and `foo!=""` those with it. Regexes are anchored at both ends and `.`
/// matches newlines, as in Prometheus 3 (`^(?s:re)$`).
///
/// The fields are private because the compiled regex and the lookup plan are derived
/// from them; build a new matcher to change one.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// The anchored regex, for `=~` and `!~` only; kept apart from the plan so that
    /// [`Matcher::matches`] stays the naive reference the index is tested against.
    regex: Option<Regex>,
    plan: Plan,
}

impl Matcher {
    /// Builds a matcher, compiling the regex for `=~` and `!~`.
    ///
    /// For [`MatchOp::In`] and [`MatchOp::NotIn`] the values come from the op and
    /// `value` is ignored.
    ///
    /// # Errors
    /// [`IndexError::InvalidRegex`] when the pattern does not compile.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, IndexError> {
        let name = name.into();
        let value = value.into();
        match op {
            MatchOp::RegexMatch | MatchOp::NotRegexMatch => {
                let regex =
                    compile_anchored(&value).map_err(|source| IndexError::InvalidRegex {
                        name: name.clone(),
                        pattern: value.clone(),
                        source,
                    })?;
                let plan = plan_regex(&value, &regex);
                Ok(Matcher {
                    name,
                    op,
                    value,
                    regex: Some(regex),
                    plan,
                })
            }
            _ => Ok(Self::literal(name, op, value)),
        }
    }

    /// Converts a matcher of a parsed PromQL selector.
    pub fn from_promql(m: &promql_parser::label::Matcher) -> Result<Self, IndexError> {
        use promql_parser::label::MatchOp as P;
        let op = match m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::RegexMatch,
            P::NotRe(_) => MatchOp::NotRegexMatch,
        };
        Matcher::new(m.name.clone(), op, m.value.clone())
    }

    /// `name="value"`.
    pub fn eq(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::literal(name.into(), MatchOp::Equal, value.into())
    }

    /// `name!="value"`.
    pub fn ne(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::literal(name.into(), MatchOp::NotEqual, value.into())
    }

    /// `name=~"regex"`.
    ///
    /// # Errors
    /// [`IndexError::InvalidRegex`] when the pattern does not compile.
    pub fn re(name: impl Into<String>, pattern: impl Into<String>) -> Result<Self, IndexError> {
        Self::new(name, MatchOp::RegexMatch, pattern)
    }

    /// `name!~"regex"`.
    ///
    /// # Errors
    /// [`IndexError::InvalidRegex`] when the pattern does not compile.
    pub fn not_re(name: impl Into<String>, pattern: impl Into<String>) -> Result<Self, IndexError> {
        Self::new(name, MatchOp::NotRegexMatch, pattern)
    }

    /// The value is one of `values`.
    pub fn is_in<S: Into<String>>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        Self::literal(name.into(), MatchOp::In(values), String::new())
    }

    /// The value is none of `values`.
    pub fn not_in<S: Into<String>>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        Self::literal(name.into(), MatchOp::NotIn(values), String::new())
    }

    /// Builds the ops that cannot fail, so their constructors need no `Result`.
    fn literal(name: String, op: MatchOp, value: String) -> Self {
        let (plan, value) = match &op {
            MatchOp::In(values) | MatchOp::NotIn(values) => {
                let mut values = values.clone();
                values.sort_unstable();
                values.dedup();
                (Plan::Literals(values), String::new())
            }
            _ => (Plan::Literals(vec![value.clone()]), value),
        };
        Matcher {
            name,
            op,
            value,
            regex: None,
            plan,
        }
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> &MatchOp {
        &self.op
    }

    /// The value or regex source (empty for `In` / `NotIn`).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a series whose label is `value` (`None` = label absent) is selected,
    /// evaluated directly from the op; the index must agree with this for every series.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match &self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|re| re.is_match(v)),
            MatchOp::NotRegexMatch => !self.regex.as_ref().is_some_and(|re| re.is_match(v)),
            MatchOp::In(values) => values.iter().any(|x| x == v),
            MatchOp::NotIn(values) => !values.iter().any(|x| x == v),
        }
    }

    /// Negated ops select the complement of the values their plan finds.
    pub(super) fn is_negated(&self) -> bool {
        matches!(
            self.op,
            MatchOp::NotEqual | MatchOp::NotRegexMatch | MatchOp::NotIn(_)
        )
    }

    pub(super) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether the plan accepts the empty string, i.e. also selects series lacking the label.
    pub(super) fn plan_accepts_empty(&self) -> bool {
        match &self.plan {
            Plan::Literals(values) => values.binary_search_by(|v| v.as_str().cmp("")).is_ok(),
            Plan::Any => true,
            Plan::NonEmpty => false,
            Plan::Scan { regex, .. } => regex.is_match(""),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (op, values) = match &self.op {
            MatchOp::Equal => ("=", None),
            MatchOp::NotEqual => ("!=", None),
            MatchOp::RegexMatch => ("=~", None),
            MatchOp::NotRegexMatch => ("!~", None),
            MatchOp::In(values) => (" in ", Some(values)),
            MatchOp::NotIn(values) => (" not in ", Some(values)),
        };
        match values {
            None => write!(f, "{}{op}{:?}", self.name, self.value),
            Some(values) => write!(f, "{}{op}{values:?}", self.name),
        }
    }
}

fn compile_anchored(pattern: &str) -> Result<Regex, regex::Error> {
    // Compiling the bare pattern first rejects inputs such as `a)|(b` that would
    // otherwise escape the anchoring group and compile to a different, unanchored
    // regex; it also makes the error point into the user's own text.
    Regex::new(pattern)?;
    Regex::new(&format!("^(?s:{pattern})$"))
}

fn plan_regex(pattern: &str, regex: &Regex) -> Plan {
    match pattern {
        ".*" => return Plan::Any,
        ".+" => return Plan::NonEmpty,
        _ => {}
    }
    if pattern.split('|').all(is_literal) {
        let mut values: Vec<String> = pattern.split('|').map(str::to_owned).collect();
        values.sort_unstable();
        values.dedup();
        return Plan::Literals(values);
    }
    Plan::Scan {
        regex: regex.clone(),
        prefix: literal_prefix(pattern),
    }
}

/// A string with no regex metacharacter matches exactly itself.
fn is_literal(s: &str) -> bool {
    !s.chars().any(is_meta)
}

fn is_meta(c: char) -> bool {
    // `-`, `&`, `~`, `#` and whitespace are special only inside a class or under the
    // `x` flag, both of which need a `[` or `(` first, so they count as literal here.
    matches!(
        c,
        '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
    )
}

/// The literal text every match of the anchored pattern must start with, or `""`.
fn literal_prefix(pattern: &str) -> String {
    // A top-level `|` would let another branch start differently; telling top-level
    // from nested needs a parser, so any `|` forgoes the optimisation.
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix: String = pattern.chars().take_while(|&c| !is_meta(c)).collect();
    // A quantifier after the run applies to its last character; all but  allow zero.
    if matches!(
        pattern[prefix.len()..].chars().next(),
        Some('*' | '?' | '{')
    ) {
        prefix.pop();
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(pattern: &str) -> Plan {
        Matcher::re("k", pattern).unwrap().plan
    }

    #[test]
    fn plans() {
        assert!(matches!(plan_of(".*"), Plan::Any));
        assert!(matches!(plan_of(".+"), Plan::NonEmpty));
        match plan_of("b|a|b|") {
            Plan::Literals(v) => assert_eq!(v, ["", "a", "b"]),
            other => panic!("{other:?}"),
        }
        for (pattern, prefix) in [
            ("us-.*", "us-"),
            ("ab*", "a"),
            ("ab+c", "ab"),
            ("(a|b)c", ""),
            ("a.c", "a"),
            ("[ab]c", ""),
        ] {
            match plan_of(pattern) {
                Plan::Scan { prefix: p, .. } => assert_eq!(p, prefix, "{pattern}"),
                other => panic!("{pattern}: {other:?}"),
            }
        }
    }

    #[test]
    fn unbalanced_pattern_cannot_escape_anchoring() {
        assert!(Matcher::re("k", "a)|(b").is_err());
    }

    #[test]
    fn display() {
        assert_eq!(Matcher::eq("a", "b").to_string(), r#"a="b""#);
        assert_eq!(
            Matcher::not_re("a", "x.*").unwrap().to_string(),
            r#"a!~"x.*""#
        );
        assert_eq!(Matcher::is_in("a", ["x"]).to_string(), r#"a in ["x"]"#);
    }
}
