// The executions list's two small additions, no library:
// - each <time data-local datetime="...Z"> shows in the reader's own time zone (the title keeps
//   the exact UTC time): "Dec 3, 17:50:35" this year, "Nov 30, 2025, 09:12" before;
// - the filter form leaves its empty fields out of the URL it pushes, so a shared view reads plainly.
(function () {
  "use strict";
  var thisYear = new Date().getFullYear();
  var recent = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  var older = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"
  });

  function localise() {
    document.querySelectorAll("time[data-local]:not([data-localised])").forEach(function (time) {
      var when = new Date(time.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      time.textContent = (when.getFullYear() === thisYear ? recent : older).format(when);
      time.setAttribute("data-localised", "");
    });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "execution-filters") return;
    var data = event.detail.formData;
    Array.from(new Set(data.keys())).forEach(function (name) {
      if (data.getAll(name).every(function (value) { return value === ""; })) data.delete(name);
    });
  });

  document.addEventListener("DOMContentLoaded", localise);
  // Rows arrive by HTMX swaps and websocket pushes as well as with the page.
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, localise);
  });
})();
