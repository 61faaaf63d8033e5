// The 摩镜 page: renders the latest "mirror" view model pushed by kiosk_ui/server.py over SSE.
// The contract lives in server.py's module docstring. Model data is only ever set with textContent.
"use strict";

(function () {
  const VIEW = document.body.dataset.view || "mirror";
  const STATES = ["attract", "welcome", "member"];
  // A member's card must not stay on a public screen while the device cannot update it: after this
  // long without a stream, fall back to the attract screen (the server resends the model on reconnect).
  const STALE_MS = 20000;
  const RETRY_MS = 1000;

  const $ = (id) => document.getElementById(id);
  let source = null;
  let staleTimer = null;

  function setText(id, value) {
    $(id).textContent = value === undefined || value === null ? "" : String(value);
  }

  function starText(n) {
    const k = Math.max(0, Math.min(5, Math.round(Number(n) || 0)));
    return "★".repeat(k) + "☆".repeat(5 - k);
  }

  function clearMember() {
    for (const id of ["tier", "points", "stars", "visit-cycle"]) setText(id, "");
    $("stars").hidden = true;
    $("visit").hidden = true;
    $("coupons").replaceChildren();
    $("coupons").classList.remove("overflowing");
    $("coupons-empty").hidden = true;
    $("points-bar").style.setProperty("--ratio", "0");
  }

  function renderMember(m) {
    setText("tier", m.tier);
    setText("points", `${m.points}/${m.tier_keep_points} 保级`);
    const ratio = m.tier_keep_points > 0 ? Math.min(1, Math.max(0, m.points / m.tier_keep_points)) : 1;
    $("points-bar").style.setProperty("--ratio", String(ratio));
    $("points-bar").classList.toggle("kept", ratio >= 1);

    const hasStars = typeof m.stars === "number";
    setText("stars", hasStars ? starText(m.stars) : "");
    $("stars").hidden = !hasStars;
    if (hasStars) $("stars").setAttribute("aria-label", `${m.stars} 星`);

    setText("visit-cycle", m.visit_cycle);
    $("visit").hidden = !m.visit_cycle;

    const items = (Array.isArray(m.coupons) ? m.coupons : []).map((c) => {
      const li = document.createElement("li");
      li.className = "coupon";
      const title = document.createElement("span");
      title.className = "coupon-title";
      title.textContent = String(c.title ?? "");
      const hint = document.createElement("span");
      hint.className = "coupon-hint";
      hint.textContent = String(c.hint ?? "");
      li.append(title, hint);
      return li;
    });
    $("coupons").replaceChildren(...items);
    $("coupons-empty").hidden = items.length > 0;
    const list = $("coupons");
    requestAnimationFrame(() => list.classList.toggle("overflowing", list.scrollHeight > list.clientHeight + 1));
  }

  function render(model) {
    const m = model && typeof model === "object" ? model : {};
    const state = STATES.includes(m.state) ? m.state : "attract";
    const changed = document.body.dataset.state !== state;
    document.body.dataset.state = state;
    $("offline").hidden = m.offline !== true;
    setText("device", m.device);

    // Every field not part of the new state is emptied, not just hidden: no stale personal data in the DOM.
    setText("greeting", state === "attract" ? "" : m.greeting);
    setText("message", state === "welcome" ? m.message : "");
    if (state === "member") renderMember(m);
    else clearMember();

    if (changed && state !== "attract") {
      const panel = $("panel");
      panel.classList.remove("enter");
      void panel.offsetWidth; // restart the entrance animation
      panel.classList.add("enter");
    }
  }

  function setConnected(connected) {
    document.body.dataset.connected = String(connected);
    $("reconnecting").hidden = connected;
    if (connected) {
      clearTimeout(staleTimer);
      staleTimer = null;
    } else if (staleTimer === null) {
      staleTimer = setTimeout(() => render({ state: "attract" }), STALE_MS);
    }
  }

  function connect() {
    source = new EventSource(`/events/${encodeURIComponent(VIEW)}`);
    source.addEventListener("open", () => setConnected(true));
    source.addEventListener("message", (event) => {
      let model;
      try {
        model = JSON.parse(event.data);
      } catch (err) {
        console.warn("mirror: unreadable view model", err);
        return;
      }
      setConnected(true);
      render(model);
    });
    source.addEventListener("error", () => {
      setConnected(false);
      // EventSource retries by itself while CONNECTING; it gives up (CLOSED) on an HTTP error or a wrong
      // content type, e.g. when something else answers on the port during an update. Keep trying then too.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, RETRY_MS);
      }
    });
  }

  window.addEventListener("contextmenu", (event) => event.preventDefault()); // no long-press menu on touch
  connect();
})();
