// The search page of `mmcli serve`: plain JS, no libraries, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("search"), q: $("q"), file: $("file"), status: $("status"), results: $("results"), help: $("help"),
  threshold: $("threshold"), thresholdOut: $("threshold-out"), thresholdAuto: $("threshold-auto"),
  rerank: $("rerank"), topK: $("top-k"), sort: $("sort"),
  after: $("after"), before: $("before"), within: $("within"), filters: $("filters"),
  example: $("example"), exampleImg: $("example-img"), exampleName: $("example-name"),
  exampleClear: $("example-clear"), viewer: $("viewer"), viewerImg: $("viewer-img"),
  viewerCaption: $("viewer-caption"), viewerLike: $("viewer-like"), viewerOpen: $("viewer-open"),
  viewerClose: $("viewer-close"), drop: $("drop"), about: $("about"),
};

// the example image of the query: {path, time} (a file under the server's roots; time: a video's moment,
// else null) or {file, url} (an upload)
let example = null;
let hits = [];
let selected = -1;
let busy = 0;

function url(route, params) {
  return route + "?" + new URLSearchParams(params).toString();
}

function safeUrl(route, params) {
  try {
    return url(route, params);
  } catch (err) {  // a name that is not valid UTF-8 cannot travel in a URL
    return null;
  }
}

// a video's moment as the command line shows it: "12.0 s" under a minute, else "1:02:03" / "2:03"
function formatTime(seconds) {
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

function isMoment(time) {
  return time !== null && time !== undefined && Number.isFinite(Number(time));
}

// the parameters that name a file, or a video's moment (t: seconds)
function named(path, time) {
  return isMoment(time) ? { path, t: String(time) } : { path };
}

function baseName(path) {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

// the last two folders of a path ("…/2023/holiday/"): what fits under a thumbnail
function shortFolder(path) {
  const parts = path.slice(0, path.length - baseName(path).length).split(/[\\/]/).filter(Boolean);
  return (parts.length > 2 ? "\u2026/" : "/") + parts.slice(-2).map((p) => p + "/").join("");
}

// "a red car +sunset -people" -> query "a red car", add ["sunset"], sub ["people"]:
// a word that starts with + or - begins a term that runs to the next such word.
function parseQuery(text) {
  const parsed = { query: [], add: [], sub: [] };
  let current = parsed.query;
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    if ((word[0] === "+" || word[0] === "-") && word.length > 1) {
      current = [word.slice(1)];
      (word[0] === "+" ? parsed.add : parsed.sub).push(current);
    } else {
      current.push(word);
    }
  }
  return {
    query: parsed.query.length ? parsed.query.join(" ") : null,
    add: parsed.add.map((t) => t.join(" ")),
    sub: parsed.sub.map((t) => t.join(" ")),
  };
}

// the search options; a field the user left at its default is not sent (explain: for the score tooltips)
function options() {
  const opts = { top_k: Number(ui.topK.value), explain: true };
  const threshold = Number(ui.threshold.value);
  if (ui.thresholdAuto.checked) opts.threshold = "auto";
  else if (threshold > 0) opts.threshold = threshold;
  if (ui.rerank.value.trim()) opts.rerank = ui.rerank.value.trim();
  if (ui.within.value.trim()) opts.within = ui.within.value.trim();
  if (ui.after.value) opts.after = ui.after.value;
  if (ui.before.value) opts.before = ui.before.value;
  if (ui.sort.value !== "score") opts.sort = ui.sort.value;
  return opts;
}

function say(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", isError);
}

async function post(route, body, contentType) {
  const response = await fetch(route, { method: "POST", body, headers: { "Content-Type": contentType } });
  let reply;
  try {
    reply = await response.json();
  } catch (err) {
    reply = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) {
    throw new Error(reply.error + (reply.hint ? ` (${reply.hint})` : ""));
  }
  return reply;
}

// Back and Forward step through the searches; the address names the query ("#q=...&like=...")
const uploads = [];  // files searched by example since the page was opened (a File cannot be stored)

function remember() {
  const state = { q: ui.q.value, like: example && example.path ? example.path : null, upload: null };
  state.t = state.like && isMoment(example.time) ? example.time : null;
  if (example && example.file) {
    state.upload = uploads.indexOf(example.file);
    if (state.upload < 0) state.upload = uploads.push(example.file) - 1;
  }
  const now = history.state;
  if (now && now.q === state.q && now.like === state.like && now.t === state.t && now.upload === state.upload) return;
  const address = new URLSearchParams();
  if (state.q) address.set("q", state.q);
  if (state.like) address.set("like", state.like);
  if (state.like && isMoment(state.t)) address.set("t", String(state.t));
  const hash = address.toString();
  (now ? history.pushState : history.replaceState).call(history, state, "", hash ? "#" + hash : location.pathname);
}

function restore(state) {
  ui.q.value = state.q || "";
  const file = state.upload !== null && state.upload !== undefined ? uploads[state.upload] : null;
  setExample(file ? { file } : state.like ? { path: state.like, time: isMoment(state.t) ? state.t : null } : null);
  if (ui.q.value.trim() || example) search(false);
  else show([]);
}

window.addEventListener("popstate", (event) => {
  closeViewer();
  restore(event.state || fromAddress());
});

function fromAddress() {
  const address = new URLSearchParams(location.hash.slice(1));
  const t = address.get("t");
  return { q: address.get("q") || "", like: address.get("like"), t: t !== null && t !== "" ? Number(t) : null, upload: null };
}

async function search(record = true) {
  const terms = parseQuery(ui.q.value);
  const opts = options();
  if (!terms.query && !terms.add.length && !terms.sub.length && !example) {
    say("Type something to search for, or drop an image.");
    ui.q.focus();
    return;
  }
  if (record) remember();
  const ticket = ++busy;
  const started = performance.now();
  say("Searching\u2026");
  try {
    let reply;
    if (example && example.file) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries({ ...opts, ...(terms.query ? { query: terms.query } : {}) })) {
        params.append(key, String(value));
      }
      terms.add.forEach((t) => params.append("add", t));
      terms.sub.forEach((t) => params.append("sub", t));
      reply = await post("search/upload?" + params.toString(), example.file,
                         example.file.type || "application/octet-stream");
    } else {
      const body = { ...opts };
      if (terms.query) body.query = terms.query;
      if (terms.add.length) body.add = terms.add;
      if (terms.sub.length) body.sub = terms.sub;
      if (example) body.terms = [isMoment(example.time) ? { image: example.path, time: Number(example.time) } : { image: example.path }];
      reply = await post("search", JSON.stringify(body), "application/json");
    }
    if (ticket !== busy) return;  // a newer search has started
    show(reply.hits);
    finished();
    const took = Math.round(performance.now() - started);
    const count = reply.hits.length;
    const note = (reply.warnings || []).join("; ");
    const cut = typeof reply.threshold === "number" ? ` above ${reply.threshold.toFixed(3)} (auto)` : "";
    say(`${count} result${count === 1 ? "" : "s"}${cut} for ${describe(terms)} in ${took} ms${note ? " \u2014 " + note : ""}`);
  } catch (err) {
    if (ticket !== busy) return;
    say(err.message || String(err), true);
    finished();
  }
}

function finished() {  // a count of finished searches, for whoever waits for one (tests)
  document.body.dataset.searches = String(Number(document.body.dataset.searches || 0) + 1);
}

function describe(terms) {
  const parts = [];
  if (example) {
    const name = example.file ? example.file.name || "the dropped image" : baseName(example.path);
    parts.push("images like " + name + (isMoment(example.time) ? " at " + formatTime(example.time) : ""));
  }
  if (terms.query) parts.push(`\u201c${terms.query}\u201d`);
  terms.add.forEach((t) => parts.push("+" + t));
  terms.sub.forEach((t) => parts.push("\u2212" + t));
  return parts.join(" ");
}

function thumb(path, size, time = null) {
  return safeUrl("thumb", { ...named(path, time), size: String(size) });
}

function show(found) {
  hits = found;
  selected = -1;
  ui.help.hidden = hits.length > 0;
  ui.results.replaceChildren(...hits.map(tile));
}

function tile(hit, i) {
  const li = document.createElement("li");
  li.className = "hit";
  li.tabIndex = -1;
  li.dataset.index = String(i);
  li.title = hit.path;
  if (isMoment(hit.time)) li.dataset.time = String(hit.time);

  const pic = document.createElement("button");
  pic.type = "button";
  pic.className = "pic";
  pic.tabIndex = -1;
  pic.title = "More like this";
  const small = thumb(hit.path, 256, hit.time);
  if (small) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = baseName(hit.path);
    img.src = small;
    img.srcset = `${small} 1x, ${thumb(hit.path, 512, hit.time)} 2x`;
    img.addEventListener("error", () => img.replaceWith(broken()));
    pic.append(img);
  } else {
    pic.append(broken());
  }
  pic.addEventListener("click", () => likeThis(hit.path, hit.time));

  const meta = document.createElement("div");
  meta.className = "meta";
  const line = document.createElement("div");
  line.className = "line";
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  if (hit.explain) score.title = explained(hit.explain);
  line.append(score);
  if (isMoment(hit.time)) {  // a video's moment: where in the video it is
    const moment = document.createElement("span");
    moment.className = "moment";
    moment.textContent = "\u25b6 " + formatTime(hit.time);
    line.append(moment);
  }
  if (hit.taken) {
    const time = document.createElement("time");
    time.dateTime = hit.taken;
    time.textContent = hit.taken.replace("T", " ").slice(0, 16);
    line.append(time);
  }
  const full = safeUrl("image", named(hit.path, hit.time));
  if (full) {
    const open = document.createElement("a");
    open.className = "open";
    open.href = full;
    open.target = "_blank";
    open.rel = "noopener";
    open.tabIndex = -1;
    open.textContent = "full size";
    line.append(open);
  }
  const where = document.createElement("div");
  where.className = "path";
  const name = document.createElement("b");
  name.textContent = baseName(hit.path);
  const folder = document.createElement("span");
  folder.textContent = shortFolder(hit.path);
  where.append(name, folder);
  meta.append(line, where);
  li.append(pic, meta);
  li.addEventListener("focus", () => select(i, false));
  return li;
}

// each term's part in the score: "a red car  0.312 × 1" per line
function explained(parts) {
  return parts.map((p) => `${p.term.length > 60 ? "\u2026" + p.term.slice(-59) : p.term}  ${p.cosine.toFixed(3)} \u00d7 ${p.weight}`)
    .join("\n");
}

function broken() {
  const span = document.createElement("span");
  span.className = "broken";
  span.textContent = "cannot show this file";
  return span;
}

function setExample(next) {
  if (example && example.url) URL.revokeObjectURL(example.url);
  example = next;
  ui.example.hidden = !example;
  if (!example) return;
  if (example.file) {
    example.url = URL.createObjectURL(example.file);
    ui.exampleImg.src = example.url;
    ui.exampleName.textContent = example.file.name || "dropped image";
  } else {
    ui.exampleImg.src = thumb(example.path, 128, example.time) || "";
    ui.exampleName.textContent = baseName(example.path) + (isMoment(example.time) ? " at " + formatTime(example.time) : "");
  }
  ui.example.title = example.file ? ui.exampleName.textContent : example.path;
}

function likeThis(path, time = null) {
  closeViewer();
  setExample({ path, time: isMoment(time) ? time : null });
  ui.q.value = "";
  search();
}

function byFile(file) {
  if (!file) return;
  setExample({ file });
  ui.q.value = "";
  search();
}

// --------------------------------------------------------------------------- selection and keys
function columns() {
  const tiles = ui.results.children;
  if (!tiles.length) return 1;
  const top = tiles[0].offsetTop;
  let n = 0;
  while (n < tiles.length && tiles[n].offsetTop === top) n++;
  return Math.max(1, n);
}

function select(i, focus = true) {
  if (!hits.length) return;
  i = Math.max(0, Math.min(hits.length - 1, i));
  const tiles = ui.results.children;
  if (selected >= 0 && tiles[selected]) {
    tiles[selected].classList.remove("selected");
    tiles[selected].removeAttribute("aria-current");
    tiles[selected].tabIndex = -1;
  }
  selected = i;
  const el = tiles[i];
  el.classList.add("selected");
  el.tabIndex = 0;
  el.setAttribute("aria-current", "true");
  if (focus && document.activeElement !== el) el.focus({ preventScroll: true });
  el.scrollIntoView({ block: "nearest" });
  if (!ui.viewer.hidden) openViewer(i);
}

function openViewer(i) {
  const hit = hits[i];
  if (!hit) return;
  const full = safeUrl("image", named(hit.path, hit.time));
  ui.viewerImg.src = full || "";
  ui.viewerImg.alt = baseName(hit.path);
  ui.viewerOpen.href = full || "#";
  const when = hit.taken ? hit.taken.replace("T", " ").slice(0, 16) + " \u00b7 " : "";
  const at = isMoment(hit.time) ? ` at ${formatTime(hit.time)}` : "";
  ui.viewerCaption.textContent = `score ${hit.score.toFixed(3)} \u00b7 ${when}${hit.path}${at}`;
  ui.viewer.hidden = false;
}

function closeViewer() {
  if (ui.viewer.hidden) return;
  ui.viewer.hidden = true;
  ui.viewerImg.removeAttribute("src");
  if (selected >= 0 && ui.results.children[selected]) ui.results.children[selected].focus({ preventScroll: true });
}

const MOVES = { ArrowRight: 1, ArrowLeft: -1 };

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const inField = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
  if (!ui.viewer.hidden) {
    if (event.key === "Escape") closeViewer();
    else if (event.key in MOVES) select(selected + MOVES[event.key]);
    else return;
    event.preventDefault();
    return;
  }
  if (inField) {
    if (event.target === ui.q && event.key === "ArrowDown" && hits.length) {
      event.preventDefault();
      select(Math.max(selected, 0));
    }
    return;
  }
  const cols = columns();
  const moves = { ...MOVES, ArrowDown: cols, ArrowUp: -cols };
  if (event.key in moves && hits.length) {
    event.preventDefault();
    if (selected < 0) select(0);
    else if (event.key === "ArrowUp" && selected < cols) ui.q.focus();
    else select(selected + moves[event.key]);
  } else if (event.key === "Enter" && selected >= 0 && event.target.closest && event.target.closest(".hit")) {
    event.preventDefault();
    openViewer(selected);
  } else if (event.key === "Escape" || event.key === "/") {
    event.preventDefault();
    ui.q.focus();
    ui.q.select();
  }
});

// ------------------------------------------------------------------------------------- wiring
ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
function showThreshold() {
  const value = Number(ui.threshold.value);
  ui.threshold.disabled = ui.thresholdAuto.checked;
  ui.thresholdOut.textContent = ui.thresholdAuto.checked ? "auto" : value > 0 ? value.toFixed(2) : "off";
}
ui.threshold.addEventListener("input", showThreshold);
ui.thresholdAuto.addEventListener("change", showThreshold);
for (const control of [ui.threshold, ui.thresholdAuto, ui.rerank, ui.topK, ui.sort, ui.after, ui.before]) {
  control.addEventListener("change", () => { if (hits.length || example) search(); });
}
ui.file.addEventListener("change", () => {
  byFile(ui.file.files[0]);
  ui.file.value = "";
});
ui.exampleClear.addEventListener("click", () => {
  setExample(null);
  ui.q.focus();
  if (ui.q.value.trim()) search();
});
ui.viewerClose.addEventListener("click", closeViewer);
ui.viewerLike.addEventListener("click", () => { if (hits[selected]) likeThis(hits[selected].path, hits[selected].time); });
ui.viewer.addEventListener("click", (event) => { if (event.target === ui.viewer) closeViewer(); });

let dragDepth = 0;
window.addEventListener("dragenter", (event) => {
  if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
  dragDepth++;
  ui.drop.hidden = false;
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) ui.drop.hidden = true;
});
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  ui.drop.hidden = true;
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) byFile(file);
});

if (window.matchMedia("(min-width: 700px)").matches) ui.filters.open = true;
if (location.hash.length > 1) {
  const state = fromAddress();
  history.replaceState(state, "", location.href);
  restore(state);
}

fetch("health").then((r) => r.json()).then((h) => {
  ui.about.textContent = `index ${h.index} \u00b7 model ${h.model} \u00b7 mmcli ${h.version}`;
}).catch(() => {});
