/* 系统管理 — the admin's pages: categories, linkage units, knowledge base, working-day calendar.
 * Plain ES2020, no dependencies. All data goes into the DOM via textContent.
 * The server decides who may do what (admin; the supervisor keeps the knowledge base).
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- labels

  const ROLE_NAMES = {
    agent: '坐席',
    supervisor: '值班长',
    supervision: '督查室',
    handler: '承办人',
    admin: '系统管理员',
  };
  const TABS = ['categories', 'units', 'knowledge', 'calendar'];
  const ROLE_TABS = { admin: TABS, supervisor: ['knowledge'] };
  const LEVEL_NAMES = { 1: '一级', 2: '二级', 3: '三级' };
  const NOTICE_TEMPLATE = (year) => [
    `year: ${year}`,
    `notice: 国务院办公厅关于${year}年部分节假日安排的通知`,
    '# 每个假期一行：from 到 to（含）全部休息，周末也写进去；只有一天可不写 to。',
    '# 请把 MM-DD 换成通知里的日期，没有的假期整行删去。',
    'holidays:',
    `  - {name: 元旦, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    `  - {name: 春节, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    `  - {name: 清明节, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    `  - {name: 劳动节, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    `  - {name: 端午节, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    `  - {name: 中秋节, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    `  - {name: 国庆节, from: ${year}-MM-DD, to: ${year}-MM-DD}`,
    '# 调休上班的周六、周日：',
    'working_days:',
    `  - {date: ${year}-MM-DD, name: 春节调休}`,
    '',
  ].join('\n');

  // ---------------------------------------------------------------- state

  const A = {
    csrf: null,
    me: null,
    tab: null,
    categories: [],
    catForm: null, // {mode: 'add' | 'edit', code, parent}
    units: [],
    kinds: [],
    unitsById: new Map(),
    unitId: null,
    importName: '',
    handlersName: '',
    kbEditing: null, // entry id, 0 for a new one, null when closed
    kbQuery: '',
    kbEntries: [],
    kbCategories: [],
    year: null,
    calendar: null,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  function el(tag, opts = {}, children = []) {
    const node = document.createElement(tag);
    if (opts.className) node.className = opts.className;
    if (opts.text != null) node.textContent = String(opts.text);
    if (opts.title) node.title = opts.title;
    if (opts.id) node.id = opts.id;
    if (opts.dataset) {
      for (const [k, v] of Object.entries(opts.dataset)) {
        if (v != null) node.dataset[k] = String(v);
      }
    }
    for (const child of children) if (child) node.appendChild(child);
    return node;
  }

  function button(text, className, onClick, label) {
    const b = el('button', { className, text });
    b.type = 'button';
    if (label) b.setAttribute('aria-label', label);
    if (onClick) b.addEventListener('click', (ev) => onClick(ev, b));
    return b;
  }

  function str(v) {
    return v == null ? '' : String(v);
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  function fmtDateTime(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return str(iso);
    const d = new Date(t);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  }

  function show(node, text, kind) {
    node.textContent = text || '';
    if (kind) node.dataset.kind = kind;
    node.hidden = !text;
  }

  function showPageError(text, kind = 'error') {
    const box = $('page-error');
    box.replaceChildren(el('span', { className: 'desk-error-text', text }),
      button('知道了', 'btn btn-small btn-ghost', () => { box.hidden = true; }));
    box.dataset.kind = kind;
    box.hidden = false;
  }

  /** A file's mistakes as "文件:行" and the sentence, one per item. */
  function renderProblems(list, problems) {
    list.replaceChildren(...(problems || []).map((p) => {
      const where = Number(p.line) > 0 ? `${str(p.file)} 第 ${str(p.line)} 行` : str(p.file);
      return el('li', { dataset: { line: p.line } }, [
        el('span', { className: 'problem-where mono', text: where }),
        el('span', { className: 'problem-text', text: str(p.message) }),
      ]);
    }));
    list.hidden = !(problems && problems.length);
  }

  function withBusy(btn, busyText, fn) {
    return async (...args) => {
      if (btn.disabled) return;
      const text = btn.textContent;
      btn.disabled = true;
      btn.textContent = busyText;
      try {
        await fn(...args);
      } finally {
        btn.disabled = false;
        btn.textContent = text;
      }
    };
  }

  // ---------------------------------------------------------------- HTTP


  async function api(method, path, body, { authRedirect = true } = {}) {
    try {
      return await window.HotlineHttp.request(method, path, body, A.csrf);
    } catch (e) {
      if (e.status === 401 && authRedirect && A.me) showLogin('登录已过期，请重新登录');
      throw e;
    }
  }

  // ---------------------------------------------------------------- login / logout

  function showLogin(message) {
    A.me = null;
    A.csrf = null;
    document.body.dataset.view = 'login';
    document.body.dataset.role = '';
    document.title = '系统管理 · 登录';
    $('admin-view').hidden = true;
    $('login-view').hidden = false;
    show($('login-error'), message);
    $('password').value = '';
    ($('login').value ? $('password') : $('login')).focus();
  }

  async function onLoginSubmit(ev) {
    ev.preventDefault();
    const login = $('login').value.trim();
    const password = $('password').value;
    if (!login || !password) {
      show($('login-error'), '请输入用户名和密码');
      return;
    }
    const btn = $('login-submit');
    btn.disabled = true;
    btn.textContent = '正在登录…';
    try {
      enter(await api('POST', '/api/login', { login, password }, { authRedirect: false }));
    } catch (e) {
      show($('login-error'), e.message);
      $('password').select();
    } finally {
      btn.disabled = false;
      btn.textContent = '登录';
    }
  }

  async function onLogout() {
    try {
      await api('POST', '/api/logout', {}, { authRedirect: false });
    } catch (e) {
      if (e.status !== 401) {
        showPageError(`退出失败：${e.message}`);
        return;
      }
    }
    showLogin('');
  }

  function enter(data) {
    A.me = data.agent || null;
    A.csrf = str(data.csrf) || null;
    const role = A.me ? str(A.me.role) : '';
    document.body.dataset.view = 'admin';
    document.body.dataset.role = role;
    document.title = '系统管理 · 12345 / 63160000';
    $('login-view').hidden = true;
    $('admin-view').hidden = false;
    $('user-name').textContent = A.me ? str(A.me.display_name || A.me.login) : '';
    $('user-role').textContent = ROLE_NAMES[role] || role;
    const tabs = ROLE_TABS[role] || [];
    for (const name of TABS) $(`tab-${name}`).hidden = !tabs.includes(name);
    $('no-access').hidden = tabs.length > 0;
    $('link-desk').hidden = role === 'admin';
    if (!tabs.length) {
      for (const name of TABS) $(`panel-${name}`).hidden = true;
      return;
    }
    const wanted = window.location.hash.replace('#', '');
    selectTab(tabs.includes(wanted) ? wanted : tabs[0], false);
  }

  // ---------------------------------------------------------------- tabs

  function allowedTabs() {
    return ROLE_TABS[A.me ? str(A.me.role) : ''] || [];
  }

  function selectTab(name, focus) {
    A.tab = name;
    $('page-error').hidden = true; // a message belongs to the tab it came from
    for (const t of TABS) {
      const tab = $(`tab-${t}`);
      const on = t === name;
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.tabIndex = on ? 0 : -1;
      $(`panel-${t}`).hidden = !on;
    }
    if (focus) $(`tab-${name}`).focus();
    if (window.location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    if (name === 'categories') loadCategories();
    else if (name === 'units') loadUnits();
    else if (name === 'knowledge') openKnowledge();
    else if (name === 'calendar') loadYear(A.year);
  }

  function onTabKey(ev) {
    const tabs = allowedTabs();
    const i = tabs.indexOf(A.tab);
    let next = null;
    if (ev.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
    else if (ev.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (ev.key === 'Home') next = tabs[0];
    else if (ev.key === 'End') next = tabs[tabs.length - 1];
    if (next) {
      ev.preventDefault();
      selectTab(next, true);
    }
  }

  // ---------------------------------------------------------------- categories

  async function loadCategories() {
    try {
      const data = await api('GET', '/api/admin/categories');
      A.categories = Array.isArray(data.categories) ? data.categories : [];
      renderCategories();
    } catch (e) {
      showPageError(`无法读取事项分类：${e.message}`);
    }
  }

  function* walk(nodes, depth = 0) {
    for (const n of nodes) {
      yield [n, depth];
      yield* walk(n.children || [], depth + 1);
    }
  }

  function findCategory(code) {
    for (const [c] of walk(A.categories)) if (c.code === code) return c;
    return null;
  }

  function renderCategories() {
    const showInactive = $('cat-show-inactive').checked;
    const build = (nodes) => nodes
      .filter((c) => showInactive || c.active)
      .map((c) => {
        const row = el('div', { className: 'tree-row' }, [
          el('span', { className: 'tree-code mono', text: c.code }),
          el('span', { className: 'tree-name', text: c.name }),
          c.gbt_code ? el('span', { className: 'tag', text: `国标 ${c.gbt_code}` }) : null,
          c.active ? null : el('span', { className: 'tag tag-off', text: '已停用' }),
          el('span', { className: 'row-actions' }, c.active ? [
            c.code.length < 10 ? button('添加下级', 'btn btn-small btn-ghost',
              () => openCatForm('add', c), `在“${c.name}”下添加类别`) : null,
            button('修改', 'btn btn-small btn-ghost', () => openCatForm('edit', c),
              `修改“${c.name}”`),
            button('停用', 'btn btn-small btn-ghost', () => deactivateCategory(c),
              `停用“${c.name}”`),
          ] : [
            button('启用', 'btn btn-small btn-ghost', () => reactivateCategory(c),
              `启用“${c.name}”`),
          ]),
        ]);
        const kids = build(c.children || []);
        return el('li', { className: 'tree-item', dataset: { code: c.code, active: c.active } }, [
          row, kids.length ? el('ul', { className: 'tree' }, kids) : null,
        ]);
      });
    $('cat-tree').replaceChildren(...build(A.categories));
    let all = 0;
    let off = 0;
    for (const [c] of walk(A.categories)) {
      all += 1;
      if (!c.active) off += 1;
    }
    $('cat-count').textContent = `共 ${all} 类${off ? `，已停用 ${off}` : ''}`;
  }

  function nextChildCode(parent) {
    const used = new Set((parent ? parent.children : A.categories).map((c) => c.code));
    const prefix = parent ? parent.code : '';
    for (let i = 1; i < 100; i += 1) {
      const code = prefix + pad2(i);
      if (!used.has(code)) return code;
    }
    return prefix;
  }

  function openCatForm(mode, cat) {
    A.catForm = { mode, code: mode === 'edit' ? cat.code : null,
      parent: mode === 'add' && cat ? cat.code : null };
    const form = $('cat-form');
    form.hidden = false;
    $('cat-form-empty').hidden = true;
    show($('cat-form-error'), '');
    $('cat-code').disabled = mode === 'edit';
    if (mode === 'edit') {
      $('cat-form-title').textContent = '修改类别';
      $('cat-form-parent').textContent = cat.parent
        ? `上级：${str((findCategory(cat.parent) || {}).name)}（${cat.parent}）` : '一级类别';
      $('cat-code').value = cat.code;
      $('cat-name').value = str(cat.name);
      $('cat-gbt').value = str(cat.gbt_code);
      $('cat-sort').value = str(cat.sort);
      $('cat-name').focus();
    } else {
      $('cat-form-title').textContent = cat ? '添加下级类别' : '添加一级类别';
      $('cat-form-parent').textContent = cat ? `上级：${str(cat.name)}（${cat.code}）` : '一级类别';
      $('cat-code').value = nextChildCode(cat);
      $('cat-name').value = '';
      $('cat-gbt').value = '';
      $('cat-sort').value = '';
      $('cat-name').focus();
    }
  }

  function closeCatForm() {
    A.catForm = null;
    $('cat-form').hidden = true;
    $('cat-form-empty').hidden = false;
  }

  async function saveCategory(ev) {
    ev.preventDefault();
    const f = A.catForm;
    if (!f) return;
    const sortText = $('cat-sort').value.trim();
    const body = { name: $('cat-name').value, gbt_code: $('cat-gbt').value.trim() || null };
    if (sortText) body.sort = Number(sortText);
    try {
      let saved;
      if (f.mode === 'edit') {
        saved = await api('PUT', `/api/admin/categories/${encodeURIComponent(f.code)}`, body);
      } else {
        saved = await api('POST', '/api/admin/categories',
          { ...body, code: $('cat-code').value.trim(), parent: f.parent });
      }
      closeCatForm();
      await loadCategories();
      const code = saved.category ? saved.category.code : '';
      showPageError(`已保存类别 ${code} ${saved.category ? str(saved.category.name) : ''}`, 'info');
      const row = document.querySelector(`#cat-tree li[data-code="${CSS.escape(code)}"] .tree-row`);
      if (row) {
        row.classList.add('flash');
        row.scrollIntoView({ block: 'center' });
      }
    } catch (e) {
      show($('cat-form-error'), e.message);
    }
  }

  async function deactivateCategory(c) {
    if (!window.confirm(`停用“${c.name}”（${c.code}）及其全部下级类别？\n已有工单不受影响，停用后受理时不能再选。`)) return;
    try {
      const data = await api('POST', `/api/admin/categories/${encodeURIComponent(c.code)}/deactivate`);
      showPageError(`已停用 ${str(data.deactivated)} 个类别`, 'info');
      await loadCategories();
    } catch (e) {
      showPageError(e.message);
    }
  }

  async function reactivateCategory(c) {
    try {
      await api('PUT', `/api/admin/categories/${encodeURIComponent(c.code)}`, { active: true });
      showPageError(`已启用类别 ${c.code} ${c.name}`, 'info');
      await loadCategories();
    } catch (e) {
      showPageError(e.message);
    }
  }

  // ---------------------------------------------------------------- units

  async function loadUnits() {
    try {
      const data = await api('GET', '/api/admin/units');
      A.units = Array.isArray(data.units) ? data.units : [];
      A.kinds = Array.isArray(data.kinds) ? data.kinds : [];
      A.unitsById = new Map();
      for (const [u] of walk(A.units)) A.unitsById.set(u.id, u);
      const kind = $('unit-kind');
      if (!kind.options.length) {
        kind.replaceChildren(...A.kinds.map((k) => {
          const o = el('option', { text: k.name });
          o.value = k.code;
          return o;
        }));
      }
      renderUnits();
      if (A.unitId != null && !$('unit-form').hidden) {
        const u = A.unitsById.get(A.unitId);
        if (u) renderHandlers(u);
      }
    } catch (e) {
      showPageError(`无法读取联动单位：${e.message}`);
    }
  }

  function renderUnits() {
    const showInactive = $('unit-show-inactive').checked;
    const build = (nodes) => nodes
      .filter((u) => showInactive || u.active)
      .map((u) => {
        const row = el('div', { className: 'tree-row' }, [
          el('span', { className: 'tag', text: LEVEL_NAMES[u.level] || str(u.level) }),
          el('span', { className: 'tree-name', text: u.name }),
          el('span', { className: 'tree-dim', text: str(u.kind_name) }),
          el('span', { className: 'tree-phone mono', text: str(u.duty_phone) }),
          u.active ? null : el('span', { className: 'tag tag-off', text: '已停用' }),
          el('span', { className: 'row-actions' }, [
            button('修改', 'btn btn-small btn-ghost', () => openUnit(u), `修改“${u.name}”`),
          ]),
        ]);
        if (u.id === A.unitId) row.classList.add('selected');
        const kids = build(u.children || []);
        return el('li', { className: 'tree-item', dataset: { unitId: u.id, code: u.code, active: u.active } }, [
          row, kids.length ? el('ul', { className: 'tree' }, kids) : null,
        ]);
      });
    const items = build(A.units);
    $('unit-tree').replaceChildren(...items);
    let all = 0;
    let on = 0;
    for (const [u] of walk(A.units)) {
      all += 1;
      if (u.active) on += 1;
    }
    $('unit-count').textContent = all ? `启用 ${on} 个，共 ${all} 个` : '';
    if (!items.length) {
      $('unit-tree').replaceChildren(el('li', { className: 'empty', text: '名录为空：请在右侧导入名录文件' }));
    }
  }

  function openUnit(u) {
    A.unitId = u.id;
    $('unit-form').hidden = false;
    $('unit-form-empty').hidden = true;
    show($('unit-form-error'), '');
    show($('unit-form-ok'), '');
    $('unit-form-title').textContent = u.name;
    const parent = u.parent_id != null ? A.unitsById.get(u.parent_id) : null;
    $('unit-form-where').textContent = `${LEVEL_NAMES[u.level] || ''}单位 · 编码 ${u.code}` +
      (parent ? ` · 上级：${parent.name}` : '') + (u.active ? '' : ' · 已停用');
    $('unit-name').value = str(u.name);
    $('unit-kind').value = str(u.kind);
    $('unit-duty-phone').value = str(u.duty_phone);
    $('unit-leader').value = str(u.leader);
    $('unit-department').value = str(u.department);
    $('unit-contact-person').value = str(u.contact_person);
    $('unit-contact-phone').value = str(u.contact_phone);
    $('unit-toggle').textContent = u.active ? '停用' : '启用';
    $('unit-toggle').className = u.active ? 'btn btn-danger' : 'btn';
    renderHandlers(u);
    renderUnits();
    $('unit-duty-phone').focus();
  }

  function renderHandlers(u) {
    const hs = Array.isArray(u.handlers) ? u.handlers : [];
    $('unit-handlers').replaceChildren(...(hs.length ? hs.map((h) => el('li', {}, [
      el('span', { className: 'mono', text: h.login }),
      el('span', { text: ` ${str(h.name)}` }),
      h.active ? null : el('span', { className: 'tag tag-off', text: '已停用' }),
    ])) : [el('li', { className: 'tree-dim', text: '无' })]));
  }

  function closeUnit() {
    A.unitId = null;
    $('unit-form').hidden = true;
    $('unit-form-empty').hidden = false;
    renderUnits();
  }

  async function saveUnit(ev) {
    ev.preventDefault();
    if (A.unitId == null) return;
    show($('unit-form-error'), '');
    show($('unit-form-ok'), '');
    const body = {
      name: $('unit-name').value,
      kind: $('unit-kind').value,
      duty_phone: $('unit-duty-phone').value,
      leader: $('unit-leader').value,
      department: $('unit-department').value,
      contact_person: $('unit-contact-person').value,
      contact_phone: $('unit-contact-phone').value,
    };
    try {
      const data = await api('PUT', `/api/admin/units/${A.unitId}`, body);
      show($('unit-form-ok'), `已保存：${str(data.unit && data.unit.name)}`, 'info');
      await loadUnits();
    } catch (e) {
      show($('unit-form-error'), e.message);
    }
  }

  async function toggleUnit() {
    const u = A.unitsById.get(A.unitId);
    if (!u) return;
    if (u.active && !window.confirm(`停用“${u.name}”？其承办人账号将同时停用；已交办的工单仍保留。`)) return;
    try {
      await api('PUT', `/api/admin/units/${u.id}`, { active: !u.active });
      await loadUnits();
      const fresh = A.unitsById.get(u.id);
      if (fresh) openUnit(fresh);
      show($('unit-form-ok'), u.active ? '已停用' : '已启用', 'info');
    } catch (e) {
      show($('unit-form-error'), e.message);
    }
  }

  async function readFile(input, onText) {
    const file = input.files && input.files[0];
    if (!file) return;
    if (file.size > 2 * 1024 * 1024) {
      show($('import-error'), '文件过大（最多 2 MB）');
      return;
    }
    try {
      onText(await file.text(), file.name);
    } catch (_e) {
      show($('import-error'), '无法读取所选文件');
    }
  }

  function onImportFormat() {
    $('import-handlers-field').hidden = $('import-format').value !== 'csv';
  }

  function clearImportResult() {
    show($('import-error'), '');
    show($('import-ok'), '');
    renderProblems($('import-problems'), []);
  }

  function askImport(ev) {
    ev.preventDefault();
    clearImportResult();
    if (!$('import-text').value.trim()) {
      show($('import-error'), '请选择文件或粘贴文件内容');
      $('import-text').focus();
      return;
    }
    $('import-confirm').hidden = false;
    $('import-confirm-yes').focus();
  }

  async function doImport() {
    $('import-confirm').hidden = true;
    const body = { format: $('import-format').value, text: $('import-text').value };
    if (A.importName) body.filename = A.importName;
    if (body.format === 'csv' && $('import-handlers-text').value.trim()) {
      body.handlers_csv = $('import-handlers-text').value;
      if (A.handlersName) body.handlers_filename = A.handlersName;
    }
    try {
      const data = await api('POST', '/api/admin/units/import', body);
      show($('import-ok'), `导入完成。${str(data.summary)}`, 'info');
      await loadUnits();
    } catch (e) {
      show($('import-error'), e.message);
      renderProblems($('import-problems'), e.data.problems);
    }
  }

  // ---------------------------------------------------------------- knowledge base

  async function openKnowledge() {
    await loadKbCategories();
    await loadKb(A.kbQuery);
  }

  async function loadKbCategories() {
    try {
      if (A.me && A.me.role === 'admin') {
        const data = await api('GET', '/api/admin/categories');
        A.categories = Array.isArray(data.categories) ? data.categories : [];
        A.kbCategories = [...walk(A.categories)].filter(([c]) => c.active);
      } else {
        // The supervisor reads the case form's list (a flat list with parents).
        const data = await api('GET', '/api/categories');
        const flat = Array.isArray(data.categories) ? data.categories : [];
        const byParent = new Map();
        for (const c of flat) {
          const k = str(c.parent);
          if (!byParent.has(k)) byParent.set(k, []);
          byParent.get(k).push({ ...c, children: [] });
        }
        const attach = (list) => list.map((c) => ({ ...c, children: attach(byParent.get(c.code) || []) }));
        A.kbCategories = [...walk(attach(byParent.get('') || []))];
      }
    } catch (_e) {
      A.kbCategories = [];
    }
    const sel = $('kb-category');
    const keep = sel.value;
    const none = el('option', { text: '（不选）' });
    none.value = '';
    sel.replaceChildren(none, ...A.kbCategories.map(([c, depth]) => {
      const o = el('option', { text: `${'\u3000'.repeat(depth)}${c.code} ${c.name}` });
      o.value = c.code;
      return o;
    }));
    sel.value = keep;
  }

  function categoryName(code) {
    if (!code) return '';
    const hit = A.kbCategories.find(([c]) => c.code === code);
    return hit ? `${hit[0].name}（${code}）` : code;
  }

  async function loadKb(q) {
    A.kbQuery = q || '';
    $('kb-q').value = A.kbQuery;
    const path = A.kbQuery ? `/api/admin/knowledge?q=${encodeURIComponent(A.kbQuery)}`
      : '/api/admin/knowledge';
    try {
      const data = await api('GET', path);
      A.kbEntries = Array.isArray(data.entries) ? data.entries : [];
      $('kb-count').textContent = `共 ${str(data.total)} 条`;
      $('kb-status').textContent = A.kbQuery
        ? `“${A.kbQuery}”：找到 ${A.kbEntries.length} 条（只查启用的条目，与坐席受理时所见相同）`
        : '全部条目（已停用的排在最后）';
      renderKb();
    } catch (e) {
      $('kb-status').textContent = e.message;
    }
  }

  function renderKb() {
    const items = A.kbEntries.map((e) => el('li', {
      className: 'kb-entry', dataset: { id: e.id, active: e.active },
    }, [
      el('div', { className: 'kb-entry-q', text: e.question }),
      el('div', { className: 'kb-entry-a', text: e.answer }),
      el('div', { className: 'kb-entry-meta' }, [
        e.keywords ? el('span', { text: `关键词：${e.keywords}` }) : null,
        e.category ? el('span', { text: `分类：${categoryName(e.category)}` }) : null,
        el('span', { text: `更新：${fmtDateTime(e.updated_at)}` }),
        e.active ? null : el('span', { className: 'tag tag-off', text: '已停用' }),
      ]),
      el('div', { className: 'row-actions' }, [
        button('修改', 'btn btn-small btn-ghost', () => openKbForm(e), `修改“${e.question}”`),
        e.active
          ? button('停用', 'btn btn-small btn-ghost', () => setKbActive(e, false), `停用“${e.question}”`)
          : button('启用', 'btn btn-small btn-ghost', () => setKbActive(e, true), `启用“${e.question}”`),
      ]),
    ]));
    $('kb-list').replaceChildren(...(items.length ? items
      : [el('li', { className: 'empty', text: A.kbQuery ? '没有找到相关条目' : '知识库还没有条目' })]));
  }

  function openKbForm(entry) {
    A.kbEditing = entry ? entry.id : 0;
    $('kb-form').hidden = false;
    $('kb-form-empty').hidden = true;
    show($('kb-form-error'), '');
    $('kb-form-title').textContent = entry ? '修改条目' : '新增条目';
    $('kb-question').value = entry ? str(entry.question) : '';
    $('kb-answer').value = entry ? str(entry.answer) : '';
    $('kb-keywords').value = entry ? str(entry.keywords) : '';
    $('kb-category').value = entry ? str(entry.category) : '';
    $('kb-question').focus();
  }

  function closeKbForm() {
    A.kbEditing = null;
    $('kb-form').hidden = true;
    $('kb-form-empty').hidden = false;
  }

  async function saveKb(ev) {
    ev.preventDefault();
    if (A.kbEditing == null) return;
    const body = {
      question: $('kb-question').value,
      answer: $('kb-answer').value,
      keywords: $('kb-keywords').value,
      category: $('kb-category').value || null,
    };
    try {
      const data = A.kbEditing
        ? await api('PUT', `/api/admin/knowledge/${A.kbEditing}`, body)
        : await api('POST', '/api/admin/knowledge', body);
      closeKbForm();
      showPageError(`已保存：${str(data.entry && data.entry.question)}`, 'info');
      await loadKb(A.kbQuery);
    } catch (e) {
      show($('kb-form-error'), e.message);
    }
  }

  async function setKbActive(entry, active) {
    try {
      if (active) await api('PUT', `/api/admin/knowledge/${entry.id}`, { active: true });
      else await api('POST', `/api/admin/knowledge/${entry.id}/deactivate`);
      await loadKb(A.kbQuery);
    } catch (e) {
      showPageError(e.message);
    }
  }

  // ---------------------------------------------------------------- calendar

  async function loadYear(year) {
    const y = Number(year) || new Date().getFullYear();
    $('cal-year').value = String(y);
    try {
      const data = await api('GET', `/api/admin/calendar/${y}`);
      A.year = y;
      A.calendar = data;
      renderCalendar();
    } catch (e) {
      showPageError(e.message);
    }
  }

  function renderCalendar() {
    const c = A.calendar;
    if (!c) return;
    $('cal-status').textContent = c.covered ? `${c.year} 年：已收录` : `${c.year} 年：未收录`;
    $('cal-status').dataset.kind = c.covered ? '' : 'error';
    const warn = $('cal-warning');
    if (c.warning) {
      warn.replaceChildren(el('span', { text: c.warning }),
        c.year !== c.next_year
          ? button(`查看 ${c.next_year} 年`, 'btn btn-small', () => loadYear(c.next_year)) : null);
      warn.hidden = false;
    } else {
      warn.hidden = true;
    }
    const days = Array.isArray(c.days) ? c.days : [];
    $('cal-days').replaceChildren(...days.map((d) => el('tr', {
      className: d.working ? 'day-work' : 'day-rest', dataset: { day: d.day, source: d.source },
    }, [
      el('td', { className: 'mono', text: d.day }),
      el('td', { text: d.weekday }),
      el('td', { text: d.name }),
      el('td', {}, [el('span', { className: d.working ? 'tag tag-work' : 'tag tag-rest',
        text: d.working ? '调休上班' : '休息' })]),
      el('td', {}, [el('span', { className: d.source === 'admin' ? 'tag tag-admin' : 'tag',
        text: d.source_name })]),
    ])));
    const empty = $('cal-empty');
    empty.textContent = days.length ? '' : (c.covered ? '该年没有例外的日子'
      : `尚未收录 ${c.year} 年的节假日安排。国务院办公厅的通知发布后，请在右侧录入。`);
    empty.hidden = days.length > 0;
  }

  function noticePreview(data, entered) {
    const box = $('notice-preview');
    const days = Array.isArray(data.days) ? data.days : [];
    const rest = days.filter((d) => !d.working).length;
    const work = days.length - rest;
    const head = entered
      ? `已录入 ${data.year} 年：${rest} 个休息日（工作日放假）、${work} 个调休上班日` +
        (data.replaced ? `，替换了原有的 ${data.replaced} 条记录` : '')
      : `检查通过：${data.year} 年 ${rest} 个休息日（工作日放假）、${work} 个调休上班日` +
        (data.replaced ? `；录入后将替换该年原有的 ${data.replaced} 条记录` : '');
    box.replaceChildren(el('p', { className: 'preview-head', text: head }),
      el('ul', { className: 'preview-days' }, days.map((d) => el('li', {
        text: `${d.day} ${d.weekday} ${d.name}${d.working ? '（上班）' : ''}`,
      }))));
    box.hidden = false;
  }

  function clearNoticeResult() {
    show($('notice-error'), '');
    renderProblems($('notice-problems'), []);
    $('notice-preview').hidden = true;
  }

  async function checkNotice() {
    clearNoticeResult();
    const text = $('notice-text').value;
    if (!text.trim()) {
      show($('notice-error'), '请粘贴或填写通知内容');
      $('notice-text').focus();
      return null;
    }
    try {
      const data = await api('POST', '/api/admin/calendar/notice', { text, dry_run: true });
      noticePreview(data, false);
      return data;
    } catch (e) {
      show($('notice-error'), e.message);
      renderProblems($('notice-problems'), e.data.problems);
      return null;
    }
  }

  async function submitNotice(ev) {
    ev.preventDefault();
    const checked = await checkNotice();
    if (!checked) return;
    if (checked.replaced && !window.confirm(
      `${checked.year} 年已有 ${checked.replaced} 条节假日记录，录入后以本通知为准、全部替换。确定录入吗？`)) return;
    try {
      const data = await api('POST', '/api/admin/calendar/notice', { text: $('notice-text').value });
      noticePreview(data, true);
      await loadYear(data.year);
    } catch (e) {
      show($('notice-error'), e.message);
      renderProblems($('notice-problems'), e.data.problems);
    }
  }

  function fillTemplate() {
    const text = $('notice-text');
    if (text.value.trim() && !window.confirm('用格式示例替换已填写的内容？')) return;
    const year = A.calendar ? A.calendar.next_year : new Date().getFullYear() + 1;
    text.value = NOTICE_TEMPLATE(year);
    clearNoticeResult();
    text.focus();
  }

  // ---------------------------------------------------------------- wiring

  function escapeCloses(form, close) {
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        close();
      }
    });
  }

  function init() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('btn-logout').addEventListener('click', onLogout);
    for (const name of TABS) {
      const tab = $(`tab-${name}`);
      tab.addEventListener('click', () => selectTab(name, false));
      tab.addEventListener('keydown', onTabKey);
    }

    $('cat-show-inactive').addEventListener('change', renderCategories);
    $('cat-add-root').addEventListener('click', () => openCatForm('add', null));
    $('cat-form').addEventListener('submit', withBusy($('cat-save'), '正在保存…', saveCategory));
    $('cat-cancel').addEventListener('click', closeCatForm);
    escapeCloses($('cat-form'), closeCatForm);

    $('unit-show-inactive').addEventListener('change', renderUnits);
    $('unit-form').addEventListener('submit', withBusy($('unit-save'), '正在保存…', saveUnit));
    $('unit-toggle').addEventListener('click', toggleUnit);
    $('unit-cancel').addEventListener('click', closeUnit);
    escapeCloses($('unit-form'), closeUnit);
    $('import-format').addEventListener('change', onImportFormat);
    $('import-file').addEventListener('change', () => readFile($('import-file'), (text, name) => {
      $('import-text').value = text;
      A.importName = name;
      if (/\.csv$/i.test(name)) $('import-format').value = 'csv';
      else if (/\.ya?ml$/i.test(name)) $('import-format').value = 'yaml';
      onImportFormat();
      clearImportResult();
    }));
    $('import-text').addEventListener('input', () => {
      if (!$('import-file').files.length) A.importName = '';
    });
    $('import-handlers-file').addEventListener('change', () => readFile($('import-handlers-file'),
      (text, name) => {
        $('import-handlers-text').value = text;
        A.handlersName = name;
      }));
    $('import-form').addEventListener('submit', askImport);
    $('import-confirm-yes').addEventListener('click',
      withBusy($('import-confirm-yes'), '正在导入…', doImport));
    $('import-confirm-no').addEventListener('click', () => {
      $('import-confirm').hidden = true;
      $('import-submit').focus();
    });

    $('kb-search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      loadKb($('kb-q').value.trim());
    });
    $('kb-all').addEventListener('click', () => loadKb(''));
    $('kb-new').addEventListener('click', () => openKbForm(null));
    $('kb-form').addEventListener('submit', withBusy($('kb-save'), '正在保存…', saveKb));
    $('kb-cancel').addEventListener('click', closeKbForm);
    escapeCloses($('kb-form'), closeKbForm);

    $('cal-year-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      loadYear($('cal-year').value);
    });
    $('cal-prev').addEventListener('click', () => loadYear((A.year || new Date().getFullYear()) - 1));
    $('cal-next').addEventListener('click', () => loadYear((A.year || new Date().getFullYear()) + 1));
    $('notice-template').addEventListener('click', fillTemplate);
    $('notice-check').addEventListener('click', withBusy($('notice-check'), '正在检查…', checkNotice));
    $('notice-form').addEventListener('submit', withBusy($('notice-submit'), '正在录入…', submitNotice));

    api('GET', '/api/me', null, { authRedirect: false })
      .then(enter)
      .catch(() => showLogin(''));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
