/*
 * Seller Assistant chat widget. Embed with one line:
 *
 *   <script src="http://ASSISTANT_HOST/widget.js" data-title="Seller Assistant" async></script>
 *
 * A floating button opens the assistant's chat in a panel (an iframe of the assistant's own page,
 * /?embed=widget). Everything is loaded from the server this script came from; nothing else.
 * Options (all optional): data-title (panel title), data-label (button text, default: the title),
 * data-position ("right" or "left"), data-color (button and header colour), data-open ("true": open at once),
 * data-collection (answer from this collection of the library, an id; default: the chat's own choice).
 * A page whose origin the server's allowed_origins does not list gets a message saying so in the panel
 * (the browser would show a grey frame and put the reason in its console only).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) {
    var found = document.querySelectorAll('script[src*="widget.js"]');
    script = found[found.length - 1];
  }
  if (!script || window.__sellerAssistantWidget) return;
  window.__sellerAssistantWidget = true;

  var base = new URL(".", script.src); // the assistant's root, e.g. http://assistant.intranet:7860/
  var title = script.getAttribute("data-title") || "Seller Assistant";
  var label = script.getAttribute("data-label") || title;
  var left = script.getAttribute("data-position") === "left";
  var color = script.getAttribute("data-color") || "#ea580c";
  var startOpen = script.getAttribute("data-open") === "true";
  var collection = script.getAttribute("data-collection") || "";

  var CSS = [
    ":host { all: initial; }",
    ".sa-button { position: fixed; bottom: 20px; SIDE: 20px; z-index: 2147483000; display: flex; align-items: center;",
    "  gap: 8px; padding: 12px 18px; border: 0; border-radius: 999px; color: #fff; cursor: pointer;",
    "  font: 600 15px/1.2 system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif;",
    "  box-shadow: 0 6px 20px rgba(0,0,0,.25); }",
    ".sa-button:focus-visible, .sa-close:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }",
    ".sa-button svg { width: 20px; height: 20px; fill: currentColor; }",
    ".sa-panel { position: fixed; bottom: 84px; SIDE: 20px; z-index: 2147483001; width: min(420px, calc(100vw - 32px));",
    "  height: min(680px, calc(100vh - 110px)); display: flex; flex-direction: column; overflow: hidden;",
    "  background: #fff; border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.3); }",
    ".sa-panel[hidden] { display: none; }",
    ".sa-head { display: flex; align-items: center; justify-content: space-between; padding: 10px 12px 10px 16px; color: #fff;",
    "  font: 600 15px/1.3 system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif; }",
    ".sa-title { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }",
    ".sa-close { background: transparent; border: 0; color: inherit; font-size: 22px; line-height: 1; cursor: pointer; padding: 2px 6px; }",
    ".sa-frame { flex: 1; width: 100%; border: 0; background: #fff; }",
    ".sa-problem { flex: 1; margin: 0; padding: 16px; overflow: auto; color: #7f1d1d; background: #fff;",
    "  font: 14px/1.55 system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif; }",
    ".sa-problem p { margin: 0 0 .8em; }",
    ".sa-problem code { font: 13px ui-monospace, monospace; background: #fef2f2; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }",
    "@media (max-width: 480px) { .sa-panel { bottom: 0; SIDE: 0; width: 100vw; height: 100vh; border-radius: 0; } }"
  ].join("\n").replace(/SIDE/g, left ? "left" : "right");

  function mount() {
    var host = document.createElement("div");
    host.setAttribute("data-seller-assistant", "");
    var root = host.attachShadow({ mode: "open" });
    var style = document.createElement("style");
    style.textContent = CSS;

    var button = document.createElement("button");
    button.type = "button";
    button.className = "sa-button";
    button.style.background = color;
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "sa-panel");
    button.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
    var text = document.createElement("span");
    text.textContent = label; // text, never markup
    button.appendChild(text);

    var panel = document.createElement("div");
    panel.className = "sa-panel";
    panel.id = "sa-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", title);
    var head = document.createElement("div");
    head.className = "sa-head";
    head.style.background = color;
    var heading = document.createElement("span");
    heading.className = "sa-title";
    heading.textContent = title;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "sa-close";
    close.setAttribute("aria-label", "Close");
    close.textContent = "\u00d7";
    head.appendChild(heading);
    head.appendChild(close);
    panel.appendChild(head);

    var frame = null;
    function setOpen(open) {
      if (open && !frame) { // the chat loads on first open only
        frame = document.createElement("div"); // until the check below has answered
        frame.tabIndex = -1;
        panel.appendChild(frame);
        embeddable().then(function (problem) {
          if (problem) { showOriginProblem(frame); return; }
          var chat = document.createElement("iframe");
          chat.className = "sa-frame";
          chat.title = title;
          chat.src = new URL("?embed=widget" + (collection ? "&collection=" + encodeURIComponent(collection) : ""),
                             base).href;
          chat.setAttribute("allow", "clipboard-write");
          panel.replaceChild(chat, frame);
          frame = chat;
          if (!panel.hidden) frame.focus();
        });
      }
      panel.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (open) frame.focus();
    }
    button.addEventListener("click", function () { setOpen(panel.hidden); });
    close.addEventListener("click", function () { setOpen(false); button.focus(); });
    root.addEventListener("keydown", function (e) { if (e.key === "Escape" && !panel.hidden) { setOpen(false); button.focus(); } });

    root.appendChild(style);
    root.appendChild(panel);
    root.appendChild(button);
    document.body.appendChild(host);
    if (startOpen) setOpen(true);
  }

  // "origin" when this page's origin may not frame the chat, else null. The server answers a
  // cross-origin request with CORS headers exactly for the origins that may also frame the chat
  // (allowed_origins), so a request that fails in "cors" mode but reaches the server in "no-cors" mode
  // means this origin is not listed. When both fail (server down, the page's own CSP) nothing is known:
  // the frame is shown, with the browser's own error page if there is one.
  function embeddable() {
    if (location.origin === base.origin) return Promise.resolve(null);
    var health = new URL("healthz", base).href;
    return fetch(health, { mode: "cors", credentials: "omit", cache: "no-store" }).then(function () { return null; }, function () {
      return fetch(health, { mode: "no-cors", credentials: "omit", cache: "no-store" }).then(
        function () { return "origin"; }, function () { return null; });
    });
  }

  function showOriginProblem(box) {
    var origin = location.origin === "null" ? location.href.split("#")[0] : location.origin;
    var server = base.href.replace(/\/$/, "");
    var lines = [
      ["This page (", origin, ") may not embed the assistant: its origin is not in the server's ",
       "allowed_origins", " setting. Add it there (environment variable ", "ASSISTANT_ALLOWED_ORIGINS=" + origin,
       ", or allowed_origins in assistant.toml) and restart ", server, "."],
      ["本页面（", origin, "）不能嵌入助手：它的来源不在服务器的 ", "allowed_origins", " 设置中。请把它加入该设置（环境变量 ",
       "ASSISTANT_ALLOWED_ORIGINS=" + origin, "，或 assistant.toml 中的 allowed_origins），然后重启 ", server, "。"]
    ];
    box.className = "sa-problem";
    box.setAttribute("role", "alert");
    lines.forEach(function (parts) {
      var p = document.createElement("p");
      parts.forEach(function (part, i) { // odd parts are names to copy: shown as code, all as text
        var node = document.createElement(i % 2 ? "code" : "span");
        node.textContent = part;
        p.appendChild(node);
      });
      box.appendChild(p);
    });
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
