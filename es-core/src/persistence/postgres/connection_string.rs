//! Reading a connection string, in either of libpq's forms (a
//! `postgres://` URL or `key=value` pairs), without ever repeating a secret.
//!
//! The driver's own parser (`postgres::Config: FromStr`) does the reading. In
//! front of it, this module checks what the driver accepts but should not be
//! (an `@` in the host, an empty user), takes out the TLS settings the driver
//! does not know (`verify-ca`, `verify-full`, `sslrootcert`), and refuses
//! parameters this crate would otherwise drop silently. Its error messages are
//! written here, from fixed text and the names of known parameters: the
//! driver's own messages can quote pieces of the input, which may be a password.

use std::path::PathBuf;

use super::config::SslMode;

/// What a connection string gives beyond what the driver keeps.
pub(super) struct Parsed {
    pub(super) driver: postgres::Config,
    pub(super) ssl_mode: Option<SslMode>,
    pub(super) ssl_root_cert: Option<PathBuf>,
}

/// Why a connection string was refused: fixed text and parameter names only,
/// never a piece of the input.
pub(super) type Refusal = String;

/// Parameters handed to the driver as they are.
const DRIVER_KEYS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "host",
    "port",
    "connect_timeout",
];

/// Parameters read here rather than by the driver.
const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert"];

/// libpq's other parameters, named in a refusal (they are not secrets).
const UNSUPPORTED_KEYS: &[&str] = &[
    "application_name",
    "channel_binding",
    "client_encoding",
    "fallback_application_name",
    "gssencmode",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "load_balance_hosts",
    "options",
    "passfile",
    "requirepeer",
    "service",
    "sslcert",
    "sslcompression",
    "sslcrl",
    "sslkey",
    "sslnegotiation",
    "sslpassword",
    "target_session_attrs",
    "tcp_user_timeout",
];

/// Parameters whose values a redacted connection string still shows.
const SHOWN_KEYS: &[&str] = &[
    "user",
    "dbname",
    "host",
    "port",
    "connect_timeout",
    "sslmode",
];

const URL_SCHEMES: &[&str] = &["postgres://", "postgresql://"];

/// Reads `input`, a URL or `key=value` pairs.
pub(super) fn parse(input: &str) -> Result<Parsed, Refusal> {
    let input = input.trim();
    if let Some(scheme) = URL_SCHEMES.iter().find(|s| input.starts_with(**s)) {
        parse_url(scheme, &input[scheme.len()..])
    } else if input.starts_with("postgres") {
        // No libpq parameter starts so: a URL with its scheme mistyped.
        Err("it starts like a URL, but not with postgres:// or postgresql://".into())
    } else if input.contains('=') {
        parse_pairs(input)
    } else {
        Err("it is neither a URL starting with postgres:// nor key=value pairs".into())
    }
}

fn parse_url(scheme: &str, rest: &str) -> Result<Parsed, Refusal> {
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query.contains('@') {
        return Err("it has an @ after a ?: write a ? in the password as %3F, an @ as %40".into());
    }
    let authority = base.split('/').next().unwrap_or_default();
    if let Some((credentials, host)) = authority.split_once('@') {
        if host.contains('@') {
            return Err(
                "it has more than one @ before the host: write an @ in the user or \
                        password as %40"
                    .into(),
            );
        }
        if credentials.split(':').next().is_some_and(str::is_empty) {
            return Err("its user is empty".into());
        }
    }
    let mut tls = TlsParameters::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair
            .split_once('=')
            .ok_or("a query parameter has no = and value")?;
        let key = percent_decode(raw_key).ok_or("a query parameter's name is not UTF-8")?;
        let key = known_key(&key)?;
        if TLS_KEYS.contains(&key) {
            let value = percent_decode(raw_value).ok_or("the value of sslrootcert is not UTF-8")?;
            tls.set(key, &value)?;
        } else {
            kept.push(pair);
        }
    }
    let mut driver_input = format!("{scheme}{base}");
    if !kept.is_empty() {
        driver_input.push('?');
        driver_input.push_str(&kept.join("&"));
    }
    let driver = driver_input.parse().map_err(driver_refusal)?;
    Ok(tls.with(driver))
}

fn parse_pairs(input: &str) -> Result<Parsed, Refusal> {
    let mut tls = TlsParameters::default();
    let mut kept = String::new();
    for (key, value) in Pairs::new(input) {
        let key = known_key(&key?)?;
        let value = value?;
        if TLS_KEYS.contains(&key) {
            tls.set(key, &value)?;
        } else {
            if key == "user" && value.is_empty() {
                return Err("its user is empty".into());
            }
            // Every value quoted again, so the driver reads exactly what was read here.
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push_str(&format!("{key}='{quoted}' "));
        }
    }
    let driver = kept.parse().map_err(driver_refusal)?;
    Ok(tls.with(driver))
}

/// `key` as one of the known parameter names, or why it is refused.
fn known_key(key: &str) -> Result<&'static str, Refusal> {
    if let Some(known) = DRIVER_KEYS.iter().chain(TLS_KEYS).find(|k| **k == key) {
        Ok(known)
    } else if let Some(unsupported) = UNSUPPORTED_KEYS.iter().find(|k| **k == key) {
        Err(format!(
            "the parameter {unsupported} is not supported here (accepted: {}, {}; the other \
             settings have their own POSTGRES_* variables)",
            DRIVER_KEYS.join(", "),
            TLS_KEYS.join(", ")
        ))
    } else {
        Err(format!(
            "it has a parameter that is not a libpq one (its name is not shown, in case it is \
             a secret; accepted: {}, {})",
            DRIVER_KEYS.join(", "),
            TLS_KEYS.join(", ")
        ))
    }
}

#[derive(Default)]
struct TlsParameters {
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
}

impl TlsParameters {
    fn set(&mut self, key: &str, value: &str) -> Result<(), Refusal> {
        if key == "sslmode" {
            self.ssl_mode = Some(SslMode::parse(value).ok_or_else(|| {
                format!("its sslmode is not one of {}", SslMode::ACCEPTED.join(", "))
            })?);
        } else if value.is_empty() {
            return Err("its sslrootcert is empty".into());
        } else {
            self.ssl_root_cert = Some(PathBuf::from(value));
        }
        Ok(())
    }

    fn with(self, driver: postgres::Config) -> Parsed {
        Parsed {
            driver,
            ssl_mode: self.ssl_mode,
            ssl_root_cert: self.ssl_root_cert,
        }
    }
}

/// The driver's refusal, in words that cannot quote the input: its message
/// is used only when it is one of those known to name a parameter alone.
fn driver_refusal(error: postgres::Error) -> Refusal {
    let cause = std::error::Error::source(&error)
        .map(ToString::to_string)
        .unwrap_or_default();
    let named = DRIVER_KEYS
        .iter()
        .find(|key| cause == format!("invalid value for option `{key}`"));
    match named {
        Some(key) => format!("its {key} is not valid"),
        None if cause.contains("utf-8") => "a part of it is not UTF-8 once percent-decoded".into(),
        None => "the driver could not read it".into(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// libpq's `key = value` pairs: values may be quoted with `'`, and a
/// backslash takes the next character as it is.
struct Pairs<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

type Pair = (Result<String, Refusal>, Result<String, Refusal>);

impl<'a> Pairs<'a> {
    fn new(input: &'a str) -> Self {
        Pairs {
            chars: input.chars().peekable(),
        }
    }

    fn skip_whitespace(&mut self) {
        while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
    }

    fn key(&mut self) -> String {
        let mut key = String::new();
        while let Some(c) = self.chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        key
    }

    fn value(&mut self) -> Result<String, Refusal> {
        let quoted = self.chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match self.chars.next() {
                Some('\'') if quoted => return Ok(value),
                Some(c) if c.is_whitespace() && !quoted => return Ok(value),
                Some('\\') => value.extend(self.chars.next()),
                Some(c) => value.push(c),
                None if quoted => return Err("a quoted value has no closing quote".into()),
                None => return Ok(value),
            }
        }
    }
}

impl Iterator for Pairs<'_> {
    type Item = Pair;

    fn next(&mut self) -> Option<Pair> {
        self.skip_whitespace();
        self.chars.peek()?;
        let key = self.key();
        self.skip_whitespace();
        if self.chars.next_if_eq(&'=').is_none() {
            // Stop here: what follows may be anything, and is not read.
            self.chars = "".chars().peekable();
            return Some((Err("a word is not followed by =".into()), Ok(String::new())));
        }
        self.skip_whitespace();
        let value = self.value();
        if value.is_err() {
            self.chars = "".chars().peekable();
        }
        Some((Ok(key), value))
    }
}

/// `input` as it may be shown in an error: the password, whatever cannot be
/// read with certainty, and the values and names of parameters that are not
/// known to be harmless, all as `***`.
pub(super) fn redact(input: &str) -> String {
    let input = input.trim();
    let (scheme, rest) = match URL_SCHEMES.iter().find(|s| input.starts_with(**s)) {
        Some(scheme) => (*scheme, &input[scheme.len()..]),
        None => ("", input),
    };
    if scheme.is_empty() && rest.contains('=') {
        return redact_pairs(rest.split_whitespace(), " ");
    }
    if scheme.is_empty() && !rest.contains('@') {
        // Neither form: nothing in it can be told apart from a password.
        return "***".into();
    }
    // Everything before the last @ may be credentials: keep only what comes
    // before the first colon, the user, and only when the scheme says it is one.
    let (credentials, rest) = match rest.rfind('@') {
        Some(at) if !scheme.is_empty() => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            let masked = if user.len() < at { ":***" } else { "" };
            (format!("{user}{masked}@"), &rest[at + 1..])
        }
        Some(at) => ("***@".to_owned(), &rest[at + 1..]),
        None => (String::new(), rest),
    };
    let redacted_rest = match rest.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_pairs(query.split('&'), "&")),
        None => rest.to_owned(),
    };
    format!("{scheme}{credentials}{redacted_rest}")
}

fn redact_pairs<'a>(pairs: impl Iterator<Item = &'a str>, separator: &str) -> String {
    pairs
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if SHOWN_KEYS.contains(&key) => format!("{key}={value}"),
            Some((key, _)) if DRIVER_KEYS.iter().chain(TLS_KEYS).any(|k| *k == key) => {
                format!("{key}=***")
            }
            _ => "***".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_what_helps_and_masks_what_may_be_secret() {
        for (input, shown) in [
            ("postgres://me:pw@host/db", "postgres://me:***@host/db"),
            (
                "postgres://me:p@ss@host:1/db?port=2",
                "postgres://me:***@host:1/db?port=2",
            ),
            ("postgres://me@host/db", "postgres://me@host/db"),
            ("postgres//user:pw@host/db", "***@host/db"),
            (
                "postgres://u@h/db?password=pw&port=x&sekrit=1",
                "postgres://u@h/db?password=***&port=x&***",
            ),
            (
                "host=h password='a b' user=u",
                "host=h password=*** *** user=u",
            ),
            ("not a url", "***"),
        ] {
            assert_eq!(redact(input), shown, "{input}");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (input, why) in [
            ("postgres:/u@h/db?port=5", "starts like a URL"),
            ("just words", "neither a URL"),
            ("postgres://u:p?w@h/db", "%3F"),
            ("postgres://u@h/db?port", "no ="),
            ("postgres://u@h/db?port=x", "its port is not valid"),
            ("postgres://u@h/db?sslmode=allow", "verify-full"),
            (
                "postgres://u@h/db?sslcert=c.pem",
                "sslcert is not supported",
            ),
            ("postgres://u@h/db?hunter2=x", "not a libpq one"),
            ("host=h user=u dbname=d port=x", "its port is not valid"),
            ("host=h user=u dbname=d password", "not followed by ="),
            ("host=h user=u password='open", "no closing quote"),
        ] {
            let refusal = parse(input)
                .err()
                .unwrap_or_else(|| panic!("{input} was accepted"));
            assert!(refusal.contains(why), "{input}: {refusal}");
        }
    }

    #[test]
    fn pairs_follow_libpq_quoting() {
        let pairs: Vec<_> = Pairs::new(r"a=1  b = 'x y\'z' c=d\ e")
            .map(|(k, v)| (k.expect("key"), v.expect("value")))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y'z".to_owned()),
                ("c".to_owned(), "d e".to_owned())
            ]
        );
        assert!(Pairs::new("a='open").any(|(_, v)| v.is_err()));
        assert!(Pairs::new("a b=1").any(|(k, _)| k.is_err()));
    }

    #[test]
    fn percent_decoding_leaves_what_is_not_an_escape() {
        assert_eq!(percent_decode("p%40ss%2").as_deref(), Some("p@ss%2"));
        assert_eq!(percent_decode("%ff"), None);
    }
}
