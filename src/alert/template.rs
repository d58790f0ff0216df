//! Label and annotation templates: the part of Prometheus' Go templates that alert
//! rules use in practice.
//!
//! | in the text | becomes |
//! |---|---|
//! | `{{ $labels.host }}` | the instance's label `host` (empty when it has none) |
//! | `{{ $value }}` | the instance's value |
//! | `{{ humanize $value }}` | the value with an SI prefix: `1.234k`, `5.6M` |
//!
//! Anything else between `{{` and `}}` is refused when the rule is loaded, so a typo
//! is an error at load time and not a blank in a page at 3 am.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Label(String),
    Value,
    Humanize,
}

impl Template {
    /// Parses `text`, or says which placeholder is not understood.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("template {text:?}: `{{{{` without `}}}}`"))?;
            let inner = after[..close].trim_matches(|c: char| c == '-' || c.is_whitespace());
            parts.push(Self::action(inner).ok_or_else(|| {
                format!(
                    "template {text:?}: unsupported `{{{{ {inner} }}}}` (use $labels.NAME, \
                     $value or humanize $value)"
                )
            })?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    fn action(inner: &str) -> Option<Part> {
        if inner == "$value" {
            return Some(Part::Value);
        }
        if let Some(arg) = inner.strip_prefix("humanize ") {
            return (arg.trim() == "$value").then_some(Part::Humanize);
        }
        let name = inner.strip_prefix("$labels.")?;
        let valid = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        valid.then(|| Part::Label(name.to_string()))
    }

    /// The text for an instance with `labels` and `value`.
    pub fn render(&self, labels: &BTreeMap<String, String>, value: f64) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Label(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
                Part::Value => {
                    let _ = write!(out, "{value}");
                }
                Part::Humanize => out.push_str(&humanize(value)),
            }
        }
        out
    }
}

/// Expands `text` for an instance; a template that does not parse (refused at load,
/// so impossible here) is left as it is.
pub fn expand(text: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    match Template::parse(text) {
        Ok(t) => t.render(labels, value),
        Err(_) => text.to_string(),
    }
}

/// Prometheus' `humanize`: SI prefixes, four significant digits.
pub fn humanize(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let a = v.abs();
    let (scaled, prefix) = if a >= 1.0 {
        let mut s = v;
        let mut i = 0;
        const BIG: [&str; 9] = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
        while s.abs() >= 1000.0 && i < BIG.len() - 1 {
            s /= 1000.0;
            i += 1;
        }
        (s, BIG[i])
    } else {
        let mut s = v;
        let mut i = 0;
        const SMALL: [&str; 9] = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
        while s.abs() < 1.0 && i < SMALL.len() - 1 {
            s *= 1000.0;
            i += 1;
        }
        (s, SMALL[i])
    };
    // %.4g: four significant digits, trailing zeros dropped.
    let digits = 4 - (scaled.abs().log10().floor() as i32 + 1);
    let text = format!("{:.*}", digits.max(0) as usize, scaled);
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_values_and_humanize() {
        let labels = BTreeMap::from([("host".to_string(), "a".to_string())]);
        let t = Template::parse("CPU of {{ $labels.host }} at {{$value}}% ({{ humanize $value }})")
            .unwrap();
        assert_eq!(t.render(&labels, 1234.5), "CPU of a at 1234.5% (1.234k)");
        assert_eq!(
            Template::parse("{{ $labels.missing }}!")
                .unwrap()
                .render(&labels, 0.0),
            "!"
        );
        assert!(Template::parse("{{ $valeu }}").is_err());
        assert!(Template::parse("{{ $value").is_err());
        assert_eq!(humanize(0.0025), "2.5m");
        assert_eq!(humanize(5_600_000.0), "5.6M");
        assert_eq!(humanize(42.0), "42");
    }
}
