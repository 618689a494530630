//! Signing keys the operator manages for `private_key_jwt` clients (RFC 7523): generated in
//! process from the OS CSPRNG with `ring` (no OpenSSL), kept as PKCS#8 PEM in the credentials
//! Secret, and published to the backend as public JWKs named by their RFC 7638 thumbprint.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _},
};
use serde_json::{Value, json};

use crate::backend::SecretString;

/// The algorithms a managed key signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    EdDsa,
}

impl Algorithm {
    /// Its JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// A private key and what is public of it.
pub struct Key {
    /// PKCS#8, PEM.
    pub pem: SecretString,
    /// The RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The public key as a JWK (with `kid`, `use` and `alg`).
    pub public: Value,
}

/// A new key pair.
pub fn generate(algorithm: Algorithm) -> Result<Key, String> {
    let rng = SystemRandom::new();
    let der = match algorithm {
        Algorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
        Algorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
    }
    .map_err(|_| "the OS random generator failed".to_string())?;
    read_der(algorithm, der.as_ref())
}

/// The key a PEM text holds; an error that never quotes it.
pub fn read(algorithm: Algorithm, pem: &str) -> Result<Key, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| *l != "-----END PRIVATE KEY-----")
        .collect();
    let der = STANDARD.decode(body).map_err(|_| "not a PEM private key".to_string())?;
    read_der(algorithm, &der)
}

fn read_der(algorithm: Algorithm, der: &[u8]) -> Result<Key, String> {
    let unreadable = |_| format!("not a PKCS#8 {} private key", algorithm.name());
    let (members, thumbprinted) = match algorithm {
        Algorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(unreadable)?;
            // An uncompressed point: 0x04, then x and y.
            let point = pair.public_key().as_ref();
            let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}), canonical)
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(unreadable)?;
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (json!({"kty": "OKP", "crv": "Ed25519", "x": x}), canonical)
        }
    };
    let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, thumbprinted.as_bytes()));
    let mut public = members;
    public["kid"] = kid.clone().into();
    public["use"] = "sig".into();
    public["alg"] = algorithm.name().into();
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in STANDARD.encode(der).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(Key { pem: SecretString::new(pem), kid, public })
}

/// The JWKS of these public keys.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a Value>) -> Value {
    json!({"keys": keys.into_iter().cloned().collect::<Vec<_>>()})
}

/// A JWS compact signature of `claims` with `key` (for tests and tools that sign client
/// assertions the way a workload would).
pub fn sign(algorithm: Algorithm, pem: &str, claims: &Value) -> Result<String, String> {
    let key = read(algorithm, pem)?;
    let header = json!({"alg": algorithm.name(), "kid": key.kid, "typ": "JWT"});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).map_err(|e| e.to_string())?;
    let signature = match algorithm {
        Algorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .map_err(|e| e.to_string())?;
            pair.sign(&SystemRandom::new(), input.as_bytes()).map_err(|e| e.to_string())?.as_ref().to_vec()
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| e.to_string())?;
            pair.sign(input.as_bytes()).as_ref().to_vec()
        }
    };
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use ring::signature;

    use super::*;

    #[test]
    fn keys_read_back_as_generated_and_sign_verifiably() {
        for algorithm in [Algorithm::Es256, Algorithm::EdDsa] {
            let key = generate(algorithm).expect("a key");
            let again = read(algorithm, key.pem.expose()).expect("reads back");
            assert_eq!((again.kid.as_str(), &again.public), (key.kid.as_str(), &key.public));
            assert_ne!(generate(algorithm).expect("a key").kid, key.kid, "a new key each time");
            assert_eq!(key.kid.len(), 43, "a SHA-256 thumbprint");
            let jwt = sign(algorithm, key.pem.expose(), &json!({"sub": "c"})).expect("signed");
            let (input, signature) = jwt.rsplit_once('.').expect("three parts");
            let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
            let public = match algorithm {
                Algorithm::Es256 => {
                    let x = URL_SAFE_NO_PAD.decode(key.public["x"].as_str().unwrap()).unwrap();
                    let y = URL_SAFE_NO_PAD.decode(key.public["y"].as_str().unwrap()).unwrap();
                    let point = [&[4u8][..], &x, &y].concat();
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(input.as_bytes(), &signature)
                }
                Algorithm::EdDsa => {
                    let x = URL_SAFE_NO_PAD.decode(key.public["x"].as_str().unwrap()).unwrap();
                    signature::UnparsedPublicKey::new(&signature::ED25519, x).verify(input.as_bytes(), &signature)
                }
            };
            assert!(public.is_ok(), "{algorithm:?}: the public JWK verifies the signature");
        }
        assert!(read(Algorithm::Es256, "not a key").is_err());
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 section 3.1's example uses an RSA key; this checks the EC member order
        // against a hand-made canonical form instead.
        let key = generate(Algorithm::Es256).expect("a key");
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            key.public["x"].as_str().unwrap(),
            key.public["y"].as_str().unwrap()
        );
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()));
        assert_eq!(key.kid, expected);
    }
}
