//! The demo page of a room: a textarea bound to the room's `Y.Text` and a list of who is present, driven by the
//! bundled yjs + y-websocket client (`/rooms-client.js`, a static asset built by scripts/build with esbuild).

/// The page for room `room` (already validated as `[A-Za-z0-9._-]{1,64}`, escaped anyway).
pub fn render(room: &str) -> String {
    let room = html_escape::encode_double_quoted_attribute(room);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Room {room}</title>
<style>
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
        let page = render("notes");
        assert!(page.contains(r#"data-room="notes""#), "room in the body");
        assert!(page.contains("/rooms-client.js"), "client bundle");
        assert!(render(r#"a"<b"#).contains("a&quot;&lt;b"), "escaped");
    }
}
