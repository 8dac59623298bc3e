// Live progress of an archive run: polls the run's progress.json until the run finished (every patient decided,
// or the run failed); a queued run's page reloads once the run is prepared and its patients are known.
// Each patient's row shows its result, step, archive, bytes and reason as they change (a failure's reason
// without a reload); the run's badge says "Done with errors" when any patient ended with ×.
(function () {
  const status = document.getElementById("run-status");
  if (!status) return;
  const url = status.dataset.progressUrl;
  const marks = { pass: "✓", error: "×", warning: "!", pending: "…" };
  const rowClass = { pass: "table-success", error: "table-danger", warning: "table-warning", pending: "" };
  const field = (name) => status.querySelector(`[data-field="${name}"]`);
  const bytesBox = document.getElementById("run-bytes");
  const words = { of: bytesBox.dataset.of, left: bytesBox.dataset.left };
  let last = null;

  function megabytes(n) {
    return (n / 1e6).toFixed(1) + " MB";
  }

  function setCell(row, css, text) {
    const cell = row.querySelector("td." + css);
    if (cell && cell.textContent !== text) cell.textContent = text;
  }

  function update(data) {
    if (status.dataset.status === "queued" && data.status !== "queued") {
      window.location.reload(); // the run was prepared: its patients are listed now
      return true;
    }
    for (const key of ["pass", "error", "warning", "pending"]) {
      field(key).textContent = data.counts[key] || 0;
    }
    field("error-box").className = data.counts.error ? "badge text-bg-danger" : "";
    const badge = field("status");
    badge.textContent = data.outcome_display;
    badge.className = "badge pdas-status-" + data.outcome;

    const now = Date.now();
    const bar = bytesBox.querySelector('[data-field="bar"]');
    const pct = data.bytes_total ? Math.min(100, Math.floor((100 * data.bytes_done) / data.bytes_total)) : 0;
    bar.style.width = pct + "%";
    bar.textContent = pct + "%";
    bytesBox.querySelector('[data-field="bytes"]').textContent =
      `${megabytes(data.bytes_done)} ${words.of} ${megabytes(data.bytes_total)}`;
    if (last && now > last.time) {
      const rate = (data.bytes_done - last.bytes) / ((now - last.time) / 1000); // bytes per second
      bytesBox.querySelector('[data-field="rate"]').textContent = rate > 0 ? "· " + (rate / 1e6).toFixed(1) + " MB/s" : "";
      const seconds = rate > 0 ? (data.bytes_total - data.bytes_done) / rate : 0;
      bytesBox.querySelector('[data-field="left"]').textContent =
        seconds > 0 ? `· ${Math.ceil(seconds / 60)} min ${words.left}` : "";
    }
    last = { time: now, bytes: data.bytes_done };
    bytesBox.hidden = data.finished;

    for (const task of data.tasks) {
      const row = document.querySelector(`tr[data-task="${task.id}"]`);
      if (!row) continue;
      row.className = rowClass[task.result] || "";
      const result = row.querySelector("td.result span") || row.querySelector("td");
      result.textContent = marks[task.result] || "?";
      const taskBar = row.querySelector(".progress-bar");
      if (taskBar) {
        const done = task.bytes_total ? Math.min(100, Math.floor((100 * task.bytes_done) / task.bytes_total)) : 0;
        taskBar.style.width = done + "%";
        taskBar.textContent = done + "%";
      }
      setCell(row, "step", task.step_display);
      setCell(row, "archive", task.archive);
      setCell(row, "bytes-done", task.bytes_done_display);
      setCell(row, "bytes-total", task.bytes_total_display);
      setCell(row, "reason", task.reason);
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
