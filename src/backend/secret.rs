//! A secret value that never prints itself.

use std::fmt;

/// A client secret. `Debug` and `Display` print a placeholder, never the value; read it with
/// [`SecretString::expose`] only where it is written to its destination.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that stores or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_hides_the_value() {
        let secret = SecretString::new("oc_secret_abc");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert!(!format!("{secret:?}").contains("abc"));
        assert!(!format!("{:?}", Some(&secret)).contains("abc"));
        assert_eq!(secret.expose(), "oc_secret_abc");
    }
}
