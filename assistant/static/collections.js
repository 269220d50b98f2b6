/*
 * The Library view's collection picker (loaded after pages.js, before library.js): choose the collection the
 * list, uploads and links work in; create, rename and delete an empty one; add or move a document to another.
 * Through /api/collections; the choice is kept for this tab, and ?collection=ID picks one (Insights' "add an
 * article" link). The Insights view uses the picker alone (its page has no buttons).
 */
var SACollections = (function () {
  "use strict";
  var $ = SAPage.$, headers = SAPage.headers, el = SAPage.el, fail = SAPage.fail;
  var known = [], admin = false, changed = function () {};

  function current() { return $("sa-collection").value || ""; }
  function info() { return known.filter(function (c) { return c.id === current(); })[0]; }
  // "&collection=ID" (or "?…" with prefix "?") for the API calls of the chosen collection; "" for the whole library.
  function param(prefix) { return current() ? (prefix || "&") + "collection=" + encodeURIComponent(current()) : ""; }

  function label(c) { return (c.name !== c.id ? c.name + " (" + c.id + ")" : c.id) + " · " + c.documents + " 篇"; }

  function load(choose) {
    return fetch("/api/collections", {headers: headers()}).then(function (r) { return r.ok ? r.json() : fail(r); })
      .then(function (data) {
        known = data.collections;
        admin = data.admin;
        var select = $("sa-collection");
        var asked = new URLSearchParams(window.location.search).get("collection");
        var wanted = choose !== undefined ? choose
          : (select.value || asked || sessionStorage.getItem("sa-collection") || "");
        select.textContent = "";
        var whole = el("option", "", "全部 Whole library");
        whole.value = "";
        select.appendChild(whole);
        known.forEach(function (c) { var o = el("option", "", label(c)); o.value = c.id; select.appendChild(o); });
        select.value = known.some(function (c) { return c.id === wanted; }) ? wanted : "";
        $("sa-collection-bar").dataset.collections = String(known.length);
        buttons();
      });
  }

  function buttons() {
    var c = info();
    sessionStorage.setItem("sa-collection", current());
    if (!$("sa-new")) return;
    $("sa-rename").disabled = !c || !c.write;
    $("sa-delete").disabled = !c || !admin || c.id === "default" || c.documents > 0;
    $("sa-new").disabled = !admin;
  }

  function send(method, url, body) {
    var h = headers();
    if (body) h["Content-Type"] = "application/json";
    return fetch(url, {method: method, headers: h, body: body ? JSON.stringify(body) : undefined})
      .then(function (r) { return r.ok ? (r.status === 204 ? {} : r.json()) : fail(r); });
  }

  function create() {
    var id = window.prompt("新资料集的编号（小写字母、数字、- 或 _）New collection id (a-z, 0-9, - or _)");
    if (!id) return;
    var name = window.prompt("显示名称（可用中文）Display name", id);
    if (name === null) return;
    send("POST", "/api/collections", {id: id.trim(), name: name}).then(function () { return load(id.trim()); })
      .then(changed);
  }

  function rename() {
    var c = info();
    var name = c && window.prompt("新名称 New name for " + c.id, c.name);
    if (!name) return;
    send("POST", "/api/collections/" + encodeURIComponent(c.id), {name: name}).then(function () { return load(); });
  }

  function remove() {
    var c = info();
    if (!c || !window.confirm("删除空资料集 Delete the empty collection “" + c.name + "”?")) return;
    send("DELETE", "/api/collections/" + encodeURIComponent(c.id)).then(function () { return load(""); })
      .then(changed);
  }

  // A document row's control: add it to another collection, or move it there from the chosen one.
  function rowControl(d, reload) {
    var select = el("select", "sa-to");
    select.setAttribute("aria-label", "Add or move to a collection");
    select.appendChild(el("option", "", "资料集… Collection…"));
    known.filter(function (c) { return c.id !== current() && c.write; }).forEach(function (c) {
      var add = el("option", "", "加入 Add to " + c.name);
      add.value = "add:" + c.id;
      select.appendChild(add);
      if (current()) {
        var move = el("option", "", "移到 Move to " + c.name);
        move.value = "move:" + c.id;
        select.appendChild(move);
      }
    });
    select.addEventListener("change", function () {
      var how = select.value.split(":")[0], target = select.value.slice(how.length + 1);
      if (!target) return;
      send("POST", "/api/collections/" + encodeURIComponent(target) + "/documents",
           {doc_ids: [d.doc_id], from: how === "move" ? current() : null})
        .then(function () { return load(); }).then(reload);
    });
    return select;
  }

  function start(onChange) {
    changed = onChange;
    $("sa-collection").addEventListener("change", function () { buttons(); changed(); });
    if ($("sa-new")) {
      $("sa-new").addEventListener("click", create);
      $("sa-rename").addEventListener("click", rename);
      $("sa-delete").addEventListener("click", remove);
    }
    return load();
  }

  return {current: current, param: param, load: load, rowControl: rowControl, start: start};
})();
