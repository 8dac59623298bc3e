// Live progress of a restore: polls the record's status.json until it is finished.
(function () {
  const box = document.getElementById("restore-status");
  if (!box) return;
  const field = (name) => box.querySelector(`[data-field="${name}"]`);

  function update(data) {
    field("status").textContent = data.status_display;
    field("reason").textContent = data.reason;
    field("files").textContent = data.files;
    field("tps_path").textContent = data.tps_path;
    const pct = data.finished ? 100 : data.bytes_total ? Math.min(99, Math.floor((100 * data.bytes) / data.bytes_total)) : 0;
    const bar = field("bar");
    bar.style.width = pct + "%";
    bar.className = "progress-bar" + (data.finished ? (data.status === "done" ? " bg-success" : " bg-danger") : " progress-bar-striped progress-bar-animated");
    return data.finished;
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.ok && update(await response.json())) return;
    } catch (e) {
      /* the server may be restarting: try again */
    }
    setTimeout(poll, 1500);
  }
  poll();
})();
