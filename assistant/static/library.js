/*
 * The Library view (/library): list, search, upload (drag and drop) and remove documents through
 * /api/documents and /api/jobs. Everything from a document is put on the page as text, never markup.
 * A token (admin_token or api_token), when the server asks for one, is kept for this tab only (pages.js).
 */
(function () {
  "use strict";
  var PAGE = 50;
  var offset = 0;
  var $ = SAPage.$, headers = SAPage.headers, el = SAPage.el, problem = SAPage.problem, fail = SAPage.fail;

  function list() {
    var q = $("sa-search").value.trim();
    var url = "/api/documents?limit=" + PAGE + "&offset=" + offset + (q ? "&q=" + encodeURIComponent(q) : "") +
      SACollections.param();
    return fetch(url, {headers: headers()}).then(function (r) { return r.ok ? r.json() : fail(r); }).then(function (data) {
      var body = $("sa-docs").tBodies[0];
      body.textContent = "";
      data.documents.forEach(function (d) {
        var row = el("tr");
        row.dataset.docId = d.doc_id;
        var title = el("td", "sa-t");
        var link = el("a", "", d.title || d.file || d.doc_id);
        link.href = "/doc/" + encodeURIComponent(d.doc_id);
        link.target = "_blank";
        title.appendChild(link);
        // What a limit cut from its file when it was read, on the row where the library is looked at.
        (d.notes || []).forEach(function (w, i) {
          title.appendChild(el("div", "sa-warning", "⚠ 部分未读 partly read: " + (d.notes_zh[i] ? d.notes_zh[i] + " / " : "") + w));
        });
        row.appendChild(title);
        row.appendChild(el("td", "sa-n", d.date));
        row.appendChild(el("td", "sa-s", d.source || d.file));
        row.appendChild(el("td", "sa-n", d.format));
        row.appendChild(el("td", "sa-n", (d.pages ? d.pages + " 页 pages · " : "") + d.chunks + " 块 chunks"));
        row.appendChild(el("td", "sa-n", d.added ? d.added.slice(0, 16) : ""));
        var cell = el("td");
        var remove = el("button", "sa-remove", "删除 Remove");
        remove.type = "button";
        remove.addEventListener("click", function () { removeDoc(d, row); });
        cell.appendChild(SACollections.rowControl(d, list));
        cell.appendChild(remove);
        row.appendChild(cell);
        body.appendChild(row);
      });
      $("sa-count").textContent = data.total + " 篇 documents";
      var pages = Math.max(1, Math.ceil(data.total / PAGE));
      $("sa-page").textContent = (Math.floor(offset / PAGE) + 1) + " / " + pages;
      $("sa-prev").disabled = offset === 0;
      $("sa-next").disabled = offset + PAGE >= data.total;
      $("sa-error").hidden = true;
    });
  }

  function stageText(job) {
    if (job.state === "queued") return "排队中 queued";
    if (job.state === "failed") return "失败 failed：" + (job.error_zh ? job.error_zh + " / " : "") + job.error;
    if (job.state === "done") return "完成 done";
    var names = {fetching: "获取 fetching", reading: "读取 reading", embedding: "嵌入 embedding",
                 sentences: "句子 sentences"};
    var stage = names[job.stage] || (/^ocr /.test(job.stage || "") ? "识别 OCR" + job.stage.slice(3) : job.stage);
    return (stage || "…") + (job.total ? " " + job.done + "/" + job.total : "");
  }

  function poll(jobUrl, item, done) {
    fetch(jobUrl, {headers: headers()}).then(function (r) { return r.ok ? r.json() : fail(r); }).then(function (job) {
      var bar = item.querySelector("progress");
      bar.max = job.total || 1;
      bar.value = job.state === "done" ? bar.max : job.done;
      item.querySelector(".sa-stage").textContent = stageText(job);
      var files = item.querySelector(".sa-files");
      files.textContent = "";
      (job.files || []).forEach(function (f) {
        var line = el("li", "sa-file");
        line.appendChild(el("span", "", f.name + " — "));
        var labels = {added: "已加入 added", updated: "已更新 updated", unchanged: "未变 unchanged",
                      rejected: "被拒绝 rejected", queued: "等待 queued", indexing: "索引中 indexing"};
        line.appendChild(el("span", "sa-" + f.status, labels[f.status] || f.status));
        if (f.reason) line.appendChild(el("span", "", "：" + (f.reason_zh ? f.reason_zh + " / " : "") + f.reason));
        // What a limit cut (pages, rows, slides not read) is said here, where the uploader looks.
        (f.warnings || []).forEach(function (w, i) {
          var zh = (f.warnings_zh || [])[i];
          line.appendChild(el("div", "sa-warning", "⚠ 部分未读 partly read: " + (zh ? zh + " / " : "") + w));
        });
        line.dataset.status = f.status;
        files.appendChild(line);
      });
      item.dataset.state = job.state;
      if (job.state === "done" || job.state === "failed") { SACollections.load().then(list); if (done) done(job); }
      else setTimeout(function () { poll(jobUrl, item, done); }, 500);
    });
  }

  // One line in the list of changes: the names, a progress bar, the stage, then each file's outcome.
  function changeItem(names, stage) {
    var item = el("li", "sa-upload");
    item.appendChild(el("span", "sa-names", names.join(", ")));
    var bar = el("progress");
    bar.max = 1; bar.value = 0;
    item.appendChild(el("br"));
    item.appendChild(bar);
    item.appendChild(el("span", "sa-stage", stage));
    item.appendChild(el("ul", "sa-files"));
    $("sa-uploads").prepend(item);
    return item;
  }

  // The server's answer to a change: a job to follow (202), or why it was refused.
  function accepted(item, status, body) {
    if (status === 202) { poll(body.url, item); return; }
    item.dataset.state = "failed";
    item.querySelector(".sa-stage").textContent = "被拒绝 rejected: " + (body.detail || ("HTTP " + status));
    item.querySelector(".sa-stage").className = "sa-stage sa-rejected";
    if (status === 401) $("sa-token").hidden = false;
  }

  function networkError(item) { item.querySelector(".sa-stage").textContent = "网络错误 network error"; }

  function upload(fileList) {
    var files = Array.prototype.slice.call(fileList);
    if (!files.length) return;
    var item = changeItem(files.map(function (f) { return f.name; }), "上传 uploading");
    var bar = item.querySelector("progress");
    var form = new FormData();
    files.forEach(function (f) { form.append("files", f, f.name); });
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents" + SACollections.param("?"));
    var h = headers();
    Object.keys(h).forEach(function (k) { xhr.setRequestHeader(k, h[k]); });
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded;
        item.querySelector(".sa-stage").textContent = "上传 uploading " + Math.round(100 * e.loaded / e.total) + "%"; }
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      accepted(item, xhr.status, body);
    };
    xhr.onerror = function () { networkError(item); };
    xhr.send(form);
  }

  function addLinks(text) {
    var urls = text.split(/\s+/).filter(function (u) { return u; });
    if (!urls.length) return;
    var item = changeItem(urls, "获取 fetching");
    var h = headers();
    h["Content-Type"] = "application/json";
    fetch("/api/documents" + SACollections.param("?"), {method: "POST", headers: h, body: JSON.stringify({urls: urls})}).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) { accepted(item, r.status, body); });
    }, function () { networkError(item); });
  }

  function removeDoc(d, row) {
    if (!window.confirm("删除 Remove “" + (d.title || d.doc_id) + "”?")) return;
    // In a collection: taken out of it (200), or removed from the library when it is in no other (202, a job).
    fetch("/api/documents/" + encodeURIComponent(d.doc_id) + SACollections.param("?"), {method: "DELETE", headers: headers()})
      .then(function (r) { return r.ok ? r.json() : fail(r); }).then(function (body) {
        if (!body.url) { SACollections.load().then(list); return; }
        row.classList.add("sa-removing");
        var item = el("li", "sa-upload");
        item.appendChild(el("span", "sa-names", "删除 Removing " + (d.title || d.doc_id)));
        item.appendChild(el("br"));
        item.appendChild(el("progress"));
        item.appendChild(el("span", "sa-stage", ""));
        item.appendChild(el("ul", "sa-files"));
        $("sa-uploads").prepend(item);
        poll(body.url, item);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var drop = $("sa-drop");
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("sa-over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function () { drop.classList.remove("sa-over"); });
    });
    drop.addEventListener("drop", function (e) { e.preventDefault(); upload(e.dataTransfer.files); });
    $("sa-files").addEventListener("change", function (e) { upload(e.target.files); e.target.value = ""; });
    $("sa-links").addEventListener("submit", function (e) {
      e.preventDefault(); addLinks($("sa-urls").value); $("sa-urls").value = "";
    });
    var timer = null;
    $("sa-search").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { offset = 0; list(); }, 250);
    });
    $("sa-prev").addEventListener("click", function () { offset = Math.max(0, offset - PAGE); list(); });
    $("sa-next").addEventListener("click", function () { offset += PAGE; list(); });
    SAPage.onToken(function () { SACollections.load().then(list); });
    SACollections.start(function () { offset = 0; list(); }).then(list, list);
  });
})();
