// popsteer status page: polls the admin API and draws PoP health, traffic
// share, the fleet (with --fleet), the active policy set and the world map.
// No external assets.
'use strict';

const REFRESH_MS = 2000;
const PALETTE = [
  '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7',
  '#9c755f', '#86bcb6', '#d4a6c8', '#8cd17d', '#f1ce63', '#a0cbe8', '#ffbe7d', '#d37295',
];
const NONE_COLOUR = '#3a4654';
const MAP_CELL_DEGREES = 1;

const state = { pops: [], colours: new Map(), mapPolicy: null, statusAt: 0 };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v;
    else node.setAttribute(k, String(v));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function colourOf(id) {
  if (!state.colours.has(id)) {
    // Endpoints that are not catalog PoPs get a colour from their id.
    let h = 0;
    for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    state.colours.set(id, PALETTE[h % PALETTE.length]);
  }
  return state.colours.get(id);
}

function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${seconds % 60}s`;
}

async function getJson(path) {
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// ---- header

function renderStatus(s) {
  $('pop-id').textContent = `· ${s.pop}`;
  document.title = `popsteer ${s.pop}`;
  const facts = [
    ['version', s.version], ['uptime', duration(s.uptime_seconds)], ['workers', s.workers],
    ['policy set', s.policy_hash.slice(0, 12)], ['loaded', ago(s.policy_loaded_at)],
    ['GeoIP', `${s.geoip.type} · ${s.geoip.build_date.slice(0, 10)}`],
    ['reloads', `${s.reloads.success} ok · ${s.reloads.failure} rejected`],
  ];
  $('facts').replaceChildren(...facts.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, String(v)))));
  $('policy-hash').textContent = s.policy_hash;
}

// ---- PoPs

function renderPops(data) {
  state.pops = data.pops;
  data.pops.forEach((p, i) => state.colours.set(p.id, PALETTE[i % PALETTE.length]));
  $('cut-off').hidden = !data.cut_off.active;
  const rows = data.pops.map((p) => {
    const target = p.targets.find((t) => t.last_probe) || p.targets[0];
    const probe = target && target.last_probe
      ? `${target.last_probe.ok ? 'ok' : target.last_probe.reason || 'failed'} · ${ago(target.last_probe.at)}`
      : p.targets.length === 0 ? 'not probed' : 'no result yet';
    const override = p.override
      ? el('span', { class: 'override', title: p.override.reason }, `${p.override.kind}: ${p.override.reason}${p.override.expires ? ` (until ${new Date(p.override.expires).toLocaleTimeString()})` : ''}`)
      : '';
    return el('tr', { 'data-pop': p.id, 'data-state': p.state, 'data-override': p.override ? p.override.kind : '' },
      el('td', {}, el('span', { class: 'swatch', style: `background:${colourOf(p.id)}` })),
      el('td', {}, el('span', { class: 'dot', title: p.state }), ' ', el('strong', {}, p.id), ' ', el('span', { class: 'muted' }, p.name), p.self ? el('span', { class: 'self' }, 'this') : null),
      el('td', { class: 'state' }, p.override && p.override.kind === 'drain' ? 'drained' : p.state),
      el('td', { class: 'muted nowrap', title: p.since }, ago(p.since)),
      el('td', { class: 'muted nowrap' }, probe, ...fleetVerdicts(p)),
      el('td', {}, override));
  });
  $('pops').tBodies[0].replaceChildren(...rows);
}

/** In a fleet, each target's verdict with its evidence ("down: seen down by fra, lhr; ams excluded (cut off)"). */
function fleetVerdicts(p) {
  return p.targets.filter((t) => t.verdict).map((t) => el('div', { class: 'verdict', 'data-target': t.id }, `${t.id}: ${t.verdict.evidence}`));
}

// ---- fleet (GET /v1/fleet; the panel stays hidden without --fleet)

function revisionText(i) {
  const served = i.revision === null ? 'local files' : `revision ${i.revision}`;
  return i.revision_failed
    ? el('span', {}, served, ' ', el('span', { class: 'refused', title: i.revision_failed.errors.join('\n') }, `REFUSED ${i.revision_failed.revision}`))
    : served;
}

function renderFleet(f) {
  $('fleet').hidden = !f.enabled;
  if (!f.enabled) return;
  $('fleet-name').textContent = f.name;
  const link = $('fleet-link');
  link.dataset.connected = String(f.connected);
  link.textContent = f.connected ? `connected to the fleet ${ago(f.since)}` : `fleet unreachable since ${ago(f.since)}: serving the last known fleet state`;
  $('fleet-instances').tBodies[0].replaceChildren(...f.instances.map((i) => el('tr', { 'data-pop': i.pop, 'data-instance': i.instance, 'data-connected': i.connected, 'data-revision': i.revision === null ? '' : i.revision },
    el('td', {}, el('strong', {}, i.pop), i.self ? el('span', { class: 'self' }, 'this') : null),
    el('td', {}, el('code', {}, i.instance)),
    el('td', {}, revisionText(i)),
    el('td', { class: 'connected' }, i.connected ? 'connected' : 'not connected'),
    el('td', { class: 'muted nowrap', title: i.last_seen }, ago(i.last_seen)))));
  const overrides = f.overrides.filter((o) => o.action !== 'undrain' && (o.expires === null || Date.parse(o.expires) > Date.now()));
  $('fleet-overrides').tBodies[0].replaceChildren(...(overrides.length === 0
    ? [el('tr', {}, el('td', { class: 'muted', colspan: 5 }, 'none'))]
    : overrides.map((o) => el('tr', { 'data-subject': o.subject, 'data-action': o.action },
      el('td', {}, el('strong', {}, o.subject)), el('td', { class: 'override' }, o.action), el('td', {}, o.reason),
      el('td', { class: 'muted' }, o.author), el('td', { class: 'muted nowrap' }, o.expires ? new Date(o.expires).toLocaleString() : 'until lifted')))));
  const loads = f.loads || [];
  $('fleet-loads').textContent = loads.length === 0 ? 'No declared load.' : `Declared load: ${loads.map((l) => `${l.pop} ${l.load} (${l.author}, ${ago(l.at)})`).join(' · ')}`;
}

// ---- traffic share (stacked areas of answers per interval)

function renderTraffic(t) {
  const svg = $('traffic');
  const ns = 'http://www.w3.org/2000/svg';
  const ids = Object.keys(t.endpoints);
  const n = t.times.length;
  const totals = t.times.map((_, i) => ids.reduce((sum, id) => sum + t.endpoints[id][i], 0));
  const grand = totals.reduce((a, b) => a + b, 0);
  svg.replaceChildren();
  $('traffic-window').textContent = `last ${Math.round((n * t.intervalSeconds) / 60) || 1} min, ${t.intervalSeconds} s steps`;
  svg.setAttribute('data-total', String(grand));
  const legend = ids
    .map((id) => ({ id, answers: t.endpoints[id].reduce((a, b) => a + b, 0) }))
    .sort((a, b) => b.answers - a.answers);
  $('traffic-legend').replaceChildren(...legend.map(({ id, answers }) => el('li', { 'data-endpoint': id, 'data-answers': answers },
    el('span', { class: 'swatch', style: `background:${colourOf(id)}` }), id,
    el('span', { class: 'count' }, grand > 0 ? `${((100 * answers) / grand).toFixed(1)}%` : '–'))));
  if (grand === 0 || n < 1) {
    const text = document.createElementNS(ns, 'text');
    text.setAttribute('x', '300');
    text.setAttribute('y', '95');
    text.setAttribute('text-anchor', 'middle');
    text.setAttribute('fill', '#8695a5');
    text.setAttribute('font-size', '13');
    text.textContent = 'no steered answers yet';
    svg.append(text);
    return;
  }
  // Shares per interval, stacked; x spans the retained window.
  // Each interval is a step of the stacked chart, so one interval is a full-width block.
  const width = 600;
  const height = 180;
  const step = width / n;
  const base = new Array(n).fill(0);
  for (const { id } of legend) {
    const top = base.map((b, i) => b + (totals[i] > 0 ? t.endpoints[id][i] / totals[i] : 0));
    const points = [];
    for (let i = 0; i < n; i++) points.push(`${i * step},${height - top[i] * height}`, `${(i + 1) * step},${height - top[i] * height}`);
    for (let i = n - 1; i >= 0; i--) points.push(`${(i + 1) * step},${height - base[i] * height}`, `${i * step},${height - base[i] * height}`);
    const polygon = document.createElementNS(ns, 'polygon');
    polygon.setAttribute('points', points.join(' '));
    polygon.setAttribute('fill', colourOf(id));
    polygon.setAttribute('data-endpoint', id);
    svg.append(polygon);
    for (let i = 0; i < n; i++) base[i] = top[i];
  }
}

// ---- active policies

/** Steps arrive as written: plain names, or one-key objects as JSON ({"first":1}). */
function stepText(step) {
  if (!step.startsWith('{')) return step;
  try {
    return Object.entries(JSON.parse(step)).map(([k, v]) => (v !== null && typeof v === 'object'
      ? `${k} ${Object.entries(v).map(([a, b]) => `${a}=${Array.isArray(b) ? b.join('/') : b}`).join(' ')}`
      : `${k} ${v}`)).join(', ');
  } catch {
    return step;
  }
}

function renderPolicies(p) {
  const cards = p.policies.map((policy) => el('div', { class: 'policy' },
    el('h3', {}, policy.name),
    el('div', { class: 'file' }, `${policy.file} · TTL ${policy.ttl}s (degraded ${policy.degraded_ttl}s) · all down: ${policy.when_all_down}`),
    el('ol', {}, ...policy.rules.map((r) => el('li', {},
      el('strong', {}, r.name), ` ${r.match} → `,
      el('span', { class: 'muted' }, `${r.steps.map(stepText).join(' → ')} over ${r.pools.map((pool) => pool.join(' ')).join(' | ')}`))))));
  $('policies').replaceChildren(...cards);
  const select = $('map-policy');
  const names = p.policies.map((x) => x.name);
  if (select.options.length !== names.length || [...select.options].some((o, i) => o.value !== names[i])) {
    select.replaceChildren(...names.map((name) => el('option', { value: name }, name)));
    const preferred = names.find((name) => name.startsWith('www.')) || names[0];
    state.mapPolicy = state.mapPolicy && names.includes(state.mapPolicy) ? state.mapPolicy : preferred;
    select.value = state.mapPolicy;
  }
}

// ---- world map (equirectangular)

function renderMap(m) {
  const canvas = $('map');
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  const cellPx = (m.cellDegrees / 360) * w;
  ctx.fillStyle = '#121a23';
  ctx.fillRect(0, 0, w, h);
  // Graticule every 30°.
  ctx.strokeStyle = 'rgba(134, 149, 165, 0.12)';
  ctx.lineWidth = 1;
  for (let lon = -180; lon <= 180; lon += 30) {
    const px = ((lon + 180) / 360) * w;
    ctx.beginPath(); ctx.moveTo(px, 0); ctx.lineTo(px, h); ctx.stroke();
  }
  for (let lat = -90; lat <= 90; lat += 30) {
    const py = ((90 - lat) / 180) * h;
    ctx.beginPath(); ctx.moveTo(0, py); ctx.lineTo(w, py); ctx.stroke();
  }
  const colours = m.endpoints.map((e) => colourOf(e.id));
  for (let i = 0; i < m.cells.length; i += 3) {
    const row = m.cells[i];
    const column = m.cells[i + 1];
    const endpoint = m.cells[i + 2];
    ctx.fillStyle = endpoint >= 0 ? colours[endpoint] : NONE_COLOUR;
    ctx.fillRect(column * cellPx, h - (row + 1) * cellPx, cellPx - 0.5, cellPx - 0.5);
  }
  // PoP markers: filled when up, a red ring with a cross when down.
  ctx.font = '600 12px system-ui, sans-serif';
  for (const e of m.endpoints) {
    if (e.lat === null || e.lon === null) continue;
    const px = ((e.lon + 180) / 360) * w;
    const py = ((90 - e.lat) / 180) * h;
    ctx.beginPath();
    ctx.arc(px, py, 6, 0, Math.PI * 2);
    ctx.fillStyle = e.up ? colourOf(e.id) : '#0f1419';
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = e.up ? '#ffffff' : '#e5484d';
    ctx.stroke();
    if (!e.up) {
      ctx.beginPath();
      ctx.moveTo(px - 3, py - 3); ctx.lineTo(px + 3, py + 3);
      ctx.moveTo(px + 3, py - 3); ctx.lineTo(px - 3, py + 3);
      ctx.stroke();
    }
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(15, 20, 25, 0.85)';
    ctx.strokeText(e.id, px + 9, py + 4);
    ctx.fillStyle = e.up ? '#ffffff' : '#e5484d';
    ctx.fillText(e.id, px + 9, py + 4);
  }
  const areas = Object.fromEntries(m.endpoints.map((e) => [e.id, e.cells]));
  canvas.dataset.policy = m.name;
  canvas.dataset.healthEpoch = String(m.healthEpoch);
  canvas.dataset.areas = JSON.stringify(areas);
  const served = m.endpoints.filter((e) => e.cells > 0 || !e.up).sort((a, b) => b.cells - a.cells);
  $('map-legend').replaceChildren(...served.map((e) => el('li', { 'data-endpoint': e.id, 'data-cells': e.cells, 'data-up': e.up },
    el('span', { class: 'swatch', style: `background:${colourOf(e.id)}` }), e.id,
    el('span', { class: 'count' }, e.up ? `${e.cells} cells` : 'down'))));
}

// ---- polling

async function refresh() {
  try {
    const now = Date.now();
    const [pops, traffic, policies, fleet] = await Promise.all([getJson('/v1/pops'), getJson('/v1/traffic'), getJson('/v1/policies'), getJson('/v1/fleet')]);
    renderPops(pops);
    renderFleet(fleet);
    renderPolicies(policies);
    renderTraffic(traffic);
    if (now - state.statusAt > 10000) {
      renderStatus(await getJson('/v1/status'));
      state.statusAt = now;
    }
    if (state.mapPolicy) renderMap(await getJson(`/v1/map?cell=${MAP_CELL_DEGREES}&name=${encodeURIComponent(state.mapPolicy)}`));
    $('connection').dataset.state = 'ok';
    $('connection').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (err) {
    $('connection').dataset.state = 'error';
    $('connection').textContent = `cannot reach the admin API: ${err.message}`;
  }
}

$('map-policy').addEventListener('change', (event) => {
  state.mapPolicy = event.target.value;
  void refresh();
});

async function loop() {
  await refresh();
  setTimeout(loop, REFRESH_MS);
}
void loop();
