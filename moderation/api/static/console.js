// Reviewer console: keyboard-first, every action through the JSON API with the session's CSRF token.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const page = document.body.dataset.page;
  const me = Number(document.body.dataset.userId || 0);
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const OUTCOME_KEYS = { a: "approved", r: "rejected", c: "changes_requested" };
  const OUTCOME_TEXT = { approved: "已通过", rejected: "已驳回", changes_requested: "已要求修改" };

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  async function api(method, url, body, headers) {
    const res = await fetch(url, {
      method, credentials: "same-origin",
      headers: Object.assign({ "Content-Type": "application/json", "X-CSRF-Token": csrf }, headers || {}),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { ok: res.ok, status: res.status, data };
  }

  function errorText(r) {
    const d = r.data && r.data.detail;
    if (!d) return "请求失败（" + r.status + "）";
    if (typeof d === "string") return d;
    if (d.message) return d.message;
    return JSON.stringify(d);
  }

  let toastTimer = null;
  function toast(text, opts) {
    opts = opts || {};
    const el = $("#toast");
    el.innerHTML = "";
    el.classList.toggle("bad", !!opts.bad);
    const span = document.createElement("span");
    span.textContent = text;
    el.appendChild(span);
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
    location.href = "/review/items/" + last.id;
  }

  async function claimNext() {
    const r = await api("POST", "/v1/queue/claim-next", {});
    if (!r.ok) { toast(errorText(r), { bad: true }); return; }
    if (!r.data.item) {
      if (page === "item") { flash("队列已清空，没有可领取的条目"); location.href = "/review"; }
      else toast("队列已清空，没有可领取的条目");
      return;
    }
    location.href = "/review/items/" + r.data.item.id;
  }

  function toggleHelp(force) {
    const el = $("#help");
    el.hidden = force === undefined ? !el.hidden : !force;
  }

  // -- queue page -------------------------------------------------------------------------------
  function queuePage() {
    const rows = $$("#queue tr.row");
    let index = Math.min(Number(sessionStorage.getItem("queueIndex") || 0), Math.max(rows.length - 1, 0));
    function select(i) {
      if (!rows.length) return;
      index = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r, j) => r.classList.toggle("selected", j === index));
      rows[index].scrollIntoView({ block: "nearest" });
      sessionStorage.setItem("queueIndex", String(index));
    }
    select(index);
    rows.forEach((r, i) => r.addEventListener("click", (ev) => { if (ev.target.tagName !== "INPUT") select(i); }));

    const bulkBtn = $("#bulk-open");
    function picked() { return $$("input.pick:checked").map((c) => Number(c.value)); }
    function updateBulk() { if (bulkBtn) { $("#bulk-count").textContent = picked().length; bulkBtn.disabled = !picked().length; } }
    $$("input.pick").forEach((c) => c.addEventListener("change", updateBulk));

    async function refreshHolds() {
      const r = await api("GET", "/v1/queue/holds");
      if (!r.ok) return;
      const holds = r.data.holds;
      rows.forEach((row) => {
        const who = holds[row.dataset.id];
        const holder = $(".holder", row);
        row.classList.toggle("held", !!who && who !== document.querySelector(".topbar .user").textContent);
        if (holder) holder.textContent = who ? (row.classList.contains("held") ? who : "我") + " 处理中" : "";
      });
    }
    setInterval(refreshHolds, 5000);

    document.addEventListener("click", async (ev) => {
      const t = ev.target.closest("[data-action],[data-save-view],[data-delete-view]");
      if (!t) return;
      if (t.dataset.action === "claim-next") claimNext();
      if (t.dataset.saveView !== undefined) {
        const name = prompt("视图名称");
        if (!name) return;
        const r = await api("POST", "/review/views", { name, query: t.dataset.saveView });
        if (r.ok) location.reload(); else toast(errorText(r), { bad: true });
      }
      if (t.dataset.deleteView) {
        const r = await api("DELETE", "/review/views/" + t.dataset.deleteView);
        if (r.ok) location.reload();
      }
      if (t.dataset.action === "bulk") { $("#bulk").hidden = false; }
      if (t.dataset.action === "bulk-close") { $("#bulk").hidden = true; }
      if (t.dataset.action === "bulk-preview" || t.dataset.action === "bulk-run") bulk(t.dataset.action === "bulk-preview");
    });

    async function bulk(dryRun) {
      const body = {
        item_ids: picked(),
        outcome: $('input[name="bulk-outcome"]:checked').value,
        reason_codes: $$('input[name="bulk-reason"]:checked').map((c) => c.value),
        seller_message: $("#bulk-message").value,
        dry_run: dryRun,
      };
      const r = await api("POST", "/v1/queue/bulk-decide", body);
      const box = $("#bulk-preview");
      if (!r.ok) { box.innerHTML = ""; box.textContent = errorText(r); return; }
      box.innerHTML = "";
      r.data.results.forEach((res) => {
        const line = document.createElement("div");
        line.className = res.ok ? "good" : "bad";
        line.textContent = "#" + res.item_id + " " + (res.ok ? (dryRun ? "可以处理" : "已处理") : "冲突：" + (res.message || res.code));
        box.appendChild(line);
      });
      $('[data-action="bulk-run"]').disabled = !dryRun || r.data.ok === 0;
      if (!dryRun) { flash("批量处理完成：成功 " + r.data.ok + "，冲突 " + r.data.failed); setTimeout(() => location.reload(), 1200); }
    }

    return function (key) {
      if (key === "j") select(index + 1);
      else if (key === "k") select(index - 1);
      else if (key === "Enter" || key === "o") { if (rows[index]) location.href = "/review/items/" + rows[index].dataset.id + "?claim=1"; }
      else if (key === "n") claimNext();
      else if (key === "x") { const c = rows[index] && $("input.pick", rows[index]); if (c) { c.checked = !c.checked; updateBulk(); } }
      else if (key === "u") undoLast();
      else return false;
      return true;
    };
  }

  // -- item page --------------------------------------------------------------------------------
  function itemPage() {
    const el = $("#item");
    const id = Number(el.dataset.id);
    const state = { token: el.dataset.token, version: Number(el.dataset.version), revision: Number(el.dataset.revision) };
    const heldByMe = el.dataset.heldByMe === "yes";

    if (heldByMe) {
      setInterval(async () => {
        const r = await api("POST", "/v1/queue/items/" + id + "/heartbeat", { claim_token: state.token });
        if (!r.ok) toast("租约已失效：" + errorText(r), { bad: true, ms: 20000 });
      }, 60000);
    }

    async function claim() {
      const r = await api("POST", "/v1/queue/items/" + id + "/claim");
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      location.replace("/review/items/" + id);
    }
    if (new URLSearchParams(location.search).get("claim") === "1" && !heldByMe && ["pending", "escalated", "claimed"].includes(el.dataset.status)) {
      claim();
    }

    function chosenOutcome() { const c = $('input[name="outcome"]:checked'); return c ? c.value : null; }

    async function decide(outcome, thenNext) {
      if (!heldByMe) { toast("请先领取此条（Enter）", { bad: true }); return; }
      const reasons = $$('input[name="reason"]:checked').map((c) => c.value);
      if (outcome !== "approved" && !reasons.length) { toast("驳回或要求修改需要至少一个原因（按 1–9 选择）", { bad: true }); return; }
      const body = {
        outcome, reason_codes: outcome === "approved" ? [] : reasons,
        seller_message: outcome === "approved" ? "" : $("#seller-message").value,
        internal_note: $("#internal-note").value, claim_token: state.token, version: state.version,
        listing_revision: state.revision,
      };
      const r = await api("POST", "/v1/queue/items/" + id + "/decision", body, { "Idempotency-Key": newKey() });
      if (!r.ok) { toast(errorText(r), { bad: true }); if (r.status === 409) setTimeout(() => location.reload(), 1800); return; }
      rememberDecision(id, r.data.undo_until);
      flash(OUTCOME_TEXT[outcome] + " · #" + id, { undo: true });
      if (thenNext) claimNext(); else location.reload();
    }

    async function escalate() {
      const note = prompt("升级原因（给组长）", "");
      if (note === null) return;
      const r = await api("POST", "/v1/queue/items/" + id + "/escalate", { note, claim_token: heldByMe ? state.token : null });
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      flash("已升级给组长");
      if (heldByMe) claimNext(); else location.reload();
    }

    async function skip() {
      const r = await api("POST", "/v1/queue/items/" + id + "/release", { claim_token: state.token, skip: true });
      if (!r.ok) { toast(errorText(r), { bad: true }); return; }
      claimNext();
    }

    document.addEventListener("click", (ev) => {
      const t = ev.target.closest("[data-action]");
      if (!t) return;
      const a = t.dataset.action;
      if (a === "claim") claim();
      if (a === "decide-next") decide(chosenOutcome(), true);
      if (a === "escalate") escalate();
      if (a === "skip") skip();
    });
    $$("mark.hl").forEach((m) => m.addEventListener("click", () => {
      const f = $("#finding-" + m.dataset.finding);
      if (f) f.scrollIntoView({ behavior: "smooth", block: "center" });
    }));
    const form = $(".comment-form");
    if (form) form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("#comment-text").value.trim();
      if (!text) return;
      const r = await api("POST", "/v1/queue/items/" + id + "/comments", { text });
      if (r.ok) location.reload(); else toast(errorText(r), { bad: true });
    });

    return function (key) {
      if (OUTCOME_KEYS[key]) {
        const radio = $('input[name="outcome"][value="' + OUTCOME_KEYS[key] + '"]');
        if (radio) radio.checked = true;
        decide(OUTCOME_KEYS[key], false);
      } else if (key === "n") {
        if (heldByMe) decide(chosenOutcome(), true); else claimNext();
      } else if (key === "Enter") { if (!heldByMe) claim(); }
      else if (key === "e") escalate();
      else if (key === "u") undoLast();
      else if (/^[1-9]$/.test(key)) {
        const box = $$('input[name="reason"]')[Number(key) - 1];
        if (box) box.checked = !box.checked;
      } else if (key === "j" || key === "k") {
        const marks = $$("mark.hl");
        if (!marks.length) return true;
        const cur = marks.findIndex((m) => m.classList.contains("pulse"));
        marks.forEach((m) => m.classList.remove("pulse"));
        const next = marks[(cur + (key === "j" ? 1 : -1) + marks.length) % marks.length];
        next.classList.add("pulse");
        next.scrollIntoView({ block: "center" });
      } else return false;
      return true;
    };
  }

  // -- keyboard ---------------------------------------------------------------------------------
  let handler = null;
  if (page === "queue") handler = queuePage();
  if (page === "item") handler = itemPage();
  document.addEventListener("click", (ev) => {
    if (ev.target.closest('[data-action="help"]')) { ev.preventDefault(); toggleHelp(); }
  });
  $$("form[data-csrf-form]").forEach((f) => {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = "csrf_token"; input.value = csrf;
    f.appendChild(input);
  });
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = t && (t.tagName === "INPUT" && !["checkbox", "radio"].includes(t.type) || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (ev.key === "Escape") { if (typing) t.blur(); toggleHelp(false); $$(".overlay").forEach((o) => { o.hidden = true; }); return; }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (handler && handler(ev.key)) ev.preventDefault();
  });
  showFlash();
})();
