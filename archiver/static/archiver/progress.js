// Live progress of an archive run: polls the run's progress.json until the run finished (every patient decided,
// or the run failed); a queued run's page reloads once the run is prepared and its patients are known.
(function () {
  const status = document.getElementById("run-status");
  if (!status) return;
  const url = status.dataset.progressUrl;
  const marks = { pass: "✓", error: "×", warning: "!", pending: "…" };
  const rowClass = { pass: "table-success", error: "table-danger", warning: "table-warning", pending: "" };
  let last = null;

  function update(data) {
    if (status.dataset.status === "queued" && data.status !== "queued") {
      window.location.reload(); // the run was prepared: its patients are listed now
      return true;
    }
    for (const key of ["pass", "error", "warning", "pending"]) {
      status.querySelector(`[data-field="${key}"]`).textContent = data.counts[key] || 0;
    }
    status.querySelector('[data-field="status"]').textContent = data.status_display;
    const now = Date.now();
    if (last && now > last.time) {
      const mbps = (data.bytes_done - last.bytes) / 1e6 / ((now - last.time) / 1000);
      status.querySelector('[data-field="rate"]').textContent = mbps > 0 ? mbps.toFixed(1) + " MB/s" : "";
    }
    last = { time: now, bytes: data.bytes_done };
    for (const task of data.tasks) {
      const row = document.querySelector(`tr[data-task="${task.id}"]`);
      if (!row) continue;
      row.className = rowClass[task.result] || "";
      const cells = row.querySelectorAll("td");
      cells[0].textContent = marks[task.result] || "?";
      const bar = row.querySelector(".progress-bar");
      if (bar) {
        const pct = task.bytes_total ? Math.min(100, Math.floor((100 * task.bytes_done) / task.bytes_total)) : 0;
        bar.style.width = pct + "%";
        bar.textContent = pct + "%";
      }
      const step = row.querySelector("td.step");
      if (step) step.textContent = task.step_display;
      const reason = row.querySelector("td.reason");
      if (reason) reason.textContent = task.reason;
    }
    return data.finished;
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok && update(await response.json())) return;
    } catch (e) {
      /* the server may be restarting: try again */
    }
    setTimeout(poll, 2000);
  }
  poll();
})();
