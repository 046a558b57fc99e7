// Reviewer console: keyboard-first, every action through the JSON API with the session's CSRF token.
// Nothing is decided without an explicit choice: no outcome, reason or message is preselected; the
// machine's suggestion is a button (m) that copies it into the form, and the form is still submitted
// by hand (Enter / n), with a confirmation on critical items.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const page = document.body.dataset.page;
  const me = Number(document.body.dataset.userId || 0);
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const OUTCOME_KEYS = { a: "approved", r: "rejected", c: "changes_requested" };
  const OUTCOME_LABEL = { approved: "通过", rejected: "驳回", changes_requested: "要求修改" };
  const OUTCOME_DONE = { approved: "已通过", rejected: "已驳回", changes_requested: "已要求修改" };
  const labelsEl = $("#error-labels");
  const ERRORS = labelsEl ? JSON.parse(labelsEl.textContent) : {};

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  let expiredTimer = null;
  async function api(method, url, body, headers, extra) {
    let res;
    try {
      res = await fetch(url, Object.assign({
        method, credentials: "same-origin",
        headers: Object.assign({ "Content-Type": "application/json", "X-CSRF-Token": csrf }, headers || {}),
        body: body === undefined ? undefined : JSON.stringify(body),
      }, extra || {}));
    } catch (e) {
      return { ok: false, status: 0, data: { detail: { code: "network" } } };
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (res.status === 401 && !expiredTimer) {
      // The session expired: say so (the caller's toast), then go to the login page, back here after.
      expiredTimer = setTimeout(() => {
        location.href = "/review/login?next=" + encodeURIComponent(location.pathname + location.search);
      }, 2500);
    }
    return { ok: res.ok, status: res.status, data };
  }

  // Every message a reviewer reads is Chinese: by the answer's code, else by its status.
  function errorText(r) {
    const d = r.data && r.data.detail;
    let code = d && typeof d === "object" && !Array.isArray(d) ? d.code : null;
    if (!code && r.status === 403 && typeof d === "string" && /csrf/i.test(d)) code = "csrf";
    if (!code && r.status === 401) code = "unauthenticated";
    if (!code && r.status === 422) code = "invalid_input";
    return ERRORS[code] || ERRORS[String(r.status)] || "操作失败（" + r.status + "）";
  }

  let toastTimer = null;
  function toast(text, opts) {
    opts = opts || {};
    const el = $("#toast");
    el.innerHTML = "";
    el.classList.toggle("bad", !!opts.bad);
    el.setAttribute("role", opts.bad ? "alert" : "status");
    el.appendChild(Object.assign(document.createElement("span"), { textContent: text }));
    if (opts.undo) {
      const b = document.createElement("button");
      b.textContent = "撤销 (u)";
      b.addEventListener("click", undoLast);
      el.appendChild(b);
    }
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, opts.ms || 8000);
  }

  // Messages that survive a navigation (decide → next item, undo → back to the item).
  function flash(text, opts) { sessionStorage.setItem("flash", JSON.stringify({ text, opts: opts || {} })); }
  function showFlash() {
    const raw = sessionStorage.getItem("flash");
    if (!raw) return;
    sessionStorage.removeItem("flash");
    const f = JSON.parse(raw);
    toast(f.text, f.opts);
  }

  // -- an in-page dialog instead of prompt()/confirm() ----------------------------------------
  let dialogOpen = null;
  function dialog(opts) {
    // opts: {title, text, input: "text"|"textarea"|null, value, placeholder, ok, danger, keys: {y: true}}
    return new Promise((resolve) => {
      const el = $("#dialog"), body = $("#dialog-body"), ok = $("#dialog-ok"), cancel = $("#dialog-cancel");
      const before = document.activeElement;
      $("#dialog-title").textContent = opts.title;
      body.innerHTML = "";
      if (opts.text) opts.text.split("\n").forEach((line) => body.appendChild(Object.assign(document.createElement("p"), { textContent: line })));
      let field = null;
      if (opts.input) {
        field = document.createElement(opts.input === "textarea" ? "textarea" : "input");
        field.id = "dialog-input";
        field.maxLength = opts.maxLength || 2000;
        if (opts.input === "textarea") field.rows = 4;
        field.placeholder = opts.placeholder || "";
        field.value = opts.value || "";
        const label = Object.assign(document.createElement("label"), { textContent: opts.label || "" });
        label.appendChild(field);
        body.appendChild(label);
      }
      ok.textContent = opts.ok || "确定";
      if (opts.okKey) ok.appendChild(Object.assign(document.createElement("kbd"), { textContent: opts.okKey }));
      ok.classList.toggle("danger", !!opts.danger);
      el.hidden = false;
      function close(value) {
        // Leave no focus on the hidden dialog's button: until the browser's focus fix-up runs (late on a
        // busy machine), the next Enter would target that button and be taken as the button's own click.
        if (el.contains(document.activeElement)) document.activeElement.blur();
        el.hidden = true;
        ok.onclick = cancel.onclick = null;
        dialogOpen = null;
        if (before && before.focus) before.focus();
        resolve(value);
      }
      ok.onclick = () => {
        if (field && opts.required && !field.value.trim()) { field.focus(); return; }
        close(field ? field.value : true);
      };
      cancel.onclick = () => close(null);
      dialogOpen = {
        key(ev) {
          if (ev.key === "Escape") { ev.preventDefault(); close(null); return true; }
          const inField = ev.target === field;
          if (ev.key === "Enter" && (!inField || field.tagName === "INPUT" || ev.ctrlKey || ev.metaKey)) {
            if (ev.target && ev.target.tagName === "BUTTON" && !inField) return false; // the button's own click
            ev.preventDefault(); ok.click(); return true;
          }
          if (!inField && opts.okKey && ev.key === opts.okKey) { ev.preventDefault(); ok.click(); return true; }
          return false;
        },
      };
      (field || ok).focus();
    });
  }

  function rememberDecision(itemId, until) {
    sessionStorage.setItem("lastDecision", JSON.stringify({ id: itemId, until }));
  }

  async function undoLast() {
    const raw = sessionStorage.getItem("lastDecision");
    if (!raw) { toast("没有可撤销的决定", { bad: true }); return; }
    const last = JSON.parse(raw);
    if (last.until && new Date(last.until) < new Date()) { toast("已超过撤销时限，请联系组长撤回", { bad: true }); return; }
    const r = await api("POST", "/v1/queue/items/" + last.id + "/undo", { reclaim: true });
    if (!r.ok) { toast(errorText(r), { bad: true }); return; }
    sessionStorage.removeItem("lastDecision");
    flash("已撤销，条目已回到你手上");
    leaving = true;
    location.href = "/review/items/" + last.id;
  }

  let leaving = false; // set when this page navigates after it released or decided the item itself
  async function claimNext() {
    const r = await api("POST", "/v1/queue/claim-next", {});
    if (!r.ok) { toast(errorText(r), { bad: true }); return; }
    leaving = true;
    if (!r.data.item) {
      if (page !== "queue") { flash("队列已清空，没有可领取的条目"); location.href = "/review"; }
      else toast("队列已清空，没有可领取的条目");
      return;
    }
    location.href = "/review/items/" + r.data.item.id;
  }

  function toggleHelp(force) {
    const el = $("#help");
    el.hidden = force === undefined ? !el.hidden : !force;
  }

  // j/k over rows, Enter opens (used by the queue and the seller page)
  function rowNavigator(rows, storageKey) {
    let index = Math.min(Number(sessionStorage.getItem(storageKey) || 0), Math.max(rows.length - 1, 0));
    function select(i) {
      if (!rows.length) return;
      index = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r, j) => { r.classList.toggle("selected", j === index); r.setAttribute("aria-selected", j === index ? "true" : "false"); });
      rows[index].scrollIntoView({ block: "nearest" });
      sessionStorage.setItem(storageKey, String(index));
    }
    select(index);
    rows.forEach((r, i) => r.addEventListener("click", (ev) => { if (ev.target.tagName !== "INPUT") select(i); }));
    return { select, get index() { return index; } };
  }

  // -- queue page -------------------------------------------------------------------------------
  function queuePage() {
    const rows = $$("#queue tr.row");
    const nav = rowNavigator(rows, "queueIndex");
    const bulkBtn = $("#bulk-open");
    function picked() { return $$("input.pick:checked:not(:disabled)").map((c) => Number(c.value)); }
    function updateBulk() { if (bulkBtn) { $("#bulk-count").textContent = picked().length; bulkBtn.disabled = !picked().length; } }
    $$("input.pick").forEach((c) => c.addEventListener("change", updateBulk));
    updateBulk();

    async function refreshHolds() {
      const r = await api("GET", "/v1/queue/holds");
      if (!r.ok) return;
      const holds = r.data.holds;
      const myName = $(".topbar .user").textContent;
      rows.forEach((row) => {
        const who = holds[row.dataset.id];
        const other = !!who && who !== myName;
        row.classList.toggle("held", other);
        const holder = $(".holder", row);
        if (holder) holder.textContent = who ? (other ? who : "我") + " 处理中" : "";
        const pick = $("input.pick", row);
        if (pick && other) { pick.checked = false; pick.disabled = true; }
      });
      updateBulk();
    }
    setInterval(refreshHolds, 5000);

    async function saveView(query) {
      const name = await dialog({ title: "保存当前视图", input: "text", label: "视图名称", placeholder: "例如：化妆品 严重", required: true, maxLength: 60, ok: "保存" });
      if (!name) return;
      const r = await api("POST", "/review/views", { name: name.trim(), query });
      if (r.ok) { flash("视图已保存"); location.reload(); } else toast(errorText(r), { bad: true });
    }

    document.addEventListener("click", async (ev) => {
      const t = ev.target.closest("[data-action],[data-save-view],[data-delete-view]");
      if (!t) return;
      if (t.dataset.action === "claim-next") claimNext();
      if (t.dataset.saveView !== undefined) saveView(t.dataset.saveView);
      if (t.dataset.deleteView) {
        const r = await api("DELETE", "/review/views/" + t.dataset.deleteView);
        if (r.ok) location.reload(); else toast(errorText(r), { bad: true });
      }
      if (t.dataset.action === "bulk") openBulk();
      if (t.dataset.action === "bulk-close") closeBulk();
      if (t.dataset.action === "bulk-preview" || t.dataset.action === "bulk-run") bulk(t.dataset.action === "bulk-preview");
    });

    function openBulk() {
      if (!picked().length) { toast("先按 x 选中要批量处理的条目", { bad: true }); return; }
      $("#bulk").hidden = false;
      $('[data-action="bulk-run"]').disabled = true;
      $("#bulk-preview").textContent = "已选 " + picked().length + " 条。选择结论后按 p 预览。";
      const first = $('input[name="bulk-outcome"]');
      if (first) first.focus();
    }
    function closeBulk() { $("#bulk").hidden = true; }
    $$('input[name="bulk-outcome"], input[name="bulk-reason"], #bulk-message').forEach((e) => e.addEventListener("change", () => { $('[data-action="bulk-run"]').disabled = true; }));

    async function bulk(dryRun) {
      const outcome = $('input[name="bulk-outcome"]:checked');
      const box = $("#bulk-preview");
      if (!outcome) { box.textContent = "请先选择结论（a 通过 / r 驳回 / c 要求修改）"; return; }
      const body = {
        item_ids: picked(), outcome: outcome.value,
        reason_codes: $$('input[name="bulk-reason"]:checked').map((c) => c.value),
        seller_message: $("#bulk-message").value, dry_run: dryRun,
      };
      if (body.outcome !== "approved" && !body.reason_codes.length) { box.textContent = "驳回或要求修改需要至少一个原因（按 1–9 选择）"; return; }
      const r = await api("POST", "/v1/queue/bulk-decide", body);
      if (!r.ok) { box.textContent = errorText(r); return; }
      box.innerHTML = "";
      r.data.results.forEach((res) => {
        const line = document.createElement("div");
        line.className = res.ok ? "good" : "bad";
        line.textContent = "#" + res.item_id + " " + (res.ok ? (dryRun ? "可以处理" : "已处理") : "不能处理：" + (ERRORS[res.code] || res.message || res.code));
        box.appendChild(line);
      });
      const run = $('[data-action="bulk-run"]');
      run.disabled = !dryRun || r.data.ok === 0;
      if (dryRun && r.data.ok) box.appendChild(Object.assign(document.createElement("p"), { className: "muted", textContent: "按 Enter 对可以处理的 " + r.data.ok + " 条执行“" + OUTCOME_LABEL[body.outcome] + "”。" }));
      if (!dryRun) { flash("批量处理完成：成功 " + r.data.ok + "，不能处理 " + r.data.failed); setTimeout(() => location.reload(), 800); }
    }

    function bulkKey(ev) {
      const key = ev.key;
      const typing = ev.target.tagName === "TEXTAREA";
      if (key === "Escape") { closeBulk(); return true; }
      if (typing) return false;
      if (OUTCOME_KEYS[key]) { const r = $('input[name="bulk-outcome"][value="' + OUTCOME_KEYS[key] + '"]'); r.checked = true; r.dispatchEvent(new Event("change")); return true; }
      if (/^[1-9]$/.test(key)) { const b = $$('input[name="bulk-reason"]')[Number(key) - 1]; if (b) { b.checked = !b.checked; b.dispatchEvent(new Event("change")); } return true; }
      if (key === "p") { bulk(true); return true; }
      if (key === "Enter") { const run = $('[data-action="bulk-run"]'); if (!run.disabled) bulk(false); else bulk(true); return true; }
      return false;
    }

    return function (key, ev) {
      if (!$("#bulk") || $("#bulk").hidden) {
        if (key === "j") nav.select(nav.index + 1);
        else if (key === "k") nav.select(nav.index - 1);
        else if (key === "Enter" || key === "o") { if (rows[nav.index]) location.href = "/review/items/" + rows[nav.index].dataset.id + "?claim=1"; }
        else if (key === "n") claimNext();
        else if (key === "x") {
          const c = rows[nav.index] && $("input.pick", rows[nav.index]);
          if (c && !c.disabled) { c.checked = !c.checked; updateBulk(); }
          else if (c) toast("他人正在处理或已结束的条目不能批量处理", { bad: true });
        } else if (key === "b") { if (bulkBtn) openBulk(); }
        else if (key === "v") saveView($("[data-save-view]").dataset.saveView);
        else if (key === "/") { $("#search").focus(); $("#search").select(); }
        else if (key === "u") undoLast();
        else return false;
        return true;
      }
      return bulkKey(ev);
    };
  }

  // -- item page --------------------------------------------------------------------------------
  function itemPage() {
    const el = $("#item");
    const id = Number(el.dataset.id);
    const state = { token: el.dataset.token, version: Number(el.dataset.version), revision: Number(el.dataset.revision) };
    const heldByMe = el.dataset.heldByMe === "yes";
    const critical = el.dataset.critical === "yes";
    const findings = $$(".finding[data-index]");
    let current = -1;
    let decided = el.dataset.status === "decided";
    // Why this reviewer cannot decide here (decided, void, another reviewer holds it, or not claimed yet).
    function notMine() {
      if (decided) return "本条已决定";
      if (el.dataset.status === "superseded") return "本条已作废，不需要决定";
      if (el.dataset.heldBy) return el.dataset.heldBy + " 正在处理此条，不能领取或决定";
      return "请先领取此条（Enter）";
    }

    if (heldByMe) {
      setInterval(async () => {
        const r = await api("POST", "/v1/queue/items/" + id + "/heartbeat", { claim_token: state.token });
        if (!r.ok) toast("领取已失效：" + errorText(r), { bad: true, ms: 20000 });
      }, 30000);
    }

    // Leaving the page gives the item back (the short lease is the safety net if this never arrives);
    // a reload of the page takes it again if nobody else did meanwhile.
    window.addEventListener("pagehide", () => {
      if (!heldByMe || decided || leaving) return;
      sessionStorage.setItem("releasedOnLeave", String(id));
      fetch("/v1/queue/items/" + id + "/release", {
        method: "POST", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ claim_token: state.token }),
      }).catch(() => {});
    });
    window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
    const navEntry = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    const reclaim = navEntry && navEntry.type === "reload" && sessionStorage.getItem("releasedOnLeave") === String(id);
    sessionStorage.removeItem("releasedOnLeave");

    async function claim() {
      const r = await api("POST", "/v1/queue/items/" + id + "/claim");
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      leaving = true;
      location.replace("/review/items/" + id);
    }
    const wantsClaim = new URLSearchParams(location.search).get("claim") === "1" || reclaim;
    if (wantsClaim && !heldByMe && ["pending", "escalated", "claimed"].includes(el.dataset.status) && !$(".held-tag")) claim();
    else if (reclaim && heldByMe) {
      // This page may have been drawn before the release sent on leaving arrived: wait for it, then
      // take the item again (a reload must not cost the reviewer the item).
      (async () => {
        for (let i = 0; i < 14; i++) {
          const r = await api("GET", "/v1/queue/items/" + id);
          if (r.ok && !r.data.claim_token) { if (!r.data.held_by) claim(); return; }
          if (r.ok && r.data.claim_token !== state.token) { leaving = true; location.replace("/review/items/" + id); return; }
          await new Promise((done) => setTimeout(done, 150));
        }
      })();
    }

    function chosenOutcome() { const c = $('input[name="outcome"]:checked'); return c ? c.value : null; }
    function describeChoice() {
      const box = $("#choice");
      if (!box) return;
      const o = chosenOutcome();
      const marks = $$("input.fp:checked").length;
      box.classList.toggle("muted", !o);
      box.textContent = o ? "已选择：" + OUTCOME_LABEL[o] + (marks ? "，标记误判 " + marks + " 处" : "") + " — 按 Enter 提交，n 提交并领取下一条"
        : "尚未选择结论：按 a / r / c 选择";
    }
    $$('input[name="outcome"], input.fp').forEach((i) => i.addEventListener("change", describeChoice));
    $$("input.fp").forEach((box) => box.addEventListener("change", () => {
      const note = box.closest(".finding").querySelector(".fp-note");
      if (note) note.hidden = !box.checked;
      box.closest(".finding").classList.toggle("marked", box.checked);
    }));

    function chooseOutcome(outcome) {
      if (!heldByMe) { toast(notMine(), { bad: true }); return; }
      const radio = $('input[name="outcome"][value="' + outcome + '"]');
      radio.checked = true;
      describeChoice();
    }

    function copyMachine() {
      const b = $('[data-action="copy-machine"]');
      if (!b || !heldByMe) { toast(notMine(), { bad: true }); return; }
      chooseOutcome(b.dataset.outcome);
      const reasons = (b.dataset.reasons || "").split(",").filter(Boolean);
      $$('input[name="reason"]').forEach((c) => { c.checked = reasons.includes(c.value); });
      if (b.dataset.outcome !== "approved") $("#seller-message").value = b.dataset.message || "";
      describeChoice();
      toast("已填入机器建议：" + OUTCOME_LABEL[b.dataset.outcome] + "（请核对后提交）");
    }

    function marks() {
      return $$("input.fp:checked").map((c) => {
        const li = c.closest(".finding");
        const note = li.querySelector(".fp-note");
        return { index: Number(c.value), rule: li.dataset.rule, note: note ? note.value.trim() : "" };
      });
    }

    async function submit(thenNext) {
      if (!heldByMe) { toast(notMine(), { bad: true }); return; }
      const outcome = chosenOutcome();
      if (!outcome) { toast("请先选择结论：a 通过 / r 驳回 / c 要求修改", { bad: true }); return; }
      const reasons = $$('input[name="reason"]:checked').map((c) => c.value);
      if (outcome !== "approved" && !reasons.length) { toast("驳回或要求修改需要至少一个原因（按 1–9 选择）", { bad: true }); return; }
      const fp = marks();
      if (critical) {
        const labels = reasons.map((c) => { const l = $('input[name="reason"][value="' + c + '"]').closest("label"); return l.textContent.replace(/^\s*\d\s*/, "").trim(); });
        const ok = await dialog({
          title: "确认决定：" + OUTCOME_LABEL[outcome],
          text: "此条含严重问题（" + findings.length + " 处命中）。\n结论：" + OUTCOME_LABEL[outcome] +
            (labels.length ? "；原因：" + labels.join("、") : "") + (fp.length ? "；标记误判 " + fp.length + " 处" : ""),
          ok: "确认", okKey: "y", danger: outcome === "approved",
        });
        if (!ok) return;
      }
      const body = {
        outcome, reason_codes: outcome === "approved" ? [] : reasons,
        seller_message: outcome === "approved" ? "" : $("#seller-message").value,
        internal_note: $("#internal-note").value, claim_token: state.token, version: state.version,
        listing_revision: state.revision,
      };
      if (fp.length) body.finding_marks = fp;
      const r = await api("POST", "/v1/queue/items/" + id + "/decision", body, { "Idempotency-Key": newKey() });
      if (!r.ok) { toast(errorText(r), { bad: true }); if (r.status === 409) setTimeout(() => { leaving = true; location.reload(); }, 1800); return; }
      decided = true;
      rememberDecision(id, r.data.undo_until);
      flash(OUTCOME_DONE[outcome] + " · #" + id + (fp.length ? " · 标记误判 " + fp.length + " 处" : ""), { undo: true });
      leaving = true;
      if (thenNext) claimNext(); else location.reload();
    }

    async function escalate() {
      const note = await dialog({ title: "升级给组长", input: "textarea", label: "升级原因（组长会看到）", placeholder: "例如：疑似仿冒品牌，需要确认授权", ok: "升级", okKey: null, maxLength: 2000 });
      if (note === null) return;
      const r = await api("POST", "/v1/queue/items/" + id + "/escalate", { note, claim_token: heldByMe ? state.token : null });
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      flash("已升级给组长");
      leaving = true;
      if (heldByMe) claimNext(); else location.reload();
    }

    async function skip() {
      if (!heldByMe) { claimNext(); return; }
      const r = await api("POST", "/v1/queue/items/" + id + "/release", { claim_token: state.token, skip: true });
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      leaving = true;
      flash("已跳过 #" + id + "（未决定）");
      claimNext();
    }

    function selectFinding(i) {
      if (!findings.length) return;
      current = (i + findings.length) % findings.length;
      findings.forEach((f, j) => f.classList.toggle("current", j === current));
      $$("mark.hl").forEach((m) => m.classList.toggle("pulse", Number(m.dataset.finding) === current));
      findings[current].scrollIntoView({ block: "nearest" });
    }

    function toggleMark() {
      if (!findings.length) return;
      if (current < 0) selectFinding(0);
      const box = $("input.fp", findings[current]);
      if (!box) return;
      if (box.disabled) { toast(notMine(), { bad: true }); return; }
      box.checked = !box.checked;
      box.dispatchEvent(new Event("change"));
    }

    document.addEventListener("click", (ev) => {
      const t = ev.target.closest("[data-action]");
      if (!t) return;
      const a = t.dataset.action;
      if (a === "claim") claim();
      if (a === "submit") submit(false);
      if (a === "decide-next") submit(true);
      if (a === "escalate") escalate();
      if (a === "skip") skip();
      if (a === "copy-machine") copyMachine();
    });
    $$("mark.hl").forEach((m) => m.addEventListener("click", () => selectFinding(Number(m.dataset.finding))));
    const form = $(".comment-form");
    if (form) form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("#comment-text").value.trim();
      if (!text) return;
      const r = await api("POST", "/v1/queue/items/" + id + "/comments", { text });
      if (r.ok) { leaving = true; location.reload(); } else toast(errorText(r), { bad: true });
    });

    return function (key) {
      if (OUTCOME_KEYS[key]) chooseOutcome(OUTCOME_KEYS[key]);
      else if (key === "Enter") { if (heldByMe) submit(false); else if (!decided && $('[data-action="claim"]')) claim(); else toast(notMine(), { bad: true }); }
      else if (key === "n") { if (heldByMe) submit(true); else claimNext(); }
      else if (key === "s") skip();
      else if (key === "m") copyMachine();
      else if (key === "e") { if ($('[data-action="escalate"]')) escalate(); }
      else if (key === "u") undoLast();
      else if (key === "x") toggleMark();
      else if (key === "g") { const s = $("#seller-link"); if (s) location.href = s.href; }
      else if (key === "b") location.href = "/review";
      else if (/^[1-9]$/.test(key)) {
        const box = $$('input[name="reason"]')[Number(key) - 1];
        if (box && !box.disabled) { box.checked = !box.checked; describeChoice(); }
        else if (box) toast(notMine(), { bad: true });
      } else if (key === "j" || key === "k") selectFinding(current + (key === "j" ? 1 : -1));
      else return false;
      return true;
    };
  }

  // -- seller page ------------------------------------------------------------------------------
  function sellerPage() {
    const el = $("#seller");
    const seller = el.dataset.seller;
    const rows = $$("#queue tr.row");
    const nav = rowNavigator(rows, "sellerIndex:" + seller);
    async function act(kind) {
      const held = el.dataset.held === "yes";
      if (kind === "hold" && held) kind = "release";
      let note = "";
      if (kind === "warn") {
        note = await dialog({ title: "警告商家 " + seller, input: "textarea", label: "给商家的警告（商家会看到）", placeholder: "例如：多次使用绝对化用语，再次违规将暂停店铺", required: true, ok: "发出警告" });
        if (note === null) return;
      } else {
        const ok = await dialog({
          title: kind === "hold" ? "暂停商家 " + seller + " 的全部商品？" : "恢复商家 " + seller + " 的商品？",
          text: kind === "hold" ? "该商家在队列中的待处理条目会提到最高优先级，对接方会下架其商品直到恢复。" : "对接方会恢复其商品的上架。",
          input: "text", label: "原因（记录在案）", required: kind === "hold", ok: kind === "hold" ? "暂停" : "恢复", danger: kind === "hold",
        });
        if (ok === null) return;
        note = ok;
      }
      const r = await api("POST", "/v1/sellers/" + encodeURIComponent(seller) + "/actions", { kind, note });
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      flash({ hold: "已暂停该商家的全部商品", release: "已恢复该商家的商品", warn: "已警告商家" }[kind]);
      location.reload();
    }
    document.addEventListener("click", (ev) => {
      const t = ev.target.closest("[data-seller-action]");
      if (t) act(t.dataset.sellerAction);
    });
    const canAct = !!$("[data-seller-action]");
    return function (key) {
      if (key === "j") nav.select(nav.index + 1);
      else if (key === "k") nav.select(nav.index - 1);
      else if (key === "Enter" || key === "o") { if (rows[nav.index]) location.href = "/review/items/" + rows[nav.index].dataset.id; }
      else if (key === "h" && canAct) act("hold");
      else if (key === "w" && canAct) act("warn");
      else if (key === "b") location.href = "/review";
      else return false;
      return true;
    };
  }

  // -- keyboard ---------------------------------------------------------------------------------
  let handler = null;
  if (page === "queue") handler = queuePage();
  if (page === "item") handler = itemPage();
  if (page === "seller") handler = sellerPage();
  if (page === "error" || page === "stats") handler = (key) => { if (key === "b") { location.href = "/review"; return true; } return false; };
  document.addEventListener("click", (ev) => {
    if (ev.target.closest('[data-action="help"]')) { ev.preventDefault(); toggleHelp(); }
  });
  $$("form[data-csrf-form]").forEach((f) => {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = "csrf_token"; input.value = csrf;
    f.appendChild(input);
  });
  document.addEventListener("keydown", (ev) => {
    if (dialogOpen) { if (dialogOpen.key(ev)) ev.stopPropagation(); return; }
    const t = ev.target;
    const typing = t && (t.tagName === "INPUT" && !["checkbox", "radio"].includes(t.type) || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (ev.key === "Escape") {
      if (typing) t.blur();
      toggleHelp(false);
      if ($("#bulk") && !$("#bulk").hidden && handler) { handler("Escape", ev); return; }
      return;
    }
    const overlayOpen = $("#bulk") && !$("#bulk").hidden;
    if (overlayOpen && handler && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      if (t.tagName === "TEXTAREA") return;
      if (ev.key === "Enter" && t.tagName === "BUTTON") return;
      if (handler(ev.key, ev)) ev.preventDefault();
      return;
    }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Enter" && t && (t.tagName === "BUTTON" || t.tagName === "A")) return; // the element's own action
    if (ev.key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (!$("#help").hidden) return;
    if (handler && handler(ev.key, ev)) ev.preventDefault();
  });
  showFlash();
})();
