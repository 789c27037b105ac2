// The jobs dashboard: the REST routes, streamed with fetch (EventSource cannot send a token).

const TOKEN_KEY = "mns-token";
const MAX_FOLLOWED = 3; // browsers open 6 connections per host: the feed, these, the log, one spare
const RETRY_MS = 1000;
const FINAL = new Set(["completed", "cancelled", "failed", "interrupted"]);

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  jobs: new Map(), // id -> {job, element}
  followed: new Map(), // id -> AbortController
  selected: null, // {id, controller}
  asking: null, // the pending token prompt
};

class HttpError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function withAuth(headers = {}) {
  return state.token ? { ...headers, Authorization: `Bearer ${state.token}` } : headers;
}

async function detailOf(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${d.loc.at(-1)}: ${d.msg}`).join("; ");
    return JSON.stringify(body);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// Fetch with the token; a 401 asks for one, then tries again.
async function authorized(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: withAuth(options.headers) });
    if (response.status !== 401) return response;
    await askForToken(await detailOf(response));
  }
}

async function api(path, options = {}) {
  const response = await authorized(path, options);
  if (!response.ok) throw new HttpError(response.status, await detailOf(response));
  return response.status === 204 ? null : response.json();
}

// Server-sent events over fetch: yields {event, data, id} until the stream ends.
async function* events(path, { lastEventId = null, signal } = {}) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await authorized(path, { headers, signal });
  if (!response.ok) throw new HttpError(response.status, await detailOf(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = /\r\n\r\n|\n\n/.exec(buffer))) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        const event = parseEvent(block);
        if (event) yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseEvent(block) {
  const event = { event: "message", data: [], id: null };
  for (const line of block.split(/\r\n|\n/)) {
    if (!line || line.startsWith(":")) continue; // a comment: the server's ping
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") event.data.push(value);
    else if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
  }
  return event.data.length ? { ...event, data: event.data.join("\n") } : null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The token prompt: one at a time, whoever asks; resolves once a token works.
function askForToken(reason) {
  if (state.asking) return state.asking;
  const dialog = $("token-dialog");
  const error = $("token-error");
  error.hidden = !state.token;
  error.textContent = state.token ? `That token was refused: ${reason}` : "";
  state.asking = new Promise((resolve) => {
    $("token-form").onsubmit = async (submitted) => {
      submitted.preventDefault();
      const token = $("token").value.trim();
      const check = await fetch("jobs?limit=1", { headers: { Authorization: `Bearer ${token}` } });
      if (check.status === 401) {
        error.textContent = "That token was refused.";
        error.hidden = false;
        return;
      }
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      dialog.close();
      state.asking = null;
      resolve();
    };
  });
  if (!dialog.open) dialog.showModal();
  $("token").focus();
  return state.asking;
}

// Jobs

function render(job) {
  let entry = state.jobs.get(job.id);
  if (!entry) {
    const element = $("job-template").content.firstElementChild.cloneNode(true);
    element.querySelector(".job-open").addEventListener("click", () => select(job.id));
    element.querySelector(".job-cancel").addEventListener("click", () => cancel(job.id));
    entry = { job, element };
    state.jobs.set(job.id, entry);
    place(element, job);
  }
  // A job's own stream may be ahead of the feed: a running job's bar never moves back.
  entry.job = { ...job, sent: FINAL.has(job.status) ? job.sent : Math.max(job.sent, entry.job.sent) };
  paint(entry);
  $("jobs-empty").hidden = state.jobs.size > 0;
  if (FINAL.has(job.status)) stopFollowing(job.id);
  else follow(job.id);
  showRunningTotal();
}

// Newest first: before the first job shown that was created earlier.
function place(element, job) {
  const list = $("jobs");
  const older = [...list.children].find((shown) => state.jobs.get(shown.dataset.jobId)?.job.created_at < job.created_at);
  list.insertBefore(element, older ?? null);
}

function paint({ job, element }) {
  element.dataset.status = job.status;
  element.dataset.jobId = job.id;
  element.querySelector(".caller").textContent = job.caller;
  element.querySelector(".job-id").textContent = job.id.slice(-8);
  element.querySelector(".job-open").setAttribute("aria-label", `Show the notifications of job ${job.id} (${job.caller})`);
  element.querySelector(".status").textContent = job.status;
  const bar = element.querySelector("progress");
  bar.max = job.count;
  bar.value = job.sent;
  bar.setAttribute("aria-label", `Job ${job.caller}: ${job.sent} of ${job.count} notifications`);
  element.querySelector(".count").textContent = `${job.sent} / ${job.count}`;
  const started = new Date(job.created_at).toLocaleTimeString();
  element.querySelector(".meta").textContent = `${job.origin} · every ${job.interval}s · ${started}${job.error ? ` · ${job.error}` : ""}`;
  const button = element.querySelector(".job-cancel");
  button.disabled = FINAL.has(job.status);
  button.setAttribute("aria-label", `Cancel job ${job.caller}`);
  element.classList.toggle("selected", state.selected?.id === job.id);
}

function forget(jobId) {
  const entry = state.jobs.get(jobId);
  if (!entry) return;
  stopFollowing(jobId);
  entry.element.remove();
  state.jobs.delete(jobId);
  $("jobs-empty").hidden = state.jobs.size > 0;
  showRunningTotal();
}

function progressed(jobId, notification) {
  const entry = state.jobs.get(jobId);
  if (!entry || notification.index <= entry.job.sent) return;
  entry.job = { ...entry.job, sent: notification.index, status: entry.job.status === "pending" ? "running" : entry.job.status };
  paint(entry);
}

function showRunningTotal() {
  const running = [...state.jobs.values()].filter(({ job }) => job.status === "running").length;
  $("stat-running-all").textContent = running;
}

// The feed of changes: every job of the caller, on every replica.
async function watchJobs() {
  for (;;) {
    try {
      for await (const event of events("jobs/changes")) {
        setConnection(true);
        if (event.event === "job") render(JSON.parse(event.data));
        else if (event.event === "gone") forget(event.data);
        else if (event.event === "synced") $("jobs-empty").hidden = state.jobs.size > 0;
      }
    } catch (error) {
      console.warn("jobs feed:", error);
    }
    setConnection(false);
    await sleep(RETRY_MS);
  }
}

function setConnection(live) {
  const pill = $("connection");
  pill.textContent = live ? "live" : "reconnecting…";
  pill.classList.toggle("live", live);
  pill.classList.toggle("down", !live);
}

// A running job's own stream moves its bar as each notification arrives.
function follow(jobId) {
  if (state.followed.has(jobId) || state.followed.size >= MAX_FOLLOWED || state.selected?.id === jobId) return;
  const controller = new AbortController();
  state.followed.set(jobId, controller);
  stream(jobId, controller, (notification) => progressed(jobId, notification)).finally(() => {
    if (state.followed.get(jobId) === controller) state.followed.delete(jobId);
  });
}

function stopFollowing(jobId) {
  state.followed.get(jobId)?.abort();
  state.followed.delete(jobId);
}

// Follow /jobs/{id}/events to the job's end, resuming after a dropped connection.
async function stream(jobId, controller, onNotification) {
  let last = null;
  while (!controller.signal.aborted) {
    try {
      for await (const event of events(`jobs/${jobId}/events`, { lastEventId: last, signal: controller.signal })) {
        if (event.id) last = event.id;
        if (event.event === "notification") onNotification(JSON.parse(event.data));
        else if (event.event === "end") {
          render(JSON.parse(event.data));
          return;
        }
      }
      return;
    } catch (error) {
      if (controller.signal.aborted || (error instanceof HttpError && error.status < 500)) return;
      await sleep(RETRY_MS);
    }
  }
}

// The notification log of the job picked (this stream moves its bar too).
function select(jobId) {
  state.selected?.controller.abort();
  stopFollowing(jobId);
  const controller = new AbortController();
  state.selected = { id: jobId, controller };
  for (const entry of state.jobs.values()) entry.element.classList.toggle("selected", entry.job.id === jobId);
  const log = $("log");
  log.replaceChildren();
  const entry = state.jobs.get(jobId);
  $("log-job").textContent = entry ? `${entry.job.caller} · ${jobId.slice(-8)}` : jobId;
  stream(jobId, controller, (notification) => {
    progressed(jobId, notification);
    const item = document.createElement("li");
    const index = document.createElement("span");
    index.className = "index";
    index.textContent = `${notification.index} / ${notification.count}`;
    const message = document.createElement("span");
    message.textContent = notification.message;
    item.append(index, message);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  });
}

async function cancel(jobId) {
  const entry = state.jobs.get(jobId);
  entry?.element.querySelector(".job-cancel").setAttribute("disabled", "");
  try {
    render(await api(`jobs/${jobId}/cancel`, { method: "POST" }));
  } catch (error) {
    if (entry) paint(entry);
    if (!(error instanceof HttpError && error.status === 409)) alert(`Cancel failed: ${error.message}`);
  }
}

async function start(submitted) {
  submitted.preventDefault();
  const form = submitted.target;
  const error = $("start-error");
  error.hidden = true;
  const body = {
    count: Number(form.count.value),
    interval: Number(form.interval.value),
    caller: form.caller.value,
  };
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    render(await api("jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }));
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// The header: this replica's gauges.
async function watchHealth() {
  for (;;) {
    try {
      const health = await api("healthz");
      $("stat-replica").textContent = health.replica;
      $("stat-store").textContent = health.store;
      $("stat-sessions").textContent = health.sessions;
      $("stat-running").textContent = health.running_jobs;
    } catch (error) {
      console.warn("health:", error);
    }
    await sleep(2000);
  }
}

$("start-form").addEventListener("submit", start);
watchJobs();
watchHealth();
