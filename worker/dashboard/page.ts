/**
 * The dashboard's HTML shell. It holds no data: everything shown comes from `/admin/stats*`,
 * fetched by the script with the admin token the operator types in.
 */
export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard · operator dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/admin/dashboard/app.css">
<script src="/admin/dashboard/app.js" defer></script>
</head>
<body>
<header class="bar">
  <div class="brand">Switchyard<span>operator dashboard</span></div>
  <div class="meta">
    <span id="updated"></span>
    <span id="conn" class="dot" title="stats polling"></span>
    <button id="logout" type="button" hidden>Sign out</button>
  </div>
</header>
<main>
  <section id="login-view" class="login" hidden>
    <form id="login" class="card" autocomplete="off">
      <h1>Sign in</h1>
      <p>Enter the admin token (the Worker's <code>ADMIN_TOKEN</code> secret). It stays in this tab's session storage and is sent only as a bearer token to <code>/admin/stats</code>.</p>
      <label for="token">Admin token</label>
      <input id="token" name="token" type="password" required autocomplete="current-password" spellcheck="false">
      <button class="primary" type="submit">Sign in</button>
      <p id="login-error" class="error" role="alert"></p>
    </form>
  </section>
  <section id="dash-view" hidden>
    <div id="banner" class="banner" role="status" hidden></div>
    <div id="tiles" class="tiles"></div>
    <div class="charts">
      <figure class="card">
        <figcaption>In flight and waiting <small>all pools, up to 5 minutes</small></figcaption>
        <svg id="chart-load" class="chart" role="img" aria-label="Requests in flight and waiting over time"></svg>
        <div id="legend-load" class="legend"></div>
      </figure>
      <figure class="card">
        <figcaption>Tokens/s by tenant <small>10 s average, counted as requests end</small></figcaption>
        <svg id="chart-tokens" class="chart" role="img" aria-label="Tokens per second by tenant over time"></svg>
        <div id="legend-tokens" class="legend"></div>
      </figure>
    </div>
    <section class="card">
      <h2>Pools and nodes</h2>
      <div id="pools"></div>
    </section>
    <section class="card">
      <h2>Tenants <small>click a row for details</small></h2>
      <table id="tenants">
        <thead><tr>
          <th>Tenant</th><th class="num">Weight</th><th class="num">In flight</th><th class="num">Waiting</th><th class="num">Tokens/s</th>
          <th class="num">Requests today</th><th class="num">Tokens today</th><th class="num">Tokens month</th>
          <th class="num">RPM left</th><th class="num">TPM left</th><th class="num">Budget left</th>
          <th class="num" title="requests / tokens / budget">Limit rejections today</th><th class="num">Queue timeouts</th><th class="num">Cancelled</th><th>VTC counter</th>
        </tr></thead>
        <tbody></tbody>
      </table>
      <p id="tenants-note" class="muted"></p>
    </section>
    <section id="tenant-detail" class="card" hidden></section>
  </section>
</main>
</body>
</html>
`;
