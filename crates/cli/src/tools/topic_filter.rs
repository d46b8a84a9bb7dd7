//! Kafka's topic include list (`--topic` of kafka-topics): a Java-style regular expression
//! that must match the whole topic name, with `,` meaning `|` (Kafka's `IncludeList`).
//!
//! The supported syntax is the part topic filters use: literals, `.`, `[...]` classes with
//! ranges and `^` negation, `\d \w \s` and escaped characters, groups `( )`, alternation `|`,
//! and the quantifiers `* + ?` and `{n}`, `{n,}`, `{n,m}`.

use anyhow::{bail, Result};

#[derive(Debug, Clone)]
enum Atom {
    Char(char),
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Group(Vec<Vec<Piece>>),
}

#[derive(Debug, Clone)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

/// A compiled include list.
#[derive(Debug, Clone)]
pub struct TopicFilter {
    alternatives: Vec<Vec<Piece>>,
}

impl TopicFilter {
    /// Compiles an include list as Kafka does: trimmed, `,` → `|`, spaces and surrounding
    /// quotes removed.
    pub fn new(include: &str) -> Result<TopicFilter> {
        let cleaned: String = include
            .trim()
            .replace(',', "|")
            .replace(' ', "")
            .trim_start_matches(['"', '\''])
            .trim_end_matches(['"', '\''])
            .to_string();
        let chars: Vec<char> = cleaned.chars().collect();
        let mut pos = 0;
        let alternatives = parse_alternatives(&chars, &mut pos, 0)?;
        if pos != chars.len() {
            bail!("Invalid topic filter '{include}': unbalanced ')'");
        }
        Ok(TopicFilter { alternatives })
    }

    /// Whether the whole `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        let mut done = |i: usize| i == s.len();
        alts(&self.alternatives, &s, 0, &mut done)
    }
}

fn parse_alternatives(c: &[char], pos: &mut usize, depth: usize) -> Result<Vec<Vec<Piece>>> {
    if depth > 32 {
        bail!("topic filter nested too deeply");
    }
    let mut out = vec![Vec::new()];
    while *pos < c.len() {
        let ch = c[*pos];
        match ch {
            ')' if depth > 0 => return Ok(out),
            ')' => bail!("Invalid topic filter: unbalanced ')'"),
            '|' => {
                *pos += 1;
                out.push(Vec::new());
                continue;
            }
            _ => {}
        }
        let atom = match ch {
            '(' => {
                *pos += 1;
                // Non-capturing group marker.
                if c.get(*pos) == Some(&'?') && c.get(*pos + 1) == Some(&':') {
                    *pos += 2;
                }
                let inner = parse_alternatives(c, pos, depth + 1)?;
                if c.get(*pos) != Some(&')') {
                    bail!("Invalid topic filter: unclosed '('");
                }
                *pos += 1;
                Atom::Group(inner)
            }
            '.' => {
                *pos += 1;
                Atom::Any
            }
            '[' => parse_class(c, pos)?,
            '\\' => {
                *pos += 1;
                let Some(&e) = c.get(*pos) else {
                    bail!("Invalid topic filter: trailing '\\'");
                };
                *pos += 1;
                escape_atom(e)
            }
            '*' | '+' | '?' | '{' => bail!("Invalid topic filter: dangling '{ch}'"),
            _ => {
                *pos += 1;
                Atom::Char(ch)
            }
        };
        let (min, max) = parse_quantifier(c, pos)?;
        if let Some(seq) = out.last_mut() {
            seq.push(Piece { atom, min, max });
        }
    }
    if depth > 0 {
        bail!("Invalid topic filter: unclosed '('");
    }
    Ok(out)
}

fn escape_atom(e: char) -> Atom {
    let class = |ranges: Vec<(char, char)>| Atom::Class {
        negated: false,
        ranges,
    };
    match e {
        'd' => class(vec![('0', '9')]),
        'w' => class(vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]),
        's' => class(vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')]),
        't' => Atom::Char('\t'),
        'n' => Atom::Char('\n'),
        other => Atom::Char(other),
    }
}

fn parse_class(c: &[char], pos: &mut usize) -> Result<Atom> {
    *pos += 1; // '['
    let mut negated = false;
    if c.get(*pos) == Some(&'^') {
        negated = true;
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&ch) = c.get(*pos) else {
            bail!("Invalid topic filter: unclosed '['");
        };
        if ch == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            *pos += 1;
            let Some(&e) = c.get(*pos) else {
                bail!("Invalid topic filter: unclosed '['");
            };
            if let Atom::Class { ranges: r, .. } = escape_atom(e) {
                ranges.extend(r);
                *pos += 1;
                continue;
            }
            e
        } else {
            ch
        };
        *pos += 1;
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|n| *n != ']') {
            let hi = c[*pos + 1];
            *pos += 2;
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Atom::Class { negated, ranges })
}

fn parse_quantifier(c: &[char], pos: &mut usize) -> Result<(usize, usize)> {
    let q = match c.get(*pos) {
        Some('*') => (0, usize::MAX),
        Some('+') => (1, usize::MAX),
        Some('?') => (0, 1),
        Some('{') => {
            let end = c[*pos..]
                .iter()
                .position(|x| *x == '}')
                .map(|e| *pos + e)
                .ok_or_else(|| anyhow::anyhow!("Invalid topic filter: unclosed '{{'"))?;
            let body: String = c[*pos + 1..end].iter().collect();
            let parse = |s: &str| -> Result<usize> {
                s.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("Invalid topic filter quantifier {{{body}}}"))
            };
            let q = match body.split_once(',') {
                None => {
                    let n = parse(&body)?;
                    (n, n)
                }
                Some((a, "")) => (parse(a)?, usize::MAX),
                Some((a, b)) => (parse(a)?, parse(b)?),
            };
            *pos = end;
            q
        }
        _ => return Ok((1, 1)),
    };
    *pos += 1;
    // Lazy and possessive suffixes make no difference to a full match.
    if matches!(c.get(*pos), Some('?') | Some('+')) {
        *pos += 1;
    }
    Ok(q)
}

fn alts(
    alternatives: &[Vec<Piece>],
    s: &[char],
    i: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    alternatives.iter().any(|seq| pieces(seq, s, i, k))
}

fn pieces(seq: &[Piece], s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(i),
        Some((p, rest)) => repeat(p, rest, s, i, 0, k),
    }
}

fn repeat(
    p: &Piece,
    rest: &[Piece],
    s: &[char],
    i: usize,
    count: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if count < p.max {
        let mut more = |j: usize| j != i && repeat(p, rest, s, j, count + 1, k);
        if atom(&p.atom, s, i, &mut more) {
            return true;
        }
    }
    count >= p.min && pieces(rest, s, i, k)
}

fn atom(a: &Atom, s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match a {
        Atom::Group(inner) => alts(inner, s, i, k),
        _ => {
            let Some(&ch) = s.get(i) else {
                return false;
            };
            let ok = match a {
                Atom::Char(c) => *c == ch,
                Atom::Any => ch != '\n',
                Atom::Class { negated, ranges } => {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&ch)) != *negated
                }
                Atom::Group(_) => false,
            };
            ok && k(i + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, s: &str) -> bool {
        TopicFilter::new(re).expect("compile").matches(s)
    }

    #[test]
    fn full_matches_like_java() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders2"));
        assert!(m("test.*", "test-1"));
        assert!(m("test.*", "test"));
        assert!(!m("test.+", "test"));
        assert!(m("a|b", "b"));
        assert!(m("a,b", "a"));
        assert!(m("t[0-9]+", "t42"));
        assert!(!m("t[^0-9]+", "t42"));
        assert!(m("t\\d{2}", "t42"));
        assert!(!m("t\\d{3}", "t42"));
        assert!(m("(ab)+c?", "ababc"));
        assert!(m("test\\.topic", "test.topic"));
        assert!(!m("test\\.topic", "test-topic"));
        assert!(m("\"quoted\"", "quoted"));
        // As in Kafka, "," always means "|", so {n,m} cannot be written.
        assert!(m("x{3}y", "xxxy"));
        assert!(TopicFilter::new("(a").is_err());
        assert!(TopicFilter::new("*a").is_err());
        assert!(TopicFilter::new("[a").is_err());
    }
}
