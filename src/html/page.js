'use strict';
// The list of jobs: a page at a time of the filtered, sorted jobs, as video
// cards or a table, and a detail panel. The view lives in the URL's fragment
// (#status=failed,expired&model=…&q=…&sort=-bytes&page=2&per=48&view=table&job=ID).
// Text goes in with textContent and attributes with setAttribute: nothing from
// the data is ever parsed as markup.
(() => {
  const D = JSON.parse(document.getElementById('data').textContent);
  const J = D.jobs, S = D.statuses, M = D.models, C = {};
  D.columns.forEach((name, i) => { C[name] = i; });
  const CLS = { succeeded: 'ok', failed: 'bad', timed_out: 'warn', unknown: 'warn', expired: 'exp', pending: 'idle' };
  const PER = [24, 48, 96, 200];
  const $ = id => document.getElementById(id);
  const section = $('jobs'), list = $('list'), dialog = $('detail');

  const int = n => n.toLocaleString('en-US');
  const bytes = b => {
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let v = b, u = 0;
    while (v >= 1000 && u + 1 < units.length) { v /= 1000; u += 1; }
    return u ? v.toFixed(1) + ' ' + units[u] : b + ' B';
  };
  const secs = s => s < 60 ? s + ' s' : s < 3600 ? Math.floor(s / 60) + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '')
    : Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
  const money = a => D.currency === 'USD' ? '$' + a.toFixed(2) : a.toFixed(2) + ' ' + D.currency;
  const when = off => off == null ? '' : new Date((D.base + off) * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  const status = j => S[j[C.status]];
  const model = j => M[j[C.model]][0];
  const price = j => {
    const m = M[j[C.model]];
    return m[1] === 'second' ? m[2] * j[C.duration] : m[1] === 'video' ? m[2] : null;
  };
  const reason = j => j[C.error] || (status(j) === 'pending' ? (j[C.attempts] ? 'not finished yet' : 'not sent yet') : '');

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids) if (kid != null && kid !== false && kid !== '') e.append(kid);
    return e;
  }
  const badge = s => el('span', { class: 'badge ' + CLS[s], text: s });
  const tag = text => el('span', { class: 'tag', text });

  // The view.
  const st = { status: new Set(), model: '', q: '', sort: '', desc: false, page: 1, per: 48, view: 'grid', job: '' };
  const SORT = {
    id: j => j[C.id], status: j => j[C.status], model, duration: j => j[C.duration], attempts: j => j[C.attempts],
    bytes: j => j[C.bytes], cost: price, submitted: j => j[C.submitted], finished: j => j[C.finished],
    downloaded: j => j[C.downloaded],
  };

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    st.status = new Set((p.get('status') || '').split(',').filter(s => S.includes(s)));
    st.model = M.some(m => m[0] === p.get('model')) ? p.get('model') : '';
    st.q = p.get('q') || '';
    const sort = p.get('sort') || '';
    st.desc = sort.startsWith('-');
    st.sort = SORT[sort.replace(/^-/, '')] ? sort.replace(/^-/, '') : '';
    st.per = PER.includes(+p.get('per')) ? +p.get('per') : 48;
    st.page = Math.max(1, parseInt(p.get('page'), 10) || 1);
    st.view = p.get('view') === 'table' ? 'table' : 'grid';
    st.job = p.get('job') || '';
  }

  function writeHash() {
    const p = new URLSearchParams();
    if (st.status.size) p.set('status', [...st.status].join(','));
    if (st.model) p.set('model', st.model);
    if (st.q) p.set('q', st.q);
    if (st.sort || st.desc) p.set('sort', (st.desc ? '-' : '') + (st.sort || 'manifest'));
    if (st.page > 1) p.set('page', st.page);
    if (st.per !== 48) p.set('per', st.per);
    if (st.view !== 'grid') p.set('view', st.view);
    if (st.job) p.set('job', st.job);
    const h = p.toString();
    try {
      history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
    } catch (e) { /* a browser that refuses it on file://: the view still works, unshared */ }
  }

  // The jobs that match, in order: recomputed only when the filters or the order change.
  let hay = null, key = null, order = [];
  function matching() {
    const k = JSON.stringify([[...st.status].sort(), st.model, st.q, st.sort, st.desc]);
    if (k === key) return order;
    const want = new Set([...st.status].map(s => S.indexOf(s)));
    const m = st.model ? M.findIndex(x => x[0] === st.model) : -1;
    const terms = st.q.toLowerCase().split(/\s+/).filter(Boolean);
    if (terms.length && !hay) hay = J.map(j => (j[C.id] + '\n' + j[C.prompt]).toLowerCase());
    const out = [];
    for (let i = 0; i < J.length; i++) {
      const j = J[i];
      if (want.size && !want.has(j[C.status])) continue;
      if (m >= 0 && j[C.model] !== m) continue;
      if (terms.length && !terms.every(t => hay[i].includes(t))) continue;
      out.push(i);
    }
    if (st.sort) {
      const f = SORT[st.sort], dir = st.desc ? -1 : 1;
      const keys = new Map(out.map(i => [i, f(J[i])]));
      out.sort((a, b) => {
        const x = keys.get(a), y = keys.get(b);
        if (x === y || (x == null && y == null)) return a - b;
        if (x == null) return 1;
        if (y == null) return -1;
        return (x < y ? -1 : 1) * dir;
      });
    } else if (st.desc) {
      out.reverse();
    }
    key = k;
    order = out;
    return out;
  }

  // Videos get their src when in view or scrolled to; until then they are bare players
  // (preload=none, no src): a page of 200 cards fetches only what the window shows.
  let io = null;
  const load = v => { if (!v.getAttribute('src')) { v.preload = 'metadata'; v.src = v.dataset.src; } };
  function player(src, holder, lazy) {
    const v = el('video', { controls: true, preload: 'none', 'data-src': src });
    v.addEventListener('loadedmetadata', () => { holder.dataset.state = 'loaded'; });
    v.addEventListener('error', () => { holder.dataset.state = 'error'; });
    if (!lazy) load(v);
    return v;
  }

  function card(i) {
    const j = J[i], s = status(j);
    const fig = el('figure', { class: 'card', 'data-job': j[C.id], 'data-status': s });
    fig.append(j[C.src] ? player(j[C.src], fig, true)
      : el('div', { class: 'novideo' }, badge(s), reason(j)));
    fig.append(el('figcaption', null,
      el('div', { class: 'id', text: j[C.id] }),
      el('p', { class: 'prompt', title: j[C.prompt], text: j[C.prompt] }),
      el('div', { class: 'meta' }, tag(model(j)), tag(j[C.aspect_ratio]), tag(j[C.duration] + ' s'),
        j[C.bytes] != null && tag(bytes(j[C.bytes])),
        el('button', { type: 'button', class: 'link more', onclick: () => open(i), text: 'details' })),
      j[C.src] && el('div', { class: 'broken', text: 'cannot play ' + j[C.src] + ' from here' })));
    return fig;
  }

  const COLS = [['id', 'Job'], ['status', 'Status'], ['model', 'Model'], ['duration', 'Length', 'num'],
    ['attempts', 'Attempts', 'num'], ['bytes', 'Size', 'num'], ['finished', 'Finished'], [null, 'Prompt · reason']];
  function table(shown) {
    const head = el('tr');
    for (const [k, label, cls] of COLS) {
      head.append(el('th', {
        class: cls, 'data-sort': k, text: label,
        'aria-sort': k && st.sort === k ? (st.desc ? 'descending' : 'ascending') : null,
        onclick: k && (() => { st.desc = st.sort === k ? !st.desc : false; st.sort = k; st.page = 1; update(); }),
      }));
    }
    const body = el('tbody');
    for (const i of shown) {
      const j = J[i], s = status(j), r = reason(j);
      body.append(el('tr', { 'data-job': j[C.id], 'data-status': s, onclick: () => open(i) },
        el('td', { class: 'mono' }, el('button', { type: 'button', class: 'link', text: j[C.id] })),
        el('td', null, badge(s)),
        el('td', { class: 'mono', text: model(j) }),
        el('td', { class: 'num', text: j[C.duration] + ' s' }),
        el('td', { class: 'num', text: j[C.attempts] }),
        el('td', { class: 'num', text: j[C.bytes] == null ? '–' : bytes(j[C.bytes]) }),
        el('td', { class: 'mono', text: when(j[C.finished]) || '–' }),
        el('td', { class: 'text' }, s !== 'succeeded' && r && el('div', { class: 'err', text: r }),
          el('div', { text: j[C.prompt] }))));
    }
    return el('div', { class: 'table-wrap' }, el('table', null, el('thead', null, head), body));
  }

  function choose(select, value) {
    for (const o of select.options) o.defaultSelected = o.value === value;
    select.value = value;
  }

  function render() {
    const rows = matching();
    const pages = Math.max(1, Math.ceil(rows.length / st.per));
    st.page = Math.min(st.page, pages);
    const from = (st.page - 1) * st.per, shown = rows.slice(from, from + st.per);
    $('matching').textContent = rows.length === J.length ? '(' + int(J.length) + ')'
      : '(' + int(rows.length) + ' of ' + int(J.length) + ' match)';
    $('pageinfo').textContent = rows.length
      ? int(from + 1) + '–' + int(from + shown.length) + ' of ' + int(rows.length) + ' · page ' + int(st.page) + ' of ' + int(pages)
      : 'no job matches';
    $('prev').disabled = st.page <= 1;
    $('next').disabled = st.page >= pages;
    Object.assign(section.dataset, { matching: rows.length, page: st.page, pages, view: st.view });
    if (io) io.disconnect();
    io = 'IntersectionObserver' in window ? new IntersectionObserver(seen => {
      for (const e of seen) if (e.isIntersecting) { load(e.target); io.unobserve(e.target); }
    }, { rootMargin: '400px' }) : null;
    let content;
    if (!rows.length) content = el('p', { class: 'none', text: J.length ? 'No job matches these filters.' : 'The manifest has no job.' });
    else if (st.view === 'table') content = table(shown);
    else { content = el('div', { class: 'cards' }); for (const i of shown) content.append(card(i)); }
    list.replaceChildren(content);
    // The players in view start loading now (the first screen's), the others when scrolled to.
    for (const v of list.querySelectorAll('video[data-src]:not([src])')) {
      const r = v.getBoundingClientRect();
      if (!io || (r.bottom > -400 && r.top < innerHeight + 400)) load(v); else io.observe(v);
    }
    // Attributes as well as values: the state shows in the DOM (and in the tests' dumps).
    for (const c of document.querySelectorAll('input[name=status]')) c.defaultChecked = c.checked = st.status.has(c.value);
    choose($('model'), st.model);
    if ($('q').value !== st.q) $('q').value = st.q;
    $('q').defaultValue = st.q;
    choose($('sort'), st.sort);
    choose($('per'), String(st.per));
    $('dir').textContent = st.desc ? '↓' : '↑';
    for (const b of document.querySelectorAll('.views [data-view]')) b.setAttribute('aria-pressed', String(b.dataset.view === st.view));
  }

  function detail(i) {
    const j = J[i], s = status(j), p = price(j), sub = j[C.submitted], fin = j[C.finished], dl = j[C.downloaded];
    const after = (t, from, what) => when(t) + (t != null && from != null ? ' (' + secs(Math.max(0, t - from)) + ' after ' + what + ')' : '');
    let file = j[C.src];
    try { file = decodeURIComponent(file); } catch (e) { /* shown as encoded */ }
    const fields = [
      ['status', 'Status', badge(s)],
      ['model', 'Model', model(j)],
      ['aspect_ratio', 'Aspect ratio', j[C.aspect_ratio]],
      ['duration', 'Duration', j[C.duration] + ' s'],
      ['price', 'Price', p == null ? 'no price in [pricing]' : money(p)],
      ['attempts', 'Attempts', String(j[C.attempts])],
      ['task_id', 'Task id', j[C.task_id] || '–'],
      j[C.task_ids] && ['task_ids', 'Earlier tasks', j[C.task_ids].split('|').join(', ')],
      ['submitted', 'Submitted', when(sub) || '–'],
      ['finished', 'Finished', after(fin, sub, 'submit') || '–'],
      ['downloaded', 'Downloaded', after(dl, fin, 'finish') || '–'],
      ['bytes', 'Size', j[C.bytes] == null ? '–' : bytes(j[C.bytes]) + ' (' + int(j[C.bytes]) + ' bytes)'],
      ['sha256', 'SHA-256', j[C.sha256] || '–'],
      j[C.src] && ['file', 'File', el('a', { href: j[C.src], text: file })],
      j[C.image_urls] && ['image_urls', 'Images', j[C.image_urls].split('|').join('\n')],
      ['error', 'Error', reason(j) || '–'],
      ['prompt', 'Prompt', j[C.prompt]],
    ].filter(Boolean);
    const box = el('div', { class: 'detail', 'data-job': j[C.id], 'data-status': s },
      el('div', { class: 'top' }, el('h2', { text: j[C.id] }),
        el('button', { type: 'button', onclick: () => dialog.close(), text: 'close' })),
      j[C.src] && player(j[C.src], dialog, false),
      el('dl', null, ...fields.flatMap(([k, label, v]) => [el('dt', { text: label }), el('dd', { 'data-field': k }, v)])));
    dialog.removeAttribute('data-state');
    dialog.replaceChildren(box);
    if (!dialog.open) {
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute('open', '');
    }
  }

  function open(i) { st.job = J[i][C.id]; writeHash(); detail(i); }
  function showJob() {
    const i = st.job ? J.findIndex(j => j[C.id] === st.job) : -1;
    if (i >= 0) detail(i);
    else if (dialog.open) dialog.close();
  }
  dialog.addEventListener('close', () => { if (st.job) { st.job = ''; writeHash(); } });

  function update() { writeHash(); render(); }

  // The controls.
  const counts = new Map();
  for (const j of J) counts.set(j[C.model], (counts.get(j[C.model]) || 0) + 1);
  for (const [m] of [...counts].sort((a, b) => (M[a[0]][0] < M[b[0]][0] ? -1 : 1))) {
    $('model').append(el('option', { value: M[m][0], text: M[m][0] + ' (' + int(counts.get(m)) + ')' }));
  }
  for (const c of document.querySelectorAll('input[name=status]')) {
    c.addEventListener('change', () => {
      st.status = new Set([...document.querySelectorAll('input[name=status]:checked')].map(x => x.value));
      st.page = 1; update();
    });
  }
  $('model').addEventListener('change', e => { st.model = e.target.value; st.page = 1; update(); });
  let typing = 0;
  $('q').addEventListener('input', e => {
    clearTimeout(typing);
    typing = setTimeout(() => { st.q = e.target.value; st.page = 1; update(); }, J.length > 20000 ? 200 : 60);
  });
  $('sort').addEventListener('change', e => { st.sort = e.target.value; st.page = 1; update(); });
  $('dir').addEventListener('click', () => { st.desc = !st.desc; st.page = 1; update(); });
  $('per').addEventListener('change', e => { st.per = +e.target.value; st.page = 1; update(); });
  for (const b of document.querySelectorAll('.views [data-view]')) {
    b.addEventListener('click', () => { st.view = b.dataset.view; update(); });
  }
  const turn = by => { st.page += by; update(); section.scrollIntoView(); };
  $('prev').addEventListener('click', () => turn(-1));
  $('next').addEventListener('click', () => turn(1));
  for (const a of document.querySelectorAll('.counts a')) {
    a.addEventListener('click', () => setTimeout(() => section.scrollIntoView(), 0));
  }
  window.addEventListener('hashchange', () => { readHash(); render(); showJob(); });

  readHash();
  section.hidden = false;
  render();
  showJob();
  // For the benchmark and the tests: when the first screen was built, and when the
  // browser had painted it (a task after the next frame).
  const root = document.documentElement.dataset;
  root.firstRenderMs = String(Math.round(performance.now()));
  requestAnimationFrame(() => setTimeout(() => { root.firstPaintMs = String(Math.round(performance.now())); }, 0));
})();
