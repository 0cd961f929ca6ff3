// reelgate console: the operator's pages (tokens, channels) and the usage page with its chart.
"use strict";

(() => {
  const { api, el, time, announce, showError, session } = RG;
  const SVG = "http://www.w3.org/2000/svg";
  const cell = (label, ...content) => el("td", { role: "cell", dataset: { label } }, ...content);

  // ---------------------------------------------------------------- tokens
  function limitsText(t) {
    return [
      t.models.length ? "models " + t.models.join(", ") : "all models",
      t.rpm ? `${t.rpm}/min` : "no rate limit",
      t.max_concurrent ? `${t.max_concurrent} at once` : "no concurrency limit",
    ].join("; ");
  }

  RG.pages.tokens = async () => {
    const body = document.querySelector("#tokens tbody");

    async function load() {
      const tokens = (await api("/v1/admin/tokens")).data;
      tokens.sort((a, b) => b.created_at - a.created_at);
      body.replaceChildren(...tokens.map(row));
    }

    function row(t) {
      const label = `${t.name} (${t.prefix}…)`;
      let action = "";
      if (t.active) {
        action = el("button", { type: "button", className: "danger" }, "Revoke");
        action.setAttribute("aria-label", "Revoke token " + label);
        action.addEventListener("click", () => revoke(t, label));
      }
      const state = t.active ? "active" : "revoked";
      return el("tr", { role: "row", id: "token-" + t.id, dataset: { prefix: t.prefix, state } },
        cell("Name", t.name), cell("Prefix", el("code", {}, t.prefix + "…")),
        cell("Created", time(t.created_at, { compact: true })),
        cell("State", el("span", { className: "badge " + state }, state)),
        cell("Limits", limitsText(t)), cell("Actions", action));
    }

    async function revoke(t, label) {
      if (!confirm(`Revoke token ${label}? Requests with it will be refused from now on.`)) return;
      try {
        await api(`/v1/admin/tokens/${encodeURIComponent(t.id)}/revoke`, { method: "POST" });
        await load();
        announce(`Token ${label} revoked.`);
        document.getElementById("list-h").focus();
      } catch (err) {
        showError("tokens-error", err);
      }
    }

    document.getElementById("list-h").tabIndex = -1;
    document.getElementById("token-create").addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("token-error", null);
      const number = (id) => {
        const value = document.getElementById(id).value;
        return value === "" ? null : Number(value);
      };
      const models = document.getElementById("token-models").value
        .split(",").map((m) => m.trim()).filter(Boolean);
      const fields = {
        name: document.getElementById("token-name").value.trim() || "default",
        models,
        rpm: number("token-rpm"),
        max_concurrent: number("token-concurrent"),
      };
      try {
        const made = (await api("/v1/admin/tokens", { method: "POST", body: fields })).data;
        event.target.reset();
        const box = document.getElementById("new-token");
        document.getElementById("new-token-value").textContent = made.token;
        box.hidden = false;
        box.focus();
        await load();
      } catch (err) {
        showError("token-error", err);
      }
    });
    document.getElementById("copy-token").addEventListener("click", async () => {
      const value = document.getElementById("new-token-value").textContent;
      try {
        await navigator.clipboard.writeText(value);
        announce("Token copied.");
      } catch (_err) {
        announce("Copying is not allowed here: select the token and copy it.");
      }
    });
    await load();
  };

  // ---------------------------------------------------------------- usage
  const SERIES = [
    ["succeeded", "ok", "succeeded"],
    ["failed", "bad", "failed"],
    ["unfinished", "wait", "unfinished"],
  ];
  const DAY = 86400;

  RG.pages.usage = async () => {
    const admin = session.role() === "admin";
    document.getElementById("usage-scope").textContent = admin
      ? "Every token's tasks (admin view)."
      : "This token's tasks.";
    const query = new URLSearchParams(location.search);
    const groupBy = ["day", "model", "token"].includes(query.get("group_by"))
      ? query.get("group_by") : "day";
    const days = ["7", "30", "90"].includes(query.get("days")) ? Number(query.get("days")) : 30;
    document.getElementById("group-by").value = groupBy;
    document.getElementById("days").value = String(days);

    const to = Math.floor(Date.now() / 1000) + 1;
    const from = Math.floor((to - days * DAY) / DAY) * DAY;
    const params = new URLSearchParams({ group_by: groupBy, from, to });
    let rows = (await api(`${admin ? "/v1/admin/usage" : "/v1/usage"}?${params}`)).data;
    const names = new Map();
    if (admin && groupBy === "token") {
      for (const t of (await api("/v1/admin/tokens")).data) names.set(t.id, `${t.name} (${t.prefix}…)`);
    }
    if (groupBy === "day") rows = everyDay(rows, from, to);
    const label = (key) => groupBy === "day"
      ? new Date(key * 1000).toISOString().slice(0, 10)
      : names.get(key) || String(key);
    drawChart(rows, label, groupBy);
    fillTable(rows, label, groupBy);
  };

  // Days without tasks are bars of zero, so the chart reads as a time axis.
  function everyDay(rows, from, to) {
    const byDay = new Map(rows.map((r) => [r.key, r]));
    const out = [];
    for (let day = from; day < to; day += DAY) {
      out.push(byDay.get(day) || { key: day, tasks: 0, succeeded: 0, failed: 0, unfinished: 0 });
    }
    return out;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    for (const child of children) node.append(child);
    return node;
  }

  function drawChart(rows, label, groupBy) {
    const width = 640;
    const height = 220;
    const pad = { left: 36, right: 8, top: 10, bottom: 40 };
    const top = Math.max(1, ...rows.map((r) => r.tasks));
    const plotH = height - pad.top - pad.bottom;
    const step = (width - pad.left - pad.right) / Math.max(rows.length, 1);
    const total = rows.reduce((sum, r) => sum + r.tasks, 0);
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `Bar chart of ${total} tasks by ${groupBy}; the table below has the numbers.`,
    });
    for (const tick of [0, Math.ceil(top / 2), top]) {
      const y = pad.top + plotH - (tick / top) * plotH;
      chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, stroke: "#d6dae1" }),
        svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end" }, String(tick)));
    }
    const every = Math.ceil(rows.length / 10);
    rows.forEach((r, i) => {
      const x = pad.left + i * step + step * 0.15;
      let y = pad.top + plotH;
      const group = svg("g", {}, svg("title", {}, `${label(r.key)}: ${r.tasks} tasks, ` +
        SERIES.map(([key, , name]) => `${r[key] || 0} ${name}`).join(", ")));
      for (const [key, cls] of SERIES) {
        const h = ((r[key] || 0) / top) * plotH;
        if (h <= 0) continue;
        y -= h;
        group.append(svg("rect", { x, y, width: step * 0.7, height: h, class: cls }));
      }
      chart.append(group);
      if (i % every === 0) {
        const text = label(r.key);
        chart.append(svg("text", { x: x + step * 0.35, y: height - pad.bottom + 16, "text-anchor": "middle" },
          text.length > 12 ? text.slice(0, 11) + "…" : text));
      }
    });
    const legend = el("ul", { className: "legend" }, ...SERIES.map(([, cls, name]) =>
      el("li", {}, el("span", { className: cls, "aria-hidden": "true" }), name)));
    document.getElementById("chart").replaceChildren(chart, legend);
  }

  function fillTable(rows, label, groupBy) {
    const table = document.getElementById("usage");
    const shown = rows.filter((r) => r.tasks > 0);
    const columns = shown.length ? Object.keys(shown[0]).filter((k) => k !== "key") : ["tasks"];
    table.tHead.rows[0].replaceChildren(el("th", { scope: "col" }, groupBy),
      ...columns.map((c) => el("th", { scope: "col" }, c.replace(/_/g, " "))));
    table.tBodies[0].replaceChildren(...shown.map((r) => el("tr", {},
      el("th", { scope: "row" }, label(r.key)), ...columns.map((c) => el("td", {}, r[c])))));
    if (!shown.length) {
      table.tBodies[0].append(el("tr", {}, el("td", { colSpan: columns.length + 1 }, "No tasks in this period.")));
    }
  }

  // ---------------------------------------------------------------- channels
  RG.pages.channels = async () => {
    let channels;
    try {
      channels = (await api("/v1/admin/channels")).data;
    } catch (err) {
      if (err.status !== 404) throw err;
      // Extension point: this build has no channels API yet; the page shows what it can.
      showError("channels-error", new Error("This gateway has no channels API (/v1/admin/channels)."));
      return;
    }
    const table = document.getElementById("channels");
    const headings = ["Name", "Provider", "State", "Priority", "Caps", "Load", "Last error"];
    table.tHead.rows[0].replaceChildren(...headings.map((h) => el("th", { scope: "col", role: "columnheader" }, h)));
    const caps = (c) => [
      c.max_queued ? `${c.max_queued} queued` : "no queue cap",
      c.max_in_flight ? `${c.max_in_flight} in flight` : "no in-flight cap",
      c.rpm ? `${c.rpm}/min` : "no rate limit",
    ].join("; ");
    const load = (l) => (l ? `${l.waiting} waiting, ${l.queued} queued, ${l.running} running` : "—");
    document.getElementById("channels-empty").hidden = channels.length > 0;
    table.tBodies[0].replaceChildren(...channels.map((c) => el("tr", { role: "row" },
      cell("Name", c.name), cell("Provider", c.provider),
      cell("State", el("span", { className: "badge " + (c.enabled ? c.state : "revoked") },
        c.enabled ? c.state : "disabled")),
      cell("Priority", `${c.priority} (weight ${c.weight})`), cell("Caps", caps(c)),
      cell("Load", load(c.load)), cell("Last error", c.last_error || "—"))));
  };
})();
