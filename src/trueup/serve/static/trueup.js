// Shows <time datetime="...Z"> in the viewer's timezone (the page already says UTC without this script).
document.querySelectorAll("time[datetime]").forEach(function (node) {
  var moment = new Date(node.getAttribute("datetime"));
  if (isNaN(moment)) return;
  var pad = function (n) { return String(n).padStart(2, "0"); };
  node.textContent = moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate()) + " " +
    pad(moment.getHours()) + ":" + pad(moment.getMinutes());
});
