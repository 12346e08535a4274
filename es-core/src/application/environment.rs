//! Configuration read from environment variables, as the Python library reads it:
//! `<APPLICATION_NAME>_<KEY>` first, then `<KEY>`.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::{Error, Result};

/// A set of configuration variables with an optional application-name prefix.
///
/// `get("SQLITE_DBNAME")` in an environment named `"dog-school"` looks for
/// `DOG_SCHOOL_SQLITE_DBNAME` first, then `SQLITE_DBNAME`.
///
/// ```
/// use es_core::Environment;
/// let env = Environment::from_vars([("SQLITE_DBNAME", "all.db"), ("DOGS_SQLITE_DBNAME", "dogs.db")])
///     .with_name("dogs");
/// assert_eq!(env.get("SQLITE_DBNAME"), Some(("DOGS_SQLITE_DBNAME".to_string(), "dogs.db")));
/// assert_eq!(env.with_name("cats").get("SQLITE_DBNAME").unwrap().1, "all.db");
/// ```
#[derive(Clone, Default)]
pub struct Environment {
    prefix: Option<String>,
    vars: HashMap<String, String>,
    /// Settings made in code, which win over every variable.
    overrides: HashMap<String, String>,
}

/// Names only: values include secrets such as `CIPHER_KEY` and `POSTGRES_PASSWORD`.
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self
            .vars
            .keys()
            .chain(self.overrides.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        f.debug_struct("Environment")
            .field("prefix", &self.prefix)
            .field("variables", &names)
            .finish()
    }
}

impl Environment {
    /// The process's environment. Variables whose name or value is not UTF-8 are left out.
    pub fn from_process() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An environment of the given variables only, for tests and embedding.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            prefix: None,
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            overrides: HashMap::new(),
        }
    }

    /// The same variables, looked up first with the prefix made from `name`:
    /// upper case, with every character that is not a letter or digit as `_`.
    pub fn with_name(&self, name: &str) -> Self {
        let prefix = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>();
        Environment {
            prefix: (!prefix.is_empty()).then_some(prefix),
            vars: self.vars.clone(),
            overrides: self.overrides.clone(),
        }
    }

    /// Sets `key` to `value` in front of every variable, prefixed or not: how
    /// a setting made in code reaches the factory that reads it.
    pub(crate) fn set_override(&mut self, key: &str, value: String) {
        self.overrides.insert(key.to_owned(), value);
    }

    /// The value of `key`, with the variable name it was found under.
    pub fn get(&self, key: &str) -> Option<(String, &str)> {
        if let Some(value) = self.overrides.get(key) {
            return Some((key.to_owned(), value));
        }
        if let Some(prefix) = &self.prefix {
            let prefixed = format!("{prefix}_{key}");
            if let Some(value) = self.vars.get(&prefixed) {
                return Some((prefixed, value));
            }
        }
        self.vars
            .get(key)
            .map(|value| (key.to_owned(), value.as_str()))
    }

    /// A yes/no value: `y`, `yes`, `t`, `true`, `on`, `1` or `n`, `no`, `f`, `false`,
    /// `off`, `0`, in any case.
    ///
    /// ```
    /// use es_core::Environment;
    /// let env = Environment::from_vars([("IS_SNAPSHOTTING_ENABLED", "Yes"), ("CREATE_TABLE", "perhaps")]);
    /// assert_eq!(env.get_bool("IS_SNAPSHOTTING_ENABLED").unwrap(), Some(true));
    /// let error = env.get_bool("CREATE_TABLE").unwrap_err().to_string();
    /// assert!(error.contains("CREATE_TABLE") && error.contains("perhaps") && error.contains("yes"));
    /// ```
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        let Some((variable, value)) = self.get(key) else {
            return Ok(None);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "t" | "true" | "on" | "1" => Ok(Some(true)),
            "n" | "no" | "f" | "false" | "off" | "0" => Ok(Some(false)),
            _ => Err(invalid(
                variable,
                value,
                "one of y, yes, t, true, on, 1, n, no, f, false, off, 0",
            )),
        }
    }

    /// A duration in seconds, fractions allowed (`"5"`, `"0.5"`).
    pub fn get_seconds(&self, key: &str) -> Result<Option<Duration>> {
        let Some((variable, value)) = self.get(key) else {
            return Ok(None);
        };
        value
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    variable,
                    value,
                    "a non-negative number of seconds, such as 5 or 0.5",
                )
            })
    }

    /// A duration in seconds above zero: for a timeout, where zero would
    /// mean every operation fails at once rather than "no limit".
    ///
    /// ```
    /// use es_core::Environment;
    /// let env = Environment::from_vars([("NATS_TIMEOUT", "0"), ("ORDERS_NATS_TIMEOUT", "2.5")]);
    /// let error = env.get_positive_seconds("NATS_TIMEOUT").unwrap_err().to_string();
    /// assert!(error.contains("NATS_TIMEOUT") && error.contains("positive"));
    /// let orders = env.with_name("orders").get_positive_seconds("NATS_TIMEOUT").unwrap();
    /// assert_eq!(orders, Some(std::time::Duration::from_millis(2500)));
    /// ```
    pub fn get_positive_seconds(&self, key: &str) -> Result<Option<Duration>> {
        match self.get_seconds(key)? {
            Some(duration) if duration.is_zero() => {
                let (variable, value) = self.get(key).unwrap_or((key.to_owned(), "0"));
                Err(invalid(
                    variable,
                    value,
                    "a positive number of seconds, such as 5 or 0.5",
                ))
            }
            duration => Ok(duration),
        }
    }

    /// A whole number within `accepted` (`"5"`, not `"5.0"` or `"-1"`).
    ///
    /// ```
    /// use es_core::Environment;
    /// let env = Environment::from_vars([("POSTGRES_PORT", "6543"), ("POSTGRES_POOL_SIZE", "0")]);
    /// assert_eq!(env.get_u32("POSTGRES_PORT", 1..=65535).unwrap(), Some(6543));
    /// let error = env.get_u32("POSTGRES_POOL_SIZE", 1..=1000).unwrap_err().to_string();
    /// assert!(error.contains("POSTGRES_POOL_SIZE") && error.contains("from 1 to 1000"));
    /// ```
    pub fn get_u32(
        &self,
        key: &str,
        accepted: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>> {
        let Some((variable, value)) = self.get(key) else {
            return Ok(None);
        };
        value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|number| accepted.contains(number))
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    variable,
                    value,
                    &format!(
                        "a whole number from {} to {}",
                        accepted.start(),
                        accepted.end()
                    ),
                )
            })
    }

    /// A value that must be one of `accepted`, returned as the accepted spelling.
    pub fn get_choice(&self, key: &str, accepted: &[&'static str]) -> Result<Option<&'static str>> {
        let Some((variable, value)) = self.get(key) else {
            return Ok(None);
        };
        let wanted = value.trim();
        accepted
            .iter()
            .find(|choice| choice.eq_ignore_ascii_case(wanted))
            .map(|choice| Some(*choice))
            .ok_or_else(|| invalid(variable, value, &format!("one of {}", accepted.join(", "))))
    }
}

fn invalid(variable: String, value: &str, expected: &str) -> Error {
    Error::Config {
        variable,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_variables_but_never_shows_values() {
        let env = Environment::from_vars([
            ("CIPHER_KEY", "c2VjcmV0LWtleQ=="),
            ("POSTGRES_PASSWORD", "hunter2"),
        ]);
        let shown = format!("{:?}", env.with_name("bank"));
        assert!(
            shown.contains("CIPHER_KEY") && shown.contains("POSTGRES_PASSWORD"),
            "{shown}"
        );
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn a_name_becomes_an_upper_case_prefix_of_letters_digits_and_underscores() {
        let env = Environment::from_vars([("MY_APP_2_X", "prefixed"), ("X", "plain")]);
        assert_eq!(
            env.with_name("my-app 2").get("X").expect("found").1,
            "prefixed"
        );
        assert_eq!(env.with_name("").get("X").expect("found").1, "plain");
        assert_eq!(env.get("Y"), None);
    }

    #[test]
    fn seconds_accept_fractions_and_reject_the_rest() {
        let env = Environment::from_vars([
            ("A", "1.5"),
            ("B", " 0 "),
            ("C", "-2"),
            ("D", "NaN"),
            ("E", "1e400"),
        ]);
        assert_eq!(
            env.get_seconds("A").expect("valid"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(env.get_seconds("B").expect("valid"), Some(Duration::ZERO));
        for bad in ["C", "D", "E"] {
            let error = env.get_seconds(bad).expect_err(bad).to_string();
            assert!(error.contains(bad) && error.contains("seconds"), "{error}");
        }
        assert_eq!(env.get_seconds("missing").expect("absent"), None);
    }

    #[test]
    fn whole_numbers_must_be_within_the_accepted_range() {
        let env = Environment::from_vars([
            ("A", " 7 "),
            ("B", "0"),
            ("C", "70000"),
            ("D", "5.0"),
            ("E", "-1"),
            ("F", "many"),
        ]);
        assert_eq!(env.get_u32("A", 1..=10).expect("valid"), Some(7));
        for bad in ["B", "C", "D", "E", "F"] {
            let error = env.get_u32(bad, 1..=65535).expect_err(bad).to_string();
            assert!(
                error.contains(bad) && error.contains("a whole number from 1 to 65535"),
                "{error}"
            );
        }
        assert_eq!(env.get_u32("missing", 1..=10).expect("absent"), None);
    }

    #[test]
    fn choices_match_without_regard_to_case_and_list_the_accepted_values() {
        let env = Environment::from_vars([("MODE", "SQLite"), ("BAD", "mongo")]);
        assert_eq!(
            env.get_choice("MODE", &["memory", "sqlite"])
                .expect("valid"),
            Some("sqlite")
        );
        let error = env
            .get_choice("BAD", &["memory", "sqlite"])
            .expect_err("invalid")
            .to_string();
        assert!(
            error.contains("BAD") && error.contains("mongo") && error.contains("memory, sqlite"),
            "{error}"
        );
    }
}
