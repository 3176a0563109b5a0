//! The demo page of a room: a textarea bound to the room's `Y.Text` and a list of who is present, driven by the
//! bundled yjs + y-websocket client (`/rooms-client.js`, a static asset built by scripts/build with esbuild).

/// The page's `Content-Security-Policy`, `{nonce}` standing for the response's nonce: nothing but what the page
/// loads — its client bundle (`script-src 'self'`, no inline script), its one inline style element by nonce, the
/// ticket fetch and the WebSocket of its own origin (`connect-src 'self'`, which covers `ws:`/`wss:` of the same
/// host in CSP Level 3) — no `<base>`, no form targets, no framing (a live editor under another site's overlay).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'nonce-{nonce}'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// [`CSP`] with `nonce`.
pub fn csp(nonce: &str) -> String {
    CSP.replace("{nonce}", nonce)
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
        let policy = csp("00ff");
        assert!(policy.contains("style-src 'nonce-00ff';"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
    }
}
