// reelgate console: the tasks table (live over each task's event stream), a task's page and
// the create form driven by GET /v1/models.
"use strict";

(() => {
  const { api, stream, el, time, announce, showError, statusLabel, prefix } = RG;
  const TASKS = "/v1/video/generations";
  // Browsers keep about six connections per origin over HTTP/1.1: the table streams at most this
  // many tasks at once and starts the next when one ends, so page loads never queue behind them.
  const MAX_STREAMS = 4;
  const RELIST_MS = 20000;
  const terminal = (status) => status === "success" || status === "failure";

  function badge(status) {
    return el("span", { className: "badge " + status }, statusLabel(status));
  }

  function progressBar(task) {
    const value = terminal(task.status) ? 100 : task.estimated_progress || 0;
    return el("progress", { max: 100, value, "aria-label": `${value}% (estimated)` });
  }

  // ---------------------------------------------------------------- the tasks table
  RG.pages.tasks = async () => {
    const query = new URLSearchParams(location.search);
    const filters = { status: query.get("status") || "", model: query.get("model") || "" };
    document.getElementById("filter-status").value = filters.status;
    const body = document.querySelector("#tasks tbody");
    const liveState = document.getElementById("live-state");
    const rows = new Map();
    const waiting = [];
    let open = 0;
    let after = null;

    const models = await api("/v1/models");
    const modelSelect = document.getElementById("filter-model");
    for (const m of models.data) modelSelect.append(el("option", { value: m.id }, m.id));
    modelSelect.value = filters.model;

    function cells(task) {
      const link = el("a", { href: `${prefix}/tasks/${encodeURIComponent(task.task_id)}` },
        el("code", {}, task.task_id.slice(0, 13) + "…"));
      link.setAttribute("aria-label", "Task " + task.task_id);
      const cell = (label, ...content) => el("td", { role: "cell", dataset: { label } }, ...content);
      return [
        cell("Task", link),
        cell("Status", badge(task.status)),
        cell("Progress", progressBar(task)),
        cell("Model", el("span", { className: "nowrap" }, task.model)),
        cell("Submitted", time(task.submit_time, { compact: true })),
        cell("Started", time(task.start_time, { compact: true })),
        cell("Finished", time(task.finish_time, { compact: true })),
      ];
    }

    function render(task) {
      let row = rows.get(task.task_id);
      const before = row && row.dataset.status;
      if (!row) {
        row = el("tr", { role: "row", id: "row-" + task.task_id });
        rows.set(task.task_id, row);
        body.append(row);
      }
      row.dataset.status = task.status;
      row.replaceChildren(...cells(task));
      if (before && before !== task.status) {
        announce(`Task ${task.task_id.slice(0, 13)}… is now ${statusLabel(task.status)}.`);
      }
    }

    function follow(taskId) {
      if (open >= MAX_STREAMS) {
        if (!waiting.includes(taskId)) waiting.push(taskId);
        return;
      }
      open += 1;
      updateLiveState();
      stream(`${TASKS}/${encodeURIComponent(taskId)}/events`, (name, data) => {
        if (name !== "status") return false;
        render(data);
        return terminal(data.status);
      }).finally(() => {
        open -= 1;
        const next = waiting.shift();
        if (next) follow(next);
        updateLiveState();
      });
    }

    function updateLiveState() {
      const unfinished = [...rows.values()].filter((r) => !terminal(r.dataset.status)).length;
      liveState.textContent = unfinished
        ? `Live: following ${unfinished} unfinished task${unfinished === 1 ? "" : "s"}.`
        : "All shown tasks have finished.";
    }

    async function load(more) {
      const params = new URLSearchParams({ limit: "20" });
      if (filters.status) params.set("status", filters.status);
      if (filters.model) params.set("model", filters.model);
      if (more && after) params.set("after", after);
      const page = await api(`${TASKS}?${params}`);
      const fresh = [];
      for (const task of page.data) {
        const known = rows.has(task.task_id);
        if (!known || !terminal(rows.get(task.task_id).dataset.status)) render(task);
        if (!known) fresh.push(task);
      }
      if (more || after === null) {
        after = page.next_after;
        document.getElementById("more").hidden = !page.has_more;
      }
      // New tasks made elsewhere belong on top.
      for (const task of fresh.reverse()) {
        if (!more) body.prepend(rows.get(task.task_id));
        if (!terminal(task.status)) follow(task.task_id);
      }
      document.getElementById("tasks-empty").hidden = rows.size > 0;
      updateLiveState();
    }

    document.getElementById("more").addEventListener("click", () => load(true));
    await load(false);
    setInterval(() => {
      if (document.visibilityState === "visible") load(false).catch((e) => showError("tasks-error", e));
    }, RELIST_MS);
  };

  // ---------------------------------------------------------------- one task
  RG.pages.task = async () => {
    const taskId = document.getElementById("task-id").dataset.taskId;
    const path = `${TASKS}/${encodeURIComponent(taskId)}`;
    let extra = null;
    let last = null;

    const extraPath = `${prefix}/api/tasks/${encodeURIComponent(taskId)}`;
    try {
      extra = (await api(extraPath)).data;
    } catch (err) {
      if (err.status === 404) {
        showError("task-error", new Error("No such task for this token."));
        return;
      }
      throw err;
    }
    showFacts(extra);

    function show(task) {
      const previous = last;
      last = task;
      const status = document.getElementById("status");
      status.className = "badge " + task.status;
      status.textContent = statusLabel(task.status);
      const bar = document.getElementById("progress");
      bar.value = terminal(task.status) ? 100 : task.estimated_progress || 0;
      document.getElementById("eta").textContent =
        !terminal(task.status) && task.eta_seconds ? `about ${task.eta_seconds} s left` : "";
      const failure = document.getElementById("failure");
      failure.hidden = task.status !== "failure";
      if (task.error) failure.textContent = `${task.error.code}: ${task.error.message}`;
      document.getElementById("cancel").hidden = task.status !== "queued";
      showTimeline(task);
      if (previous && previous.status !== task.status) {
        // The upstream id and the hand-over time change as the task moves on.
        api(extraPath).then((fresh) => {
          extra = fresh.data;
          showFacts(extra);
          showTimeline(last);
        }).catch((err) => showError("task-error", err));
      }
      if (task.status === "success" && (!previous || previous.status !== "success")) showResult(task);
      if (terminal(task.status) && previous && !terminal(previous.status)) {
        loadDeliveries();
        announce(`The task is now ${statusLabel(task.status)}.`);
      }
    }

    function showTimeline(task) {
      const steps = [
        ["Submitted to reelgate", task.submit_time],
        ["Sent upstream", extra.submitted_at ? Math.floor(extra.submitted_at) : 0],
        ["Started", task.start_time],
        [task.status === "failure" ? "Failed" : "Finished", task.finish_time],
      ];
      document.getElementById("timeline").replaceChildren(...steps.map(([label, at]) =>
        el("li", { className: at ? "" : "pending" }, label + ": ", time(at))));
    }

    function showResult(task) {
      document.getElementById("result").hidden = false;
      const url = task.result_url;
      // <video> cannot send a bearer header: it plays the signed link to the same file /content
      // serves. A link to another origin (an upstream's, before reelgate's copy exists) would be
      // blocked by the page's policy, so it is offered as a plain link instead.
      if (new URL(url, location.href).origin === location.origin) {
        document.getElementById("player").src = url;
        document.getElementById("download").href = url;
      } else {
        document.getElementById("player").hidden = true;
        document.getElementById("remote-note").hidden = false;
        document.getElementById("remote-link").href = url;
      }
      if (task.last_frame_url && new URL(task.last_frame_url, location.href).origin === location.origin) {
        document.getElementById("last-frame").src = task.last_frame_url;
        document.getElementById("frame-figure").hidden = false;
      }
    }

    async function loadDeliveries() {
      const found = (await api(`${path}/deliveries`)).data;
      const table = document.getElementById("deliveries");
      table.hidden = found.length === 0;
      document.getElementById("deliveries-empty").hidden = found.length > 0;
      table.tBodies[0].replaceChildren(...found.map((d) => el("tr", {},
        el("td", {}, d.event), el("td", {}, d.target + " · " + d.url), el("td", {}, d.state),
        el("td", {}, d.attempts),
        el("td", {}, d.last_status ? `HTTP ${d.last_status}` : d.last_error || "—"))));
    }

    document.getElementById("deliveries-refresh").addEventListener("click", () =>
      loadDeliveries().catch((e) => showError("task-error", e)));
    document.getElementById("cancel").addEventListener("click", async () => {
      try {
        show((await api(`${path}/cancel`, { method: "POST" })).data);
      } catch (err) {
        showError("task-error", err);
      }
    });

    show((await api(path)).data);
    await loadDeliveries();
    if (!terminal(last.status)) {
      stream(`${path}/events`, (name, data) => {
        if (name !== "status") return false;
        show(data);
        return terminal(data.status);
      });
    }
  };

  function showFacts(extra) {
    const facts = [
      ["Provider", extra.provider],
      ["Upstream id", extra.upstream_id || "not sent yet"],
      ["Channel", extra.channel || "not chosen yet"],
      ["Request id", extra.request_id || "—"],
      ["Webhook", extra.callback_url || "the token's endpoint, if set"],
      ["Stored copy", extra.media_state || "—"],
    ];
    document.getElementById("facts").replaceChildren(...facts.flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", {}, v)]));
    document.getElementById("request").textContent = JSON.stringify(extra.request, null, 2);
  }

  // ---------------------------------------------------------------- the create form
  RG.pages.new = async () => {
    const models = (await api("/v1/models")).data;
    const select = document.getElementById("model");
    for (const m of models) select.append(el("option", { value: m.id }, m.id));
    const byId = new Map(models.map((m) => [m.id, m]));
    // One key per form load: a double submit or a retry answers the same task.
    let idempotencyKey = crypto.randomUUID();
    const image = document.getElementById("image");
    const preview = document.getElementById("image-preview");

    function describe() {
      const m = byId.get(select.value);
      document.getElementById("model-help").textContent = m.description;
      const takesImages = m.modes.includes("i2v");
      document.getElementById("image-field").hidden = !takesImages;
      image.required = m.images.min > 0;
      document.getElementById("image-help").textContent = m.images.min > 0
        ? "Required: the video starts from this image."
        : "Optional: the video starts from this image.";
      const duration = document.getElementById("duration");
      Object.assign(duration, { min: m.duration.min, max: m.duration.max, value: m.duration.default });
      const size = document.getElementById("size");
      size.value = m.size.default;
      document.getElementById("size-help").textContent =
        `Sides ${m.size.min_side}–${m.size.max_side} px, at most ${m.size.max_pixels.toLocaleString()} pixels.`;
      const fields = Object.entries(m.options).map(([name, spec]) => optionField(name, spec));
      document.getElementById("option-fields").replaceChildren(...fields);
      document.getElementById("options").hidden = fields.length === 0;
    }

    select.addEventListener("change", describe);
    describe();
    image.addEventListener("change", () => {
      preview.hidden = !image.files.length;
      if (image.files.length) preview.src = URL.createObjectURL(image.files[0]);
    });

    document.getElementById("create").addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("create-error", null);
      const form = event.currentTarget;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const body = await requestBody(byId.get(select.value));
        const task = await api(TASKS, {
          method: "POST", body, extraHeaders: { "Idempotency-Key": idempotencyKey },
        });
        location.assign(`${prefix}/tasks/${encodeURIComponent(task.task_id)}`);
      } catch (err) {
        if (err.code === "idempotency_key_reused") idempotencyKey = crypto.randomUUID();
        showError("create-error", err);
        const field = err.param && document.getElementById(err.param.replace(/^metadata\./, "opt-"));
        if (field) field.focus();
        button.disabled = false;
      }
    });
  };

  function optionField(name, spec) {
    const id = "opt-" + name;
    const help = el("p", { className: "hint", id: id + "-help" }, spec.description);
    let input;
    if (spec.type === "bool") {
      input = el("input", { type: "checkbox", id, "aria-describedby": help.id });
      return el("div", { className: "field" },
        el("label", { className: "check", htmlFor: id }, input, name), help);
    }
    if (spec.choices) {
      input = el("select", { id, "aria-describedby": help.id }, el("option", { value: "" }, "default"),
        ...spec.choices.map((c) => el("option", { value: c }, c)));
    } else {
      const number = spec.type === "int" || spec.type === "float";
      input = el("input", { id, type: number ? "number" : "text", "aria-describedby": help.id });
      if (number) input.step = spec.type === "int" ? "1" : "any";
      if (spec.minimum !== undefined) input.min = spec.minimum;
      if (spec.maximum !== undefined) input.max = spec.maximum;
    }
    input.dataset.option = name;
    input.dataset.kind = spec.type;
    return el("div", { className: "field" }, el("label", { htmlFor: id }, name), input, help);
  }

  async function requestBody(model) {
    const body = {
      model: model.id,
      prompt: document.getElementById("prompt").value,
    };
    const duration = document.getElementById("duration").value;
    if (duration) body.duration = Number(duration);
    const size = document.getElementById("size").value.trim();
    if (size && size !== model.size.default) body.size = size;
    const metadata = {};
    for (const input of document.querySelectorAll("#option-fields [data-option]")) {
      const name = input.dataset.option;
      const spec = model.options[name];
      if (spec.type === "bool") {
        if (input.checked) metadata[name] = true;
      } else if (input.value !== "") {
        metadata[name] = spec.type === "int" || spec.type === "float" ? Number(input.value) : input.value;
      }
    }
    if (Object.keys(metadata).length) body.metadata = metadata;
    const file = document.getElementById("image").files[0];
    if (file && model.modes.includes("i2v")) body.image = await dataUri(file);
    return body;
  }

  function dataUri(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }
})();
