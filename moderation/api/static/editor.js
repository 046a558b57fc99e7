// The listing-editor demo (/editor): check.js on two fields, the findings list and the corrected listing.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = $("#ed-status"), list = $("#ed-findings"), fixed = $("#ed-fixed"), applyAll = $("#ed-apply-all");
  const FIELD = { title: "标题", description: "描述" };
  let started = 0;

  // The server's messages are for integrators (English); the seller reads why in Chinese.
  function failure(err) {
    const st = err && err.status;
    if (st === 401) return "登录已过期，请重新登录后再检查";
    if (st === 403) return "没有检查的权限，或页面已过期：请刷新页面";
    if (st === 413 || st === 422) return "内容太长或格式不对，无法检查";
    if (st === 429) return "检查太频繁，请稍候再试";
    if (st === 503 || st === 504) return "检查服务繁忙，请稍候再试";
    if (!st) return "网络连接失败，请检查网络后重试";
    return "检查失败（错误代码 " + st + "）";
  }

  function text(tag, cls, value) { const e = document.createElement(tag); if (cls) e.className = cls; e.textContent = value; return e; }

  const mc = ModerationCheck.attach({
    fields: { title: $("#ed-title"), description: $("#ed-description") },
    category: () => $("#ed-category").value,
    csrf,
    checkNow: false,
    onPending() { started = performance.now(); status.classList.add("busy"); },
    onError(err) { status.classList.remove("busy"); status.className = "ed-status bad"; status.textContent = failure(err); },
    onResult(result, controller) { render(result, controller); },
  });
  $("#ed-category").addEventListener("change", () => mc.check());
  applyAll.addEventListener("click", () => mc.applyAll());

  function render(result, controller) {
    const ms = Math.round(performance.now() - started);
    status.className = "ed-status v-" + (result.verdict || "pass");
    if (result.error) {
      status.textContent = result.error.code === "empty_text" ? "请输入标题或描述" : "无法检查：" + result.error.message;
      return;
    }
    const n = result.findings.length;
    status.textContent = ModerationCheck.VERDICT[result.verdict] + (n ? " · " + n + " 处问题" : " · 未发现违规用语") + " · 用时 " + ms + " 毫秒";
    $("#ed-count").textContent = n ? "（" + n + "）" : "";
    list.innerHTML = "";
    if (!n) list.appendChild(text("li", "muted", "未发现违规用语。"));
    const edits = (result.rewrite && result.rewrite.edits) || [];
    result.findings.forEach((f) => {
      const li = document.createElement("li");
      const editIndex = edits.findIndex((e) => e.field === f.field && e.start <= f.start && f.end <= e.end);
      const card = controller.card({ finding: f, edit: editIndex >= 0 ? editIndex : null });
      card.insertBefore(text("div", "muted small", (FIELD[f.field] || f.field) + " 第 " + (f.start + 1) + " 字起"), card.firstChild);
      li.appendChild(card);
      list.appendChild(li);
    });
    renderFixed(result.rewrite);
  }

  function renderFixed(rw) {
    fixed.innerHTML = "";
    applyAll.disabled = !rw || !rw.edits.length;
    if (!rw || !rw.edits.length) {
      fixed.appendChild(text("p", "muted", "没有可以自动修改的用语" + (rw && rw.remaining.length ? "；其余问题请按建议手动修改。" : "。")));
      return;
    }
    ["title", "description"].forEach((name) => {
      if (!rw.listing[name]) return;
      const row = document.createElement("div");
      row.className = "ed-fixed-field";
      row.appendChild(text("div", "muted small", FIELD[name]));
      row.appendChild(text("div", "ed-fixed-text", rw.listing[name]));
      fixed.appendChild(row);
    });
    fixed.appendChild(text("p", rw.clean ? "good" : "warn", rw.clean ? "改写后重新检查：没有问题。" :
      "改写后仍有 " + rw.remaining.length + " 处需要手动修改：" + rw.remaining.map((r) => "“" + r.text + "”").join("、")));
  }
  $("#ed-title").focus();
})();
