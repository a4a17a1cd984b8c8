// The lane screen: what a self-checkout customer (or a cashier) sees and touches.
//
// A client of the kiosk API and nothing else: it reads the lane from GET /api/screen,
// GET /api/events (server-sent events; the first one is the whole lane) and acts with
// the API's POST endpoints. It reconnects by itself when the daemon restarts. Every
// word comes from the catalogue of the language shown (/screen/i18n/<lang>.json),
// looked up by t(key). No framework, no build step, nothing inline (the page's
// Content-Security-Policy forbids it), and no text from the lane is ever put into the
// page as HTML.
"use strict";

(function () {
  const STAFF_MODES = new Set(["return", "receiving", "counting", "write_off", "manager_needed"]);
  const QUIET_CODES = new Set(["printed", "device", "disconnected", "reconnected"]);
  const s = {
    info: null, // GET /api/screen
    lane: null, // the last lane snapshot
    catalogues: {},
    lang: "en",
    connected: false,
    source: null,
    retryMs: 500,
    verdict: null, // the last verdict worth showing, and when it came
    verdictAt: 0,
    paying: false, // customer: on the payment step
    tendering: false, // customer: the tender is on its way
    done: null, // customer: {invoice, at, printed} after a sale completed
    pin: null, // {purpose: "release" | "manager", digits, message}
    selected: null, // cashier: the basket line chosen (1 = first)
    confirmCancel: false,
    payDialog: false,
    lastTouch: Date.now(),
    error: null, // cashier: the last request the lane did not answer
  };

  const $ = (id) => document.getElementById(id);
  const customer = () => s.info !== null && s.info.mode === "customer";

  // ------------------------------------------------------------------ words

  function has(key) {
    const own = s.catalogues[s.lang];
    return own !== undefined && Object.prototype.hasOwnProperty.call(own, key);
  }

  function t(key, params) {
    let text = has(key) ? s.catalogues[s.lang][key] : null;
    if (text === null) {
      const english = s.catalogues.en || {};
      text = Object.prototype.hasOwnProperty.call(english, key) ? english[key] : key;
    }
    if (params) {
      text = text.replace(/\{(\w+)\}/g, (whole, name) =>
        Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole);
    }
    return text;
  }

  function verdictWords(code) {
    return has("verdict." + code) ? t("verdict." + code) : t("verdict.unknown");
  }

  function countWords(count) {
    const rule = new Intl.PluralRules(s.lang).select(count) === "one" ? "one" : "other";
    return t("basket.count_" + rule, { count: count });
  }

  function money(amount) {
    const value = Number(amount);
    if (!Number.isFinite(value)) return String(amount);
    const currency = (s.info && s.info.currency) || "";
    if (/^[A-Z]{3}$/.test(currency)) {
      try {
        return new Intl.NumberFormat(s.lang, { style: "currency", currency: currency }).format(value);
      } catch (ignored) {
        // an ISO-looking code Intl does not know: the plain number and the code
      }
    }
    const number = new Intl.NumberFormat(s.lang, {
      minimumFractionDigits: 2, maximumFractionDigits: 2,
    }).format(value);
    return currency ? number + "\u00a0" + currency : number;
  }

  function translatePage() {
    document.documentElement.lang = s.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    for (const node of document.querySelectorAll("[data-i18n-alt]")) {
      node.alt = t(node.dataset.i18nAlt);
    }
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    }
    document.title = t("app.title");
  }

  function setLanguage(lang) {
    if (!s.catalogues[lang] || lang === s.lang) return;
    s.lang = lang;
    translatePage();
    render();
  }

  // ------------------------------------------------------------ talking to posd

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      return { status: 0, body: { ok: false, error: String(error) } };
    }
    let answer = { ok: false, error: "status " + response.status };
    try {
      answer = await response.json();
    } catch (ignored) {
      // not JSON: keep the status
    }
    return { status: response.status, body: answer };
  }

  async function command(name, argument) {
    const answer = await post("/api/commands", { command: name, argument: argument || "" });
    if (answer.status !== 200) {
      s.error = answer.body.error || "status " + answer.status;
      render();
    } else {
      s.error = null;
    }
    return answer;
  }

  function connect() {
    if (s.source !== null) s.source.close();
    const source = new EventSource("/api/events");
    s.source = source;
    source.addEventListener("lane", (message) => {
      const data = JSON.parse(message.data);
      if (!s.connected && s.lane !== null) checkSettings(); // back after a break
      s.connected = true;
      s.retryMs = 500;
      s.verdict = null; // what was said before the stream broke is not news now
      takeLane(data.lane);
      render();
    });
    source.addEventListener("verdict", (message) => {
      onEvent(JSON.parse(message.data));
    });
    source.addEventListener("error", () => {
      // The daemon stopped or restarts: say so, and try again by ourselves.
      source.close();
      if (s.source !== source) return;
      s.source = null;
      s.connected = false;
      render();
      setTimeout(connect, s.retryMs);
      s.retryMs = Math.min(s.retryMs * 2, 4000);
    });
  }

  // posd may have come back with another configuration (a language, cashier or
  // customer): start the page afresh with it.
  async function checkSettings() {
    try {
      const now = (await getJSON("/api/screen")).screen;
      if (JSON.stringify(now) !== JSON.stringify(s.info)) window.location.reload();
    } catch (ignored) {
      // not answering again: the event stream's next break says so
    }
  }

  function takeLane(lane) {
    const before = s.lane;
    s.lane = lane;
    if (!lane) return;
    const lines = lane.basket ? lane.basket.lines.length : 0;
    if (lines > 0) s.done = null;
    if (lines === 0 || lane.mode !== "in_sale") {
      if (!s.tendering) s.paying = false;
    }
    if (s.selected !== null && s.selected > lines) s.selected = null;
    if (before && before.mode !== lane.mode) s.confirmCancel = false;
    if (s.pin && s.pin.purpose === "release" && lane.mode !== "attendant_needed") s.pin = null;
    if (s.pin && s.pin.purpose === "manager" && lane.mode !== "manager_needed") s.pin = null;
  }

  function onEvent(event) {
    if (event.lane) takeLane(event.lane);
    const verdict = event.verdict;
    if (verdict) {
      if (verdict.code === "sale_complete") {
        s.done = { invoice: s.lane ? s.lane.last_receipt : null, at: Date.now(), printed: false };
        s.paying = false;
        s.tendering = false;
      }
      if (verdict.code === "printed" && s.done) s.done.printed = true;
      if (customer()) {
        if (verdict.outcome === "refused") {
          s.verdict = verdict;
          s.verdictAt = Date.now();
        } else if (verdict.outcome === "accepted" && verdict.code !== "printed") {
          s.verdict = null;
        }
      } else if (!QUIET_CODES.has(verdict.code)) {
        s.verdict = verdict;
        s.verdictAt = Date.now();
        s.error = null;
      }
    }
    render();
  }

  // --------------------------------------------------------------- the screen

  function chooseScreen() {
    const lane = s.lane;
    if (!s.connected || lane === null) return "offline";
    if (lane.out_of_service) return "closed";
    if (!customer()) return "cashier";
    if (lane.mode === "attendant_needed") return "locked";
    if (STAFF_MODES.has(lane.mode)) return "staff";
    if (lane.mode === "awaiting_serial") return "serial";
    const lines = lane.basket ? lane.basket.lines.length : 0;
    if (lines > 0) return s.paying ? "pay" : "basket";
    if (s.done) return "done";
    return "welcome";
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function render() {
    if (s.info === null) return;
    const screen = chooseScreen();
    document.body.dataset.screen = screen;
    document.body.classList.remove("booting");
    for (const section of document.querySelectorAll("main > .screen")) {
      section.hidden = section.id !== "screen-" + screen;
    }
    const fill = {
      serial: renderSerial, basket: renderBasket, pay: renderPay, done: renderDone,
      locked: renderLocked, staff: renderStaff, cashier: renderCashier,
    }[screen];
    if (fill) fill();
    renderTop(screen);
    renderBanner(screen);
    renderNotice(screen);
    renderPractice(screen);
    renderPin(screen);
    renderPayDialog(screen);
  }

  function renderTop(screen) {
    $("store").textContent = s.info.store_name;
    const nav = $("languages");
    nav.replaceChildren();
    if (s.info.languages.length > 1 && screen !== "cashier") {
      for (const lang of s.info.languages) {
        const button = make("button", "language", (s.catalogues[lang] || {})["lang.name"] || lang);
        button.type = "button";
        button.lang = lang;
        button.dataset.lang = lang;
        button.setAttribute("aria-pressed", String(lang === s.lang));
        nav.append(button);
      }
    }
    $("help").hidden = !customer() || !["welcome", "basket", "serial", "pay"].includes(screen);
    const trouble = s.lane && Object.keys(s.lane.devices || {}).length > 0;
    $("devices").hidden = !(customer() && trouble && screen !== "offline");
  }

  function renderSerial() {
    const lane = s.lane;
    $("serial-product").textContent = t("serial.product", { product: lane.awaiting_serial_of || "" });
    const where = { return: "serial.return", receiving: "serial.receiving" }[lane.serial_for];
    $("serial-where").textContent = t(where || "serial.where");
  }

  function renderBasket() {
    const basket = s.lane.basket;
    const list = $("basket-lines");
    list.replaceChildren();
    basket.lines.forEach((line) => {
      const item = make("li", "line");
      item.dataset.line = String(line.line);
      const what = make("div", "what");
      what.append(make("span", "name", line.name));
      if (line.serial_shown) {
        what.append(make("span", "serial", t("basket.serial", { serial: line.serial_shown })));
      }
      item.append(what);
      item.append(make("span", "price", money(line.price)));
      const remove = make("button", "remove quiet", t("button.remove"));
      remove.type = "button";
      remove.dataset.act = "remove";
      remove.dataset.line = String(line.line);
      item.append(remove);
      list.append(item);
    });
    const last = list.lastElementChild;
    if (last) last.scrollIntoView({ block: "nearest" });
    $("basket-count").textContent = countWords(basket.lines.length);
    $("basket-total").textContent = money(basket.total);
  }

  function renderPay() {
    $("pay-total").textContent = money(s.lane.basket.total);
    $("pay-waiting").hidden = !s.tendering;
    $("pay-card").disabled = s.tendering;
  }

  function renderDone() {
    const done = s.done;
    let words = t("done.printing");
    if (s.lane.receipt_waiting && s.lane.receipt_waiting === done.invoice) {
      words = t("done.receipt_later");
    } else if (done.printed) {
      words = t("done.receipt");
    }
    $("done-receipt").textContent = words;
    $("done-invoice").textContent = done.invoice ? t("done.invoice", { invoice: done.invoice }) : "";
  }

  function renderLocked() {
    const why = s.lane.attendant_needed;
    $("locked-reason").textContent = why ? verdictWords(why.code) : "";
  }

  function renderStaff() {
    $("staff-mode").textContent = t("mode." + s.lane.mode);
  }

  function renderCashier() {
    const lane = s.lane;
    $("c-light").className = "light light-" + lane.light;
    let mode = t("mode." + lane.mode);
    if (lane.mode === "awaiting_serial" && lane.awaiting_serial_of) {
      mode += ": " + lane.awaiting_serial_of;
    }
    $("c-mode").textContent = mode;
    let documentText = "";
    if (lane.mode === "counting" && lane.count) {
      documentText = t("cashier.document", { document: lane.count.number || "" }) + " \u2022 " +
        t("cashier.scanned", { count: lane.count.scanned });
    } else if (lane.mode === "receiving" && lane.document) {
      documentText = t("cashier.document", { document: lane.document }) + " \u2022 " +
        t("cashier.received", { count: lane.received });
    } else if (lane.document) {
      documentText = t("cashier.invoice", { invoice: lane.document });
    } else if (lane.basket) {
      documentText = t("cashier.invoice", { invoice: lane.basket.invoice });
    }
    $("c-document").textContent = documentText;
    $("c-devices").textContent = Object.entries(lane.devices || {})
      .map(([name, why]) => name + ": " + why).join("; ");
    const body = $("c-lines");
    body.replaceChildren();
    const lines = lane.basket ? lane.basket.lines : [];
    for (const line of lines) {
      const row = make("tr");
      row.dataset.line = String(line.line);
      if (s.selected === line.line) row.className = "selected";
      row.append(make("td", "number", String(line.line)), make("td", "", line.name),
        make("td", "serial", line.serial || ""), make("td", "money", money(line.price)));
      body.append(row);
    }
    $("c-total-amount").textContent = money(lane.basket ? lane.basket.total : "0");
  }

  function renderBanner(screen) {
    const banner = $("banner");
    const message = $("c-message");
    if (screen === "cashier") {
      banner.hidden = true;
      const v = s.verdict;
      message.hidden = !(v || s.error || s.confirmCancel || (s.lane && s.lane.notice));
      message.className = v ? "outcome-" + v.outcome : "outcome-prompt";
      if (s.confirmCancel) {
        $("c-words").textContent = t("cashier.confirm_cancel");
        $("c-detail").textContent = "";
      } else if (s.error) {
        $("c-words").textContent = t("cashier.no_answer", { error: s.error });
        $("c-detail").textContent = "";
      } else if (v) {
        $("c-words").textContent = has("verdict." + v.code) ? t("verdict." + v.code) : "";
        $("c-detail").textContent = v.message;
      } else if (s.lane && s.lane.notice) {
        $("c-words").textContent = t("verdict." + s.lane.notice.code);
        $("c-detail").textContent = s.lane.notice.message;
      }
      return;
    }
    message.hidden = true;
    const show = s.verdict && ["welcome", "basket", "serial", "pay"].includes(screen);
    banner.hidden = !show;
    if (show) {
      banner.dataset.code = s.verdict.code;
      banner.textContent = verdictWords(s.verdict.code);
    }
  }

  function renderNotice(screen) {
    const notice = $("notice");
    const said = s.lane && s.lane.notice;
    const show = Boolean(said) && customer() && ["welcome", "basket"].includes(screen);
    notice.hidden = !show;
    if (show) {
      notice.dataset.code = said.code;
      notice.textContent = t("notice." + said.code, {
        invoice: said.invoice, total: money(said.total),
      });
    }
  }

  function renderPractice(screen) {
    const tray = $("practice");
    const items = s.info.practice_items || [];
    tray.hidden = items.length === 0 || screen === "offline" || screen === "closed";
    if (tray.hidden || tray.dataset.lang === s.lang) return;
    tray.dataset.lang = s.lang;
    const box = $("practice-items");
    box.replaceChildren();
    for (const item of items) {
      const button = make("button", "practice practice-" + item.kind);
      button.type = "button";
      button.dataset.barcode = item.barcode;
      button.append(make("span", "kind", t("practice.kind." + item.kind)),
        make("span", "label", item.label));
      box.append(button);
    }
  }

  function renderPin(screen) {
    const pad = $("pinpad");
    if (screen === "cashier") {
      const mode = s.lane.mode;
      const purpose = { attendant_needed: "release", manager_needed: "manager" }[mode];
      if (purpose && (!s.pin || s.pin.purpose !== purpose)) {
        s.pin = { purpose: purpose, digits: "", message: "" };
      }
      if (!purpose) s.pin = null;
    } else if (screen !== "locked") {
      s.pin = null;
    }
    pad.hidden = s.pin === null;
    pad.className = screen === "cashier" ? "docked" : "overlay";
    if (s.pin === null) return;
    $("pin-title").textContent = t(s.pin.purpose === "manager" ? "pin.manager_title" : "pin.title");
    let hint = s.pin.purpose === "manager" ? t("cashier.approve") : t("locked.staff");
    if (screen === "cashier" && s.pin.purpose === "release") hint = t("cashier.release");
    $("pin-hint").textContent = hint;
    $("pin-dots").textContent = "\u25cf".repeat(s.pin.digits.length) || "\u00a0";
    $("pin-message").textContent = s.pin.message;
  }

  function renderPayDialog(screen) {
    const open = s.payDialog && screen === "cashier" && s.lane.basket && s.lane.basket.lines.length;
    $("paydialog").hidden = !open;
    if (open) $("paydialog-total").textContent = money(s.lane.basket.total);
    else s.payDialog = false;
  }

  // ------------------------------------------------------------ what people do

  async function sendPin() {
    const pin = s.pin;
    if (pin === null || pin.digits.length === 0) return;
    const path = pin.purpose === "manager" ? "/api/manager/approve" : "/api/attendant/release";
    const answer = await post(path, { pin: pin.digits });
    pin.digits = "";
    if (answer.status === 200 && answer.body.ok) {
      pin.message = "";
    } else if (answer.status === 429) {
      pin.message = t("pin.blocked");
    } else if (answer.status === 403) {
      pin.message = t("pin.wrong");
    } else {
      pin.message = t("pin.failed");
    }
    render();
  }

  function pinKey(key) {
    if (s.pin === null) return false;
    if (/^[0-9]$/.test(key)) {
      if (s.pin.digits.length < 12) s.pin.digits += key;
      s.pin.message = "";
    } else if (key === "Backspace") {
      s.pin.digits = s.pin.digits.slice(0, -1);
    } else if (key === "Enter") {
      sendPin();
    } else {
      return false;
    }
    render();
    return true;
  }

  async function payByCard() {
    s.tendering = true;
    render();
    const answer = await command("tender", "CARD");
    s.tendering = false;
    if (answer.status !== 200) {
      s.paying = false;
    }
    render();
  }

  function voidLine() {
    command("void", s.selected === null ? "" : String(s.selected));
    s.selected = null;
  }

  function cancelPressed() {
    if (s.payDialog) {
      s.payDialog = false;
    } else if (s.lane && s.lane.mode === "manager_needed") {
      command("cancel");
    } else if (s.confirmCancel) {
      s.confirmCancel = false;
      command("cancel");
    } else {
      s.confirmCancel = true;
    }
    render();
  }

  const ACTIONS = {
    help: () => command("help"),
    pay: () => { s.paying = true; },
    back: () => { s.paying = false; },
    card: payByCard,
    remove: (target) => command("void", target.dataset.line),
    staff: () => { s.pin = { purpose: "release", digits: "", message: "" }; },
    cancel: () => command("cancel"),
    done: () => command("done"),
    "pin-clear": () => { if (s.pin) { s.pin.digits = ""; s.pin.message = ""; } },
    "pin-ok": sendPin,
    "pin-close": () => {
      if (s.pin && s.pin.purpose === "manager") command("cancel");
      s.pin = null;
    },
    "c-pay": () => { s.payDialog = true; },
    "c-pay-close": () => { s.payDialog = false; },
    "c-card": () => { s.payDialog = false; command("tender", "CARD"); },
    "c-void": voidLine,
    "c-return": () => command("return"),
    "c-count": () => command("count"),
    "c-reprint": () => command("reprint"),
    "c-cancel": cancelPressed,
  };

  function clicked(event) {
    s.lastTouch = Date.now();
    const target = event.target.closest("button, tr[data-line]");
    if (target === null) return;
    if (target.dataset.lang) {
      setLanguage(target.dataset.lang);
      return;
    }
    if (target.dataset.digit) {
      pinKey(target.dataset.digit);
      return;
    }
    if (target.dataset.barcode) {
      post("/api/scan", { text: target.dataset.barcode });
      return;
    }
    if (target.tagName === "TR") {
      const number = Number(target.dataset.line);
      s.selected = s.selected === number ? null : number;
      render();
      return;
    }
    const action = ACTIONS[target.dataset.act];
    if (action) {
      action(target);
      render();
    }
  }

  const SHORTCUTS = {
    F2: () => (s.payDialog ? ACTIONS["c-card"]() : ACTIONS["c-pay"]()),
    F3: voidLine,
    F4: ACTIONS["c-return"],
    F6: ACTIONS["c-count"],
    F7: ACTIONS["c-reprint"],
    F8: ACTIONS.help,
    F9: ACTIONS.done,
    Escape: cancelPressed,
    ArrowUp: () => moveSelection(-1),
    ArrowDown: () => moveSelection(1),
    "/": () => $("c-barcode").focus(),
  };

  function moveSelection(step) {
    const lines = s.lane && s.lane.basket ? s.lane.basket.lines.length : 0;
    if (lines === 0) return;
    const from = s.selected === null ? (step > 0 ? 0 : lines + 1) : s.selected;
    s.selected = Math.min(Math.max(from + step, 1), lines);
  }

  function keyPressed(event) {
    s.lastTouch = Date.now();
    const typing = event.target instanceof HTMLInputElement;
    if (!typing && pinKey(event.key)) {
      event.preventDefault();
      return;
    }
    if (customer() || s.info === null) {
      if (event.key === "Escape" && s.pin) {
        s.pin = null;
        render();
      }
      return;
    }
    if (typing && event.key.length === 1 && event.key !== "/") return;
    if (typing && event.key === "/") return;
    const shortcut = SHORTCUTS[event.key];
    if (shortcut === undefined) return;
    event.preventDefault();
    if (event.key !== "Escape") s.confirmCancel = false;
    shortcut();
    render();
  }

  function entered(event) {
    event.preventDefault();
    const field = $("c-barcode");
    const text = field.value.trim();
    field.value = "";
    if (text) post("/api/scan", { text: text });
  }

  function paidCash(event) {
    event.preventDefault();
    const amount = $("paydialog-amount").value.trim().replace(",", ".");
    $("paydialog-amount").value = "";
    s.payDialog = false;
    command("tender", amount ? "CASH:" + amount : "CASH");
    render();
  }

  // Back to the start when a customer has finished or walked away; a new customer
  // starts in the lane's own language.
  function tick() {
    if (s.info === null) return;
    const now = Date.now();
    const idleMs = s.info.idle_timeout_s * 1000;
    let changed = false;
    if (s.done && now - s.done.at > idleMs) {
      s.done = null;
      changed = true;
    }
    if (s.verdict && customer() && now - s.verdictAt > idleMs) {
      s.verdict = null;
      changed = true;
    }
    if (s.paying && !s.tendering && now - s.lastTouch > 3 * idleMs) {
      s.paying = false;
      changed = true;
    }
    const screen = chooseScreen();
    if (customer() && screen === "welcome" && now - s.lastTouch > idleMs &&
        s.lang !== s.info.language) {
      s.lang = s.info.language;
      translatePage();
      changed = true;
    }
    if (changed) render();
  }

  async function boot() {
    document.addEventListener("click", clicked);
    document.addEventListener("keydown", keyPressed);
    $("c-entry").addEventListener("submit", entered);
    $("paydialog-form").addEventListener("submit", paidCash);
    let info = null;
    while (info === null) {
      try {
        info = (await getJSON("/api/screen")).screen;
      } catch (error) {
        document.body.dataset.screen = "offline";
        $("screen-offline").hidden = false;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    const names = Array.from(new Set(["en", ...info.languages]));
    for (const name of names) {
      s.catalogues[name] = await getJSON(info.catalogues[name] || "/screen/i18n/" + name + ".json");
    }
    s.info = info;
    s.lang = info.language;
    document.body.classList.add("mode-" + info.mode);
    translatePage();
    render();
    connect();
    setInterval(tick, 500);
  }

  boot();
})();
