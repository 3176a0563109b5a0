//! The demo page of a room: a textarea bound to the room's `Y.Text` and a list of who is present, driven by the
//! bundled yjs + y-websocket client (`/rooms-client.js`, a static asset built by scripts/build with esbuild).

/// The page's `Content-Security-Policy`, `{nonce}` standing for the response's nonce and `{socket}` for the origin
/// of the page's WebSocket ([`csp`]): nothing but what the page loads — its client bundle (`script-src 'self'`, no
/// inline script), its one inline style element by nonce, the ticket fetch and the WebSocket of its own origin — no
/// `<base>`, no form targets, no framing (a live editor under another site's overlay). `connect-src 'self'` covers
/// `ws:`/`wss:` of the same host in CSP Level 3 only: Safari before 15.4 (and Chrome before 71) refused the socket
/// under it, and the page never synced; the socket's origin is named as well. Its icon is the empty `data:,` its
/// `<link rel=icon>` names (`img-src data:`): without one, Chrome asks for `/favicon.ico` under the policy, and every
/// page view logged a violation of `default-src 'none'` (and asked the Worker for a file it does not have).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'nonce-{nonce}'; img-src data:; \
                       connect-src 'self'{socket}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// [`CSP`] with `nonce`, and the WebSocket origin of a page served at `scheme://authority` (`ws:` for `http`,
/// `wss:` for `https`, as the client connects) — left to `'self'` alone for an authority that is not a plain host
/// name or IPv4 address with an optional port (anything else would not be a CSP host source, or would write into
/// the policy).
pub fn csp(nonce: &str, scheme: &str, authority: &str) -> String {
    let host_source = |a: &str| {
        let (host, port) = match a.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (a, None),
        };
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let socket = match scheme {
        "http" if host_source(authority) => format!(" ws://{authority}"),
        "https" if host_source(authority) => format!(" wss://{authority}"),
        _ => String::new(),
    };
    CSP.replace("{nonce}", nonce).replace("{socket}", &socket)
}

/// The page for room `room` (already validated as `[A-Za-z0-9._-]{1,64}`, escaped anyway), its inline style
/// carrying `nonce` (the response's, named by [`csp`]; hex, escaped anyway).
pub fn render(room: &str, nonce: &str) -> String {
    let room = html_escape::encode_double_quoted_attribute(room);
    let nonce = html_escape::encode_double_quoted_attribute(nonce);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Room {room}</title>
<link rel="icon" href="data:,">
<style nonce="{nonce}">
body {{ font: 15px system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }}
textarea {{ width: 100%; height: 18rem; font: 14px ui-monospace, monospace; }}
#status {{ color: #666; }}
#presence li {{ list-style: none; }}
</style>
</head>
<body data-room="{room}">
<h1>Room <code>{room}</code></h1>
<p id="status">connecting…</p>
<label>Your name <input id="name" maxlength="40"></label>
<textarea id="editor" spellcheck="false" disabled></textarea>
<h2>Here now</h2>
<ul id="presence"></ul>
<script type="module" src="/rooms-client.js"></script>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_room_and_loads_the_client() {
        let page = render("notes", "00ff");
        assert!(page.contains(r#"data-room="notes""#), "room in the body");
        assert!(page.contains("/rooms-client.js"), "client bundle");
        assert!(render(r#"a"<b"#, "00").contains("a&quot;&lt;b"), "escaped");
    }

    #[test]
    fn the_policy_allows_the_pages_one_inline_element_by_its_nonce_and_no_inline_script() {
        let page = render("notes", "00ff");
        assert_eq!(page.matches("<style").count(), 1, "one inline style");
        assert!(
            page.contains(r#"<style nonce="00ff">"#),
            "carrying the nonce"
        );
        assert_eq!(
            page.matches("<script").count(),
            page.matches(r#"<script type="module" src="/rooms-client.js">"#)
                .count(),
            "no inline script"
        );
        assert_eq!(page.matches(" style=").count(), 0, "no style attribute");
        let policy = csp("00ff", "https", "example.com");
        assert!(policy.contains("style-src 'nonce-00ff';"), "{policy}");
        // Its icon is named, and allowed: no request for /favicon.ico under `default-src 'none'`.
        assert!(page.contains(r#"<link rel="icon" href="data:,">"#));
        assert!(policy.contains("; img-src data:;"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn the_policy_names_the_pages_websocket_origin_for_browsers_whose_self_does_not_cover_it() {
        let connect = |scheme: &str, authority: &str| {
            let policy = csp("00", scheme, authority);
            policy
                .split(';')
                .map(str::trim)
                .find_map(|d| d.strip_prefix("connect-src "))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no connect-src in {policy}"))
        };
        assert_eq!(connect("https", "example.com"), "'self' wss://example.com");
        assert_eq!(
            connect("https", "rooms.example.com:8443"),
            "'self' wss://rooms.example.com:8443"
        );
        assert_eq!(
            connect("http", "127.0.0.1:8787"),
            "'self' ws://127.0.0.1:8787"
        );
        // Not a host source (or one that would write into the policy): 'self' alone.
        for authority in [
            "[::1]:8787",
            "a;b",
            "a b",
            "a,b",
            "",
            "h:",
            ":80",
            "h:8x",
            "h:1:2",
        ] {
            assert_eq!(connect("https", authority), "'self'", "{authority:?}");
        }
        assert_eq!(connect("ftp", "example.com"), "'self'");
    }
}
