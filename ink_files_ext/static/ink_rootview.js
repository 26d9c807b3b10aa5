// ROOT file preview in the file manager: JSROOT (the ROOT browser's own copy, npm `jsroot`,
// served by ink_proxy_ext) reads the file through the file manager's download endpoint with HTTP
// Range, so only the objects drawn are transferred; the first histogram or graph is drawn.
const config = JSON.parse(document.getElementById("ink-rootview-config").textContent);
const keysList = document.getElementById("ink-root-keys");
const area = document.getElementById("ink-jsroot");

// JupyterHub's single-user auth takes the login cookie on script requests only with the XSRF
// token in a header: add it to JSROOT's same-origin XHR reads.
const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  this.inkSameOrigin = new URL(url, location.href).origin === location.origin;
  return open.call(this, method, url, ...rest);
};
XMLHttpRequest.prototype.send = function (...args) {
  if (this.inkSameOrigin) this.setRequestHeader("X-XSRFToken", config.xsrf);
  return send.apply(this, args);
};

const DRAWABLE = /^(TH[123]|TProfile|TGraph|TMultiGraph|TF[12]|TCanvas|TEfficiency|THStack|TTree|TNtuple)/;

try {
  const jsroot = await import(config.jsroot);
  const file = await jsroot.openFile(config.url);
  let first = null;
  for (const key of file.fKeys) {
    const li = document.createElement("li");
    const name = `${key.fName};${key.fCycle}`;
    li.append(document.createTextNode(key.fName + " "));  // names are data, never markup
    const cls = document.createElement("span");
    cls.className = "class";
    cls.textContent = key.fClassName;
    li.append(cls);
    li.dataset.name = name;
    if (DRAWABLE.test(key.fClassName)) {
      li.addEventListener("click", () => show(name, li));
      if (!first && !/^(TTree|TNtuple)/.test(key.fClassName)) first = [name, li];
    }
    keysList.append(li);
  }
  async function show(name, li) {
    for (const other of keysList.children) other.classList.toggle("current", other === li);
    const obj = await file.readObject(name);
    jsroot.cleanup(area);
    await jsroot.draw(area, obj, /^TH2/.test(obj._typename) ? "colz" : "");
    document.body.dataset.drawn = name;
  }
  if (first) await show(...first);
  document.body.dataset.ready = "1";
} catch (e) {
  area.className = "ink-error";
  area.textContent = "Cannot open this ROOT file: " + (e && e.message ? e.message : e);
  document.body.dataset.ready = "error";
}
