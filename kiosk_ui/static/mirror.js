// The 摩镜 page: renders the latest "mirror" view model pushed by kiosk_ui/server.py over SSE, and sends
// taps back as actions (POST /api/mirror/action). The contract lives in server.py's module docstring.
// Model data is only ever set with textContent. Chinese by default; the EN button switches the page.
// The "confirm" keypad keeps the typed phone digits in this script only: the page shows dots, never digits.
"use strict";

(function () {
  const VIEW = document.body.dataset.view || "mirror";
  const STATES = ["attract", "welcome", "member", "enroll", "confirm"];
  const DIGITS = 4;
  // A member's card must not stay on a public screen while the device cannot update it: after this
  // long without a stream, fall back to the attract screen (the server resends the model on reconnect).
  const STALE_MS = 20000;
  const RETRY_MS = 1000;
  const I18N = {
    zh: {
      offline: "离线模式", reconnecting: "正在重新连接…", attract_title: "欢迎光临", attract_sub: "请靠近魔镜",
      enroll_start: "开通刷脸", points: "积分", visit_cycle: "到店频次", find_car: "寻找我的车", not_me: "不是我",
      coupons: "我的优惠券", no_coupons: "暂无可用优惠券", consent_title: "刷脸服务授权书", version: "版本",
      agree: "我已阅读并同意", decline: "不同意", withdraw: "撤回刷脸授权", retry: "重试", close: "关闭", manage: "刷脸授权",
      keep: "保级", stars: "星", liveness: (d, n) => `活体检测 ${d}/${n}`, lang: "EN",
      skip: "跳过", clear: "清除", ok: "确定", typed: (n) => `已输入 ${n}/${DIGITS} 位`,
    },
    en: {
      offline: "Offline", reconnecting: "Reconnecting…", attract_title: "Welcome", attract_sub: "Step closer to the mirror",
      enroll_start: "Sign up with your face", points: "Points", visit_cycle: "Visits", find_car: "Find my car",
      not_me: "Not me", coupons: "My coupons", no_coupons: "No coupons right now", consent_title: "Face service consent",
      version: "Version", agree: "I have read and agree", decline: "Decline", withdraw: "Withdraw consent",
      retry: "Try again", close: "Close", manage: "Face consent", keep: "to keep tier", stars: "stars",
      liveness: (d, n) => `Liveness ${d}/${n}`, lang: "中文",
      skip: "Skip", clear: "Clear", ok: "OK", typed: (n) => `${n} of ${DIGITS} digits entered`,
    },
  };

  const $ = (id) => document.getElementById(id);
  let source = null;
  let staleTimer = null;
  let model = { state: "attract" };
  // A public screen: the next shopper starts in Chinese again (the attract screen resets the switch).
  let lang = "zh";
  // The digits typed on the keypad, and which keypad they belong to (its card and tries left): a new card
  // or a refused try starts empty again.
  let typed = "";
  let typedFor = "";

  const t = (key) => I18N[lang][key];
  // The model's own text in the chosen language: "<key>_en" when English is on and the device sent it.
  const pick = (obj, key) => (lang === "en" && obj && obj[`${key}_en`]) || (obj ? obj[key] : "");

  function setText(id, value) {
    $(id).textContent = value === undefined || value === null ? "" : String(value);
  }

  function starText(n) {
    const k = Math.max(0, Math.min(5, Math.round(Number(n) || 0)));
    return "★".repeat(k) + "☆".repeat(5 - k);
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.body.dataset.lang = lang;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const text = t(el.dataset.i18n);
      if (typeof text === "string") el.textContent = text;
    }
    $("lang").textContent = t("lang");
  }

  function clearMember() {
    for (const id of ["tier", "points", "stars", "visit-cycle", "car-message"]) setText(id, "");
    $("stars").hidden = true;
    $("visit").hidden = true;
    $("coupons").replaceChildren();
    $("coupons").classList.remove("overflowing");
    $("coupons-empty").hidden = true;
    $("points-bar").style.setProperty("--ratio", "0");
    $("card-actions").hidden = true;
    $("car").hidden = true;
    $("car-list").replaceChildren();
  }

  function renderCar(fc) {
    $("car").hidden = !fc;
    $("car-list").replaceChildren();
    if (!fc) return;
    $("car").dataset.status = fc.status;
    setText("car-message", pick(fc, "message"));
    const items = (Array.isArray(fc.cars) ? fc.cars : []).map((c) => {
      const li = document.createElement("li");
      const bay = document.createElement("span");
      bay.className = "car-bay";
      bay.textContent = String(c.bay ?? "");
      const plate = document.createElement("span");
      plate.className = "car-plate";
      plate.textContent = String(c.plate ?? "");
      li.append(bay, plate);
      return li;
    });
    $("car-list").replaceChildren(...items);
    $("find-car").disabled = fc.status === "searching";
  }

  function renderMember(m) {
    setText("tier", m.tier);
    setText("points", `${m.points}/${m.tier_keep_points} ${t("keep")}`);
    const ratio = m.tier_keep_points > 0 ? Math.min(1, Math.max(0, m.points / m.tier_keep_points)) : 1;
    $("points-bar").style.setProperty("--ratio", String(ratio));
    $("points-bar").classList.toggle("kept", ratio >= 1);

    const hasStars = typeof m.stars === "number";
    setText("stars", hasStars ? starText(m.stars) : "");
    $("stars").hidden = !hasStars;
    if (hasStars) $("stars").setAttribute("aria-label", `${m.stars} ${t("stars")}`);

    setText("visit-cycle", m.visit_cycle);
    $("visit").hidden = !m.visit_cycle;
    $("card-actions").hidden = typeof m.card !== "string";
    $("manage-consent").hidden = m.can_enroll !== true;
    $("find-car").disabled = false;
    renderCar(m.find_car);

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

  function renderWelcome(m) {
    const c = m.content && typeof m.content === "object" ? m.content : null;
    $("content").hidden = !c;
    setText("content-title", c ? pick(c, "title") : "");
    setText("content-body", c ? pick(c, "body") : "");
    $("enroll-btn").hidden = m.can_enroll !== true;
  }

  function renderEnroll(m) {
    document.body.dataset.step = m.step || "";
    document.body.dataset.enrolled = String(m.enrolled === true);
    setText("enroll-prompt", pick(m, "prompt"));
    const consent = m.consent && typeof m.consent === "object" ? m.consent : null;
    setText("consent-text", consent ? pick(consent, "text") : "");
    setText("consent-version", consent ? consent.version : "");
    const progress = Number(m.progress) || 0;
    document.querySelectorAll("#capture-dots li").forEach((li, i) => li.classList.toggle("on", i < progress));
    const total = Number(m.liveness_total) || 0;
    setText("liveness", total ? t("liveness")(Number(m.liveness_done) || 0, total) : "");
  }

  function showTyped() {
    document.querySelectorAll("#confirm-dots li").forEach((li, i) => li.classList.toggle("on", i < typed.length));
    $("confirm-dots").setAttribute("aria-label", t("typed")(typed.length));
    $("confirm-ok").disabled = typed.length !== DIGITS;
  }

  function renderConfirm(m) {
    const key = typeof m.card === "string" ? `${m.card}/${m.tries_left}` : "";
    if (key !== typedFor) {
      typed = "";
      typedFor = key;
    }
    setText("confirm-error", pick(m, "error"));
    showTyped();
  }

  function typeDigit(d) {
    if (model.state !== "confirm") return;
    if (d === "C") typed = "";
    else if (d === "OK") {
      if (typed.length === DIGITS) send("confirm_phone", { digits: typed });
      typed = "";
    } else if (/^[0-9]$/.test(d) && typed.length < DIGITS) typed += d;
    showTyped();
  }

  function render(next) {
    const m = next && typeof next === "object" ? next : {};
    model = m;
    const state = STATES.includes(m.state) ? m.state : "attract";
    const changed = document.body.dataset.state !== state;
    if (state === "attract" && lang !== "zh") {
      lang = "zh";
      applyLanguage();
    }
    document.body.dataset.state = state;
    $("offline").hidden = m.offline !== true;
    setText("device", m.device);
    // Staff small print only (a missing call button, say); the shopper's screen is otherwise unchanged.
    setText("degraded", m.degraded);
    $("degraded").hidden = !m.degraded;

    // Every field not part of the new state is emptied, not just hidden: no stale personal data in the DOM.
    setText("greeting", state === "attract" ? "" : pick(m, "greeting"));
    setText("message", ["welcome", "enroll", "confirm"].includes(state) ? pick(m, "message") : "");
    if (state === "member") renderMember(m);
    else clearMember();
    if (state === "welcome") renderWelcome(m);
    else renderWelcome({});
    if (state === "enroll") renderEnroll(m);
    else renderEnroll({ step: "" });
    renderConfirm(state === "confirm" ? m : {});

    if (changed && state !== "attract") {
      const panel = $("panel");
      panel.classList.remove("enter");
      void panel.offsetWidth; // restart the entrance animation
      panel.classList.add("enter");
    }
  }

  async function send(name, fields) {
    const action = { action: name, ...(fields || {}) };
    if (["find_car", "not_me", "confirm_phone", "confirm_skip"].includes(name)) action.card = model.card;
    if (name === "consent_agree") action.version = model.consent ? model.consent.version : "";
    try {
      const resp = await fetch(`/api/${encodeURIComponent(VIEW)}/action`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(action),
        credentials: "same-origin",
      });
      if (!resp.ok) console.warn("mirror: action refused", name, resp.status);
    } catch (err) {
      console.warn("mirror: action not sent", name, err);
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
      let next;
      try {
        next = JSON.parse(event.data);
      } catch (err) {
        console.warn("mirror: unreadable view model", err);
        return;
      }
      setConnected(true);
      render(next);
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

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.id === "lang") {
      lang = lang === "zh" ? "en" : "zh";
      applyLanguage();
      render(model);
    } else if (button.dataset.digit) {
      typeDigit(button.dataset.digit);
    } else if (button.dataset.action) {
      send(button.dataset.action);
    }
  });
  window.addEventListener("contextmenu", (event) => event.preventDefault()); // no long-press menu on touch
  applyLanguage();
  connect();
})();
