// EShell: xterm.js speaking terminado's protocol to a jupyter-server terminal.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("ink-shell-config").textContent);
  const settingsKey = "ink-shell-settings:" + config.user;
  const themes = {
    dark: {background: "#1e1e1e", foreground: "#dddddd", cursor: "#dddddd"},
    light: {background: "#ffffff", foreground: "#222222", cursor: "#222222", selectionBackground: "#bbd6fb"},
  };
  const saved = JSON.parse(localStorage.getItem(settingsKey) || "{}");
  const settings = {theme: saved.theme in themes ? saved.theme : "dark",
                    fontSize: Number(saved.fontSize) >= 8 ? Number(saved.fontSize) : 14};

  const term = new Terminal({cursorBlink: true, fontSize: settings.fontSize,
                             theme: themes[settings.theme], scrollback: 5000});
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("ink-terminal"));
  window.inkTerminal = term;  // for tests and the browser console

  const themeSelect = document.getElementById("ink-theme");
  const fontInput = document.getElementById("ink-font-size");
  const status = document.getElementById("ink-status");
  function apply() {
    term.options.theme = themes[settings.theme];
    term.options.fontSize = settings.fontSize;
    document.body.className = settings.theme;
    themeSelect.value = settings.theme;
    fontInput.value = settings.fontSize;
    localStorage.setItem(settingsKey, JSON.stringify(settings));
    fit.fit();
  }
  themeSelect.addEventListener("change", () => { settings.theme = themeSelect.value; apply(); });
  fontInput.addEventListener("change", () => {
    const size = Math.min(32, Math.max(8, Number(fontInput.value) || 14));
    settings.fontSize = size; apply();
  });

  // Ctrl+Shift+C / Ctrl+Shift+V copy and paste; everything else goes to the shell
  term.attachCustomKeyEventHandler((e) => {
    if (e.type === "keydown" && e.ctrlKey && e.shiftKey && (e.code === "KeyC" || e.code === "KeyV")) {
      if (e.code === "KeyC" && term.hasSelection()) navigator.clipboard.writeText(term.getSelection());
      if (e.code === "KeyV") navigator.clipboard.readText().then((t) => send(["stdin", t]));
      e.preventDefault();
      return false;
    }
    return true;
  });

  let socket = null;
  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  // ?node=NAME (or the selector) opens the shell on a login node through ssh
  const nodeSelect = document.getElementById("ink-node");
  const wantedNode = new URLSearchParams(location.search).get("node") || "";
  if (nodeSelect) {
    nodeSelect.value = wantedNode;
    nodeSelect.addEventListener("change", () => {
      const url = new URL(location.href);
      if (nodeSelect.value) url.searchParams.set("node", nodeSelect.value); else url.searchParams.delete("node");
      location.href = url.toString();
    });
  }

  async function start() {
    const node = nodeSelect ? nodeSelect.value : "";
    const r = await fetch(config.base_url + (node ? "ink/api/shell/login" : "api/terminals"), {
      method: "POST", headers: {"X-XSRFToken": config.xsrf, "Content-Type": "application/json"},
      body: JSON.stringify(node ? {node: node} : {}), credentials: "same-origin"});
    if (!r.ok) { status.textContent = "cannot start a terminal (HTTP " + r.status + ")"; return; }
    const name = (await r.json()).name;
    const url = new URL(config.base_url + "terminals/websocket/" + encodeURIComponent(name), location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.onopen = () => {
      status.textContent = "connected";
      apply();
      send(["set_size", term.rows, term.cols]);
      term.focus();
    };
    socket.onmessage = (event) => {
      const [kind, data] = JSON.parse(event.data);
      if (kind === "stdout") term.write(data);
      if (kind === "disconnect") status.textContent = "the shell has ended";
    };
    socket.onclose = () => { status.textContent = "disconnected"; };
    // closing the page ends the shell (terminado ends it when its terminal is deleted);
    // a shell inside tmux survives
    window.addEventListener("pagehide", () => {
      fetch(config.base_url + "api/terminals/" + encodeURIComponent(name),
            {method: "DELETE", headers: {"X-XSRFToken": config.xsrf}, keepalive: true});
    });
  }
  term.onData((data) => send(["stdin", data]));
  term.onResize(({rows, cols}) => send(["set_size", rows, cols]));
  window.addEventListener("resize", () => fit.fit());
  apply();
  start();
})();
