// A queued or running job (curation, loss scan) on its page: polls the job's status.json and reloads
// the page once the job finished, so its results show. The element carries data-job-status-url.
(function () {
  const box = document.querySelector("[data-job-status-url]");
  if (!box) return;
  const status = box.querySelector('[data-field="status"]');

  async function poll() {
    try {
      const response = await fetch(box.dataset.jobStatusUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        if (status) status.textContent = data.status_display;
        if (data.finished) {
          window.location.reload();
          return;
        }
      }
    } catch (e) {
      /* the server may be restarting: try again */
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 1000);
})();
