// The π-POS pages (cashier and customer): render the latest view model pushed over SSE, send taps as
// actions (POST /api/<view>/action). Contract: kiosk_ui/pos_contract.py. Chinese by default; the EN
// button switches the page's own labels and picks the English half of "中文 · English" messages.
// Model data is only ever set with textContent.
"use strict";

(function () {
  const VIEW = document.body.dataset.view;
  const RETRY_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const EN = {
    cashier_title: "π-POS Checkout", customer_title: "Joy Mall · Welcome", offline: "Offline · face pay within offline limit",
    reconnecting: "Reconnecting to the device…", state: "State", amount: "Total", discount: "Discount", due: "To pay",
    member: "Member", paid_by: "Paid by", receipt: "Receipt", clear: "Clear", set_amount: "Set amount", cash: "Cash",
    new_sale: "New sale", refund: "Refund", refund_hint: "Scan or type the receipt QR", hello: "Hello",
    welcome: "Welcome", face_pay: "Pay by face", other_ways: "Or pay the cashier in cash or another way",
    look: "Please look at the camera", phone_prompt: "Enter the last 4 digits of your phone", ok: "OK",
    confirm_pay: "Confirm payment", paying: "Paying…", paid: "Paid — thank you", points: "Face-pay points",
    refused: "Face pay could not be completed", cancel: "Cancel",
    reconcile_title: "To collect · cloud reconciliation", sale_no: "Sale", collected: "Collected",
    refund_title: "Refund", rf_paid: "Paid", rf_refunded: "Refunded", rf_left: "Left to refund",
    rf_amount: "Refund this paid amount", rf_lines: "Refund ticked items", rf_close: "Close",
    rf_pending: "Unfinished refund — confirming retries it:",
    rf_keypad_note: "Keypad amount = money paid (after the coupon's share), not the list price",
    rf_hint_use: "Use the paid share", pv_title: "Before you confirm", pv_refund: "Refund now",
    pv_clawback: "Coupon discount kept back", pv_points: "Points taken back", pv_left: "Left to refund after",
    pv_empty: "Tick items or type an amount to see what the refund does",
  };
  const ZH_EXTRA = { sale_no: "单号", collected: "已补收", rf_pending: "上一笔退款未完成，确认将重试：" };
  const STATE_TEXT = {
    idle: ["空闲", "Idle"], cart: ["待支付", "Waiting for payment"], face: ["刷脸中", "Face check"],
    phone: ["验证手机尾号", "Phone digits"], confirm: ["等待顾客确认", "Customer confirming"], paying: ["支付中", "Paying"],
    paid: ["已支付", "Paid"], refused: ["未完成", "Refused"],
  };
  const MODE_TEXT = { online: ["刷脸支付", "Face pay"], offline: ["刷脸支付(离线)", "Face pay (offline)"], cash: ["现金", "Cash"] };
  const zh = {};
  let lang = "zh";
  let model = { state: "idle" };
  let entry = "";
  let digits = "";
  let source = null;
  // The refund input the preview follows: the last thing the cashier touched ("lines" or "amount").
  let rfBasis = "";
  let rfAsked = "";
  let rfHadPreview = false;

  for (const el of document.querySelectorAll("[data-i18n]")) zh[el.dataset.i18n] = el.textContent;
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) zh[el.dataset.i18nPlaceholder] = el.placeholder;

  function pick(text) {
    // Device messages are "中文 · English": show the side of the current language.
    const s = String(text ?? "");
    const i = s.indexOf(" · ");
    if (i < 0) return s;
    return lang === "en" ? s.slice(i + 3) : s.slice(0, i);
  }

  function applyLang() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const key = el.dataset.i18n;
      el.textContent = lang === "en" ? EN[key] ?? zh[key] : zh[key];
    }
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      const key = el.dataset.i18nPlaceholder;
      el.placeholder = lang === "en" ? EN[key] ?? zh[key] : zh[key];
    }
    $("lang").textContent = lang === "en" ? "中文" : "EN";
    render(model);
  }

  function setText(id, value) {
    const el = $(id);
    if (el) el.textContent = value === undefined || value === null ? "" : String(value);
  }

  function two(pair) { return pair ? pair[lang === "en" ? 1 : 0] : ""; }

  function render(m) {
    model = m && typeof m === "object" ? m : { state: "idle" };
    const state = model.state || "idle";
    document.body.dataset.state = state;
    $("offline").hidden = model.offline !== true;
    setText("device", model.device);
    // The cashier screen says which peripheral is missing and what to check; the customer page has no element.
    if ($("degraded")) {
      setText("degraded", model.degraded);
      $("degraded").hidden = !model.degraded;
    }
    setText("amount", model.amount);
    setText("discount", model.discount);
    setText("due", model.due);
    setText("coupon", model.coupon);
    setText("member", model.member);
    $("member-line").hidden = !model.member;
    setText("message", pick(model.message));
    if (VIEW === "pos-cashier") {
      setText("state-text", two(STATE_TEXT[state]));
      const items = (Array.isArray(model.items) ? model.items : []).map((it) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.textContent = pick(it.name);
        const amount = document.createElement("span");
        amount.textContent = String(it.amount ?? "");
        li.append(name, amount);
        return li;
      });
      $("items").replaceChildren(...items);
      setText("mode", two(MODE_TEXT[model.mode]));
      setText("receipt", model.receipt);
      $("mode-line").hidden = !model.mode;
      setText("refund", pick(model.refund));
      renderReconcile(Array.isArray(model.reconcile) ? model.reconcile : []);
      renderRefunding(model.refunding || null);
    } else {
      $("discount-line").hidden = !model.coupon;
      setText("challenge", pick(model.challenge));
      setText("points", model.points);
      $("points-line").hidden = !(model.points > 0);
      for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.dataset.for !== state;
      $("cancel").hidden = !["face", "phone", "confirm"].includes(state);
      if (state !== "phone") digits = "";
      showDigits();
    }
  }

  function renderReconcile(list) {
    // Corrections the cloud sent back (e.g. a coupon used at two counters while offline): one line per
    // sale, with the difference to collect and a button for the cashier once it is collected.
    $("reconcile").hidden = list.length === 0;
    const word = (key) => (lang === "en" ? EN[key] : ZH_EXTRA[key]);
    $("reconcile-list").replaceChildren(...list.map((it) => {
      const li = document.createElement("li");
      li.className = "reconcile-item";
      li.dataset.id = String(it.id ?? "");
      const what = document.createElement("span");
      what.className = "reconcile-text";
      what.textContent = pick(it.text);
      const sale = document.createElement("span");
      sale.className = "reconcile-sale";
      sale.textContent = it.sale ? `${word("sale_no")} ${it.sale}` : "";
      const done = document.createElement("button");
      done.type = "button";
      done.className = "btn btn-small reconcile-done";
      done.textContent = word("collected");
      done.addEventListener("click", () => send({ action: "collect", id: String(it.id) }));
      li.append(what, sale, done);
      return li;
    }));
  }

  function renderRefunding(rf) {
    // The sale of a scanned receipt: its lines (tick the returned ones) or an amount from the keypad.
    // While one is open the panel takes the sale-entry area's place (pos.css: body[data-refunding]),
    // so the preview and its confirm stay on screen next to the keypad without scrolling.
    $("refunding").hidden = !rf;
    document.body.dataset.refunding = String(Boolean(rf));
    if (!rf) return;
    setText("rf-receipt", rf.receipt);
    setText("rf-paid", rf.paid);
    setText("rf-refunded", rf.refunded);
    setText("rf-left", rf.left);
    $("rf-pending").hidden = !rf.pending;
    setText("rf-pending", rf.pending ? `${lang === "en" ? EN.rf_pending : ZH_EXTRA.rf_pending} ${rf.pending}` : "");
    // Ticks belong to the sale they were made on: another receipt starts with none.
    const sameSale = $("rf-lines").dataset.sale === rf.sale;
    $("rf-lines").dataset.sale = rf.sale;
    if (!sameSale) rfBasis = "";
    const ticked = new Set(sameSale ? tickedLines() : []);
    $("rf-lines").replaceChildren(...rf.lines.map((ln) => {
      const li = document.createElement("li");
      li.className = "rf-line";
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(ln.n);
      box.disabled = ln.returned;
      box.checked = !ln.returned && ticked.has(box.value);
      const name = document.createElement("span");
      name.textContent = `${ln.name} ${ln.amount} → ${ln.share}`;
      label.append(box, name);
      li.append(label);
      if (ln.returned) li.classList.add("rf-returned");
      return li;
    }));
    renderPreview(rf);
  }

  function tickedLines() { return [...document.querySelectorAll("#rf-lines input:checked")].map((el) => el.value); }

  function rfInput() {
    // What the confirm buttons would send now: {basis, key}, key as the device echoes it.
    const lines = tickedLines().join(",");
    const cents = String(Number(entry || "0"));
    if (rfBasis === "lines" && lines) return { basis: "lines", key: lines };
    if (rfBasis === "amount" && cents !== "0") return { basis: "amount", key: cents };
    return { basis: "", key: "" };
  }

  function renderPreview(rf) {
    // The device computes the preview with the refund's own rules (one source of truth); it is shown,
    // and the matching confirm enabled, only while it is for exactly what is ticked or typed now.
    const pv = rf.preview || {};
    if (rfHadPreview && !pv.basis) rfAsked = "";  // the device dropped it (the sale changed): ask again
    rfHadPreview = Boolean(pv.basis);
    const now = rfInput();
    const current = Boolean(now.basis) && pv.basis === now.basis && pv.key === now.key;
    const box = $("rf-preview");
    box.dataset.basis = current ? pv.basis : "";
    box.dataset.key = current ? pv.key : "";
    box.dataset.ok = String(current && pv.ok === true);
    $("pv-empty").hidden = current;
    $("pv-figures").hidden = !(current && pv.ok);
    setText("pv-refund", current ? pv.refund : "");
    setText("pv-clawback", current ? pv.clawback : "");
    setText("pv-points", current ? pv.points : "");
    setText("pv-left", current ? pv.left : "");
    for (const [id, text] of [["pv-why", pv.why], ["pv-coupon", pv.coupon], ["pv-reason", pv.reason]]) {
      setText(id, current ? pick(text) : "");
      $(id).hidden = !(current && text);
    }
    $("rf-hint").hidden = !(current && pv.hint);
    setText("rf-hint-text", current ? pick(pv.hint) : "");
    $("rf-amount").disabled = !(current && pv.ok && pv.basis === "amount");
    $("rf-lines-go").disabled = !(current && pv.ok && pv.basis === "lines");
    askPreview(rf, now, current);
  }

  function askPreview(rf, now, current) {
    // Once per (sale, refund number, input); again when the device dropped its preview (after a confirm).
    if (!now.basis || current) return;
    const tag = `${rf.sale}|${rf.seq}|${now.basis}|${now.key}`;
    if (tag === rfAsked) return;
    rfAsked = tag;
    if (now.basis === "lines") send({ action: "refund_preview_lines", sale: rf.sale, lines: now.key, seq: rf.seq });
    else send({ action: "refund_preview_amount", sale: rf.sale, cents: Number(now.key), seq: rf.seq });
  }

  function refundInputChanged(basis) {
    rfBasis = basis;
    if (model.refunding) renderPreview(model.refunding);
  }

  async function send(action) {
    try {
      const res = await fetch(`/api/${VIEW}/action`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(action),
      });
      if (!res.ok) setText("message", pick(`操作未被接受 · action refused (${res.status})`));
    } catch (err) {
      setText("message", pick("无法连接设备 · cannot reach the device"));
    }
  }

  function showEntry() { setText("entry", (Number(entry || "0") / 100).toFixed(2)); }
  function showDigits() { if ($("digits")) setText("digits", (digits + "____").slice(0, 4)); }

  function bindCashier() {
    $("keypad").addEventListener("click", (ev) => {
      const key = ev.target.closest("[data-key]")?.dataset.key;
      if (!key) return;
      entry = key === "C" ? "" : (entry + key).replace(/^0+/, "").slice(0, 9);
      showEntry();
      refundInputChanged(entry ? "amount" : tickedLines().length ? "lines" : "");
    });
    $("rf-lines").addEventListener("change", () => refundInputChanged(tickedLines().length ? "lines" : entry ? "amount" : ""));
    $("rf-hint-use").addEventListener("click", () => {
      // The cashier typed a line's list price on a discounted sale: take its paid share instead.
      const pv = model.refunding?.preview;
      if (!pv || !pv.hint_cents) return;
      entry = String(pv.hint_cents);
      showEntry();
      refundInputChanged("amount");
    });
    $("set-amount").addEventListener("click", () => send({ action: "amount", cents: Number(entry || "0") }));
    $("cash").addEventListener("click", () => send({ action: "cash" }));
    $("new").addEventListener("click", () => { entry = ""; showEntry(); send({ action: "new" }); });
    $("refund-go").addEventListener("click", () => {
      const code = $("refund-code").value.trim();
      if (code) send({ action: "refund", code });
      $("refund-code").value = "";
    });
    // The refund number shown is sent with the confirm: a double tap asks for the same refund twice
    // and the device returns the first one.
    $("rf-amount").addEventListener("click", () => {
      const rf = model.refunding;
      if (rf) send({ action: "refund_amount", sale: rf.sale, cents: Number(entry || "0"), seq: rf.seq });
    });
    $("rf-lines-go").addEventListener("click", () => {
      const rf = model.refunding;
      const lines = [...document.querySelectorAll("#rf-lines input:checked")].map((el) => el.value).join(",");
      if (rf && lines) send({ action: "refund_lines", sale: rf.sale, lines, seq: rf.seq });
    });
    $("rf-close").addEventListener("click", () => { rfBasis = ""; send({ action: "refund_close" }); });
    showEntry();
  }

  function bindCustomer() {
    $("face").addEventListener("click", () => send({ action: "face" }));
    $("confirm").addEventListener("click", () => send({ action: "confirm" }));
    $("cancel").addEventListener("click", () => send({ action: "cancel" }));
    $("phone-pad").addEventListener("click", (ev) => {
      const d = ev.target.closest("[data-digit]")?.dataset.digit;
      if (!d) return;
      digits = d === "C" ? "" : (digits + d).slice(0, 4);
      showDigits();
    });
    $("phone-ok").addEventListener("click", () => { if (digits.length === 4) send({ action: "phone", digits }); digits = ""; showDigits(); });
  }

  function setConnected(connected) {
    document.body.dataset.connected = String(connected);
    $("reconnecting").hidden = connected;
  }

  function connect() {
    source = new EventSource(`/events/${encodeURIComponent(VIEW)}`);
    source.addEventListener("open", () => setConnected(true));
    source.addEventListener("message", (event) => {
      try {
        render(JSON.parse(event.data));
        setConnected(true);
      } catch (err) {
        console.warn("pos: unreadable view model", err);
      }
    });
    source.addEventListener("error", () => {
      setConnected(false);
      // EventSource retries by itself while CONNECTING; after an HTTP error it is CLOSED: keep trying.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, RETRY_MS);
      }
    });
  }

  $("lang").addEventListener("click", () => { lang = lang === "en" ? "zh" : "en"; applyLang(); });
  if (VIEW === "pos-cashier") bindCashier(); else bindCustomer();
  window.addEventListener("contextmenu", (event) => event.preventDefault());
  render(model);
  connect();
})();
