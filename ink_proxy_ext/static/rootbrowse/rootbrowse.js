// INK ROOT browser: a picker over the user's tree (jupyter-server contents API) that opens
// ROOT files in JSROOT through the authenticated /files/ handler (HTTP Range: JSROOT reads only
// what it draws). Every URL is relative to this page, so it works under any session prefix.
import { buildGUI } from "../jsroot/modules/gui.mjs";

// JupyterHub's single-user auth accepts the login cookie on script requests (fetch, XHR) only
// with the session's XSRF token in a header: add it to this page's same-origin requests,
// including JSROOT's XHR reads of ROOT files.
const xsrf = (document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/) || [])[1];
const sameOrigin = (url) => new URL(url, location.href).origin === location.origin;
if (xsrf) {
  const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.inkSameOrigin = sameOrigin(url);
    return open.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...args) {
    if (this.inkSameOrigin) this.setRequestHeader("X-XSRFToken", decodeURIComponent(xsrf));
    return send.apply(this, args);
  };
}
const headers = xsrf ? { "X-XSRFToken": decodeURIComponent(xsrf) } : {};

const list = document.getElementById("ink-files");
const crumbs = document.getElementById("ink-path");
const error = document.getElementById("ink-picker-error");
const encodePath = (path) => path.split("/").map(encodeURIComponent).join("/");

function item(text, cls, onclick) {
  const li = document.createElement("li");
  li.textContent = text; // names are data, never markup
  li.className = cls;
  li.title = text;
  li.addEventListener("click", onclick);
  list.appendChild(li);
  return li;
}

async function show(path) {
  error.hidden = true;
  const r = await fetch(`../api/contents/${encodePath(path)}?content=1&type=directory`,
                        { credentials: "same-origin", headers });
  if (!r.ok) {
    error.textContent = `Cannot list ${path || "your home"}: HTTP ${r.status}`;
    error.hidden = false;
    return;
  }
  const model = await r.json();
  list.replaceChildren();
  crumbs.replaceChildren();
  const parts = path ? path.split("/") : [];
  const home = document.createElement("a");
  home.textContent = "~";
  home.addEventListener("click", () => show(""));
  crumbs.appendChild(home);
  parts.forEach((part, i) => {
    crumbs.appendChild(document.createTextNode(" / "));
    const a = document.createElement("a");
    a.textContent = part;
    a.addEventListener("click", () => show(parts.slice(0, i + 1).join("/")));
    crumbs.appendChild(a);
  });
  if (parts.length)
    item("..", "ink-dir", () => show(parts.slice(0, -1).join("/")));
  const entries = model.content
    .filter((e) => e.type === "directory" || /\.root$/i.test(e.name))
    .sort((a, b) => (a.type !== b.type ? (a.type === "directory" ? -1 : 1) : a.name.localeCompare(b.name)));
  for (const e of entries) {
    if (e.type === "directory") {
      item(e.name, "ink-dir", () => show(e.path));
    } else {
      const li = item(e.name, "ink-root", async () => {
        li.classList.add("ink-open");
        await window.inkHierarchy.openRootFile(`../files/${encodePath(e.path)}`);
      });
      li.dataset.path = e.path;
    }
  }
  if (!entries.length)
    item("(no ROOT files here)", "ink-empty", () => {});
}

window.inkHierarchy = await buildGUI("ink-jsroot");
await show("");
document.body.dataset.ready = "1";
