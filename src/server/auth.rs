//! The optional bearer token shared by the HTTP API and Flight SQL.
//!
//! With `auth_token` set, a request must carry `authorization: Bearer <token>`. The
//! Flight handshake (and so `Basic` credentials) is accepted too: any user name with
//! the token as password, because Flight SQL clients such as ADBC and JDBC log in with
//! a user and password and then use the bearer token the handshake hands back.

use base64::Engine;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error("missing authorization header: send \"authorization: Bearer <token>\"")]
    Missing,
    /// The header is not `Bearer <token>` or `Basic <base64 user:token>`.
    #[error("malformed authorization header: use \"Bearer <token>\"")]
    Malformed,
    /// The token is not the configured one.
    #[error("invalid token")]
    Invalid,
}

/// The configured token, compared in constant time.
#[derive(Clone)]
pub struct Token(std::sync::Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token; `None` when `token` is empty (an empty token would accept
    /// `Bearer ` and is refused by the configuration check before this).
    pub fn new(token: &str) -> Option<Token> {
        (!token.is_empty()).then(|| Token(token.into()))
    }

    /// The token itself, for the handshake's answer.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks an `authorization` header value.
    pub fn check(&self, header: Option<&str>) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?.trim();
        let (scheme, credentials) = header.split_once(' ').ok_or(AuthError::Malformed)?;
        let credentials = credentials.trim();
        let presented = if scheme.eq_ignore_ascii_case("bearer") {
            credentials.as_bytes().to_vec()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .map_err(|_| AuthError::Malformed)?;
            let colon = decoded
                .iter()
                .position(|&b| b == b':')
                .ok_or(AuthError::Malformed)?;
            decoded[colon + 1..].to_vec()
        } else {
            return Err(AuthError::Malformed);
        };
        if constant_time_eq(&presented, self.0.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// Equality whose time depends only on the lengths, so that timing does not reveal
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_are_accepted_with_the_right_token_only() {
        let t = Token::new("s3cret").unwrap();
        assert_eq!(t.check(Some("Bearer s3cret")), Ok(()));
        assert_eq!(t.check(Some("bearer  s3cret ")), Ok(()));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret");
        assert_eq!(t.check(Some(&format!("Basic {basic}"))), Ok(()));
        let wrong = base64::engine::general_purpose::STANDARD.encode("anyone:nope");
        assert_eq!(
            t.check(Some(&format!("Basic {wrong}"))),
            Err(AuthError::Invalid)
        );
        assert_eq!(t.check(Some("Bearer s3cre")), Err(AuthError::Invalid));
        assert_eq!(t.check(Some("Bearer s3cretX")), Err(AuthError::Invalid));
        assert_eq!(t.check(None), Err(AuthError::Missing));
        assert_eq!(t.check(Some("s3cret")), Err(AuthError::Malformed));
        assert_eq!(t.check(Some("Token s3cret")), Err(AuthError::Malformed));
        assert_eq!(t.check(Some("Basic !!")), Err(AuthError::Malformed));
        assert!(Token::new("").is_none());
        assert_eq!(format!("{t:?}"), "Token(..)");
    }
}
