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

/// A new client secret: 256 bits from the OS CSPRNG, base64url (43 characters), for the
/// backends where the operator chooses the secret.
pub fn new_secret() -> super::Result<SecretString> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| super::Error::Transient { message: "the OS random generator failed".into() })?;
    Ok(SecretString::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_random_bits() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn formatting_hides_the_value() {
        let secret = SecretString::new("oc_secret_abc");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert!(!format!("{secret:?}").contains("abc"));
        assert!(!format!("{:?}", Some(&secret)).contains("abc"));
        assert_eq!(secret.expose(), "oc_secret_abc");
    }
}
