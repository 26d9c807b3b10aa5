// INK Jobs page: the user's batch jobs (job API of this server) and sessions (the hub's list).
// Every name, command and line of output reaches the page through textContent or attributes,
// never innerHTML, so a job named <img onerror=...> is just a name. Every request that changes
// something carries the XSRF token; the submit form has no rule of its own: the job API's one
// validator answers, and its "field: reason" message is shown next to that field.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("ink-jobs-config").textContent);
  const $ = (sel) => document.querySelector(sel);
  const SVG = "http://www.w3.org/2000/svg";
  const FINAL = ["completed", "failed", "cancelled", "stopped"];
  const state = {jobs: [], sessions: [], profile: null, selected: null, stream: "stdout",
                 offset: 0, metrics: {}, filter: "", stateFilter: "all", kind: "all"};

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
    const m = $("#ink-jobs-message");
    m.textContent = text || "";
    m.className = isError ? "error" : "";
  }
  async function call(method, url, body) {
    const r = await fetch(url, {method, credentials: "same-origin",
      headers: {"X-XSRFToken": config.xsrf, "Content-Type": "application/json", "Accept": "application/json"},
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
  const jobUrl = (id, tail) => config.api + "jobs/" + encodeURIComponent(id) + (tail ? "/" + tail : "");

  // ---- formatting ---------------------------------------------------------------------------
  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    return h ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
  }
  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + units[i];
  }
  const secs = (iso) => (iso ? Date.parse(iso) / 1000 : null);
  function walltime(s) { return s ? duration(s) : ""; }

  // ---- rows: one shape for jobs and sessions --------------------------------------------------
  function jobRow(j) {
    const start = secs(j.started), end = secs(j.ended);
    let reason = j.reason || "";
    if (j.state === "pending" && j.position) reason = `position ${j.position} of ${j.pending_total || "?"}` + (reason ? ", " + reason : "");
    return {kind: "job", key: "job:" + j.id, id: j.id, name: j.name, shownId: j.backend_id, state: j.state, reason,
            node: j.node || "", resources: `${j.cpus} CPU · ${j.memory_mb} MB` + (j.gpus ? ` · ${j.gpus} GPU` : "") + ` · ${walltime(j.walltime_s)}`,
            elapsed: start ? (end || Date.now() / 1000) - start : null, backend: j.backend, job: j,
            active: !FINAL.includes(j.state)};
  }
  function sessionRow(s) {
    const start = secs(s.started);
    return {kind: "session", key: "session:" + s.name, id: s.name, name: s.title, shownId: s.job_id, state: s.state,
            reason: s.message || "", node: s.node || "",
            resources: [s.cpus ? s.cpus + " CPU" : "", s.memory || "", s.experiment, s.image].filter(Boolean).join(" · "),
            elapsed: start && s.state === "running" ? Date.now() / 1000 - start : null, session: s,
            active: s.state === "running" || s.state === "starting"};
  }
  function rows() {
    const all = [...state.sessions.map(sessionRow), ...state.jobs.map(jobRow)];
    const f = state.filter.toLowerCase();
    return all.filter((r) => (state.kind === "all" || r.kind === state.kind)
      && (state.stateFilter === "all" || (state.stateFilter === "active") === r.active)
      && (!f || [r.name, r.id, r.shownId, r.node].some((v) => String(v || "").toLowerCase().includes(f))));
  }

  // ---- sparklines (inline SVG, built node by node) ---------------------------------------------
  function sparkline(values, opts) {
    const w = opts.width || 90, h = opts.height || 22;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "ink-spark " + (opts.cls || ""));
    svg.setAttribute("width", w); svg.setAttribute("height", h);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", opts.label || "");
    const title = document.createElementNS(SVG, "title");
    title.textContent = opts.label || "";
    svg.append(title);
    if (values.length >= 2) {
      const top = Math.max(opts.max || 0, ...values) || 1;
      const pts = values.map((v, i) => `${(i / (values.length - 1) * (w - 2) + 1).toFixed(1)},${(h - 1 - v / top * (h - 2)).toFixed(1)}`);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("stroke", opts.color || "#2a62c9");
      svg.append(line);
    }
    return svg;
  }
  function metricsUrl(r) {
    return r.kind === "job" ? jobUrl(r.id, "metrics") : config.api + "sessions/" + encodeURIComponent(r.id) + "/metrics";
  }
  async function loadMetrics(r, limit) {
    try {
      const m = await call("GET", metricsUrl(r) + "?limit=" + (limit || 60));
      state.metrics[r.key] = m;
      return m;
    } catch (e) {
      return null;
    }
  }

  // ---- the table ---------------------------------------------------------------------------
  function render() {
    const tbody = $("#ink-jobs-table tbody");
    const shown = rows();
    tbody.replaceChildren(...shown.map((r) => {
      const st = el("td", {class: "state state-" + r.state}, r.state);
      if (r.reason) st.append(el("br"), el("span", {class: "reason"}, r.reason));
      const cpu = el("td", {class: "cpu"});
      const m = state.metrics[r.key];
      if (m && m.samples && m.samples.length) {
        const last = m.samples[m.samples.length - 1];
        cpu.append(sparkline(m.samples.map((s) => s.cpu || 0), {max: 100, label: `CPU ${Math.round(last.cpu || 0)} %`}),
                   el("span", {class: "reason"}, ` ${Math.round(last.cpu || 0)} %`));
      }
      const actions = el("td", {class: "actions"},
        el("button", {type: "button", class: "ink-details", onclick: () => select(r)}, "Details"));
      if (r.kind === "job" && r.active) {
        actions.append(" ", el("button", {type: "button", class: "danger ink-cancel", onclick: () => cancel(r)}, "Cancel"));
      }
      if (r.kind === "job") {
        actions.append(" ", el("button", {type: "button", class: "ink-resubmit", onclick: () => resubmit(r)}, "Resubmit"));
      }
      if (r.kind === "session" && r.session.url) {
        actions.append(" ", el("a", {href: r.session.url, class: "button"}, "Connect"));
      }
      const tr = el("tr", {"data-key": r.key, "data-kind": r.kind, class: state.selected === r.key ? "selected" : ""},
        el("td", {}, r.kind), el("td", {class: "name"}, r.name), el("td", {class: "id"}, r.shownId || ""), st,
        el("td", {class: "node"}, r.node), el("td", {class: "resources"}, r.resources),
        el("td", {class: "num elapsed"}, duration(r.elapsed)), cpu, actions);
      return tr;
    }));
    $("#ink-jobs-empty").hidden = shown.length > 0;
    if (state.selected) renderDetails();
  }

  async function refresh() {
    const [jobs, sessions] = await Promise.allSettled([
      call("GET", config.api + "jobs?limit=200"), call("GET", config.sessions_api)]);
    if (jobs.status === "fulfilled") state.jobs = jobs.value.jobs;
    else say("Jobs: " + jobs.reason.message, true);
    if (sessions.status === "fulfilled") state.sessions = sessions.value.sessions.filter((s) => s.name !== "portal");
    if (jobs.status === "fulfilled" && $("#ink-jobs-message").className === "error" && sessions.status === "fulfilled") say("");
    const all = [...state.sessions.map(sessionRow), ...state.jobs.map(jobRow)];
    await Promise.all(all.filter((r) => r.active || (r.kind === "job" && !state.metrics[r.key])).slice(0, 20)
      .map((r) => loadMetrics(r)));
    render();
  }

  // ---- details, live output, metrics ----------------------------------------------------------
  function current() {
    const all = [...state.sessions.map(sessionRow), ...state.jobs.map(jobRow)];
    return all.find((r) => r.key === state.selected) || null;
  }
  function select(r) {
    state.selected = r.key;
    state.offset = 0;
    $("#ink-output").textContent = "";
    $("#ink-job-details").hidden = false;
    render();
    loadMetrics(r, 720).then(renderDetails);
    tail();
  }
  function renderDetails() {
    const r = current();
    if (!r) return;
    $("#ink-detail-title").textContent = `${r.name} (${r.kind} ${r.shownId || r.id})`;
    const fields = r.kind === "job"
      ? [["State", r.state + (r.reason ? " – " + r.reason : "")], ["Backend", `${r.job.backend} ${r.job.backend_id}`],
         ["Node", r.node], ["Experiment", r.job.experiment], ["Image", r.job.image || ""], ["Resources", r.resources],
         ["Command", r.job.command ? r.job.command.join(" ") : "(script)"], ["Working directory", r.job.workdir],
         ["Submitted", r.job.submitted], ["Elapsed", duration(r.elapsed)], ["Exit code", r.job.exit_code ?? ""]]
      : [["State", r.state + (r.reason ? " – " + r.reason : "")], ["Job", r.shownId], ["Node", r.node],
         ["Experiment", r.session.experiment], ["Image", r.session.image], ["Resources", r.resources],
         ["Elapsed", duration(r.elapsed)]];
    $("#ink-detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const m = state.metrics[r.key];
    $("#ink-efficiency").textContent = m && m.efficiency ? m.efficiency : (m ? "" : "No Job Lens figures for this one.");
    const charts = $("#ink-charts");
    charts.replaceChildren();
    if (m && m.samples && m.samples.length) {
      const s = m.samples, last = s[s.length - 1];
      const chart = (label, values, text, opts) => el("div", {class: "ink-chart", "data-metric": label.toLowerCase()},
        el("div", {class: "label"}, `${label}: ${text}`), sparkline(values, {width: 180, height: 36, label: `${label} ${text}`, ...opts}));
      charts.append(chart("CPU", s.map((x) => x.cpu || 0), `${Math.round(last.cpu || 0)} % of a core`, {max: 100}),
                    chart("Memory", s.map((x) => x.rss || 0), bytes(last.rss), {color: "#8a3ab9"}));
      const io = s.map((x, i) => i ? Math.max(0, (x.io_r + x.io_w) - (s[i - 1].io_r + s[i - 1].io_w)) : 0);
      charts.append(chart("I/O", io, bytes((last.io_r || 0) + (last.io_w || 0)) + " total", {color: "#c27a00"}));
      if (last.gpu_util !== undefined) charts.append(chart("GPU", s.map((x) => x.gpu_util || 0), `${Math.round(last.gpu_util)} %`, {max: 100, color: "#17702f"}));
    }
    const summary = $("#ink-summary");
    summary.replaceChildren();
    if (m && m.summary) {
      const x = m.summary;
      const line = (k, v) => summary.append(el("tr", {}, el("td", {}, k), el("td", {}, v)));
      line("Duration", duration(x.duration_s));
      line("CPU avg / max / p99", `${x.cpu_avg} % / ${x.cpu_max} % / ${x.cpu_p99} %`);
      line("RSS avg / peak", `${bytes(x.rss_avg)} / ${bytes(x.rss_peak)}`);
      line("I/O read / written", `${bytes(x.io_read)} / ${bytes(x.io_write)}`);
      if (x.gpu_util_avg !== undefined && x.gpu_util_avg !== null) line("GPU util avg / memory peak", `${x.gpu_util_avg} % / ${bytes(x.gpu_mem_peak)}`);
      if (x.mem_peak !== undefined) line("Memory peak (cgroup, page cache included)", bytes(x.mem_peak));
      if (x.final) line("Finished", "yes");
    }
    renderScheduler(m && m.scheduler);
  }
  // what the scheduler itself counted (Slurm sstat, HTCondor's job ad), beside Job Lens' figures
  function renderScheduler(u) {
    const table = $("#ink-scheduler");
    table.replaceChildren();
    if (!u) return;
    const name = u.source === "sstat" ? "Slurm (sstat)" : u.source === "job ad" ? "HTCondor job ad" : "the scheduler";
    table.append(el("caption", {}, `Scheduler figures: ${name}`));
    const line = (k, v) => table.append(el("tr", {"data-figure": k}, el("td", {}, k), el("td", {}, v)));
    if (!u.available) { line("Not available", u.reason || ""); return; }
    const secs = (v) => `${Number(v).toFixed(1)} s`;
    if (u.cpu_s !== undefined) line("CPU time", secs(u.cpu_s) +
      (u.cpu_user_s !== undefined ? ` (user ${secs(u.cpu_user_s)}, system ${secs(u.cpu_sys_s || 0)})` : ""));
    if (u.rss_max !== undefined) line("Max RSS (largest task)", bytes(u.rss_max));
    if (u.rss !== undefined) line("Resident set size", bytes(u.rss));
    if (u.memory_peak !== undefined) line("Memory peak", bytes(u.memory_peak));
    if (u.disk_read !== undefined) line("Disk read / written", `${bytes(u.disk_read)} / ${bytes(u.disk_write || 0)}`);
    if (u.disk_usage !== undefined) line("Scratch disk used", bytes(u.disk_usage));
    if (u.at) line("As of", new Date(u.at * 1000).toLocaleTimeString());
  }
  let tailing = false;
  async function tail() {
    const r = current();
    if (!r || r.kind !== "job" || tailing) {
      if (r && r.kind === "session") $("#ink-output").textContent = "(a session's output is in its log file, ~/.ink/logs)";
      return;
    }
    tailing = true;
    try {
      const res = await fetch(jobUrl(r.id, state.stream) + "?offset=" + state.offset, {credentials: "same-origin", headers: {"X-XSRFToken": config.xsrf}});
      if (res.ok && state.selected === r.key) {
        const text = await res.text();
        state.offset += new TextEncoder().encode(text).length;
        if (text) {
          const out = $("#ink-output");
          out.append(document.createTextNode(text));
          if ($("#ink-follow").checked) out.scrollTop = out.scrollHeight;
        }
      }
    } finally { tailing = false; }
  }

  // ---- actions ------------------------------------------------------------------------------
  async function cancel(r) {
    say(`Cancelling ${r.name}…`);
    try {
      await call("DELETE", jobUrl(r.id));
      say(`Cancelled ${r.name}.`);
    } catch (e) { say(`Cancel: ${e.message}`, true); }
    refresh();
  }
  async function resubmit(r) {
    const j = r.job;
    openForm();
    const f = $("#ink-submit-form").elements;
    f.name.value = j.name;
    f.experiment.value = j.experiment; fillImages();
    f.image.value = j.image || "";
    f.cpus.value = j.cpus; f.memory.value = j.memory_mb + "M"; f.gpus.value = j.gpus;
    f.walltime.value = duration(j.walltime_s); f.workdir.value = j.workdir;
    if (j.script) {
      f.kind.value = "script"; showKind();
      const res = await fetch(jobUrl(j.id, "script"), {credentials: "same-origin", headers: {"X-XSRFToken": config.xsrf}});
      f.script.value = res.ok ? await res.text() : "";
    } else {
      f.kind.value = "command"; showKind();
      f.command.value = j.command.map(quote).join(" ");
    }
  }
  function quote(arg) { return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : "'" + arg.replace(/'/g, "'\\''") + "'"; }
  // The command box is split into words like a shell would (quotes and backslashes), but it is
  // only split: the job API gets a list of strings and no shell ever reads the line.
  function words(line) {
    const out = []; let cur = null, q = null;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (q === "'") { if (c === "'") q = null; else cur += c; continue; }
      if (q === '"') { if (c === '"') q = null; else if (c === "\\" && i + 1 < line.length) cur += line[++i]; else cur += c; continue; }
      if (/\s/.test(c)) { if (cur !== null) { out.push(cur); cur = null; } continue; }
      if (cur === null) cur = "";
      if (c === "'" || c === '"') q = c; else if (c === "\\" && i + 1 < line.length) cur += line[++i]; else cur += c;
    }
    if (q) throw Object.assign(new Error("command: an unclosed quote"), {field: "command"});
    if (cur !== null) out.push(cur);
    return out;
  }

  // ---- the submit form ----------------------------------------------------------------------
  function showKind() {
    const f = $("#ink-submit-form").elements;
    document.querySelector('[data-field="command"]').hidden = f.kind.value !== "command";
    document.querySelector('[data-field="script"]').hidden = f.kind.value !== "script";
  }
  function fillImages() {
    const f = $("#ink-submit-form").elements;
    const exp = state.profile && state.profile.experiments[f.experiment.value];
    f.image.replaceChildren(el("option", {value: ""}, "(experiment default)"),
      ...((exp && exp.images) || []).map((name) => el("option", {value: name}, name)));
    const d = (exp && exp.defaults) || {};
    for (const k of ["cpus", "memory", "gpus", "walltime"]) f[k].placeholder = d[k] !== undefined ? String(d[k]) : "";
  }
  function clearErrors() {
    document.querySelectorAll("#ink-submit-form .row").forEach((row) => {
      row.classList.remove("invalid");
      const e = row.querySelector(".ink-error"); if (e) e.textContent = "";
    });
    $("#ink-submit-error").textContent = "";
  }
  function showError(message) {
    const m = /^([a-z_]+): (.*)$/s.exec(message);
    const row = m && document.querySelector(`#ink-submit-form .row[data-field="${m[1]}"]`);
    if (row && !row.hidden) {
      row.classList.add("invalid");
      row.querySelector(".ink-error").textContent = m[2];
      const input = row.querySelector("input, select, textarea"); if (input) input.focus();
    } else {
      $("#ink-submit-error").textContent = message;
    }
  }
  function openForm() {
    clearErrors();
    $("#ink-submit-dialog").showModal();
  }
  async function submit(ev) {
    ev.preventDefault();
    clearErrors();
    const f = ev.target.elements;
    const body = {};
    try {
      if (f.kind.value === "command") body.command = words(f.command.value);
      else body.script = f.script.value;
    } catch (e) { showError(e.message); return; }
    if (f.name.value) body.name = f.name.value;
    if (f.experiment.value) body.experiment = f.experiment.value;
    if (f.image.value) body.image = f.image.value;
    for (const k of ["cpus", "gpus"]) {
      // a number is sent as a number, anything else as typed: the validator says what is wrong
      const v = f[k].value.trim();
      if (v) body[k] = /^[0-9]+$/.test(v) ? Number(v) : v;
    }
    for (const k of ["memory", "walltime", "workdir"]) if (f[k].value.trim()) body[k] = f[k].value.trim();
    $("#ink-submit").disabled = true;
    try {
      const job = await call("POST", config.api + "jobs", body);
      $("#ink-submit-dialog").close();
      say(`Submitted ${job.name} (${job.backend} ${job.backend_id}).`);
      await refresh();
      select(jobRow(job));
    } catch (e) {
      showError(e.message);
    } finally { $("#ink-submit").disabled = false; }
  }

  async function init() {
    try {
      const info = await call("GET", config.api);
      state.profile = info.profile;
      const exps = Object.entries((info.profile && info.profile.experiments) || {});
      $("#ink-f-experiment").replaceChildren(...exps.map(([name, e]) => el("option", {value: name}, e.title || name)));
      fillImages();
      if (!info.profile) $("#ink-new-job").disabled = true;
    } catch (e) { say("Job API: " + e.message, true); }
    $("#ink-new-job").addEventListener("click", openForm);
    $("#ink-submit-cancel").addEventListener("click", () => $("#ink-submit-dialog").close());
    $("#ink-submit-form").addEventListener("submit", submit);
    $("#ink-f-experiment").addEventListener("change", fillImages);
    document.querySelectorAll('#ink-submit-form input[name="kind"]').forEach((r) => r.addEventListener("change", showKind));
    $("#ink-jobs-filter").addEventListener("input", (e) => { state.filter = e.target.value; render(); });
    $("#ink-jobs-state").addEventListener("change", (e) => { state.stateFilter = e.target.value; render(); });
    $("#ink-jobs-kind").addEventListener("change", (e) => { state.kind = e.target.value; render(); });
    $("#ink-detail-close").addEventListener("click", () => { state.selected = null; $("#ink-job-details").hidden = true; render(); });
    document.querySelectorAll(".tabs button[data-stream]").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll(".tabs button[data-stream]").forEach((o) => o.classList.toggle("active", o === b));
      state.stream = b.dataset.stream; state.offset = 0; $("#ink-output").textContent = ""; tail();
    }));
    await refresh();
    setInterval(refresh, config.poll_ms);
    setInterval(() => {
      tail();
      const r = current();
      if (r && r.active) loadMetrics(r, 720).then(renderDetails);
    }, 1500);
  }
  init();
})();
