// INK file manager: every name and path reaches the page through textContent or attributes,
// never innerHTML, so a file called <img onerror=...> is just a name.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("ink-files-config").textContent);
  const api = config.base_url + "ink/api/files/";
  const $ = (sel) => document.querySelector(sel);
  const PAGE = 200;
  const CHUNK = 8 * 1024 * 1024;
  const state = {path: config.start, sort: "name", order: "asc", filter: "", hidden: false,
                 entries: [], total: 0, selected: new Set(), writable: false};

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function say(text, isError) {
    const m = $("#ink-message");
    m.textContent = text || "";
    m.className = isError ? "error" : "";
  }
  async function call(method, endpoint, body, params) {
    const url = new URL(api + endpoint, location.href);
    for (const [k, v] of Object.entries(params || {})) {
      for (const one of [].concat(v)) url.searchParams.append(k, one);
    }
    const r = await fetch(url, {method, credentials: "same-origin",
      headers: {"X-XSRFToken": config.xsrf, "Content-Type": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body)});
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.message) || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    return data;
  }
  const downloadUrl = (path, inline) => api + "download?" + new URLSearchParams(
    inline ? {path, inline: "1"} : {path}).toString();
  function humanSize(n) {
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return n.toFixed(n < 10 ? 1 : 0) + " " + units[i];
  }
  const joinPath = (dir, name) => (dir.endsWith("/") ? dir : dir + "/") + name;

  // ---- listing ------------------------------------------------------------------------------
  async function load(path, append) {
    const offset = append ? state.entries.length : 0;
    let page;
    try {
      page = await call("GET", "list", undefined, {path, offset, limit: PAGE, sort: state.sort,
        order: state.order, filter: state.filter, hidden: state.hidden ? "1" : "0"});
    } catch (e) { say(e.message, true); return; }
    if (!append) {
      state.entries = []; state.selected.clear();
      history.replaceState(null, "", "?" + new URLSearchParams({path: page.path}));
    }
    state.path = page.path; state.total = page.total; state.writable = page.writable;
    state.parent = page.parent;
    state.entries.push(...page.entries);
    render(!append);
    if (!append) say("");
  }
  function render(full) {
    $("#ink-address").value = state.path;
    document.title = "Files: " + state.path;
    const body = $("#ink-table tbody");
    if (full) body.replaceChildren();
    const start = full ? 0 : body.children.length;
    for (const entry of state.entries.slice(start)) body.append(row(entry));
    $("#ink-count").textContent = state.entries.length + " of " + state.total + " entries";
    $("#ink-load-more").hidden = state.entries.length >= state.total;
    for (const th of document.querySelectorAll("#ink-table th[data-sort]")) {
      th.classList.toggle("sorted-asc", th.dataset.sort === state.sort && state.order === "asc");
      th.classList.toggle("sorted-desc", th.dataset.sort === state.sort && state.order === "desc");
    }
    for (const a of document.querySelectorAll("#ink-roots li a[data-path]")) {
      a.classList.toggle("current", state.path === a.dataset.path || state.path.startsWith(a.dataset.path + "/"));
    }
    $("#ink-up").disabled = !state.parent;
    updateButtons();
  }
  function row(entry) {
    const check = el("input", {type: "checkbox", "aria-label": "select " + entry.name});
    check.addEventListener("change", () => { toggle(entry.path, check.checked); });
    const link = el("a", {class: "entry", href: "#", "data-path": entry.path, "data-type": entry.type},
                    iconFor(entry), entry.name);
    link.addEventListener("click", (ev) => { ev.preventDefault(); open(entry); });
    const tr = el("tr", {"data-path": entry.path},
      el("td", {class: "check"}, check), el("td", {class: "name"}, link),
      el("td", {class: "perms"}, entry.perms), el("td", {}, entry.owner), el("td", {}, entry.group),
      el("td", {class: "num"}, entry.type === "directory" ? "" : humanSize(entry.size)),
      el("td", {}, new Date(entry.mtime * 1000).toLocaleString()));
    return tr;
  }
  // file-type icons: SVG symbols shipped in ink_icons.svg (an emoji needs a font servers lack)
  const SVG_NS = "http://www.w3.org/2000/svg";
  const CODE_EXT = /\.(py|c|cc|cpp|cxx|h|hh|hpp|C|sh|bash|zsh|csh|js|ts|java|go|rs|f|f90|for|jl|r|cmake|mac|tex|html?|css|xml|jdl|sub|slurm)$/i;
  const ARCHIVE_EXT = /\.(zip|tar|tgz|tar\.gz|tar\.bz2|tar\.xz|gz|bz2|xz|zst|7z|rar)$/i;
  function iconName(entry) {
    if (entry.type === "directory") return "folder";
    if (entry.link) return "link";
    const kind = kindOf(entry.name);
    if (kind === "text") return CODE_EXT.test(entry.name) ? "code" : "text";
    if (kind) return kind;  // image, pdf, fits, root
    return ARCHIVE_EXT.test(entry.name) ? "archive" : "file";
  }
  function iconFor(entry) {
    const name = iconName(entry);
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("aria-hidden", "true");
    svg.dataset.icon = name;
    const use = document.createElementNS(SVG_NS, "use");
    use.setAttribute("href", config.icons + "#" + name);
    svg.append(use);
    return svg;
  }
  function toggle(path, on) {
    if (on) state.selected.add(path); else state.selected.delete(path);
    const tr = document.querySelector(`#ink-table tr[data-path="${CSS.escape(path)}"]`);
    if (tr) tr.classList.toggle("selected", on);
    updateButtons();
  }
  function updateButtons() {
    const n = state.selected.size;
    for (const b of document.querySelectorAll("#ink-actions button[data-needs]")) {
      b.disabled = b.dataset.needs === "single" ? n !== 1 : n < 1;
    }
    for (const b of document.querySelectorAll('#ink-actions [data-action="mkdir"], #ink-actions [data-action="touch"]')) {
      b.disabled = !state.writable;
    }
    $("#ink-select-all").checked = n > 0 && n === state.entries.length;
  }
  function open(entry) {
    if (entry.type === "directory") load(entry.path); else preview(entry);
  }

  // ---- previews -----------------------------------------------------------------------------
  const TEXT_EXT = /\.(txt|log|md|py|c|cc|cpp|cxx|h|hh|hpp|C|sh|bash|zsh|csh|json|ya?ml|toml|ini|cfg|conf|xml|html?|css|js|ts|java|go|rs|f|f90|for|tex|csv|tsv|mac|jdl|sub|slurm|r|jl|cmake|txt)$/i;
  function kindOf(name) {
    if (/\.(png|jpe?g|gif|webp)$/i.test(name)) return "image";
    if (/\.pdf$/i.test(name)) return "pdf";
    if (/\.(fits?|fts)(\.(gz|Z))?$/i.test(name)) return "fits";
    if (/\.root$/i.test(name)) return "root";
    if (TEXT_EXT.test(name) || /^(Makefile|Dockerfile|README|LICENSE|CMakeLists\.txt)$/.test(name)) return "text";
    return null;
  }
  const cannot = (entry, e) => "Cannot preview " + entry.name + ": " +
    (e.message.startsWith(entry.name + ": ") ? e.message.slice(entry.name.length + 2) : e.message);
  async function preview(entry) {
    const kind = kindOf(entry.name);
    if (!kind) { location.href = downloadUrl(entry.path); return; }
    const dialog = $("#ink-preview");
    const body = $("#ink-preview-body");
    $("#ink-preview-title").textContent = entry.name;
    $("#ink-preview-download").href = downloadUrl(entry.path);
    body.replaceChildren(el("p", {}, "Loading…"));
    body.dataset.kind = kind;
    dialog.showModal();
    try {
      if (kind === "image") {
        const img = el("img", {alt: entry.name, src: downloadUrl(entry.path, true)});
        body.replaceChildren(img);
      } else if (kind === "text") {
        const r = await fetch(downloadUrl(entry.path, true), {headers: {Range: "bytes=0-1048575", "X-XSRFToken": config.xsrf}, credentials: "same-origin"});
        if (!r.ok) throw new Error("HTTP " + r.status);
        const text = await r.text();
        const code = el("code", {});
        code.textContent = text;
        const ext = (entry.name.match(/\.([A-Za-z0-9]+)$/) || [])[1];
        if (window.hljs && ext && window.hljs.getLanguage(ext)) code.className = "language-" + ext.toLowerCase();
        if (window.hljs && text.length < 512 * 1024) window.hljs.highlightElement(code);
        const parts = [el("pre", {}, code)];
        if (entry.size > 1048576) parts.unshift(el("p", {}, "First 1 MiB of " + humanSize(entry.size) + " shown."));
        body.replaceChildren(...parts);
      } else if (kind === "pdf") {
        const pdfjs = await import(config.vendor["pdf.min.mjs"]);
        pdfjs.GlobalWorkerOptions.workerSrc = config.vendor["pdf.worker.min.mjs"];
        const doc = await pdfjs.getDocument({url: downloadUrl(entry.path, true), withCredentials: true,
                                           httpHeaders: {"X-XSRFToken": config.xsrf}}).promise;
        body.replaceChildren(el("p", {}, doc.numPages + " page(s)"));
        for (let i = 1; i <= Math.min(doc.numPages, 20); i++) {
          const page = await doc.getPage(i);
          const viewport = page.getViewport({scale: 1.3});
          const canvas = el("canvas", {width: Math.floor(viewport.width), height: Math.floor(viewport.height), "data-page": i});
          body.append(canvas);
          await page.render({canvasContext: canvas.getContext("2d"), viewport}).promise;
        }
        body.dataset.rendered = "1";
      } else if (kind === "fits") {
        await fitsPreview(body, entry, undefined);
      } else if (kind === "root") {
        const frame = el("iframe", {class: "jsroot", title: "ROOT file",
          src: config.base_url + "ink/rootview?" + new URLSearchParams({path: entry.path})});
        body.replaceChildren(frame);
      }
    } catch (e) {
      body.replaceChildren(el("p", {class: "error"}, cannot(entry, e)));
    }
  }
  // FITS: the HDU list (click one to show it), its header, and its image or its table's columns
  async function fitsPreview(body, entry, hdu) {
    const data = await call("GET", "fits", undefined, hdu === undefined ? {path: entry.path} : {path: entry.path, hdu});
    const header = el("pre", {class: "fits-header"});
    header.textContent = data.header;
    const hdus = el("ul", {class: "fits-hdus"});
    for (const h of data.hdus) {
      const what = h.shape ? " " + h.shape.join("\u00d7") : (h.rows !== undefined && h.rows !== null ? ", " + h.rows + " rows" : "");
      const label = `${h.index}: ${h.name} (${h.kind}${what})`;
      const item = el("li", {"data-hdu": String(h.index), class: h.index === data.hdu ? "current" : ""});
      if (h.error) item.append(el("span", {class: "error"}, label + ": " + h.error));
      else if (h.index === data.hdu) item.append(label);
      else {
        const a = el("a", {href: "#"}, label);
        a.addEventListener("click", (ev) => {
          ev.preventDefault();
          fitsPreview(body, entry, h.index).catch((e) => body.replaceChildren(el("p", {class: "error"}, cannot(entry, e))));
        });
        item.append(a);
      }
      hdus.append(item);
    }
    const side = el("div", {}, hdus);
    if (data.image) side.append(el("img", {class: "fits-image", alt: "HDU " + data.hdu, src: data.image}));
    else if (data.image_error) side.append(el("p", {class: "error fits-image-error"}, data.image_error));
    if (data.columns) {
      const rows = data.columns.map((c) => el("tr", {}, el("td", {}, c.name), el("td", {}, c.format),
                                                el("td", {}, c.unit), el("td", {}, c.dim)));
      side.append(el("p", {}, data.columns.length + " columns, " + data.rows + " rows"),
        el("table", {class: "fits-columns"},
           el("thead", {}, el("tr", {}, el("th", {}, "Column"), el("th", {}, "Format"), el("th", {}, "Unit"), el("th", {}, "Dim"))),
           el("tbody", {}, ...rows)));
    } else if (!data.image && !data.image_error) side.append(el("p", {}, "No image in this HDU"));
    body.replaceChildren(el("div", {class: "fits"}, side, header));
  }

  // ---- actions ------------------------------------------------------------------------------
  const selection = () => [...state.selected];
  async function act(name) {
    const items = selection();
    try {
      if (name === "mkdir" || name === "touch") {
        const what = prompt(name === "mkdir" ? "New folder name" : "New file name");
        if (!what) return;
        await call("POST", name, {path: joinPath(state.path, what)});
        say((name === "mkdir" ? "Created folder " : "Created file ") + what);
      } else if (name === "rename") {
        const old = items[0];
        const to = prompt("New name", old.split("/").pop());
        if (!to) return;
        await call("POST", "move", {path: old, to: joinPath(state.path, to)});
        say("Renamed to " + to);
      } else if (name === "copy" || name === "move") {
        const to = prompt((name === "copy" ? "Copy" : "Move") + " to folder", state.path);
        if (!to) return;
        for (const p of items) await call("POST", name, {path: p, to});
        say((name === "copy" ? "Copied " : "Moved ") + items.length + " item(s) to " + to);
      } else if (name === "delete") {
        const names = items.map((p) => p.split("/").pop());
        if (!confirm("Delete " + items.length + " item(s)?\n" + names.slice(0, 10).join("\n") + (names.length > 10 ? "\n…" : ""))) return;
        await call("POST", "delete", {paths: items});
        say("Deleted " + items.length + " item(s)");
      } else if (name === "download") {
        const single = items.length === 1 && state.entries.find((e) => e.path === items[0] && e.type !== "directory");
        location.href = single ? downloadUrl(items[0]) : api + "zip?" + new URLSearchParams(items.map((p) => ["path", p]));
        return;
      } else if (name === "copy-path") {
        await navigator.clipboard.writeText(items[0]);
        say("Copied " + items[0] + " to the clipboard");
        return;
      } else if (name === "share") {
        openShare(items[0]);
        return;
      }
    } catch (e) { say(e.message, true); }
    load(state.path);
  }

  // ---- uploads: chunked, resumable after a dropped connection ------------------------------------
  function sendChunk(upload, blob, start, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", api + "uploads/" + encodeURIComponent(upload.id));
      xhr.setRequestHeader("X-XSRFToken", config.xsrf);
      xhr.setRequestHeader("Content-Range", `bytes ${start}-${start + blob.size - 1}/${upload.size}`);
      xhr.upload.onprogress = (ev) => onProgress(start + ev.loaded);
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else { const err = new Error((data && data.message) || "HTTP " + xhr.status); err.status = xhr.status; reject(err); }
      };
      xhr.onerror = () => { const err = new Error("connection lost"); err.status = 0; reject(err); };
      xhr.send(blob);
    });
  }
  async function uploadFile(file, dir) {
    const bar = el("progress", {max: String(file.size || 1), value: "0"});
    const label = el("span", {}, "waiting");
    const line = el("div", {class: "ink-upload", "data-name": file.name}, el("span", {}, file.name), bar, label);
    $("#ink-uploads").append(line);
    const target = joinPath(dir, file.name);
    let upload;
    try {
      try {
        upload = await call("POST", "uploads", {path: target, size: file.size});
      } catch (e) {
        if (e.status !== 409 || !confirm(file.name + " exists. Replace it?")) throw e;
        upload = await call("POST", "uploads", {path: target, size: file.size, overwrite: true});
      }
      let offset = upload.offset, retries = 0;
      while (offset < file.size) {
        const blob = file.slice(offset, Math.min(offset + CHUNK, file.size));
        try {
          const r = await sendChunk(upload, blob, offset, (n) => { bar.value = n; label.textContent = Math.floor(100 * n / file.size) + "%"; });
          offset = r.offset; retries = 0;
        } catch (e) {
          if ((e.status !== 0 && e.status < 500 && e.status !== 409) || ++retries > 8) throw e;
          label.textContent = "connection lost, resuming…";
          await new Promise((r) => setTimeout(r, 1000 * retries));
          offset = (await call("GET", "uploads/" + encodeURIComponent(upload.id))).offset;
        }
      }
      bar.value = file.size || 1; label.textContent = "done";
      line.classList.add("done");
    } catch (e) {
      line.classList.add("failed");
      label.textContent = "failed: " + e.message;
      say(file.name + ": " + e.message, true);
    }
  }
  async function uploadAll(files) {
    const dir = state.path;
    for (const f of files) await uploadFile(f, dir);
    if (state.path === dir) load(dir);
  }

  // ---- shares -------------------------------------------------------------------------------
  const shareApi = config.base_url + "ink/api/shares";
  $("#ink-share-anon-label").hidden = !config.anonymous_shares;
  function openShare(path) {
    $("#ink-share-name").textContent = path.split("/").pop();
    $("#ink-share-url").value = "";
    $("#ink-share").dataset.path = path;
    $("#ink-share").showModal();
  }
  async function createShare() {
    const r = await fetch(shareApi, {method: "POST", credentials: "same-origin",
      headers: {"X-XSRFToken": config.xsrf, "Content-Type": "application/json"},
      body: JSON.stringify({path: $("#ink-share").dataset.path, expires_in: Number($("#ink-share-expiry").value),
                            anonymous: config.anonymous_shares && $("#ink-share-anon").checked})});
    const data = await r.json().catch(() => ({}));
    if (!r.ok) { $("#ink-share-url").value = "Error: " + (data.message || r.status); return; }
    $("#ink-share-url").value = new URL(data.url, location.href).toString();
    $("#ink-share-url").select();
  }
  async function listShares() {
    const r = await fetch(shareApi, {credentials: "same-origin", headers: {"X-XSRFToken": config.xsrf}});
    const data = await r.json();
    const body = $("#ink-shares-table tbody");
    body.replaceChildren();
    for (const s of data.shares) {
      const revoke = el("button", {type: "button", class: "danger"}, "Revoke");
      revoke.addEventListener("click", async (ev) => {
        ev.preventDefault();
        await fetch(shareApi + "/" + encodeURIComponent(s.id), {method: "DELETE", credentials: "same-origin",
                                                                  headers: {"X-XSRFToken": config.xsrf}});
        listShares();
      });
      body.append(el("tr", {"data-id": s.id}, el("td", {}, s.path), el("td", {}, new Date(s.expires * 1000).toLocaleString()),
        el("td", {}, el("input", {readonly: "", value: new URL(s.url, location.href).toString()})), el("td", {}, revoke)));
    }
    if (!data.shares.length) body.append(el("tr", {}, el("td", {colspan: "4"}, "No active shares")));
    if (!$("#ink-shares").open) $("#ink-shares").showModal();
  }

  // ---- wiring -------------------------------------------------------------------------------
  const rootsList = $("#ink-roots ul");
  for (const root of config.roots) {
    const a = el("a", {href: "#", "data-path": root.path}, root.name, " ",
                 el("span", {class: "ro"}, root.kind === "xrootd" ? "XRootD" : (root.read_only ? "read-only" : "")));
    a.addEventListener("click", (ev) => { ev.preventDefault(); load(root.path); });
    rootsList.append(el("li", {}, a));
  }
  $("#ink-address").addEventListener("keydown", (ev) => { if (ev.key === "Enter") load($("#ink-address").value.trim()); });
  $("#ink-up").addEventListener("click", () => { if (state.parent) load(state.parent); });
  let filterTimer = null;
  $("#ink-filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { state.filter = $("#ink-filter").value; load(state.path); }, 200);
  });
  $("#ink-hidden").addEventListener("change", () => { state.hidden = $("#ink-hidden").checked; load(state.path); });
  $("#ink-load-more").addEventListener("click", () => load(state.path, true));
  for (const th of document.querySelectorAll("#ink-table th[data-sort]")) {
    th.addEventListener("click", () => {
      state.order = state.sort === th.dataset.sort && state.order === "asc" ? "desc" : "asc";
      state.sort = th.dataset.sort;
      load(state.path);
    });
  }
  $("#ink-select-all").addEventListener("change", (ev) => {
    for (const e of state.entries) toggle(e.path, ev.target.checked);
    for (const c of document.querySelectorAll("#ink-table tbody input[type=checkbox]")) c.checked = ev.target.checked;
  });
  for (const b of document.querySelectorAll("#ink-actions button[data-action]")) {
    b.addEventListener("click", () => act(b.dataset.action));
  }
  $("#ink-upload-input").addEventListener("change", (ev) => { uploadAll([...ev.target.files]); ev.target.value = ""; });
  const drop = $("#ink-drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("dragging"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault(); drop.classList.remove("dragging");
    if (ev.dataTransfer.files.length) uploadAll([...ev.dataTransfer.files]);
  });
  $("#ink-share-create").addEventListener("click", createShare);
  $("#ink-my-shares").addEventListener("click", (ev) => { ev.preventDefault(); listShares(); });
  $("#ink-preview").addEventListener("close", () => $("#ink-preview-body").replaceChildren());
  window.inkFiles = {state, load};  // for tests and the browser console
  load(state.path);
})();
