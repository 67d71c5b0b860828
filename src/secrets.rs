//! Secrets inside URLs (database and SMTP passwords): how a URL is printed, and whether it
//! carries a secret at all.
//!
//! The rule: a URL that may hold a secret is printed only through [`redact_url`], which keeps
//! what helps an operator (scheme, user, host, port, path, harmless parameters) and hides the
//! password of the userinfo and the value of every parameter named like a secret. The
//! configuration refuses on the command line any URL that [`carries_secret`].

/// What a hidden value is printed as.
const HIDDEN: &str = "***";

/// A query parameter is a secret when its name, lower-cased, ends with one of these:
/// `password`, `sslpassword`, `db_pass`, `api_key`, `access_token`, `client_secret`…
const SECRET_NAME_ENDINGS: [&str; 8] = [
    "password",
    "passwd",
    "pass",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "key",
];

/// Whether a query parameter's name (as written in the URL, percent-encoded or not) looks like
/// that of a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = percent_encoding::percent_decode_str(&name.replace('+', " "))
        .decode_utf8_lossy()
        .trim()
        .to_lowercase();
    SECRET_NAME_ENDINGS
        .iter()
        .any(|ending| name.ends_with(ending))
}

/// `raw` fit for a log line or an error: the userinfo password and the value of every
/// parameter named like a secret become `***`. A URL that does not parse is not shown at all
/// (where its secret is cannot be told).
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "(a URL that does not parse, not shown)".into();
    };
    if url.password().is_some() {
        // Fails only for URLs that cannot have a password, which then have none.
        let _ = url.set_password(Some(HIDDEN));
    }
    if let Some(query) = url.query() {
        let query = redact_query(query);
        url.set_query(Some(&query));
    }
    url.to_string()
}

/// A query string (without its `?`) with the value of every parameter named like a secret
/// replaced by `***`; the rest is kept as written.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}={HIDDEN}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `raw` carries a secret [`redact_url`] would hide: a userinfo password, or a
/// parameter named like a secret with a value. A value that is not a URL carries none that
/// could be told apart (and is refused as a URL anyway).
pub fn carries_secret(raw: &str) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    url.password().is_some_and(|p| !p.is_empty())
        || url
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .any(|(name, value)| !value.is_empty() && is_secret_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userinfo_password_is_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://reprise:s3cret@db.example:5432/reprise"),
            "postgres://reprise:***@db.example:5432/reprise"
        );
        assert_eq!(
            redact_url("smtps://mailer:s3cret@mail.example:465"),
            "smtps://mailer:***@mail.example:465"
        );
        // Nothing to hide: the URL is printed as given.
        for plain in [
            "postgres://reprise@db.example/reprise?sslmode=require",
            "smtp://relay:2525?tls=starttls",
            "sqlite://data/reprise.db",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
    }

    #[test]
    fn a_percent_encoded_password_is_hidden_whole() {
        let printed = redact_url("smtps://me%40example.be:p%40ss%3Aw%2Frd@mail.example:465");
        assert_eq!(printed, "smtps://me%40example.be:***@mail.example:465");
        for piece in ["p%40ss", "p@ss", "w%2Frd", "w/rd", "rd@"] {
            assert!(!printed.contains(piece), "{printed} shows {piece}");
        }
    }

    #[test]
    fn parameters_named_like_secrets_are_hidden_whatever_their_case() {
        let printed = redact_url(
            "postgres://reprise@db/reprise?sslmode=require&password=a1&PassWord=a2\
             &sslpassword=a3&db_pass=a4&pwd=a5&passwd=a6&client_secret=a7&token=a8\
             &api_key=a9&pass%77ord=a10&application_name=reprise",
        );
        assert_eq!(
            printed,
            "postgres://reprise@db/reprise?sslmode=require&password=***&PassWord=***\
             &sslpassword=***&db_pass=***&pwd=***&passwd=***&client_secret=***&token=***\
             &api_key=***&pass%77ord=***&application_name=reprise"
        );
        let both = redact_url("postgres://u:a0@db/x?password=a1");
        assert_eq!(both, "postgres://u:***@db/x?password=***");
    }

    #[test]
    fn a_url_that_does_not_parse_shows_nothing_of_itself() {
        for raw in [
            "postgres://me:hunter2@[db/reprise",
            "postgres://me:hunter2@db:99999/reprise",
            "hunter2",
        ] {
            let printed = redact_url(raw);
            for piece in ["hunter2", "me", "db", "postgres"] {
                assert!(!printed.contains(piece), "{printed} shows {piece}");
            }
        }
    }

    #[test]
    fn secrets_are_told_from_harmless_values() {
        for secret in [
            "postgres://me:s3cret@db/reprise",
            "postgres://me@db/reprise?password=s3cret",
            "postgres://me@db/reprise?sslmode=require&SSLPASSWORD=s3cret",
            "smtps://me:p%40ss@mail:465",
        ] {
            assert!(carries_secret(secret), "{secret}");
        }
        for harmless in [
            "postgres://me@db/reprise",
            "postgres://me:@db/reprise",
            "postgres://me@db/reprise?sslmode=require&password=",
            "smtp://relay:2525?tls=starttls",
            "sqlite://data/demo.db",
            "not a URL",
        ] {
            assert!(!carries_secret(harmless), "{harmless}");
        }
    }
}
