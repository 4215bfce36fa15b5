// Polls a diagnosis job's JSON until it ends; the page itself is rendered from the stored job.
const script = document.currentScript;
const url = `/api/jobs/${script.dataset.job}`;

function render(job) {
  const failed = job.status === "failed" && job.error;
  document.getElementById("job-status").textContent = failed ? `failed: ${job.error.split("\n")[0]}` : job.status;
  const body = document.getElementById("job-stages");
  body.replaceChildren(...job.stages.map((s) => {
    const row = document.createElement("tr");
    for (const value of [s.name, s.state, s.seconds ?? ""]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  }));
  const error = document.getElementById("job-error");
  error.hidden = !job.error;
  error.textContent = job.error || "";
  const actions = document.getElementById("job-actions");  // retry and delete, for writers
  if (actions) actions.hidden = job.status !== "failed";
  const report = document.getElementById("job-report");
  if (job.report_url) {
    report.hidden = false;
    report.querySelector("a").href = job.report_url;
  }
}

async function poll() {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const job = await response.json();
  render(job);
  if (job.status === "queued" || job.status === "running") setTimeout(poll, 1000);
}
poll();
