/** The dashboard's stylesheet, served as `/admin/dashboard/app.css` (laid out for 1280×800 and up). */
export const DASHBOARD_CSS = String.raw`
:root {
  --bg: #f4f6f9; --card: #ffffff; --ink: #16202c; --muted: #5d6b7a; --line: #e2e7ee;
  --accent: #2563eb; --ok: #15803d; --warn: #b45309; --bad: #b91c1c; --idle: #6b7280;
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
[hidden] { display: none !important; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #eef1f5; padding: 1px 4px; border-radius: 3px; }
.bar { display: flex; align-items: center; justify-content: space-between; padding: 10px 20px; background: #0f1b2d; color: #fff; }
.brand { font-weight: 650; font-size: 15px; letter-spacing: .2px; }
.brand span { font-weight: 400; color: #9fb0c6; margin-left: 6px; }
.meta { display: flex; align-items: center; gap: 12px; color: #9fb0c6; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--idle); display: inline-block; }
.dot.live { background: #22c55e; } .dot.stale { background: #f59e0b; } .dot.down { background: #ef4444; }
button { font: inherit; border: 1px solid var(--line); background: #fff; color: var(--ink); border-radius: 6px; padding: 6px 12px; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; }
.bar button { background: transparent; color: #dbe4f0; border-color: #33445c; padding: 3px 10px; }
main { max-width: 1400px; margin: 0 auto; padding: 14px 20px 30px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin: 0 0 14px; }
h1 { font-size: 18px; margin: 0 0 8px; } h2 { font-size: 14px; margin: 0 0 8px; }
.muted, small { color: var(--muted); }
.login { display: flex; justify-content: center; padding-top: 10vh; }
.login form { width: 420px; display: flex; flex-direction: column; gap: 8px; }
.login p { margin: 0 0 4px; color: var(--muted); }
.login input { font: 13px ui-monospace, monospace; padding: 8px; border: 1px solid #c9d2dd; border-radius: 6px; }
.error { color: var(--bad); min-height: 1.2em; margin: 0; }
.banner { background: #fff7ed; border: 1px solid #fed7aa; color: #9a3412; padding: 8px 12px; border-radius: 6px; margin-bottom: 12px; }
.tiles { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; margin-bottom: 14px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
figure { margin: 0 0 14px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
figcaption small { font-weight: 400; margin-left: 6px; }
svg.chart { width: 100%; height: 180px; display: block; }
svg.chart .grid { stroke: #edf0f4; } svg.chart .axis { fill: var(--muted); font-size: 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); min-height: 18px; }
.legend i { display: inline-block; width: 10px; height: 3px; border-radius: 2px; margin-right: 5px; vertical-align: middle; }
.legend b { color: var(--ink); font-weight: 600; margin-left: 4px; font-variant-numeric: tabular-nums; }
.pool { margin-bottom: 12px; } .pool:last-child { margin-bottom: 0; }
.pool-head { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; margin-bottom: 6px; }
.pool-head strong { font-size: 13px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; vertical-align: bottom; font-weight: 600; color: var(--muted); font-size: 10.5px; text-transform: uppercase; letter-spacing: .3px; padding: 5px 6px; border-bottom: 1px solid var(--line); }
td { padding: 6px 6px; border-bottom: 1px solid #f0f2f5; white-space: nowrap; }
td.wrap { white-space: normal; }
td.num, th.num { text-align: right; }
tr.clickable { cursor: pointer; } tr.clickable:hover td { background: #f7f9fc; } tr.selected td { background: #eef4ff; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef1f5; color: var(--idle); }
.pill.healthy { background: #dcfce7; color: var(--ok); } .pill.draining, .pill.failing { background: #fef3c7; color: var(--warn); }
.pill.unhealthy { background: #fee2e2; color: var(--bad); }
.meter { display: inline-block; width: 70px; height: 7px; background: #edf0f4; border-radius: 4px; vertical-align: middle; margin-right: 6px; overflow: hidden; }
.meter > span { display: block; height: 100%; background: var(--accent); }
.meter.hot > span { background: #f59e0b; } .meter.full > span { background: #ef4444; }
.bad { color: var(--bad); font-weight: 600; }
.detail-grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 14px; }
.detail-grid h3 { font-size: 12px; margin: 0 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .3px; }
.kv { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; font-variant-numeric: tabular-nums; }
.detail-head { display: flex; justify-content: space-between; align-items: center; }
`;
