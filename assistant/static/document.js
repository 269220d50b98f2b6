// The document page (/doc/…): bring the highlighted quote into view. The page has no other script.
document.addEventListener("DOMContentLoaded", function () {
  var quote = document.getElementById("sa-quote");
  if (quote) quote.scrollIntoView({block: "center"});
});
