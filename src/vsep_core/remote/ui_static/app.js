// vsep's page: upload, job list, player and export. Plain modern JS (an ES module), no framework,
// nothing fetched from anywhere but this server. It talks to the same HTTP API as `vsep remote`
// (POST /separate, GET /status, POST /cancel, GET /download) plus the page's routes under /ui/api/.

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "vsep-token";
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 4000;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || "",
  info: null,
  files: [],
  jobs: new Map(),
  pollTimer: null,
  offline: false,
};

// ---------------------------------------------------------------------------------------------
// API access: every call sends the token the way the Python client does.

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

function describeDetail(detail, fallback) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc: ["body", "mdxc_overlap"], msg: "..."}]
    return detail.map((d) => `${(d.loc || []).slice(-1)[0] ?? "value"}: ${d.msg}`).join("; ");
  }
  return fallback;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch (err) {
    throw new ApiError(0, "cannot reach the server");
  }
  if (response.status === 401) {
    askForToken(state.token ? "The server refused this token." : "");
    throw new ApiError(401, "the server needs its token");
  }
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      detail = describeDetail(body.detail ?? body.error, detail);
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return response;
}

const apiJson = async (path, options) => (await api(path, options)).json();

function showBanner(text) {
  const banner = $("#banner");
  banner.textContent = text;
  banner.hidden = !text;
}

// ---------------------------------------------------------------------------------------------
// Token

function askForToken(message) {
  stopPolling();
  $("#app").hidden = true;
  $("#token-section").hidden = false;
  $("#token-error").textContent = message || "";
  $("#token-input").focus();
}

function saveToken(token, remember) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  if (remember) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  saveToken($("#token-input").value.trim(), $("#token-remember").checked);
  $("#token-input").value = "";
  start();
});
$("#token-button").addEventListener("click", () => askForToken(""));

// ---------------------------------------------------------------------------------------------
// Start-up: the server's limits, models, presets and form fields

async function start() {
  let info;
  try {
    info = await apiJson("/ui/api/info");
  } catch (err) {
    if (err.status === 401) return;
    showBanner(`Cannot load the page's data: ${err.message}. Retrying…`);
    setTimeout(start, 2000);
    return;
  }
  showBanner("");
  state.info = info;
  $("#token-section").hidden = true;
  $("#app").hidden = false;
  $("#token-button").hidden = !state.token;
  $("#version").textContent = `server ${info.version}`;
  $("#file-input").accept = info.audio_extensions.join(",");
  renderModels();
  renderFields();
  $("#mix-format").replaceChildren(...info.mix_formats.map((f) => new Option(f.toUpperCase(), f)));
  await refreshJobs();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("job");
  if (wanted && state.jobs.get(wanted)?.status === "completed" && player.jobId !== wanted) openPlayer(wanted);
}

// ---------------------------------------------------------------------------------------------
// Files: drop or pick; checked against the server's formats and size limit before uploading

const formatBytes = (n) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);

function fileProblem(file) {
  const ext = file.name.includes(".") ? file.name.slice(file.name.lastIndexOf(".")).toLowerCase() : "";
  if (!state.info.audio_extensions.includes(ext)) {
    return `not an audio file vsep reads (${state.info.audio_extensions.join(" ")})`;
  }
  if (file.size > state.info.max_upload_bytes) {
    return `${formatBytes(file.size)}: larger than this server accepts (${formatBytes(state.info.max_upload_bytes)})`;
  }
  if (file.size === 0) return "the file is empty";
  return "";
}

function setFiles(list) {
  state.files = Array.from(list);
  const items = state.files.map((file) => {
    const li = document.createElement("li");
    const problem = fileProblem(file);
    li.textContent = problem ? `${file.name}: ${problem}` : `${file.name} (${formatBytes(file.size)})`;
    if (problem) li.className = "bad";
    return li;
  });
  $("#chosen-files").replaceChildren(...items);
}

const dropZone = $("#drop-zone");
$("#file-input").addEventListener("change", (e) => {
  setFiles(e.target.files);
  $("#upload-message").textContent = "";
});
for (const type of ["dragenter", "dragover"]) {
  dropZone.addEventListener(type, (e) => { e.preventDefault(); dropZone.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  dropZone.addEventListener(type, () => dropZone.classList.remove("over"));
}
dropZone.addEventListener("drop", (e) => { e.preventDefault(); setFiles(e.dataTransfer.files); });
// a file dropped anywhere else must not make the browser navigate away from the page
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

// ---------------------------------------------------------------------------------------------
// Model picker: searchable, grouped by stem (best SDR first), presets, on-disk flag

function modelLabel(model, stem) {
  // "MDX-Net Model VIP: UVR-MDX-NET_Main_427" -> "UVR-MDX-NET_Main_427 (VIP)": the group says the rest
  const match = model.name.match(/^[^:]*?Model( VIP)?:\s*(.+)$/);
  const name = match ? `${match[2]}${match[1] ? " (VIP)" : ""}` : model.name;
  const sdr = model.sdr[stem];
  return [sdr != null ? `${sdr.toFixed(1)} dB` : "", name, model.on_disk ? "on disk" : ""].filter(Boolean).join(" · ");
}

function renderModels() {
  const select = $("#model-select");
  const previous = select.value;
  const needle = $("#model-search").value.trim().toLowerCase();
  const { models, presets, default_model: fallback } = state.info;
  const matches = (text) => !needle || text.toLowerCase().includes(needle);
  const children = [];
  const defaultModel = models.find((m) => m.filename === fallback);
  if (matches(`default ${fallback} ${defaultModel?.name ?? ""}`)) {
    children.push(new Option(`Default: ${defaultModel?.name ?? fallback}`, ""));
  }
  const presetGroup = document.createElement("optgroup");
  presetGroup.label = "Presets (ensembles)";
  for (const [id, preset] of Object.entries(presets)) {
    if (matches(`${id} ${preset.name} ${preset.description ?? ""} preset`)) {
      const option = new Option(`${preset.name ?? id} (${(preset.models || []).length} models)`, `preset:${id}`);
      option.title = preset.description ?? "";
      presetGroup.append(option);
    }
  }
  if (presetGroup.children.length) children.push(presetGroup);
  const byStem = new Map();
  for (const model of models) {
    for (const stem of model.stems.length ? model.stems : ["other"]) {
      const key = stem.toLowerCase();
      if (!byStem.has(key)) byStem.set(key, []);
      byStem.get(key).push(model);
    }
  }
  for (const [stem, list] of [...byStem.entries()].sort()) {
    const group = document.createElement("optgroup");
    group.label = stem[0].toUpperCase() + stem.slice(1);
    list.sort((a, b) => (b.sdr[stem] ?? -1e9) - (a.sdr[stem] ?? -1e9) || a.name.localeCompare(b.name));
    for (const model of list) {
      if (matches(`${stem} ${model.name} ${model.filename} ${model.architecture}`)) {
        const option = new Option(modelLabel(model, stem), `model:${model.filename}`);
        option.title = `${model.name} (${model.filename})`;
        group.append(option);
      }
    }
    if (group.children.length) children.push(group);
  }
  select.replaceChildren(...children);
  const values = [...select.options].map((o) => o.value);
  select.value = values.includes(previous) ? previous : values[0] ?? "";
  describeSelection();
}

function selectedModel() {
  const value = $("#model-select").value;
  if (value.startsWith("model:")) return state.info.models.find((m) => m.filename === value.slice(6));
  if (!value) return state.info.models.find((m) => m.filename === state.info.default_model);
  return null;
}

function describeSelection() {
  const value = $("#model-select").value;
  const detail = $("#model-detail");
  if (value.startsWith("preset:")) {
    const preset = state.info.presets[value.slice(7)];
    detail.textContent = `${preset.description ?? ""} Models: ${(preset.models || []).join(", ")}`;
    return;
  }
  const model = selectedModel();
  const name = value ? value.slice(6) : state.info.default_model;
  detail.textContent = model
    ? `${model.filename} · ${model.architecture} · stems: ${model.stems.join(", ") || "unknown"}` +
      ` · ${model.on_disk ? "on disk" : "downloaded on first use"}`
    : name;
  const prefix = model ? `${model.architecture.toLowerCase()}_params` : "";
  for (const group of document.querySelectorAll("#param-groups details[data-group]")) {
    group.open = group.dataset.group === prefix;
  }
}

$("#model-search").addEventListener("input", renderModels);
$("#model-select").addEventListener("change", describeSelection);

// ---------------------------------------------------------------------------------------------
// Parameters: generated from the server's own form fields (FormField), limits enforced here too

function fieldInput(field) {
  const id = `field-${field.name}`;
  let input;
  if (field.type === "bool") {
    input = document.createElement("select");
    input.append(new Option("server default", ""), new Option("on", "true"), new Option("off", "false"));
  } else if (field.choices) {
    input = document.createElement("select");
    input.append(new Option("server default", ""), ...field.choices.map((c) => new Option(String(c), String(c))));
  } else {
    input = document.createElement("input");
    if (field.type === "int" || field.type === "float") {
      input.type = "number";
      input.step = field.type === "int" ? "1" : "any";
      input.inputMode = field.type === "int" ? "numeric" : "decimal";
      if (field.min != null) input.min = field.min;
      if (field.exclusive_min != null && field.min == null) input.min = field.exclusive_min;
      if (field.max != null) input.max = field.max;
    } else {
      input.type = "text";
      if (field.json) input.placeholder = "JSON, e.g. [1, 2]";
    }
    input.placeholder ||= "server default";
  }
  input.id = id;
  input.name = field.name;
  input.dataset.type = field.type;
  input.addEventListener("input", () => checkField(input, field));
  input.addEventListener("change", () => checkField(input, field));
  return input;
}

function fieldProblem(input, field) {
  const value = input.value.trim();
  if (!value || input.tagName === "SELECT") return "";
  if (field.type === "int" || field.type === "float") {
    const number = Number(value);
    if (!Number.isFinite(number) || (field.type === "int" && !Number.isInteger(number))) {
      return field.type === "int" ? "a whole number" : "a number";
    }
    if (field.min != null && number < field.min) return `at least ${field.min}`;
    if (field.exclusive_min != null && number <= field.exclusive_min) return `more than ${field.exclusive_min}`;
    if (field.max != null && number > field.max) return `at most ${field.max}`;
  } else if (field.json) {
    try { JSON.parse(value); } catch (_) { return "must be JSON"; }
  } else if (field.pattern) {
    let re = null;
    try { re = new RegExp(field.pattern); } catch (_) { /* a pattern JS cannot read: the server checks it */ }
    if (re && !re.test(value)) return "not an accepted value";
  }
  return "";
}

function checkField(input, field) {
  const problem = fieldProblem(input, field);
  input.setCustomValidity(problem);
  input.setAttribute("aria-invalid", problem ? "true" : "false");
  const note = document.getElementById(`${input.id}-problem`);
  note.textContent = problem ? `${field.name} must be ${problem}` : "";
  return !problem;
}

function renderFields() {
  const groups = new Map();
  for (const field of state.info.fields) {
    const key = field.group || "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(field);
  }
  const blocks = [];
  for (const [group, fields] of groups) {
    const details = document.createElement("details");
    details.dataset.group = group;
    const summary = document.createElement("summary");
    summary.textContent = group ? `${group.replace(/_params$/, "").toUpperCase()} parameters` : "Output and processing";
    details.append(summary);
    const fieldset = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.className = "visually-hidden";
    legend.textContent = summary.textContent;
    fieldset.append(legend);
    for (const field of fields) {
      const wrap = document.createElement("div");
      wrap.className = "field";
      const input = fieldInput(field);
      const label = document.createElement("label");
      label.htmlFor = input.id;
      label.textContent = field.name;
      const help = document.createElement("p");
      help.className = "help muted";
      help.id = `${input.id}-help`;
      const limits = [];
      if (field.min != null) limits.push(`≥ ${field.min}`);
      if (field.exclusive_min != null) limits.push(`> ${field.exclusive_min}`);
      if (field.max != null) limits.push(`≤ ${field.max}`);
      help.textContent = [field.help, limits.join(", ")].filter(Boolean).join(" · ");
      const problem = document.createElement("p");
      problem.className = "problem";
      problem.id = `${input.id}-problem`;
      problem.setAttribute("aria-live", "polite");
      input.setAttribute("aria-describedby", `${help.id} ${problem.id}`);
      wrap.append(label, input, help, problem);
      fieldset.append(wrap);
    }
    details.append(fieldset);
    blocks.push(details);
  }
  $("#param-groups").replaceChildren(...blocks);
  describeSelection();
}

function collectFields() {
  const values = {};
  let firstBad = null;
  for (const field of state.info.fields) {
    const input = document.getElementById(`field-${field.name}`);
    if (!checkField(input, field) && !firstBad) firstBad = input;
    if (input.value.trim() !== "") values[field.name] = input.value.trim();
  }
  if (firstBad) {
    $("#params").open = true;
    firstBad.closest("details[data-group]").open = true;
    firstBad.focus();
    return null;
  }
  return values;
}

// ---------------------------------------------------------------------------------------------
// Upload: POST /separate, one request per file (XMLHttpRequest, for upload progress)

function uploadOne(file, fields, row) {
  return new Promise((resolve) => {
    const form = new FormData();
    const choice = $("#model-select").value;
    if (choice.startsWith("model:")) form.append("model", choice.slice(6));
    if (choice.startsWith("preset:")) form.append("preset", choice.slice(7));
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/separate");
    if (state.token) xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) row.textContent = `${file.name}: uploading ${Math.round((100 * e.loaded) / e.total)} %`;
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 200) {
        row.remove();
        resolve(body.task_id);
        return;
      }
      if (xhr.status === 401) askForToken("The server refused this token.");
      row.className = "error";
      row.textContent = `${file.name}: ${describeDetail(body.detail, `HTTP ${xhr.status}`)}`;
      resolve(null);
    });
    xhr.addEventListener("error", () => {
      row.className = "error";
      row.textContent = `${file.name}: the upload failed (cannot reach the server)`;
      resolve(null);
    });
    xhr.send(form);
  });
}

$("#upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("#upload-message");
  const good = state.files.filter((f) => !fileProblem(f));
  if (!state.files.length) {
    message.textContent = "Choose or drop at least one audio file first.";
    return;
  }
  if (!good.length) {
    message.textContent = "None of the chosen files can be separated (see the reasons above).";
    return;
  }
  const fields = collectFields();
  if (fields === null) {
    message.textContent = "Fix the highlighted parameter first.";
    return;
  }
  message.textContent = `Uploading ${good.length} file(s)…`;
  const rows = good.map((file) => {
    const li = document.createElement("li");
    li.textContent = `${file.name}: waiting`;
    $("#uploads").append(li);
    return li;
  });
  const ids = [];
  for (let i = 0; i < good.length; i += 1) ids.push(await uploadOne(good[i], fields, rows[i]));
  const queued = ids.filter(Boolean).length;
  message.textContent = queued === good.length ? `${queued} job(s) queued.` : `${queued} of ${good.length} job(s) queued.`;
  setFiles([]);
  $("#file-input").value = "";
  refreshJobs();
});

// ---------------------------------------------------------------------------------------------
// Jobs: the server's job store, polled (faster while something runs); rows are updated in place

const ACTIVE = new Set(["submitted", "processing"]);

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

async function refreshJobs() {
  stopPolling();
  let jobs;
  try {
    jobs = await apiJson("/ui/api/jobs");
  } catch (err) {
    if (err.status === 401) return;
    state.offline = true;
    showBanner(`Lost contact with the server (${err.message}). Jobs keep running there; retrying…`);
    state.pollTimer = setTimeout(refreshJobs, 2000);
    return;
  }
  if (state.offline) showBanner("");
  state.offline = false;
  state.jobs = new Map(jobs.map((j) => [j.task_id, j]));
  renderJobs(jobs);
  player.checkJob(state.jobs.get(player.jobId));
  const busy = jobs.some((j) => ACTIVE.has(j.status));
  state.pollTimer = setTimeout(refreshJobs, busy ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

function jobState(job) {
  switch (job.status) {
    case "submitted": return "Queued";
    case "processing": {
      const model = job.total_models > 1 ? ` · model ${job.current_model_index + 1} of ${job.total_models}` : "";
      // the worker reports 5 % when it starts, 10 % once the model is loaded, then after every chunk
      return `Running${model} · ${job.progress < 10 ? "loading the model" : `${job.progress} %`}`;
    }
    case "completed": return `Done · ${Object.keys(job.files).length} stems`;
    case "error": return `Failed: ${job.error ?? "unknown error"}`;
    case "cancelled": return "Cancelled";
    case "expired": return `Expired: ${job.error ?? "the results were removed"}`;
    default: return job.status;
  }
}

function jobRow(job) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.id = job.task_id;
  li.innerHTML = `<div class="name"></div><div class="meta"></div><div class="state" role="status"></div>
    <progress max="100"></progress><div class="actions"></div>`;
  return li;
}

function renderJobs(jobs) {
  const list = $("#job-list");
  $("#jobs-empty").hidden = jobs.length > 0;
  const rows = new Map([...list.children].map((li) => [li.dataset.id, li]));
  let previous = null;
  for (const job of jobs) {
    let li = rows.get(job.task_id);
    if (!li) li = jobRow(job);
    rows.delete(job.task_id);
    if (previous ? previous.nextSibling !== li : list.firstChild !== li) {
      if (previous) previous.after(li); else list.prepend(li);
    }
    previous = li;
    updateJobRow(li, job);
  }
  for (const stale of rows.values()) stale.remove();
}

function updateJobRow(li, job) {
  li.dataset.status = job.status;
  li.classList.toggle("current", job.task_id === player.jobId);
  li.querySelector(".name").textContent = job.original_filename;
  const when = job.created_at ? new Date(job.created_at).toLocaleString() : "";
  li.querySelector(".meta").textContent = `${job.preset ? `preset ${job.preset}` : job.models_used.join(" + ")} · ${when}`;
  const stateText = jobState(job);
  const stateEl = li.querySelector(".state");
  if (stateEl.textContent !== stateText) stateEl.textContent = stateText;
  const bar = li.querySelector("progress");
  bar.hidden = !ACTIVE.has(job.status);
  bar.value = job.progress;
  bar.setAttribute("aria-label", `${job.original_filename} progress`);
  const actions = li.querySelector(".actions");
  const wanted = ACTIVE.has(job.status) ? "cancel" : job.status === "completed" ? "open" : "";
  if (actions.dataset.kind !== wanted) {
    actions.dataset.kind = wanted;
    actions.replaceChildren();
    if (wanted === "cancel") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Cancel";
      button.setAttribute("aria-label", `Cancel ${job.original_filename}`);
      button.addEventListener("click", () => cancelJob(job.task_id, button));
      actions.append(button);
    } else if (wanted === "open") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Play";
      button.setAttribute("aria-label", `Open ${job.original_filename} in the player`);
      button.addEventListener("click", () => openPlayer(job.task_id));
      actions.append(button);
    }
  }
}

async function cancelJob(taskId, button) {
  button.disabled = true;
  try {
    await api(`/cancel/${taskId}`, { method: "POST" });
  } catch (err) {
    showBanner(`Could not cancel: ${err.message}`);
  }
  refreshJobs();
}

// ---------------------------------------------------------------------------------------------
// Player: one lane per stem, one AudioContext clock for all of them

const fmtTime = (t) => {
  const s = Math.max(0, t);
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
};

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function filenameOf(response, fallback) {
  const header = response.headers.get("content-disposition") || "";
  const star = header.match(/filename\*=UTF-8''([^;]+)/i);
  if (star) return decodeURIComponent(star[1]);
  const plain = header.match(/filename="([^"]+)"/i);
  return plain ? plain[1] : fallback;
}

const player = {
  jobId: null,
  ctx: null,
  lanes: [],
  duration: 0,
  playing: false,
  offset: 0,        // position (s) when playback last started or paused
  startedAt: 0,     // ctx.currentTime at which `offset` was playing
  loop: { on: false, start: 0, end: 0 },
  frame: null,
  loadToken: 0,

  reset() {
    this.stop();
    if (this.ctx) this.ctx.close();
    this.ctx = null;
    this.lanes = [];
    this.jobId = null;
    this.offset = 0;
    $("#lanes").replaceChildren();
    for (const id of ["#play-button", "#export-mix", "#export-zip"]) $(id).disabled = true;
  },

  position() {
    if (!this.playing) return this.offset;
    let p = this.offset + (this.ctx.currentTime - this.startedAt);
    if (this.loop.on && this.loop.end > this.loop.start && p >= this.loop.end) {
      p = this.loop.start + ((p - this.loop.start) % (this.loop.end - this.loop.start));
    }
    return Math.min(p, this.duration);
  },

  gainOf(lane) {
    const anySolo = this.lanes.some((l) => l.solo);
    return !lane.muted && (!anySolo || lane.solo) ? lane.volume : 0;
  },

  applyGains() {
    for (const lane of this.lanes) {
      const gain = this.gainOf(lane);
      lane.el.classList.toggle("silent", gain === 0);
      if (lane.gainNode) lane.gainNode.gain.setTargetAtTime(gain, this.ctx.currentTime, 0.01);
    }
  },

  play() {
    if (!this.ctx || this.playing || !this.lanes.every((l) => l.buffer)) return;
    this.ctx.resume();
    if (this.loop.on && (this.offset < this.loop.start || this.offset >= this.loop.end)) this.offset = this.loop.start;
    if (this.offset >= this.duration) this.offset = 0;
    const when = this.ctx.currentTime + 0.05;
    for (const lane of this.lanes) {
      const source = this.ctx.createBufferSource();
      source.buffer = lane.buffer;
      if (this.loop.on) {
        source.loop = true;
        source.loopStart = this.loop.start;
        source.loopEnd = this.loop.end;
      }
      source.connect(lane.gainNode);
      source.start(when, this.offset);
      lane.source = source;
    }
    this.startedAt = when;
    this.playing = true;
    $("#play-button").textContent = "Pause";
    this.tick();
  },

  stop() {
    if (!this.playing) return;
    this.offset = this.position();
    for (const lane of this.lanes) {
      try { lane.source?.stop(); } catch (_) { /* already stopped */ }
      lane.source?.disconnect();
      lane.source = null;
    }
    this.playing = false;
    $("#play-button").textContent = "Play";
    cancelAnimationFrame(this.frame);
    this.draw();
  },

  toggle() {
    if (this.playing) this.stop(); else this.play();
  },

  seek(seconds) {
    const wasPlaying = this.playing;
    this.stop();
    this.offset = Math.min(Math.max(0, seconds), this.duration);
    if (wasPlaying) this.play(); else this.draw();
  },

  setLoop(on, start = this.loop.start, end = this.loop.end) {
    start = Math.min(Math.max(0, start), this.duration);
    end = Math.min(Math.max(0, end), this.duration);
    if (end < start) [start, end] = [end, start];
    const wasPlaying = this.playing;
    this.stop();
    this.loop = { on: on && end - start > 0.05, start, end };
    $("#loop-toggle").checked = this.loop.on;
    $("#loop-start").value = start.toFixed(1);
    $("#loop-end").value = end.toFixed(1);
    if (wasPlaying) this.play(); else this.draw();
  },

  tick() {
    this.draw();
    if (this.playing && !this.loop.on && this.position() >= this.duration) {
      this.stop();
      this.offset = 0;
      this.draw();
      return;
    }
    if (this.playing) this.frame = requestAnimationFrame(() => this.tick());
  },

  draw() {
    const p = this.position();
    $("#time-display").textContent = `${fmtTime(p)} / ${fmtTime(this.duration)}`;
    const d = this.duration || 1;
    for (const lane of this.lanes) {
      lane.head.style.left = `${(100 * p) / d}%`;
      lane.loopEl.hidden = !this.loop.on;
      lane.loopEl.style.left = `${(100 * this.loop.start) / d}%`;
      lane.loopEl.style.width = `${(100 * (this.loop.end - this.loop.start)) / d}%`;
    }
  },

  checkJob(job) {
    // the job on screen was cancelled, failed or expired meanwhile: stop, and say so
    if (!this.jobId || (job && job.status === "completed")) return;
    const reason = job ? (job.error || job.status) : "the job was removed from the server";
    this.reset();
    $("#player-message").textContent = `This job is no longer available (${reason}); playback stopped.`;
  },
};

function drawWave(canvas, peaks) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  g.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--wave").trim() || "#5b7fd6";
  const mid = height / 2;
  for (let x = 0; x < width; x += 1) {
    const from = Math.floor((x * peaks.length) / width);
    const to = Math.max(from + 1, Math.floor(((x + 1) * peaks.length) / width));
    let peak = 0;
    for (let i = from; i < to && i < peaks.length; i += 1) peak = Math.max(peak, peaks[i]);
    const h = Math.max(1, peak * mid);
    g.fillRect(x, mid - h, 1, 2 * h);
  }
}

function laneElement(stem, index) {
  const el = document.createElement("div");
  el.className = "lane";
  el.tabIndex = 0;
  el.setAttribute("role", "group");
  el.setAttribute("aria-label", `${stem.stem} lane: M mutes, S solos, arrows seek`);
  el.dataset.stem = stem.stem;
  el.innerHTML = `<div class="lane-head">
      <span class="stem"></span>
      <button type="button" class="mute" aria-pressed="false" aria-keyshortcuts="M">Mute</button>
      <button type="button" class="solo" aria-pressed="false" aria-keyshortcuts="S">Solo</button>
      <label class="volume"><span>Volume</span><input type="range" min="0" max="1.5" step="0.01" value="1"></label>
      <button type="button" class="download">Download</button>
    </div>
    <div class="wave"><canvas aria-hidden="true"></canvas><div class="loop" hidden></div><div class="head"></div></div>`;
  el.querySelector(".stem").textContent = stem.stem;
  const volume = el.querySelector(".volume input");
  volume.id = `volume-${index}`;
  volume.setAttribute("aria-label", `${stem.stem} volume`);
  el.querySelector(".mute").setAttribute("aria-label", `Mute ${stem.stem}`);
  el.querySelector(".solo").setAttribute("aria-label", `Solo ${stem.stem}`);
  el.querySelector(".download").setAttribute("aria-label", `Download ${stem.name}`);
  return el;
}

function toggleLane(lane, what) {
  lane[what] = !lane[what];
  lane.el.querySelector(`.${what === "muted" ? "mute" : "solo"}`).setAttribute("aria-pressed", String(lane[what]));
  player.applyGains();
}

function bindWave(lane) {
  const wave = lane.el.querySelector(".wave");
  let down = null;
  const at = (e) => {
    const box = wave.getBoundingClientRect();
    return (Math.min(Math.max(0, e.clientX - box.left), box.width) / box.width) * player.duration;
  };
  wave.addEventListener("pointerdown", (e) => {
    down = { x: e.clientX, t: at(e), dragging: false };
    wave.setPointerCapture(e.pointerId);
  });
  wave.addEventListener("pointermove", (e) => {
    if (!down) return;
    if (Math.abs(e.clientX - down.x) > 4) down.dragging = true;
    if (down.dragging) {  // preview only: the loop is set when the pointer is released
      const [from, to] = [Math.min(down.t, at(e)), Math.max(down.t, at(e))];
      lane.loopEl.hidden = false;
      lane.loopEl.style.left = `${(100 * from) / player.duration}%`;
      lane.loopEl.style.width = `${(100 * (to - from)) / player.duration}%`;
    }
  });
  wave.addEventListener("pointerup", (e) => {
    if (!down) return;
    if (down.dragging) player.setLoop(true, Math.min(down.t, at(e)), Math.max(down.t, at(e)));
    else player.seek(at(e));
    down = null;
  });
}

async function downloadStem(taskId, lane) {
  // fetched again rather than kept: the decoded audio is all the page holds in memory
  const message = $("#export-message");
  try {
    const response = await api(`/download/${taskId}/${lane.id}`);
    saveBlob(await response.blob(), filenameOf(response, lane.name));
    message.textContent = `${lane.name} downloaded.`;
  } catch (err) {
    message.textContent = `Cannot download ${lane.name}: ${err.message}`;
  }
}

async function openPlayer(taskId) {
  player.reset();
  const job = state.jobs.get(taskId);
  const loadToken = ++player.loadToken;
  player.jobId = taskId;
  history.replaceState(null, "", `#job=${taskId}`);
  $("#player-section").hidden = false;
  $("#player-title").textContent = `Player: ${job?.original_filename ?? taskId}`;
  $("#export-message").textContent = "";
  const message = $("#player-message");
  message.textContent = "Loading the waveforms…";
  for (const li of document.querySelectorAll(".job")) li.classList.toggle("current", li.dataset.id === taskId);
  let peaks;
  try {
    peaks = await apiJson(`/ui/api/jobs/${taskId}/peaks`);
  } catch (err) {
    message.textContent = `Cannot open this job: ${err.message}`;
    return;
  }
  if (loadToken !== player.loadToken) return;
  player.ctx = new AudioContext({ sampleRate: peaks.sample_rate });
  player.duration = peaks.frames / peaks.sample_rate;
  player.loop = { on: false, start: 0, end: player.duration };
  $("#loop-start").max = $("#loop-end").max = player.duration.toFixed(1);
  player.setLoop(false, 0, player.duration);
  player.lanes = peaks.stems.map((stem, index) => {
    const el = laneElement(stem, index);
    $("#lanes").append(el);
    const gainNode = player.ctx.createGain();
    gainNode.connect(player.ctx.destination);
    const lane = { ...stem, el, gainNode, muted: false, solo: false, volume: 1, buffer: null, source: null,
                   head: el.querySelector(".head"), loopEl: el.querySelector(".loop") };
    drawWave(el.querySelector("canvas"), stem.peaks);
    el.querySelector(".mute").addEventListener("click", () => toggleLane(lane, "muted"));
    el.querySelector(".solo").addEventListener("click", () => toggleLane(lane, "solo"));
    el.querySelector(".volume input").addEventListener("input", (e) => {
      lane.volume = Number(e.target.value);
      player.applyGains();
    });
    el.querySelector(".download").addEventListener("click", () => downloadStem(taskId, lane));
    bindWave(lane);
    return lane;
  });
  player.draw();
  $("#export-mix").disabled = $("#export-zip").disabled = false;
  $("#player-title").focus();
  let loaded = 0;
  message.textContent = `Loading the audio (0 of ${player.lanes.length})…`;
  try {
    await Promise.all(player.lanes.map(async (lane) => {
      const bytes = await (await api(`/download/${taskId}/${lane.id}`)).arrayBuffer();
      if (loadToken !== player.loadToken) return;
      lane.buffer = await player.ctx.decodeAudioData(bytes);
      loaded += 1;
      message.textContent = `Loading the audio (${loaded} of ${player.lanes.length})…`;
    }));
  } catch (err) {
    if (loadToken === player.loadToken) message.textContent = `Cannot load the audio: ${err.message}`;
    return;
  }
  if (loadToken !== player.loadToken) return;
  message.textContent = "Ready.";
  $("#play-button").disabled = false;
}

$("#play-button").addEventListener("click", () => player.toggle());
$("#loop-toggle").addEventListener("change", (e) => player.setLoop(e.target.checked));
for (const id of ["#loop-start", "#loop-end"]) {
  $(id).addEventListener("change", () => player.setLoop(true, Number($("#loop-start").value),
    Number($("#loop-end").value)));
}
window.addEventListener("resize", () => {
  for (const lane of player.lanes) drawWave(lane.el.querySelector("canvas"), lane.peaks);
});

document.addEventListener("keydown", (e) => {
  if (!player.lanes.length || e.ctrlKey || e.metaKey || e.altKey) return;
  const target = e.target;
  const typing = target.matches("input:not([type=range]):not([type=checkbox]), select, textarea");
  const lane = player.lanes.find((l) => l.el.contains(target));
  if (e.key === " " && !typing && !target.matches("button, input[type=checkbox], summary")) {
    e.preventDefault();
    player.toggle();
  } else if (lane && !typing && (e.key === "m" || e.key === "M")) {
    toggleLane(lane, "muted");
  } else if (lane && !typing && (e.key === "s" || e.key === "S")) {
    toggleLane(lane, "solo");
  } else if (lane && target === lane.el && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
    e.preventDefault();
    player.seek(player.position() + (e.key === "ArrowLeft" ? -5 : 5));
  }
});

// ---------------------------------------------------------------------------------------------
// Export: the mix the player plays (mutes, solos, volumes) rendered on the server; every stem as a zip

$("#export-mix").addEventListener("click", async () => {
  const message = $("#export-message");
  const gains = Object.fromEntries(player.lanes.map((lane) => [lane.id, player.gainOf(lane)]));
  const format = $("#mix-format").value;
  message.textContent = `Rendering the mix as ${format.toUpperCase()}…`;
  try {
    const response = await api(`/ui/api/jobs/${player.jobId}/mix`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ format, gains }),
    });
    saveBlob(await response.blob(), filenameOf(response, `mix.${format}`));
    message.textContent = "Mix exported.";
  } catch (err) {
    message.textContent = `Cannot export the mix: ${err.message}`;
  }
});

$("#export-zip").addEventListener("click", async () => {
  const message = $("#export-message");
  message.textContent = "Packing the stems…";
  try {
    const response = await api(`/ui/api/jobs/${player.jobId}/zip`);
    saveBlob(await response.blob(), filenameOf(response, "stems.zip"));
    message.textContent = "Stems exported.";
  } catch (err) {
    message.textContent = `Cannot export the stems: ${err.message}`;
  }
});

// ---------------------------------------------------------------------------------------------

(function boot() {
  // `vsep ui` passes the token in the URL fragment (never sent over the network); keep it, then hide it
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    saveToken(hash.get("token"), false);
    hash.delete("token");
    history.replaceState(null, "", hash.toString() ? `#${hash}` : location.pathname);
  }
  start();
})();
