/*! check.js — listing compliance checks as the seller types. No dependencies, no build step.
 *
 *   <link rel="stylesheet" href="/static/check.css">
 *   <script src="/static/check.js"></script>
 *   const mc = ModerationCheck.attach({
 *     fields: { title: document.querySelector("#title"), description: document.querySelector("#desc") },
 *     category: () => document.querySelector("#category").value,   // or a string
 *     token: "mod_…",            // an API token (Authorization: Bearer), or
 *     csrf: "…",                 // a console session's CSRF token (cookie credentials)
 *     onResult: (result) => {},  // every fresh Check result (with result.rewrite)
 *   });
 *   mc.check();  mc.apply(editIndex);  mc.applyAll();  mc.result;  mc.detach();
 *
 * Each field is checked with a debounced POST /v1/check (120 ms after the last keystroke, older answers
 * are dropped); each finding is underlined in place (a mirror layer behind the textarea), hovering a
 * mark or putting the caret in it shows the article, the reason and the suggestion, and a finding its
 * rule can fix has a button that rewrites it (result.rewrite.edits). Offsets in results count Unicode
 * code points; they are converted to the browser's UTF-16 indices here.
 */
(function (root) {
  "use strict";

  var SEVERITY = { critical: "严重", high: "高", medium: "中", low: "提示" };
  var VERDICT = { pass: "可以发布", review: "需人工审核", block: "不能发布" };

  function cpToIndex(text, cp) {
    // code point offset → UTF-16 index (emoji and other astral characters are two units in JS)
    var i = 0;
    for (var n = 0; n < cp && i < text.length; n++) {
      var c = text.charCodeAt(i);
      i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
    }
    return i;
  }

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  /** A client for POST /v1/check. */
  function ModerationCheck(options) {
    this.options = options || {};
    this.endpoint = this.options.endpoint || "/v1/check";
  }

  ModerationCheck.prototype.check = function (listing, signal) {
    var headers = { "Content-Type": "application/json" };
    if (this.options.token) headers.Authorization = "Bearer " + this.options.token;
    if (this.options.csrf) headers["X-CSRF-Token"] = this.options.csrf;
    var extra = this.options.headers || {};
    for (var k in extra) if (Object.prototype.hasOwnProperty.call(extra, k)) headers[k] = extra[k];
    return fetch(this.endpoint, {
      method: "POST", headers: headers, body: JSON.stringify(listing), signal: signal,
      credentials: this.options.token ? "omit" : "same-origin",
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (data) {
        if (!res.ok) {
          var d = data && data.detail;
          var msg = typeof d === "string" ? d : (d && d.message) || ("检查失败（" + res.status + "）");
          var err = new Error(msg);
          err.status = res.status;
          throw err;
        }
        return data;
      });
    });
  };

  /** Underline findings in the given fields as the seller types. */
  ModerationCheck.attach = function (options) {
    return new Controller(new ModerationCheck(options), options);
  };

  function Controller(client, options) {
    var self = this;
    this.client = client;
    this.options = options;
    this.delay = options.delay == null ? 120 : options.delay;
    this.fields = {};
    this.result = null;
    this.checkedText = {};
    this.seq = 0;
    this.timer = null;
    this.abort = null;
    this.tip = el("div", "mc-tip");
    this.tip.hidden = true;
    this.tip.setAttribute("role", "tooltip");
    document.body.appendChild(this.tip);
    Object.keys(options.fields || {}).forEach(function (name) {
      self.fields[name] = self._wrap(name, options.fields[name]);
    });
    this._onResize = function () { self._eachField(function (f) { self._mirrorStyle(f); }); };
    window.addEventListener("resize", this._onResize);
    if (options.checkNow !== false) this.check();
  }

  Controller.prototype._eachField = function (fn) {
    var self = this;
    Object.keys(this.fields).forEach(function (n) { fn(self.fields[n], n); });
  };

  Controller.prototype._wrap = function (name, input) {
    var self = this;
    var box = el("div", "mc-field");
    input.parentNode.insertBefore(box, input);
    var backdrop = el("div", "mc-backdrop");
    backdrop.setAttribute("aria-hidden", "true");
    box.appendChild(backdrop);
    box.appendChild(input);
    input.classList.add("mc-input");
    var f = { name: name, input: input, box: box, backdrop: backdrop, spans: [] };
    this._mirrorStyle(f);
    input.addEventListener("input", function (ev) {
      self._shift(f);
      if (!ev.isComposing) self.schedule(); // an IME composition is checked when it ends
    });
    input.addEventListener("compositionend", function () { self.schedule(); });
    input.addEventListener("scroll", function () { self._sync(f); });
    input.addEventListener("mousemove", function (ev) { self._hover(f, ev); });
    input.addEventListener("mouseleave", function () { self._hideTip(); });
    ["keyup", "click", "focus"].forEach(function (t) {
      input.addEventListener(t, function () { self._caret(f); });
    });
    input.addEventListener("blur", function () { setTimeout(function () { self._hideTip(true); }, 150); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && ev.altKey) { // Alt+Enter: apply the fix of the finding at the caret
        var span = self._spanAt(f, input.selectionStart);
        if (span && span.edit != null) { ev.preventDefault(); self.apply(span.edit); }
      }
      if (ev.key === "Escape") self._hideTip(true);
    });
    return f;
  };

  Controller.prototype._mirrorStyle = function (f) {
    var cs = window.getComputedStyle(f.input);
    var props = ["fontFamily", "fontSize", "fontWeight", "fontStyle", "letterSpacing", "lineHeight", "textTransform",
      "wordSpacing", "textIndent", "paddingTop", "paddingRight", "paddingBottom", "paddingLeft", "borderTopWidth",
      "borderRightWidth", "borderBottomWidth", "borderLeftWidth", "boxSizing", "tabSize"];
    var s = f.backdrop.style;
    props.forEach(function (p) { s[p] = cs[p]; });
    s.borderStyle = "solid";
    s.borderColor = "transparent";
    s.width = f.input.offsetWidth + "px";
    s.height = f.input.offsetHeight + "px";
    s.top = f.input.offsetTop + "px";
    s.left = f.input.offsetLeft + "px";
    var single = f.input.tagName === "INPUT";
    s.whiteSpace = single ? "pre" : "pre-wrap";
    s.overflowWrap = single ? "normal" : "break-word";
  };

  Controller.prototype._sync = function (f) {
    f.backdrop.scrollTop = f.input.scrollTop;
    f.backdrop.scrollLeft = f.input.scrollLeft;
  };

  Controller.prototype.listing = function () {
    var o = this.options;
    var listing = { id: typeof o.id === "function" ? o.id() : (o.id || "draft") };
    var cat = typeof o.category === "function" ? o.category() : (o.category && o.category.value !== undefined ? o.category.value : o.category);
    if (cat) listing.category = cat;
    this._eachField(function (f, name) { listing[name] = f.input.value; });
    if (o.extra) { var x = typeof o.extra === "function" ? o.extra() : o.extra; for (var k in x) listing[k] = x[k]; }
    if (o.rewrite !== false) listing.rewrite = true;
    return listing;
  };

  Controller.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.check(); }, this.delay);
  };

  /** Check now; resolves with the result (an older request still in flight is cancelled). */
  Controller.prototype.check = function () {
    var self = this;
    clearTimeout(this.timer);
    var listing = this.listing();
    var texts = {};
    this._eachField(function (f, name) { texts[name] = f.input.value; });
    var any = Object.keys(texts).some(function (k) { return texts[k].trim(); });
    if (!any) { this._render(null, texts); return Promise.resolve(null); }
    if (this.abort) this.abort.abort();
    this.abort = typeof AbortController !== "undefined" ? new AbortController() : null;
    var seq = ++this.seq;
    if (this.options.onPending) this.options.onPending();
    return this.client.check(listing, this.abort && this.abort.signal).then(function (result) {
      if (seq !== self.seq) return null; // a newer check was started meanwhile
      self._render(result, texts);
      if (self.options.onResult) self.options.onResult(result, self);
      return result;
    }, function (err) {
      if (err && err.name === "AbortError") return null;
      if (seq === self.seq && self.options.onError) self.options.onError(err);
      return null;
    });
  };

  Controller.prototype._render = function (result, texts) {
    var self = this;
    this.result = result;
    this.checkedText = texts;
    var edits = (result && result.rewrite && result.rewrite.edits) || [];
    this._eachField(function (f, name) {
      var text = texts[name] || "";
      var spans = [];
      ((result && result.findings) || []).forEach(function (finding, i) {
        if (finding.field !== name || finding.end <= finding.start) return;
        var start = cpToIndex(text, finding.start), end = cpToIndex(text, finding.end);
        var edit = null;
        edits.forEach(function (e, j) {
          if (e.field === name && e.start <= finding.start && finding.end <= e.end) edit = j;
        });
        spans.push({ start: start, end: end, finding: finding, index: i, edit: edit });
      });
      f.spans = spans;
      self._paint(f, text);
    });
    this._hideTip(true);
  };

  Controller.prototype._paint = function (f, text) {
    var spans = f.spans.slice().sort(function (a, b) { return a.start - b.start || b.end - a.end; });
    var html = "", pos = 0;
    spans.forEach(function (s) {
      if (s.start < pos) return; // overlapping claims: the first one is underlined
      html += esc(text.slice(pos, s.start));
      html += '<mark class="mc-mark mc-sev-' + esc(s.finding.severity) + '" data-finding="' + s.index + '">' +
        esc(text.slice(s.start, s.end)) + "</mark>";
      pos = s.end;
    });
    html += esc(text.slice(pos)) + "\n";
    f.backdrop.innerHTML = html;
    f.shown = text;
    this._mirrorStyle(f);
    this._sync(f);
  };

  // While typing, marks move with the text they cover until the next answer arrives.
  Controller.prototype._shift = function (f) {
    var before = f.shown || "", after = f.input.value;
    var p = 0;
    while (p < before.length && p < after.length && before[p] === after[p]) p++;
    var s = 0;
    while (s < before.length - p && s < after.length - p && before[before.length - 1 - s] === after[after.length - 1 - s]) s++;
    var delta = after.length - before.length, cutEnd = before.length - s;
    f.spans = f.spans.filter(function (sp) { return sp.end <= p || sp.start >= cutEnd; }).map(function (sp) {
      return Object.assign({}, sp, sp.start >= cutEnd ? { start: sp.start + delta, end: sp.end + delta } : {}, { edit: null });
    });
    this._paint(f, after);
  };

  Controller.prototype._spanAt = function (f, pos) {
    for (var i = 0; i < f.spans.length; i++) {
      if (f.spans[i].start <= pos && pos <= f.spans[i].end) return f.spans[i];
    }
    return null;
  };

  Controller.prototype._hover = function (f, ev) {
    if (!document.elementsFromPoint) return;
    var marks = document.elementsFromPoint(ev.clientX, ev.clientY).filter(function (e) {
      return e.classList && e.classList.contains("mc-mark");
    });
    if (!marks.length) { if (!this.tipPinned) this._hideTip(); return; }
    var idx = Number(marks[0].dataset.finding);
    var span = f.spans.filter(function (s) { return s.index === idx; })[0];
    if (span) this._showTip(f, span, marks[0], false);
  };

  Controller.prototype._caret = function (f) {
    var pos = f.input.selectionStart;
    var span = this._spanAt(f, pos);
    if (!span) { this._hideTip(true); return; }
    var mark = f.backdrop.querySelector('[data-finding="' + span.index + '"]');
    if (mark) this._showTip(f, span, mark, true);
  };

  /** The card for one finding: severity, text, article, reason, suggestion, and the fix if any. */
  Controller.prototype.card = function (span) {
    var self = this, fd = span.finding;
    var card = el("div", "mc-card");
    var head = el("div", "mc-card-head");
    head.appendChild(el("span", "mc-sev mc-sev-" + fd.severity, SEVERITY[fd.severity] || fd.severity));
    head.appendChild(el("b", null, "“" + fd.text + "”"));
    card.appendChild(head);
    card.appendChild(el("div", "mc-law", "依据：" + fd.law));
    card.appendChild(el("div", "mc-msg", fd.message));
    var edit = span.edit != null && this.result && this.result.rewrite ? this.result.rewrite.edits[span.edit] : null;
    if (edit) {
      var b = el("button", "mc-apply", edit.replacement ? "改为“" + edit.replacement + "”" : "删除“" + edit.text + "”");
      b.type = "button";
      b.title = "采用后：" + (edit.preview || "");
      b.addEventListener("mousedown", function (ev) { ev.preventDefault(); });
      b.addEventListener("click", function () { self.apply(span.edit); });
      card.appendChild(b);
      if (edit.preview) card.appendChild(el("div", "mc-preview", "采用后：" + edit.preview));
    } else if (fd.suggestion) {
      card.appendChild(el("div", "mc-sugg", "建议：" + fd.suggestion));
    }
    return card;
  };

  Controller.prototype._showTip = function (f, span, mark, pinned) {
    this.tip.innerHTML = "";
    this.tip.appendChild(this.card(span));
    this.tip.hidden = false;
    this.tipPinned = pinned;
    var r = mark.getBoundingClientRect();
    var top = r.bottom + window.scrollY + 6, left = Math.max(8, Math.min(r.left + window.scrollX,
      window.scrollX + document.documentElement.clientWidth - this.tip.offsetWidth - 8));
    this.tip.style.top = top + "px";
    this.tip.style.left = left + "px";
  };

  Controller.prototype._hideTip = function (force) {
    if (force || !this.tipPinned) { this.tip.hidden = true; this.tipPinned = false; }
  };

  /** Apply one edit of the last answer (only while the text is the text that was checked). */
  Controller.prototype.apply = function (editIndex) {
    var r = this.result, edit = r && r.rewrite && r.rewrite.edits[editIndex];
    if (!edit) return false;
    var f = this.fields[edit.field];
    if (!f || f.input.value !== this.checkedText[edit.field]) return false;
    f.input.value = edit.after; // the field with this one edit applied, tidied by the server
    f.input.dispatchEvent(new Event("input", { bubbles: true }));
    this._hideTip(true);
    this.check();
    return true;
  };

  /** Replace every field by the rewritten listing (result.rewrite.listing). */
  Controller.prototype.applyAll = function () {
    var r = this.result, rw = r && r.rewrite;
    if (!rw) return false;
    var self = this;
    this._eachField(function (f, name) {
      if (rw.listing[name] !== undefined && f.input.value === self.checkedText[name]) f.input.value = rw.listing[name];
    });
    this.check();
    return true;
  };

  Controller.prototype.detach = function () {
    var self = this;
    clearTimeout(this.timer);
    window.removeEventListener("resize", this._onResize);
    this._eachField(function (f) {
      f.box.parentNode.insertBefore(f.input, f.box);
      f.box.remove();
      f.input.classList.remove("mc-input");
    });
    this.tip.remove();
    self.fields = {};
  };

  ModerationCheck.SEVERITY = SEVERITY;
  ModerationCheck.VERDICT = VERDICT;
  ModerationCheck.cpToIndex = cpToIndex;
  root.ModerationCheck = ModerationCheck;
})(typeof window !== "undefined" ? window : this);
