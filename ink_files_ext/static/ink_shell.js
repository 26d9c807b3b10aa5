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

  // Several shells per page, one tab each: every tab is its own xterm.js terminal on its own
  // jupyter-server terminal (its own shell process).
  const tabs = [];
  let active = null;
  const tabBar = document.getElementById("ink-tabs");
  const area = document.getElementById("ink-terminal");
  const themeSelect = document.getElementById("ink-theme");
  const fontInput = document.getElementById("ink-font-size");
  const status = document.getElementById("ink-status");
  function apply() {
    for (const tab of tabs) {
      tab.term.options.theme = themes[settings.theme];
      tab.term.options.fontSize = settings.fontSize;
    }
    document.body.className = settings.theme;
    themeSelect.value = settings.theme;
    fontInput.value = settings.fontSize;
    localStorage.setItem(settingsKey, JSON.stringify(settings));
    if (active) active.fit.fit();
  }
  themeSelect.addEventListener("change", () => { settings.theme = themeSelect.value; apply(); });
  fontInput.addEventListener("change", () => {
    const size = Math.min(32, Math.max(8, Number(fontInput.value) || 14));
    settings.fontSize = size; apply();
  });

  // ?node=NAME (or the selector) opens the shell on a login node through ssh
  const nodeSelect = document.getElementById("ink-node");
  const wantedNode = new URLSearchParams(location.search).get("node") || "";
  if (nodeSelect) {
    nodeSelect.value = wantedNode;
    // a new tab on the chosen node; the shells already open stay (the address keeps the choice)
    nodeSelect.addEventListener("change", () => {
      const url = new URL(location.href);
      if (nodeSelect.value) url.searchParams.set("node", nodeSelect.value); else url.searchParams.delete("node");
      history.replaceState(null, "", url.toString());
      openTab(nodeSelect.value);
    });
  }

  const loginTitles = {};
  if (nodeSelect) for (const option of nodeSelect.options) loginTitles[option.value] = option.textContent;

  function newTerminal() {
    const term = new Terminal({cursorBlink: true, fontSize: settings.fontSize,
                               theme: themes[settings.theme], scrollback: 5000});
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    return {term, fit};
  }

  function activate(tab) {
    active = tab;
    for (const t of tabs) {
      t.pane.hidden = t !== tab;
      t.button.classList.toggle("active", t === tab);
      t.button.setAttribute("aria-selected", t === tab ? "true" : "false");
    }
    window.inkTerminal = tab.term;  // for tests and the browser console
    status.textContent = tab.state;
    tab.fit.fit();
    tab.term.focus();
  }

  function setState(tab, text) {
    tab.state = text;
    if (tab === active) status.textContent = text;
  }

  async function closeTab(tab) {
    const index = tabs.indexOf(tab);
    if (index < 0) return;
    tabs.splice(index, 1);
    if (tab.socket) tab.socket.close();
    if (tab.name) {  // ends the shell (a shell inside tmux lives on in its tmux server)
      fetch(config.base_url + "api/terminals/" + encodeURIComponent(tab.name),
            {method: "DELETE", headers: {"X-XSRFToken": config.xsrf}});
    }
    tab.term.dispose();
    tab.pane.remove();
    tab.button.remove();
    if (tabs.length) activate(tabs[Math.min(index, tabs.length - 1)]);
    else { active = null; window.inkTerminal = null; status.textContent = "no shell open: + opens one"; }
  }

  let counter = 0;
  async function openTab(node) {
    const {term, fit} = newTerminal();
    const pane = document.createElement("div");
    pane.className = "ink-pane";
    area.append(pane);
    const number = ++counter;
    const button = document.createElement("span");
    button.className = "ink-tab";
    button.setAttribute("role", "tab");
    const label = document.createElement("button");
    label.className = "ink-tab-label";
    label.textContent = number + ": " + (node ? (loginTitles[node] || node) : "this host");
    const close = document.createElement("button");
    close.className = "ink-tab-close";
    close.textContent = "\u00d7";
    close.title = "Close this shell";
    close.setAttribute("aria-label", "Close shell " + number);
    button.append(label, close);
    tabBar.insertBefore(button, document.getElementById("ink-new-tab"));
    const tab = {term, fit, pane, button, node, name: null, socket: null, state: "connecting…"};
    tabs.push(tab);
    label.addEventListener("click", () => activate(tab));
    close.addEventListener("click", () => closeTab(tab));
    term.open(pane);
  // Ctrl+Shift+C / Ctrl+Shift+V copy and paste; everything else goes to the shell
      term.attachCustomKeyEventHandler((e) => {
    if (e.type === "keydown" && e.ctrlKey && e.shiftKey && (e.code === "KeyC" || e.code === "KeyV")) {
      if (e.code === "KeyC" && term.hasSelection()) navigator.clipboard.writeText(term.getSelection());
      if (e.code === "KeyV") navigator.clipboard.readText().then((t) => send(tab, ["stdin", t]));
      e.preventDefault();
      return false;
    }
    return true;
  });

  function send(tab, message) {
    if (tab.socket && tab.socket.readyState === WebSocket.OPEN) tab.socket.send(JSON.stringify(message));
  }

    term.onData((data) => send(tab, ["stdin", data]));
    term.onResize(({rows, cols}) => send(tab, ["set_size", rows, cols]));
    activate(tab);
    const r = await fetch(config.base_url + (node ? "ink/api/shell/login" : "api/terminals"), {
      method: "POST", headers: {"X-XSRFToken": config.xsrf, "Content-Type": "application/json"},
      body: JSON.stringify(node ? {node: node} : {}), credentials: "same-origin"});
    if (!r.ok) { setState(tab, "cannot start a terminal (HTTP " + r.status + ")"); return; }
    tab.name = (await r.json()).name;
    const url = new URL(config.base_url + "terminals/websocket/" + encodeURIComponent(tab.name), location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    tab.socket = new WebSocket(url);
    tab.socket.onopen = () => {
      setState(tab, "connected");
      apply();
      fit.fit();
      send(tab, ["set_size", term.rows, term.cols]);
      if (tab === active) term.focus();
    };
    tab.socket.onmessage = (event) => {
      const [kind, data] = JSON.parse(event.data);
      if (kind === "stdout") term.write(data);
      if (kind === "disconnect") setState(tab, "the shell has ended");
    };
    tab.socket.onclose = () => { if (tabs.includes(tab)) setState(tab, "disconnected"); };
  }

  // closing the page ends its shells (terminado ends a shell when its terminal is deleted)
  window.addEventListener("pagehide", () => {
    for (const tab of tabs) {
      if (tab.name) fetch(config.base_url + "api/terminals/" + encodeURIComponent(tab.name),
                          {method: "DELETE", headers: {"X-XSRFToken": config.xsrf}, keepalive: true});
    }
  });
  window.addEventListener("resize", () => { if (active) active.fit.fit(); });
  document.getElementById("ink-new-tab").addEventListener("click", () => openTab(nodeSelect ? nodeSelect.value : ""));
  window.inkShell = {tabs: () => tabs.map((t) => ({name: t.name, node: t.node, state: t.state})),
                     open: openTab, close: (i) => closeTab(tabs[i]), activate: (i) => activate(tabs[i])};
  apply();
  openTab(nodeSelect ? nodeSelect.value : "");
})();
