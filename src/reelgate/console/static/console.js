// reelgate console: the session, API calls, the event-stream reader and small DOM helpers.
// The token lives in this tab's sessionStorage and goes out only as a bearer header to this
// origin. Nothing here writes markup from data: every value is set as text.
"use strict";

const RG = (() => {
  const KEY = "reelgate.token";
  const ROLE = "reelgate.role";
  const prefix = document.body.dataset.prefix || "/console";

  const session = {
    token: () => sessionStorage.getItem(KEY),
    role: () => sessionStorage.getItem(ROLE),
    save(token, role) {
      sessionStorage.setItem(KEY, token);
      sessionStorage.setItem(ROLE, role);
    },
    clear() {
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(ROLE);
    },
  };

  class ApiError extends Error {
    constructor(status, code, message, param) {
      super(message);
      this.status = status;
      this.code = code;
      this.param = param || null;
    }
  }

  function signOut() {
    session.clear();
    location.assign(prefix + "/");
  }

  function headers(extra, token) {
    return { Authorization: "Bearer " + (token || session.token() || ""), ...extra };
  }

  // One API call: the parsed JSON body, or an ApiError with the gateway's stable code.
  async function api(path, { method = "GET", body, token, extraHeaders = {} } = {}) {
    const init = { method, headers: headers(extraHeaders, token), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "reelgate could not be reached: " + err.message);
    }
    let data = null;
    try {
      data = await res.json();
    } catch (_err) {
      data = null;
    }
    if (!res.ok) {
      const err = data && (data.error || data);
      throw new ApiError(
        res.status,
        (err && err.code) || "http_" + res.status,
        (err && err.message) || res.status + " " + res.statusText,
        err && err.param,
      );
    }
    return data;
  }

  // Reads a text/event-stream with fetch (EventSource cannot send a bearer header), reconnecting
  // with Last-Event-ID after a drop. onEvent(name, data) returns true to stop reading.
  async function stream(path, onEvent, { signal, onState = () => {} } = {}) {
    let lastId = null;
    let delay = 1000;
    while (!(signal && signal.aborted)) {
      const extra = lastId ? { "Last-Event-ID": lastId } : {};
      try {
        const res = await fetch(path, { headers: headers(extra), signal, cache: "no-store" });
        if (res.status === 401) return signOut();
        if (!res.ok) throw new ApiError(res.status, "http_" + res.status, res.statusText);
        onState("live");
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = parseEvent(block);
            if (event.id) lastId = event.id;
            if (event.data !== null && onEvent(event.name, JSON.parse(event.data))) {
              reader.cancel().catch(() => {});
              return;
            }
          }
        }
      } catch (err) {
        if (signal && signal.aborted) return;
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          onState("error", err);
          return;
        }
      }
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  function parseEvent(block) {
    const event = { name: "message", id: null, data: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.name = value;
      else if (field === "id") event.id = value;
      else if (field === "data") event.data = event.data === null ? value : event.data + "\n" + value;
    }
    return event;
  }

  // el("td", {className: "x", dataset: {label: "Status"}}, "text", childNode, …)
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // compact: only the time of day for today, else the date and minute (tables); the full
  // instant is in the title either way.
  function time(unix, { compact = false } = {}) {
    if (!unix) return el("span", { className: "hint" }, "—");
    const date = new Date(unix * 1000);
    let text = date.toLocaleString();
    if (compact) {
      text = date.toDateString() === new Date().toDateString()
        ? date.toLocaleTimeString()
        : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    }
    return el("time", { dateTime: date.toISOString(), title: date.toLocaleString() }, text);
  }

  function announce(message) {
    const region = document.getElementById("announcer");
    region.textContent = "";
    // A fresh text node is what screen readers notice.
    setTimeout(() => { region.textContent = message; }, 50);
  }

  function showError(id, err) {
    const node = document.getElementById(id);
    if (node) node.textContent = err ? (err.message || String(err)) : "";
  }

  function statusLabel(status) {
    return status === "in_progress" ? "in progress" : status;
  }

  // Which pages a role sees; sign-in sends each role to its first page.
  const HOME = { user: "/tasks", admin: "/tokens" };

  async function signIn(token) {
    try {
      return (await api(prefix + "/api/whoami", { token })).data.role;
    } catch (err) {
      if (err.status === 401) throw new ApiError(401, err.code, "This token is not valid here.");
      throw err;
    }
  }

  function setUpSignIn() {
    const form = document.getElementById("signin");
    if (session.token()) return location.replace(prefix + HOME[session.role()]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("token");
      const token = input.value.trim();
      showError("signin-error", null);
      if (!token) return showError("signin-error", new Error("Enter a token."));
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const role = await signIn(token);
        input.value = "";
        session.save(token, role);
        location.assign(prefix + HOME[role]);
      } catch (err) {
        showError("signin-error", err);
        input.focus();
      } finally {
        button.disabled = false;
      }
    });
  }

  // Every page but sign-in needs a session, and some only one role.
  function guard() {
    const page = document.body.dataset.page;
    if (page === "signin") return false;
    if (!session.token()) {
      location.replace(prefix + "/");
      return false;
    }
    const role = session.role();
    const nav = document.getElementById("nav");
    for (const item of nav.querySelectorAll("[data-for]")) item.hidden = item.dataset.for !== role;
    for (const link of nav.querySelectorAll("a")) {
      if (link.pathname === location.pathname) link.setAttribute("aria-current", "page");
    }
    nav.hidden = false;
    document.getElementById("sign-out").addEventListener("click", signOut);
    const audience = document.body.dataset.audience;
    if (audience !== "any" && audience !== role) {
      location.replace(prefix + HOME[role]);
      return false;
    }
    return true;
  }

  const pages = {};
  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.page === "signin") return setUpSignIn();
    if (!guard()) return;
    const start = pages[document.body.dataset.page];
    if (start) start().catch((err) => (err.status === 401 ? signOut() : showError("page-error", err)));
  });

  return { prefix, session, api, stream, el, time, announce, showError, statusLabel, pages, ApiError };
})();
