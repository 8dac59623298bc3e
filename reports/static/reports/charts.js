/* Trend charts of the report page, drawn with the vendored Chart.js from the JSON the page embeds
   (#report-chart-data). No animation: the printable page must be complete when printed.
   The period form shows only the fields the chosen period uses. */
(function () {
  "use strict";

  function periodFields() {
    var form = document.getElementById("report-form");
    if (!form) { return; }
    var period = form.querySelector("[name=period]");
    var used = {month: ["year", "month"], quarter: ["year", "quarter"], year: ["year"], custom: ["first_day", "last_day"]};
    function update() {
      ["year", "month", "quarter", "first_day", "last_day"].forEach(function (name) {
        var box = form.querySelector('[data-field="' + name + '"]');
        if (box) { box.hidden = (used[period.value] || []).indexOf(name) < 0; }
      });
    }
    period.addEventListener("change", update);
    update();
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) { return null; }
    config.options = Object.assign({
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: {mode: "index", intersect: false}, plugins: {legend: {position: "bottom"}}
    }, config.options || {});
    return new Chart(canvas, config);
  }

  function charts() {
    var source = document.getElementById("report-chart-data");
    if (!source || typeof Chart === "undefined") { return []; }
    var d = JSON.parse(source.textContent);
    var green = "#198754", red = "#dc3545", amber = "#ffc107", blue = "#0d6efd", grey = "#6c757d", teal = "#20c997";
    var left = {type: "linear", position: "left", beginAtZero: true};
    var right = {type: "linear", position: "right", beginAtZero: true, grid: {drawOnChartArea: false}};
    return [
      draw("chart-volume", {type: "bar", data: {labels: d.labels, datasets: [
        {label: "Patients", data: d.patients, backgroundColor: blue, yAxisID: "y"},
        {type: "line", label: "Raw GB", data: d.raw_gb, borderColor: grey, backgroundColor: grey, yAxisID: "y1"},
        {type: "line", label: "Stored GB", data: d.compressed_gb, borderColor: teal, backgroundColor: teal, yAxisID: "y1"}
      ]}, options: {scales: {y: left, y1: right}}}),
      draw("chart-runs", {type: "bar", data: {labels: d.labels, datasets: [
        {label: "✓", data: d.passed, backgroundColor: green, stack: "results", yAxisID: "y"},
        {label: "!", data: d.warnings, backgroundColor: amber, stack: "results", yAxisID: "y"},
        {label: "×", data: d.errors, backgroundColor: red, stack: "results", yAxisID: "y"},
        {type: "line", label: "MB/s", data: d.mb_per_s, borderColor: blue, backgroundColor: blue, yAxisID: "y1",
         spanGaps: true}
      ]}, options: {scales: {x: {stacked: true}, y: Object.assign({stacked: true}, left), y1: right}}}),
      draw("chart-loss", {type: "bar", data: {labels: d.labels, datasets: [
        {label: "Delivered", data: d.delivered, backgroundColor: "rgba(13,110,253,.35)", yAxisID: "y"},
        {label: "Lost", data: d.lost, backgroundColor: red, yAxisID: "y"},
        {type: "line", label: "Loss rate %", data: d.loss_rate, borderColor: red, backgroundColor: red,
         yAxisID: "y1", spanGaps: false}
      ]}, options: {scales: {y: left, y1: right}}}),
      draw("chart-pending", {type: "line", data: {labels: d.labels, datasets: [
        {label: "Pending-archive table", data: d.pending, borderColor: amber, backgroundColor: amber, spanGaps: true},
        {type: "bar", label: "Restores", data: d.restores, backgroundColor: grey}
      ]}, options: {scales: {y: left}}})
    ].filter(Boolean);
  }

  document.addEventListener("DOMContentLoaded", function () {
    periodFields();
    window.pdasCharts = charts();
  });
})();
