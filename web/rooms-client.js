// The demo page's client: a textarea bound to the room's Y.Text "text" through the stock y-websocket provider, and
// the presence list from its awareness. Each (re)connection takes a fresh single-use ticket. Bundled by scripts/build
// with esbuild into build/public/rooms-client.js (served as a static asset).
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const room = document.body.dataset.room;
const status = document.getElementById("status");
const editor = document.getElementById("editor");
const nameInput = document.getElementById("name");
const presenceList = document.getElementById("presence");

async function ticket() {
  const response = await fetch(`/rooms/${encodeURIComponent(room)}/ticket`, { method: "POST", credentials: "same-origin" });
  if (!response.ok) throw new Error(`ticket refused: ${response.status}`);
  return (await response.json()).ticket;
}

const doc = new Y.Doc();
const text = doc.getText("text");
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const name = new URLSearchParams(location.search).get("name") || `guest-${Math.floor(Math.random() * 1000)}`;
nameInput.value = name;

async function start() {
  let first;
  try {
    first = await ticket();
  } catch (e) {
    status.textContent = `${e.message} (sign in first)`;
    return;
  }
  const provider = new WebsocketProvider(`${scheme}//${location.host}/rooms/${encodeURIComponent(room)}`, "ws", doc, {
    params: { ticket: first },
  });
  // A ticket admits one socket once: fetch the next before y-websocket reconnects.
  provider.on("connection-close", () => {
    ticket().then((t) => (provider.params.ticket = t)).catch(() => {});
  });
  provider.on("status", ({ status: s }) => (status.textContent = s));
  provider.on("sync", (synced) => {
    if (synced) editor.disabled = false;
  });
  const awareness = provider.awareness;
  awareness.setLocalStateField("user", { name });
  nameInput.addEventListener("input", () => awareness.setLocalStateField("user", { name: nameInput.value }));
  const renderPresence = () => {
    presenceList.replaceChildren(
      ...[...awareness.getStates().entries()]
        .filter(([, s]) => s && s.user)
        .map(([id, s]) => {
          const li = document.createElement("li");
          li.textContent = s.user.name + (id === doc.clientID ? " (you)" : "");
          li.dataset.client = String(id);
          return li;
        }),
    );
  };
  awareness.on("change", renderPresence);
  renderPresence();
}

// Local edits: turn the textarea's new value into the smallest Y.Text change (common prefix and suffix kept).
editor.addEventListener("input", () => {
  const before = text.toString();
  const after = editor.value;
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let endBefore = before.length;
  let endAfter = after.length;
  while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
    endBefore--;
    endAfter--;
  }
  doc.transact(() => {
    if (endBefore > start) text.delete(start, endBefore - start);
    if (endAfter > start) text.insert(start, after.slice(start, endAfter));
  }, "textarea");
});

// Remote edits: rewrite the textarea, keeping the caret where it was relative to the text.
text.observe((event) => {
  if (event.transaction.origin === "textarea") return;
  const caret = editor.selectionStart;
  editor.value = text.toString();
  editor.selectionStart = editor.selectionEnd = Math.min(caret, editor.value.length);
});

start();
