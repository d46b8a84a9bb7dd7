//! The principal of a TLS client: its certificate's subject as an RFC 2253 distinguished
//! name, the form Kafka's default principal builder uses (`User:CN=app,OU=eng,O=example`):
//! the subject's relative names last to first, separated by commas, attribute types by
//! their RFC 2253 keywords (CN, C, L, ST, O, OU, STREET, DC, UID) or else their dotted
//! object identifiers, string values with RFC 2253's escapes, other values as `#` and the
//! hex of their DER encoding.
//!
//! Only what reaching the subject needs of DER is read here; the certificate has already
//! been verified by the TLS handshake.

/// One DER element: its tag, its content, and its whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads the element at the start of `b`, returning it and what follows.
fn read(b: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &x in &rest[..n] {
            len = (len << 8) | usize::from(x);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = b.len() - rest.len();
    Some((
        Tlv {
            tag,
            content: &rest[..len],
            whole: &b[..header + len],
        },
        &rest[len..],
    ))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The certificate subject of DER certificate `der`, as RFC 2253 (None if unreadable).
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    let (cert, _) = read(der)?;
    let (tbs, _) = read(cert.content)?;
    if cert.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return None;
    }
    let mut fields = tbs.content;
    let mut next = || -> Option<Tlv<'_>> {
        let (t, rest) = read(fields)?;
        fields = rest;
        Some(t)
    };
    let mut field = next()?;
    // [0] EXPLICIT version, when present.
    if field.tag == 0xa0 {
        field = next()?;
    }
    // serialNumber, then signature, issuer and validity, then subject.
    let _serial = field;
    for _ in 0..3 {
        next()?;
    }
    let subject = next()?;
    (subject.tag == SEQUENCE).then(|| rfc2253(subject.content))?
}

/// An RDNSequence's content as RFC 2253.
fn rfc2253(mut rdns: &[u8]) -> Option<String> {
    let mut names = Vec::new();
    while !rdns.is_empty() {
        let (set, rest) = read(rdns)?;
        rdns = rest;
        if set.tag != SET {
            return None;
        }
        let mut avas = Vec::new();
        let mut items = set.content;
        while !items.is_empty() {
            let (ava, rest) = read(items)?;
            items = rest;
            let (oid, rest) = read(ava.content)?;
            let (value, _) = read(rest)?;
            if ava.tag != SEQUENCE || oid.tag != OID {
                return None;
            }
            let oid = dotted(oid.content)?;
            // A keyword's string value as text; anything else as the hex of its DER.
            let text = keyword(&oid).and_then(|k| Some((k, string_value(&value)?)));
            avas.push(match text {
                Some((k, v)) => format!("{k}={}", escape(&v)),
                None => format!("{oid}=#{}", hex(value.whole)),
            });
        }
        names.push(avas.join("+"));
    }
    names.reverse();
    Some(names.join(","))
}

fn dotted(b: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for &x in b {
        v = v.checked_mul(128)? | u64::from(x & 0x7f);
        if x & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    if arcs.is_empty() || b.last().is_some_and(|x| x & 0x80 != 0) {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A directory string's text (UTF8, Printable, IA5, Teletex, General or BMP string, as
/// Java reads them; a Universal string is written in hex).
fn string_value(v: &Tlv<'_>) -> Option<String> {
    match v.tag {
        0x0c | 0x13 | 0x16 => String::from_utf8(v.content.to_vec()).ok(),
        0x14 | 0x1b => Some(v.content.iter().map(|&c| char::from(c)).collect()),
        0x1e => {
            let units: Vec<u16> = v
                .content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253 escaping as Java writes it: `,=+<>#;"\` anywhere, and every leading or
/// trailing space or carriage return.
fn escape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let lead = chars.iter().take_while(|c| matches!(c, ' ' | '\r')).count();
    let trail = chars.len()
        - chars
            .iter()
            .rev()
            .take_while(|c| matches!(c, ' ' | '\r'))
            .count()
            .min(chars.len() - lead);
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let edge = (i < lead || i >= trail) && matches!(c, ' ' | '\r');
        if edge || matches!(c, ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_read_as_rfc2253() {
        let mut params =
            rcgen::CertificateParams::new(vec!["client".to_string()]).expect("test value");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "  app+1=#2 ");
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("a@b.c".try_into().expect("test value")),
        );
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().expect("test value");
        let cert = params.self_signed(&key).expect("test value");
        // The email address has no RFC 2253 keyword: its DER value in hex.
        assert_eq!(
            certificate_subject(cert.der()).as_deref(),
            Some(
                "1.2.840.113549.1.9.1=#16056140622e63,CN=\\ \\ app\\+1\\=\\#2\\ ,OU=eng,\
                 O=Example\\, Inc.,C=DE"
            )
        );
    }

    #[test]
    fn garbage_is_no_subject() {
        assert_eq!(certificate_subject(&[]), None);
        assert_eq!(certificate_subject(&[0x30, 0x82, 0xff]), None);
        assert_eq!(certificate_subject(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        assert_eq!(dotted(&[0x2a, 0x86]), None);
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]).as_deref(),
            Some("1.2.840.113549")
        );
    }
}

/// `ssl.principal.mapping.rules`: how a certificate's subject becomes a principal's name.
/// `DEFAULT` keeps the whole subject; `RULE:<pattern>/<replacement>/[L|U]` turns a subject
/// the pattern matches whole into the replacement (`$1`... for its groups), in lower or
/// upper case with `L` or `U`. The first rule that applies wins; a subject none applies to
/// has no principal (its connection is refused, as Kafka refuses it).
#[derive(Debug, Clone)]
pub struct MappingRules(Vec<Rule>);

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules(vec![Rule::Default])
    }
}

/// A Java replacement string in the regex crate's syntax: `$1` → `${1}`, `\$` → `$$`.
fn replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl MappingRules {
    /// Parses Kafka's rule list (`RULE:...,RULE:...,DEFAULT`).
    pub fn parse(text: &str) -> Result<MappingRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) = r
                    .split_once('/')
                    .ok_or_else(|| format!("Invalid rule: {rest} (no / after the pattern)"))?;
                let (with, r) = r
                    .split_once('/')
                    .ok_or_else(|| format!("Invalid rule: {rest} (no / after the replacement)"))?;
                let (case, r) = match r.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                    _ => (None, r),
                };
                let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("Invalid rule pattern {pattern}: {e}"))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: replacement(with),
                    case,
                });
                rest = r;
            } else {
                return Err(format!("Invalid rule: {rest}"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => {
                    return Err(format!(
                        "Invalid rule: {rest} (rules are separated by commas)"
                    ))
                }
            }
        }
        if rules.is_empty() {
            return Err("no rule given".into());
        }
        Ok(MappingRules(rules))
    }

    /// The principal name of certificate subject `dn`, if a rule applies.
    pub fn apply(&self, dn: &str) -> Option<String> {
        self.0.iter().find_map(|r| match r {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => pattern.is_match(dn).then(|| {
                let name = pattern.replace(dn, replacement.as_str()).into_owned();
                match case {
                    Some('L') => name.to_lowercase(),
                    Some('U') => name.to_uppercase(),
                    _ => name,
                }
            }),
        })
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn rules_map_subjects_as_kafka_does() {
        let rules = MappingRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L,DEFAULT",
        )
        .expect("rules");
        assert_eq!(
            rules.apply("CN=app,OU=ServiceUsers,O=x").as_deref(),
            Some("app")
        );
        assert_eq!(rules.apply("CN=Bob,OU=Eng,O=x").as_deref(), Some("bob@eng"));
        assert_eq!(rules.apply("CN=z").as_deref(), Some("CN=z"));
        let strict = MappingRules::parse("RULE:^CN=([a-z]+)$/$1x/U").expect("rule");
        assert_eq!(strict.apply("CN=app").as_deref(), Some("APPX"));
        assert_eq!(strict.apply("CN=app,O=x"), None);
        assert_eq!(
            MappingRules::default().apply("CN=a").as_deref(),
            Some("CN=a")
        );
        for bad in [
            "RULE:^CN=(.*$/$1/",
            "RULE:abc",
            "NOPE",
            "",
            "DEFAULT RULE:a/b/",
        ] {
            assert!(MappingRules::parse(bad).is_err(), "{bad}");
        }
    }
}
