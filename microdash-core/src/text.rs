//! Text that leaves the program: URLs with their passwords hidden, and user-supplied text
//! made safe for a log line.

/// `scheme://user:***@host...` for `scheme://user:password@host...`; any other text as it is.
/// For printing connection URLs (`database_url`, `redis_url`, `smtp_url`) in configuration
/// dumps and logs. A password someone wrote without percent-encoding its `/`, `?`, `#` or `@`
/// is hidden too (the URL then only seems to end its host early). It errs on the side of
/// hiding: `tcp://broker:1883/?id=a@b` shows as `tcp://broker:***@b`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The credentials end at the last `@`: of the authority, normally, but of the whole URL
    // when what precedes the first `:` can be a user name, for a password whose `/`, `?`,
    // `#` or `@` was not percent-encoded reaches past where the authority seems to end.
    let user_is_clean = rest.split_once(':').is_some_and(|(user, _)| !user.contains(['/', '?', '#', '@']));
    let at = if user_is_clean { rest.rfind('@') } else { rest[..authority_end].rfind('@') };
    let Some(at) = at else { return url.to_owned() };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The origin of a URL, `scheme://host[:port]` in lowercase (`https://Dash.Example.com/x` ->
/// `https://dash.example.com`); `None` without a scheme or host.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())?;
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

/// The longest user-supplied text a log line carries, in characters.
pub const MAX_LOGGED_CHARS: usize = 64;

/// User-supplied text (a username, a client id) as a log line may show it: control
/// characters escaped (a newline or an ANSI escape cannot forge a line or recolour the
/// terminal) and at most [`MAX_LOGGED_CHARS`] characters, marked when cut.
pub fn for_log(text: &str) -> String {
    let mut shown = String::with_capacity(text.len().min(MAX_LOGGED_CHARS + 8));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_LOGGED_CHARS {
            shown.push_str("...");
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_hidden() {
        for (url, shown) in [
            ("mysql://root:s3cret@db:3306/microdash", "mysql://root:***@db:3306/microdash"),
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            ("smtp://u:p@a:s@mail?tls=required", "smtp://u:***@mail?tls=required"),
            ("mysql://root@db/x", "mysql://root@db/x"),
            ("sqlite://data/m.db", "sqlite://data/m.db"),
            ("not a url", "not a url"),
            ("https://h/p?u=a:b@c", "https://h/p?u=a:b@c"),
            ("mysql://root:pa/ss@db:3306/m", "mysql://root:***@db:3306/m"),
            ("mysql://root:p?a#s@db/m", "mysql://root:***@db/m"),
            ("redis://:/x@cache:6379", "redis://:***@cache:6379"),
            ("mysql://root:p@ss/word@db/m", "mysql://root:***@db/m"),
            ("redis://:a@b#c@cache", "redis://:***@cache"),
            ("mysql://db:3306/m", "mysql://db:3306/m"),
        ] {
            assert_eq!(redact_url_password(url), shown, "{url}");
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(origin("https://Dash.Example.com:8443/x?y#z").as_deref(), Some("https://dash.example.com:8443"));
        assert_eq!(origin("http://h").as_deref(), Some("http://h"));
        assert_eq!(origin("h/x"), None);
        assert_eq!(origin("http:///x"), None);
    }

    #[test]
    fn logged_text_cannot_forge_lines_and_is_bounded() {
        assert_eq!(for_log("alice"), "alice");
        assert_eq!(for_log("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(for_log("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(for_log("émile"), "émile");
        let long = "x".repeat(200_000);
        assert_eq!(for_log(&long), format!("{}...", "x".repeat(MAX_LOGGED_CHARS)));
    }
}
