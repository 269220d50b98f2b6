/*
 * The Insights view (/insights): GET /api/insights drawn as totals, a per-day chart (inline SVG), the
 * declined and 👎 questions by topic, and the documents cited most and never; CSV exports. Everything
 * from the log or a document is put on the page as text, never markup. The token, when the server asks
 * for one, is kept for this tab only, under the same name as the Library view's.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var $ = SAPage.$, headers = SAPage.headers, el = SAPage.el, fail = SAPage.fail;

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function docLink(d) {
    var a = el("a", "", d.title || d.doc_id);
    a.href = "/doc/" + encodeURIComponent(d.doc_id);
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  }

  function percent(x) { return Math.round(x * 100) + "%"; }

  function card(value, label, warn) {
    var c = el("div", "sa-card" + (warn ? " sa-warn" : ""));
    c.appendChild(el("b", "", String(value)));
    c.appendChild(el("span", "", label));
    return c;
  }

  function totals(data) {
    var t = data.totals, box = $("sa-totals");
    box.textContent = "";
    var share = t.questions ? " (" + percent(t.declined / t.questions) + ")" : "";
    box.appendChild(card(t.questions, "问题 questions"));
    box.appendChild(card(t.answered, "已回答 answered"));
    box.appendChild(card(t.declined + share, "未回答 declined"));
    box.appendChild(card(t.up, "👍 有用 helpful"));
    box.appendChild(card(t.down, "👎 没用 not helpful"));
    if (t.median_seconds !== null) box.appendChild(card(t.median_seconds + " s", "用时中位数 median time"));
    var lost = data.log.failed + data.log.dropped;
    if (lost) box.appendChild(card(lost, "未能记录 not recorded (this server)", true));
  }

  function chart(days) {
    var W = 760, H = 220, left = 36, right = 40, top = 12, bottom = 28;
    var plotW = W - left - right, plotH = H - top - bottom;
    var most = Math.max(1, Math.max.apply(null, days.map(function (d) { return d.questions; })));
    var step = plotW / Math.max(1, days.length);
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Questions per day"});
    root.appendChild(svg("line", {x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#9ca3af"}));
    root.appendChild(svg("text", {x: left - 6, y: top + 10, "text-anchor": "end", "font-size": 11, fill: "#4b5563"}, String(most)));
    root.appendChild(svg("text", {x: left - 6, y: top + plotH, "text-anchor": "end", "font-size": 11, fill: "#4b5563"}, "0"));
    root.appendChild(svg("text", {x: left + plotW + 6, y: top + 10, "font-size": 11, fill: "#4b5563"}, "100%"));
    var declined = [], down = [];
    days.forEach(function (d, i) {
      var x = left + i * step, h = plotH * d.questions / most;
      var bar = svg("rect", {x: x + step * 0.15, y: top + plotH - h, width: Math.max(1, step * 0.7), height: h,
                             fill: "#fdba74", "class": "sa-day"});
      bar.appendChild(svg("title", {}, d.day + ": " + d.questions + " questions, " + percent(d.declined_share) +
                          " declined, " + percent(d.down_share) + " 👎"));
      root.appendChild(bar);
      var cx = x + step / 2;
      declined.push(cx + "," + (top + plotH * (1 - d.declined_share)));
      down.push(cx + "," + (top + plotH * (1 - d.down_share)));
      if (days.length <= 10 || i % Math.ceil(days.length / 8) === 0) {
        root.appendChild(svg("text", {x: cx, y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#4b5563"}, d.day.slice(5)));
      }
    });
    root.appendChild(svg("polyline", {points: declined.join(" "), fill: "none", stroke: "#d97706", "stroke-width": 2}));
    root.appendChild(svg("polyline", {points: down.join(" "), fill: "none", stroke: "#b91c1c", "stroke-width": 2,
                                      "stroke-dasharray": "4 3"}));
    $("sa-chart").textContent = "";
    $("sa-chart").appendChild(root);
  }

  var REASONS = {wrong_answer: "答案不对 wrong answer", out_of_context: "引文断章取义 quote out of context",
                 not_in_library: "资料库里没有 not in the library", other: "其他 other"};

  function groups(list) {
    var box = $("sa-groups");
    box.textContent = "";
    if (!list.length) { box.appendChild(el("p", "sa-empty", "这段时间没有 None in this period.")); return; }
    list.forEach(function (g) {
      var item = el("div", "sa-group");
      var head = el("div", "sa-group-head");
      head.appendChild(el("span", "sa-count", g.count + " 次 questions"));
      var parts = [];
      if (g.declined) parts.push(g.declined + " 未回答 declined");
      if (g.down) parts.push(g.down + " 👎");
      head.appendChild(el("span", "sa-when", parts.join(" · ")));
      head.appendChild(el("span", "sa-langs", Object.keys(g.languages).map(function (l) { return l + " " + g.languages[l]; }).join(", ")));
      head.appendChild(el("span", "sa-when", g.first.slice(0, 16).replace("T", " ") + " – " + g.last.slice(0, 16).replace("T", " ") + " UTC"));
      item.appendChild(head);
      var ul = el("ul");
      g.questions.forEach(function (q) {
        var li = el("li");
        li.appendChild(el("span", "sa-q", q.question));
        if (q.asked > 1) li.appendChild(el("span", "sa-why", " ×" + q.asked));
        if (q.declined) li.appendChild(el("span", "sa-badge sa-declined", "未回答 declined"));
        if (q.feedback.length) li.appendChild(el("span", "sa-badge sa-down", "👎 " + q.feedback.length));
        q.feedback.forEach(function (f) {
          if (f.reason || f.comment) li.appendChild(el("div", "sa-comment", "👎 " + (REASONS[f.reason] || "") + (f.comment ? " — " + f.comment : "")));
        });
        ul.appendChild(li);
      });
      item.appendChild(ul);
      var closest = el("div", "sa-closest");
      closest.appendChild(document.createTextNode("资料库中最接近的 Closest in the library: "));
      if (!g.closest.length) closest.appendChild(document.createTextNode("—"));
      g.closest.forEach(function (d, i) {
        if (i) closest.appendChild(document.createTextNode(" · "));
        closest.appendChild(docLink(d));
        closest.appendChild(el("span", "sa-why", " (" + d.similarity.toFixed(2) + ")"));
      });
      item.appendChild(closest);
      var upload = el("a", "sa-upload", "上传文章补上 Add an article →");
      upload.href = "/library" + SACollections.param("?") + "#sa-drop";  // into the collection asked in
      item.appendChild(upload);
      box.appendChild(item);
    });
  }

  function cited(data) {
    var body = $("sa-cited").tBodies[0];
    body.textContent = "";
    data.most_cited.forEach(function (d) {
      var row = el("tr"), name = el("td");
      name.appendChild(d.in_library ? docLink(d) : el("span", "sa-empty", d.doc_id + " (已删除 removed)"));
      row.appendChild(name);
      row.appendChild(el("td", "", String(d.answers)));
      body.appendChild(row);
    });
    if (!data.most_cited.length) body.appendChild(el("tr")).appendChild(el("td", "sa-empty", "—"));
    var never = data.never_cited;
    $("sa-never-total").textContent = never.total + " 篇文档这段时间没有被引用 documents were not cited in this period" +
      (never.total > never.documents.length ? "（最新的 " + never.documents.length + " 篇 the newest " + never.documents.length + "）" : "");
    var ul = $("sa-never");
    ul.textContent = "";
    never.documents.forEach(function (d) { ul.appendChild(el("li")).appendChild(docLink(d)); });
  }

  function load() {
    var url = "/api/insights?days=" + $("sa-days").value + "&sort=" + $("sa-sort").value + SACollections.param();
    return fetch(url, {headers: headers()}).then(function (r) { return r.ok ? r.json() : fail(r); }).then(function (data) {
      $("sa-error").hidden = true;
      totals(data);
      chart(data.daily);
      groups(data.groups);
      cited(data);
      document.body.dataset.loaded = "true";
    });
  }

  function download(kind) {
    var days = $("sa-days").value;
    fetch("/api/insights/" + kind + ".csv?days=" + days + SACollections.param(), {headers: headers()}).then(function (r) {
      return r.ok ? r.blob() : fail(r);
    }).then(function (blob) {
      var a = el("a");
      a.href = URL.createObjectURL(blob);
      a.download = kind + "-" + days + "d.csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("sa-days").addEventListener("change", load);
    $("sa-sort").addEventListener("change", load);
    $("sa-csv-questions").addEventListener("click", function () { download("questions"); });
    $("sa-csv-feedback").addEventListener("click", function () { download("feedback"); });
    SAPage.onToken(function () { SACollections.load().then(load); });
    SACollections.start(load).then(load, load);
  });
})();
