/*
 * What the Library and Insights views share (loaded before their own script): elements by id, text-only
 * elements, the token header, a refused request shown in #sa-error (a 401 opens the token form), and the
 * token form itself. The token is kept for this tab only (sessionStorage), under one name for both views.
 */
var SAPage = (function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  function headers() {
    var token = sessionStorage.getItem("sa-token");
    return token ? {Authorization: "Bearer " + token} : {};
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function problem(status, detail) {
    if (status === 401) $("sa-token").hidden = false;
    $("sa-error").hidden = false;
    $("sa-error").textContent = detail;
  }

  function fail(response) {
    return response.json().catch(function () { return {}; }).then(function (body) {
      problem(response.status, body.detail || ("HTTP " + response.status));
      throw new Error(body.detail);
    });
  }

  // The token form: keep what was typed and load the view again.
  function onToken(reload) {
    $("sa-token").addEventListener("submit", function (e) {
      e.preventDefault();
      sessionStorage.setItem("sa-token", $("sa-token-input").value.trim());
      $("sa-token").hidden = true;
      reload();
    });
  }

  return {$: $, headers: headers, el: el, problem: problem, fail: fail, onToken: onToken};
})();
