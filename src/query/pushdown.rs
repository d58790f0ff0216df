//! Filter pushdown: which SQL predicates the hot scan answers itself, and how.
//!
//! - **Tag predicates** (`=`, `!=`, `<`.., `IN`, `NOT IN`, `LIKE`, `~` / `!~`,
//!   `regexp_like`, `IS [NOT] NULL`, and `AND` / `OR` / `NOT` of them) become a
//!   [`TagPredicate`] evaluated on the label index with SQL's three-valued logic: a
//!   series without the tag reads NULL, which satisfies neither a comparison nor its
//!   negation. They are *exact*: DataFusion drops the filter.
//! - **Time bounds** (`time` compared with a timestamp literal) narrow the scan's time
//!   range, which prunes chunks by their headers and slices the boundary chunks. Exact.
//! - **Field bounds** (`usage_user > 90`) skip chunks whose min/max cannot satisfy them.
//!   *Inexact*: DataFusion still filters the rows that are decoded.

use std::fmt;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, expr::InList, expr::Like};
use regex::Regex;
use roaring::RoaringBitmap;

use crate::model::TIME_COLUMN;
use crate::storage::chunk::Chunk;
use crate::storage::{LabelIndex, TimeRange};

/// A test on one tag's value.
#[derive(Debug, Clone)]
pub(crate) enum ValueTest {
    Eq(String),
    In(Vec<String>),
    Cmp(Operator, String),
    Regex(Regex),
}

impl ValueTest {
    fn matches(&self, v: &str) -> bool {
        match self {
            ValueTest::Eq(x) => v == x,
            ValueTest::In(xs) => xs.iter().any(|x| x == v),
            ValueTest::Cmp(op, x) => match op {
                Operator::Lt => v < x.as_str(),
                Operator::LtEq => v <= x.as_str(),
                Operator::Gt => v > x.as_str(),
                Operator::GtEq => v >= x.as_str(),
                Operator::NotEq => v != x,
                _ => false,
            },
            ValueTest::Regex(re) => re.is_match(v),
        }
    }
}

/// A predicate over tag columns only.
#[derive(Debug, Clone)]
pub(crate) enum TagPredicate {
    /// The tag's value passes the test; NULL when the series lacks the tag.
    Value {
        key: String,
        test: ValueTest,
    },
    /// `key IS NULL` (or `IS NOT NULL` when `negated`); never NULL itself.
    IsNull {
        key: String,
        negated: bool,
    },
    Not(Box<TagPredicate>),
    And(Vec<TagPredicate>),
    Or(Vec<TagPredicate>),
}

/// Series for which a predicate is TRUE and for which it is NULL; the rest are FALSE.
struct Truth {
    yes: RoaringBitmap,
    null: RoaringBitmap,
}

impl TagPredicate {
    /// The ids of series for which the predicate is TRUE.
    pub(crate) fn select(&self, index: &LabelIndex) -> RoaringBitmap {
        self.eval(index).yes
    }

    fn eval(&self, index: &LabelIndex) -> Truth {
        let all = index.all();
        match self {
            TagPredicate::Value { key, test } => {
                let yes = match test {
                    ValueTest::Eq(v) => index.eq(key, v),
                    ValueTest::In(vs) => vs.iter().map(|v| index.eq(key, v)).fold(
                        RoaringBitmap::new(),
                        |mut acc, b| {
                            acc |= b;
                            acc
                        },
                    ),
                    _ => index.values_matching(key, |v| test.matches(v)),
                };
                Truth {
                    yes,
                    null: index.without_key(key),
                }
            }
            TagPredicate::IsNull { key, negated } => Truth {
                yes: if *negated {
                    index.with_key(key)
                } else {
                    index.without_key(key)
                },
                null: RoaringBitmap::new(),
            },
            TagPredicate::Not(inner) => {
                let t = inner.eval(index);
                Truth {
                    yes: all - &t.yes - &t.null,
                    null: t.null,
                }
            }
            TagPredicate::And(parts) => {
                let mut yes = all.clone();
                let mut no = RoaringBitmap::new();
                for p in parts {
                    let t = p.eval(index);
                    no |= all - &t.yes - &t.null;
                    yes &= t.yes;
                }
                Truth {
                    null: all - &yes - &no,
                    yes,
                }
            }
            TagPredicate::Or(parts) => {
                let mut yes = RoaringBitmap::new();
                let mut no = all.clone();
                for p in parts {
                    let t = p.eval(index);
                    no &= all - &t.yes - &t.null;
                    yes |= t.yes;
                }
                Truth {
                    null: all - &yes - &no,
                    yes,
                }
            }
        }
    }
}

/// A comparison of a field with a number, used to skip chunks by their bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldBound {
    pub(crate) field: String,
    pub(crate) op: Operator,
    pub(crate) value: f64,
}

impl FieldBound {
    /// Whether some row of the chunk may satisfy the bound (field number `field`).
    pub(crate) fn may_match(&self, chunk: &Chunk, field: usize) -> bool {
        let Some(column) = chunk.column(field) else {
            return false;
        };
        let s = column.stats;
        if s.count == 0 {
            return false;
        }
        // Arrow compares floats in IEEE 754 total order (NaN above +inf, -0.0 below
        // 0.0), and so do the chunk bounds.
        let v = self.value;
        let (min, max) = (s.min.total_cmp(&v), s.max.total_cmp(&v));
        match self.op {
            Operator::Gt => max.is_gt(),
            Operator::GtEq => max.is_ge(),
            Operator::Lt => min.is_lt(),
            Operator::LtEq => min.is_le(),
            Operator::Eq => min.is_le() && max.is_ge(),
            // Only a chunk whose every value is v fails `!=`.
            Operator::NotEq => !(min.is_eq() && max.is_eq()),
            _ => true,
        }
    }
}

impl fmt::Display for FieldBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.field, self.op, self.value)
    }
}

/// How the scan handles one filter.
#[derive(Debug, Clone)]
pub(crate) enum Pushed {
    Tags(TagPredicate),
    Time(TimeRange),
    Fields(Vec<FieldBound>),
}

/// The filters a scan was handed, sorted by what answers them.
#[derive(Debug, Clone)]
pub(crate) struct ScanFilters {
    /// All tag predicates, ANDed.
    pub(crate) tags: Option<TagPredicate>,
    pub(crate) range: TimeRange,
    pub(crate) bounds: Vec<FieldBound>,
    /// The filters taken, as text, for `EXPLAIN`.
    pub(crate) pushed: Vec<String>,
}

impl ScanFilters {
    pub(crate) fn new(filters: &[Expr], tags: &[String], fields: &[String]) -> ScanFilters {
        let mut predicates = Vec::new();
        let mut range = TimeRange::ALL;
        let mut bounds = Vec::new();
        let mut pushed = Vec::new();
        for filter in filters {
            match classify(filter, tags, fields) {
                Some(Pushed::Tags(p)) => predicates.push(p),
                Some(Pushed::Time(r)) => {
                    range = TimeRange::new(range.start.max(r.start), range.end.min(r.end));
                }
                Some(Pushed::Fields(b)) => bounds.extend(b),
                None => continue,
            }
            pushed.push(filter.to_string());
        }
        let tags = match predicates.len() {
            0 => None,
            1 => predicates.pop(),
            _ => Some(TagPredicate::And(predicates)),
        };
        ScanFilters {
            tags,
            range,
            bounds,
            pushed,
        }
    }

    /// The ids of series the tag predicates select.
    pub(crate) fn select(&self, index: &LabelIndex) -> RoaringBitmap {
        match &self.tags {
            Some(p) => p.select(index),
            None => index.all().clone(),
        }
    }
}

/// Classifies `expr` against the table's tag and field columns.
pub(crate) fn classify(expr: &Expr, tags: &[String], fields: &[String]) -> Option<Pushed> {
    if let Some(p) = tag_predicate(expr, tags) {
        return Some(Pushed::Tags(p));
    }
    if let Some(r) = time_range(expr) {
        return Some(Pushed::Time(r));
    }
    field_bounds(expr, fields).map(Pushed::Fields)
}

fn column_name<'a>(expr: &'a Expr, names: &[String]) -> Option<&'a str> {
    match expr {
        Expr::Column(c) if names.contains(&c.name) => Some(&c.name),
        // Coercion may wrap a dictionary tag in a cast to a string type.
        Expr::Cast(c) if c.field.data_type().is_string() => column_name(&c.expr, names),
        Expr::TryCast(c) if c.field.data_type().is_string() => column_name(&c.expr, names),
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    fn scalar(v: &ScalarValue) -> Option<String> {
        match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            ScalarValue::Dictionary(_, inner) => scalar(inner),
            _ => None,
        }
    }
    match expr {
        Expr::Literal(v, _) => scalar(v),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

/// `(column, op, literal)` with the column on the left, from either order.
fn comparison<'a>(b: &'a BinaryExpr, names: &[String]) -> Option<(&'a str, Operator, &'a Expr)> {
    if let Some(c) = column_name(&b.left, names) {
        return Some((c, b.op, &b.right));
    }
    column_name(&b.right, names).map(|c| (c, flip(b.op), b.left.as_ref()))
}

fn regex(pattern: &str, case_insensitive: bool) -> Option<Regex> {
    let flags = if case_insensitive { "(?i)" } else { "" };
    Regex::new(&format!("{flags}{pattern}")).ok()
}

/// SQL `LIKE` as an anchored regex (`%` any run, `_` one character).
fn like_regex(pattern: &str, escape: Option<char>, case_insensitive: bool) -> Option<Regex> {
    let escape = escape.unwrap_or('\\');
    let mut re = String::from(if case_insensitive { "(?is)^" } else { "(?s)^" });
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c == escape => re.push_str(&regex::escape(&chars.next()?.to_string())),
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

fn value(key: &str, test: ValueTest) -> TagPredicate {
    TagPredicate::Value {
        key: key.to_string(),
        test,
    }
}

fn negate(p: TagPredicate, negated: bool) -> TagPredicate {
    if negated {
        TagPredicate::Not(Box::new(p))
    } else {
        p
    }
}

/// The tag predicate `expr` is, if it only involves tag columns in supported ways.
pub(crate) fn tag_predicate(expr: &Expr, tags: &[String]) -> Option<TagPredicate> {
    match expr {
        Expr::BinaryExpr(b) if matches!(b.op, Operator::And | Operator::Or) => {
            let parts = vec![
                tag_predicate(&b.left, tags)?,
                tag_predicate(&b.right, tags)?,
            ];
            Some(if b.op == Operator::And {
                TagPredicate::And(parts)
            } else {
                TagPredicate::Or(parts)
            })
        }
        Expr::BinaryExpr(b) => {
            let (key, op, lit) = comparison(b, tags)?;
            let lit = string_literal(lit)?;
            use Operator::*;
            Some(match op {
                Eq => value(key, ValueTest::Eq(lit)),
                NotEq | Lt | LtEq | Gt | GtEq => value(key, ValueTest::Cmp(op, lit)),
                RegexMatch | RegexIMatch | RegexNotMatch | RegexNotIMatch => {
                    // Only `column ~ 'pattern'`, not `'text' ~ column`.
                    column_name(&b.left, tags)?;
                    let re = regex(&lit, matches!(op, RegexIMatch | RegexNotIMatch))?;
                    negate(
                        value(key, ValueTest::Regex(re)),
                        matches!(op, RegexNotMatch | RegexNotIMatch),
                    )
                }
                LikeMatch | ILikeMatch | NotLikeMatch | NotILikeMatch => {
                    column_name(&b.left, tags)?;
                    let re = like_regex(&lit, None, matches!(op, ILikeMatch | NotILikeMatch))?;
                    negate(
                        value(key, ValueTest::Regex(re)),
                        matches!(op, NotLikeMatch | NotILikeMatch),
                    )
                }
                _ => return None,
            })
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char,
            case_insensitive,
        }) => {
            let key = column_name(expr, tags)?;
            let re = like_regex(&string_literal(pattern)?, *escape_char, *case_insensitive)?;
            Some(negate(value(key, ValueTest::Regex(re)), *negated))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let key = column_name(expr, tags)?;
            let values = list
                .iter()
                .map(string_literal)
                .collect::<Option<Vec<_>>>()?;
            Some(negate(value(key, ValueTest::In(values)), *negated))
        }
        Expr::IsNull(e) => Some(TagPredicate::IsNull {
            key: column_name(e, tags)?.to_string(),
            negated: false,
        }),
        Expr::IsNotNull(e) => Some(TagPredicate::IsNull {
            key: column_name(e, tags)?.to_string(),
            negated: true,
        }),
        Expr::Not(e) => Some(TagPredicate::Not(Box::new(tag_predicate(e, tags)?))),
        Expr::ScalarFunction(f) if f.name() == "regexp_like" => {
            let key = column_name(f.args.first()?, tags)?;
            let pattern = string_literal(f.args.get(1)?)?;
            let flags = match f.args.get(2) {
                None => String::new(),
                Some(e) => string_literal(e)?,
            };
            if !flags
                .chars()
                .all(|c| matches!(c, 'i' | 's' | 'm' | 'x' | 'U'))
            {
                return None;
            }
            let prefix = if flags.is_empty() {
                String::new()
            } else {
                format!("(?{flags})")
            };
            Some(value(
                key,
                ValueTest::Regex(Regex::new(&format!("{prefix}{pattern}")).ok()?),
            ))
        }
        _ => None,
    }
}

/// Milliseconds per unit (`k`) of a timestamp literal, or `None` for finer units
/// (`div`: micro- and nanoseconds per millisecond).
fn timestamp_literal(expr: &Expr) -> Option<(i64, i64, i64)> {
    match expr {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampSecond(Some(v), _) => Some((*v, 1000, 1)),
            ScalarValue::TimestampMillisecond(Some(v), _) => Some((*v, 1, 1)),
            ScalarValue::TimestampMicrosecond(Some(v), _) => Some((*v, 1, 1_000)),
            ScalarValue::TimestampNanosecond(Some(v), _) => Some((*v, 1, 1_000_000)),
            _ => None,
        },
        _ => None,
    }
}

/// The half-open millisecond range a comparison of `time` with a literal allows.
pub(crate) fn time_range(expr: &Expr) -> Option<TimeRange> {
    let names = [TIME_COLUMN.to_string()];
    match expr {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            let (l, r) = (time_range(&b.left)?, time_range(&b.right)?);
            Some(TimeRange::new(l.start.max(r.start), l.end.min(r.end)))
        }
        Expr::BinaryExpr(b) => {
            let (_, op, lit) = comparison(b, &names)?;
            let (v, mul, div) = timestamp_literal(lit)?;
            // The literal in milliseconds, rounded down and up.
            let floor = v.div_euclid(div).saturating_mul(mul);
            let ceil = if v.rem_euclid(div) == 0 {
                floor
            } else {
                floor.saturating_add(1)
            };
            let (start, end) = match op {
                Operator::Gt => (floor.saturating_add(1), i64::MAX),
                Operator::GtEq => (ceil, i64::MAX),
                Operator::Lt => (i64::MIN, ceil),
                Operator::LtEq => (i64::MIN, floor.saturating_add(1)),
                Operator::Eq if ceil == floor => (floor, floor.saturating_add(1)),
                Operator::Eq => (0, 0),
                _ => return None,
            };
            Some(TimeRange::new(start, end))
        }
        Expr::Between(b) if !b.negated => {
            column_name(&b.expr, &names)?;
            let low = Expr::BinaryExpr(BinaryExpr::new(
                b.expr.clone(),
                Operator::GtEq,
                b.low.clone(),
            ));
            let high = Expr::BinaryExpr(BinaryExpr::new(
                b.expr.clone(),
                Operator::LtEq,
                b.high.clone(),
            ));
            let (l, h) = (time_range(&low)?, time_range(&high)?);
            Some(TimeRange::new(l.start, h.end))
        }
        _ => None,
    }
}

fn number_literal(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Literal(v, _) => match v {
            ScalarValue::Float64(Some(v)) => Some(*v),
            ScalarValue::Float32(Some(v)) => Some(*v as f64),
            ScalarValue::Int64(Some(v)) => Some(*v as f64),
            ScalarValue::Int32(Some(v)) => Some(*v as f64),
            ScalarValue::Int16(Some(v)) => Some(*v as f64),
            ScalarValue::Int8(Some(v)) => Some(*v as f64),
            ScalarValue::UInt64(Some(v)) => Some(*v as f64),
            ScalarValue::UInt32(Some(v)) => Some(*v as f64),
            _ => None,
        },
        Expr::Cast(c) => number_literal(&c.expr),
        _ => None,
    }
}

fn field_bounds(expr: &Expr, fields: &[String]) -> Option<Vec<FieldBound>> {
    match expr {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            let mut l = field_bounds(&b.left, fields)?;
            l.extend(field_bounds(&b.right, fields)?);
            Some(l)
        }
        Expr::BinaryExpr(b) => {
            let (field, op, lit) = comparison(b, fields)?;
            if !matches!(
                op,
                Operator::Gt
                    | Operator::GtEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Eq
                    | Operator::NotEq
            ) {
                return None;
            }
            let value = number_literal(lit)?;
            Some(vec![FieldBound {
                field: field.to_string(),
                op,
                value,
            }])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_become_anchored_regexes() {
        let re = like_regex("us-%-1_", None, false).unwrap();
        assert!(re.is_match("us-east-1a"));
        assert!(!re.is_match("xus-east-1a"));
        assert!(!re.is_match("us-east-1"));
        let re = like_regex("a\\%b", None, false).unwrap();
        assert!(re.is_match("a%b") && !re.is_match("axb"));
        assert!(like_regex("A%", None, true).unwrap().is_match("abc"));
    }
}
