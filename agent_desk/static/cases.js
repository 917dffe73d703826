/* 工单处理 — the case workspace of the hotline, the linkage units and the supervision office.
 * Plain ES2020, no dependencies. All data goes into the DOM via textContent.
 * The server decides who may see and do what; this page only shows the steps that apply.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- labels

  const ROLE_NAMES = {
    agent: '坐席',
    supervisor: '值班长',
    supervision: '督查室',
    handler: '承办人',
    admin: '管理员',
  };
  const HOTLINE = ['agent', 'supervisor'];
  const REVEALERS = ['agent', 'supervisor', 'handler'];

  const LIST_NAMES = {
    pending: '待交办',
    in_progress: '办理中',
    overdue: '已超期',
    to_review: '待审核',
    to_revisit: '待回访',
    closed: '已办结',
    criticism: '公开批评',
    multi_unit: '多单位',
    urged: '多次催办',
    all: '全部',
    reports: '专报',
  };
  const HOTLINE_LISTS = ['pending', 'in_progress', 'overdue', 'to_review', 'to_revisit', 'closed',
    'criticism', 'multi_unit', 'all'];
  const ROLE_LISTS = {
    agent: HOTLINE_LISTS,
    supervisor: HOTLINE_LISTS,
    handler: ['all'],
    supervision: ['multi_unit', 'overdue', 'criticism', 'all', 'reports'],
  };
  const ROLE_LIST_NAMES = {
    handler: { all: '本单位工单' },
    supervision: { multi_unit: '多单位协调' },
  };

  const MODES = { written: '书面交办', phone: '电话交办', urgent: '紧急交办' };
  const ASSIGNMENT_STATUS = {
    assigned: '待签收',
    accepted: '办理中',
    returned: '已退单',
    reported: '已反馈',
    done: '已完成',
    withdrawn: '已撤回',
  };
  const EXTENSION_STATUS = { pending: '待审核', approved: '已同意', refused: '未同意' };
  const REVISIT_OUTCOMES = { satisfied: '满意', unsatisfied: '不满意', unreachable: '未联系上' };
  const URGE_KINDS = { auto: '自动催办', manual: '人工催办' };
  const RECIPIENTS = {
    supervision: '市政府督查室',
    secretary_general: '市政府秘书长',
    mayor: '市长',
    emergency_office: '市政府应急管理办公室',
  };
  const SERVICES = { hotline: '市长热线事项', news_tip: '新闻线索', info_query: '信息查询' };
  const PERSONAL = [
    ['caller_number', '来电号码'],
    ['callback_number', '回拨号码'],
    ['name', '姓名'],
    ['address', '地址'],
    ['work_unit', '工作单位'],
  ];
  const ACTIONS = {
    registered: '登记受理',
    marked_invalid: '登记为无效来电',
    answered_at_intake: '当场答复办结',
    merged_into: '并入其他工单',
    merged_from: '并入重复来电',
    assigned: '交办',
    reassigned: '改派',
    accepted: '签收',
    returned: '退单',
    extension_requested: '申请延期',
    extension_approved: '同意延期',
    extension_refused: '不同意延期',
    result_reported: '反馈办理结果',
    result_approved: '审核通过',
    sent_back: '退回重办',
    revisited: '回访',
    closed_unreached: '多次未联系上办结',
    urged: '催办',
    archived: '归档',
    coordination_note: '协调意见',
    personal_revealed: '查看来电人信息',
    special_report_drafted: '起草专报',
    special_report_sent: '报送专报',
    progress_heard: '来电人查询进度',
    progress_code_wrong: '查询码错误',
    progress_locked: '查询已锁定',
  };
  const SENT_BACK_WHY = { review: '审核不通过', unsatisfied: '回访不满意' };

  const WS_MAX_DELAY_MS = 15000;
  const REFRESH_GAP_MS = 1500;

  // ---------------------------------------------------------------- state

  const C = {
    gen: 0,
    csrf: null,
    me: null,
    list: null,
    q: '',
    rows: [],
    counts: {},
    caseId: null,
    reportId: null,
    detail: null,
    reports: [],
    revealed: {}, // field -> value, for the open case
    dirty: false, // the user typed in an action form of the open case
    units: [],
    unitsById: new Map(),
    ws: null,
    wsWanted: false,
    wsRetry: 0,
    wsTimer: null,
    refreshTimer: null,
    refreshing: false,
    refreshAgain: false,
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

  function button(text, className, onClick, title) {
    const b = el('button', { className, text, title });
    b.type = 'button';
    if (onClick) b.addEventListener('click', (ev) => onClick(ev, b));
    return b;
  }

  function str(v) {
    return v == null ? '' : String(v);
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  // Deadlines are working days on Beijing time (casework.calendar.TZ), as on the printed
  // form: every time is shown on Beijing time, wherever the browser is.
  let BEIJING = null;
  try {
    BEIJING = new Intl.DateTimeFormat('zh-CN', {
      timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    });
  } catch (_e) {
    BEIJING = null;
  }

  function fmtDateTime(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return str(iso);
    const d = new Date(t);
    if (BEIJING) {
      const p = {};
      for (const part of BEIJING.formatToParts(d)) p[part.type] = part.value;
      return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
    }
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  }

  function role() {
    return C.me ? str(C.me.role) : '';
  }

  function isHotline() {
    return HOTLINE.includes(role());
  }

  function unitName(id) {
    const u = C.unitsById.get(Number(id));
    return u ? str(u.name) : `单位 ${str(id)}`;
  }

  function field(label, control, hint) {
    return el('label', { className: 'field' }, [
      el('span', { className: 'field-label', text: label }), control,
      hint ? el('span', { className: 'count-text', text: hint }) : null,
    ]);
  }

  function input(type, opts = {}) {
    const i = el(type === 'textarea' ? 'textarea' : 'input', { className: opts.className });
    if (type !== 'textarea') i.type = type;
    if (opts.name) i.name = opts.name;
    if (opts.max) i.maxLength = opts.max;
    if (opts.rows) i.rows = opts.rows;
    if (opts.placeholder) i.placeholder = opts.placeholder;
    if (opts.value != null) i.value = opts.value;
    return i;
  }

  function select(name, options, value) {
    const s = el('select');
    s.name = name;
    for (const [v, t] of options) {
      const o = el('option', { text: t });
      o.value = v;
      s.appendChild(o);
    }
    if (value != null) s.value = value;
    return s;
  }

  // ---------------------------------------------------------------- HTTP


  async function api(method, path, body, { authRedirect = true } = {}) {
    try {
      return await window.HotlineHttp.request(method, path, body, C.csrf);
    } catch (e) {
      if (e.status === 401 && authRedirect && C.me) showLogin('登录已过期，请重新登录');
      throw e;
    }
  }

  // ---------------------------------------------------------------- login / logout

  function showLogin(message) {
    C.gen += 1;
    stopWs();
    C.me = null;
    C.csrf = null;
    C.caseId = null;
    C.reportId = null;
    C.detail = null;
    document.body.dataset.view = 'login';
    document.body.dataset.role = '';
    document.title = '工单处理 · 登录';
    $('cases-view').hidden = true;
    $('login-view').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('password').value = '';
    ($('login').value ? $('password') : $('login')).focus();
  }

  async function onLoginSubmit(ev) {
    ev.preventDefault();
    const login = $('login').value.trim();
    const password = $('password').value;
    const err = $('login-error');
    if (!login || !password) {
      err.textContent = '请输入用户名和密码';
      err.hidden = false;
      return;
    }
    const btn = $('login-submit');
    btn.disabled = true;
    btn.textContent = '正在登录…';
    try {
      const data = await api('POST', '/api/login', { login, password }, { authRedirect: false });
      enter(data);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      $('password').select();
    } finally {
      btn.disabled = false;
      btn.textContent = '登录';
    }
  }

  async function onLogout() {
    try {
      const data = await api('POST', '/api/logout', {}, { authRedirect: false });
      if (data.pending) {
        showPageError('正在通话：通话结束后将自动退出。', 'info');
        return;
      }
    } catch (e) {
      if (e.status !== 401) {
        showPageError(`退出失败：${e.message}`);
        return;
      }
    }
    showLogin('');
  }

  function showPageError(text, kind = 'error') {
    const box = $('page-error');
    box.replaceChildren(el('span', { className: 'desk-error-text', text }),
      button('知道了', 'btn btn-small btn-ghost', () => { box.hidden = true; }));
    box.dataset.kind = kind;
    box.hidden = false;
  }

  function enter(data) {
    C.gen += 1;
    C.csrf = str(data.csrf) || null;
    C.me = data.agent || null;
    const r = role();
    document.body.dataset.view = 'cases';
    document.body.dataset.role = r;
    $('login-view').hidden = true;
    $('cases-view').hidden = false;
    $('user-name').textContent = str(C.me && (C.me.display_name || C.me.login));
    $('user-role').textContent = ROLE_NAMES[r] || r;
    $('link-desk').hidden = !HOTLINE.includes(r);
    // The supervision office sets its second factor on the desk page (/#totp).
    $('link-totp').hidden = r !== 'supervision';
    document.title = '工单处理';
    if (!ROLE_LISTS[r]) {
      // The admin configures the system and sees no cases.
      $('lists').replaceChildren();
      $('case-list').replaceChildren();
      showPageError('您的账号只用于系统配置，不处理工单。', 'info');
      return;
    }
    $('page-error').hidden = true;
    const wanted = caseFromHash();
    C.list = ROLE_LISTS[r][0];
    renderLists();
    loadUnits();
    refresh(true);
    connectWs();
    if (wanted) openCase(wanted);
  }

  // ---------------------------------------------------------------- lists

  function listName(which) {
    const own = ROLE_LIST_NAMES[role()] || {};
    return own[which] || LIST_NAMES[which] || which;
  }

  function renderLists() {
    const r = role();
    const items = (ROLE_LISTS[r] || []).map((which) => {
      const n = C.counts[which];
      const b = button('', 'list-btn', () => selectList(which));
      b.dataset.list = which;
      if (which === C.list) b.setAttribute('aria-current', 'true');
      b.append(el('span', { className: 'list-name', text: listName(which) }),
        el('span', {
          className: 'count',
          text: n == null ? '…' : (n >= 500 ? '500+' : String(n)),
          dataset: { level: which === 'overdue' && n > 0 ? 'high' : (n > 0 ? 'some' : 'none') },
        }));
      return el('li', {}, [b]);
    });
    $('lists').replaceChildren(...items);
    $('list-title').textContent = listName(C.list) + (C.q ? `：“${C.q}”` : '');
  }

  function selectList(which) {
    C.list = which;
    renderLists();
    renderRows();
    refresh(true);
  }

  function listPath(which, q) {
    if (which === 'criticism') return '/api/casework/criticism';
    if (which === 'reports') return '/api/casework/reports';
    const qs = new URLSearchParams({ limit: '500' });
    if (q) qs.set('q', q);
    return `/api/casework/lists/${encodeURIComponent(which)}?${qs}`;
  }

  /** Rows of any list in one shape (the criticism and report lists have their own). */
  function normalise(which, data) {
    if (which === 'criticism') {
      return (data.cases || []).map((c) => ({
        id: c.case_id, case_no: c.case_no, title: c.title, lead_unit: c.unit,
        due_at: c.due_at, urge_count: c.urgings, overdue: true, status: '', status_words: '公开批评',
      }));
    }
    if (which === 'reports') {
      return (data.reports || []).map((r) => ({ report: r, id: r.id }));
    }
    return data.cases || [];
  }

  function matches(row, q) {
    if (!q) return true;
    const hay = row.report ? `${str(row.report.title)} ${str(row.report.body)}`
      : `${str(row.case_no)} ${str(row.title)}`;
    return hay.includes(q);
  }

  /** Every list of the role (for the counts) and the open one (with the search). */
  async function loadLists() {
    const gen = C.gen;
    const lists = ROLE_LISTS[role()] || [];
    const results = await Promise.all(lists.map((which) => api('GET', listPath(which, ''))
      .then((d) => normalise(which, d)).catch((e) => e)));
    if (gen !== C.gen) return;
    let failed = null;
    lists.forEach((which, i) => {
      if (results[i] instanceof Error) failed = results[i];
      else C.counts[which] = results[i].length;
    });
    const at = lists.indexOf(C.list);
    let rows = at >= 0 && !(results[at] instanceof Error) ? results[at] : null;
    if (C.q && !['criticism', 'reports'].includes(C.list)) {
      try {
        rows = normalise(C.list, await api('GET', listPath(C.list, C.q)));
      } catch (e) {
        failed = e;
        rows = null;
      }
      if (gen !== C.gen) return;
    } else if (rows && C.q) {
      rows = rows.filter((r) => matches(r, C.q));
    }
    if (rows) C.rows = rows;
    if (C.list === 'reports' && rows) C.reports = rows.map((r) => r.report);
    $('list-status').textContent = failed && failed.status !== 401 ? `加载失败：${failed.message}` : '';
    renderLists();
    renderRows();
  }

  /** Reload lists (and the open case) at most every REFRESH_GAP_MS. */
  function refresh(force = false) {
    if (C.refreshing) {
      C.refreshAgain = true;
      return;
    }
    if (C.refreshTimer && !force) return;
    clearTimeout(C.refreshTimer);
    C.refreshTimer = setTimeout(async () => {
      C.refreshTimer = null;
      C.refreshing = true;
      try {
        await loadLists();
      } finally {
        C.refreshing = false;
        if (C.refreshAgain) {
          C.refreshAgain = false;
          refresh();
        }
      }
    }, force ? 0 : REFRESH_GAP_MS);
  }

  function renderRows() {
    const list = $('case-list');
    const rows = C.rows;
    $('list-empty').hidden = rows.length > 0;
    $('list-empty').textContent = C.q ? '没有符合条件的工单' : '没有工单';
    list.replaceChildren(...rows.map((row) => {
      if (row.report) return el('li', {}, [reportRow(row.report)]);
      const b = button('', 'case-row', () => openCase(row.id));
      b.dataset.caseId = str(row.id);
      if (!C.reportId && Number(row.id) === Number(C.caseId)) b.setAttribute('aria-current', 'true');
      const meta = [];
      if (row.lead_unit) meta.push(row.lead_unit);
      if (row.due_at) meta.push(`期限 ${fmtDateTime(row.due_at)}`);
      else if (row.received_at) meta.push(`受理 ${fmtDateTime(row.received_at)}`);
      b.append(
        el('span', { className: 'row-top' }, [
          el('span', { className: 'mono row-no', text: row.case_no }),
          row.status ? el('span', { className: 'status-tag', text: row.status_words, dataset: { status: row.status } }) : null,
          row.overdue ? el('span', { className: 'badge badge-danger', text: '超期' }) : null,
          row.urge_count ? el('span', { className: 'badge badge-warn', text: `催办 ${row.urge_count}` }) : null,
          row.major ? el('span', { className: 'badge badge-danger', text: '重大' }) : null,
        ]),
        el('span', { className: 'row-title', text: str(row.title) || '（无标题）' }),
        el('span', { className: 'row-meta', text: meta.join(' · ') }),
      );
      return el('li', {}, [b]);
    }));
  }

  function reportRow(r) {
    const b = button('', 'case-row', () => openReport(r.id));
    b.dataset.reportId = str(r.id);
    if (Number(C.reportId) === Number(r.id)) b.setAttribute('aria-current', 'true');
    b.append(
      el('span', { className: 'row-top' }, [
        el('span', { className: 'status-tag', text: r.status === 'sent' ? '已报送' : '草稿', dataset: { status: r.status === 'sent' ? 'closed' : 'pending' } }),
        el('span', { className: 'count-text', text: str(r.recipient_name) }),
      ]),
      el('span', { className: 'row-title', text: r.title }),
      el('span', { className: 'row-meta', text: `${str(r.author)} · ${fmtDateTime(r.sent_at || r.created_at)}` }),
    );
    return b;
  }

  async function loadUnits() {
    const gen = C.gen;
    try {
      const data = await api('GET', '/api/casework/units');
      if (gen !== C.gen) return;
      C.units = Array.isArray(data.units) ? data.units : [];
      C.unitsById = new Map(C.units.map((u) => [Number(u.id), u]));
      if (C.detail) renderDetail();
    } catch (_e) { /* the trail shows unit numbers then */ }
  }

  /** Units in tree order with their depth (children under their parent). */
  function unitTree() {
    const kids = new Map();
    const roots = [];
    for (const u of C.units) {
      if (u.parent_id != null && C.unitsById.has(Number(u.parent_id))) {
        const k = Number(u.parent_id);
        if (!kids.has(k)) kids.set(k, []);
        kids.get(k).push(u);
      } else {
        roots.push(u);
      }
    }
    const out = [];
    const seen = new Set();
    const walk = (u, depth) => {
      if (seen.has(u.id)) return;
      seen.add(u.id);
      out.push([u, depth]);
      for (const k of kids.get(Number(u.id)) || []) walk(k, depth + 1);
    };
    roots.forEach((u) => walk(u, 0));
    return out;
  }

  // ---------------------------------------------------------------- the open case

  function caseFromHash() {
    const m = /^#case-(\d+)$/.exec(window.location.hash);
    return m ? Number(m[1]) : null;
  }

  async function openCase(id) {
    C.caseId = Number(id);
    C.reportId = null;
    C.revealed = {};
    C.dirty = false;
    C.detail = null;
    history.replaceState(null, '', `#case-${C.caseId}`);
    $('detail-flash').hidden = true;
    renderRows();
    await loadDetail(true);
  }

  async function loadDetail(focus = false) {
    const gen = C.gen;
    const id = C.caseId;
    if (id == null) return;
    $('detail-stale').hidden = true;
    try {
      const data = await api('GET', `/api/casework/cases/${id}`);
      if (gen !== C.gen || id !== C.caseId) return;
      C.detail = data.case;
      if (isHotline() || role() === 'supervision') {
        try {
          const reps = await api('GET', '/api/casework/reports');
          if (gen !== C.gen || id !== C.caseId) return;
          C.reports = (reps.reports || []).filter((r) => (r.case_ids || []).map(Number).includes(id));
        } catch (_e) {
          C.reports = [];
        }
      }
      C.dirty = false;
      renderDetail();
      if (focus) $('d-case-no').focus({ preventScroll: false });
    } catch (e) {
      if (gen !== C.gen || id !== C.caseId || e.status === 401) return;
      C.detail = null;
      $('detail-body').hidden = true;
      $('detail-empty').hidden = true;
      const err = $('detail-error');
      err.textContent = e.message;
      err.hidden = false;
    }
  }

  function flash(text) {
    const f = $('detail-flash');
    f.textContent = text;
    f.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { f.hidden = true; }, 6000);
  }

  /** Run one step: errors in place (msg), success flashed, the case and lists re-read. */
  async function step(btn, msg, method, path, body, done) {
    if (btn.disabled) return null;
    btn.disabled = true;
    msg.textContent = '正在提交…';
    msg.dataset.kind = 'pending';
    msg.hidden = false;
    const gen = C.gen;
    try {
      const data = await api(method, path, body);
      if (gen !== C.gen) return null;
      msg.hidden = true;
      C.dirty = false;
      if (done) flash(typeof done === 'function' ? done(data) : done);
      if (C.reportId != null) await openReport(C.reportId);
      else await loadDetail();
      refresh(true);
      return data;
    } catch (e) {
      if (gen === C.gen && e.status !== 401) {
        msg.textContent = e.message;
        msg.dataset.kind = 'error';
      }
      return null;
    } finally {
      btn.disabled = false;
    }
  }

  function section(title, id, children, extra) {
    return el('section', { className: 'd-section', id }, [
      el('h3', { className: 'd-title', text: title }, extra ? [extra] : []), ...children,
    ]);
  }

  function facts(pairs) {
    return el('dl', { className: 'case-facts' }, pairs.filter(([, v]) => v).map(([k, v]) => el('div', { className: 'fact' }, [
      el('dt', { text: k }), el('dd', { text: v }),
    ])));
  }

  function renderDetail() {
    const d = C.detail;
    if (!d) return;
    $('detail-error').hidden = true;
    $('detail-empty').hidden = true;
    const body = $('detail-body');
    const scroll = $('detail').scrollTop;
    const parts = [
      renderHead(d),
      renderActions(d),
      renderContent(d),
      renderPersonal(d),
      renderAssignments(d),
      d.extensions && d.extensions.length ? renderExtensions(d) : null,
      d.urgings && d.urgings.length ? renderUrgings(d) : null,
      d.revisits && d.revisits.length ? renderRevisits(d) : null,
      d.children && d.children.length ? renderChildren(d) : null,
      C.reports.length && (isHotline() || role() === 'supervision') ? renderCaseReports() : null,
      d.trail ? renderTrail(d) : null,
    ];
    body.replaceChildren(...parts.filter(Boolean));
    body.hidden = false;
    $('detail').scrollTop = scroll;
  }

  function renderHead(d) {
    const no = el('h2', { className: 'd-case-no mono', id: 'd-case-no', text: d.case_no });
    no.tabIndex = -1;
    const badges = el('div', { className: 'd-badges' }, [
      el('span', { className: 'status-tag status-big', id: 'd-status', text: d.status_words, dataset: { status: d.status } }),
      d.overdue ? el('span', { className: 'badge badge-danger', text: '已超期' }) : null,
      d.major ? el('span', { className: 'badge badge-danger', text: '重大突发' }) : null,
      d.urge_count ? el('span', { className: 'badge badge-warn', text: `催办 ${d.urge_count} 次` }) : null,
      d.rehandle_count ? el('span', { className: 'badge badge-warn', text: `重办 ${d.rehandle_count} 次` }) : null,
      d.return_count ? el('span', { className: 'badge', text: `退单 ${d.return_count} 次` }) : null,
    ]);
    let due = d.due_at ? fmtDateTime(d.due_at) : '';
    if (d.mode === 'urgent') due = '随时报告（紧急）';
    return el('div', { className: 'd-head' }, [
      el('div', { className: 'd-head-top' }, [no, badges]),
      el('p', { className: 'd-case-title', id: 'd-title', text: str(d.title) || '（无标题）' }),
      facts([
        ['事项分类', str(d.category_name)],
        ['来电', [str(d.dialled_number), SERVICES[d.service] || str(d.service)].filter(Boolean).join(' · ')],
        ['受理时间', fmtDateTime(d.received_at)],
        ['办理期限', due],
        ['主办单位', str(d.lead_unit)],
        ['交办方式', str(d.mode_words)],
        ['办结时间', d.closed_at ? fmtDateTime(d.closed_at) : ''],
        ['回访满意度', d.satisfaction ? (d.satisfaction === 'satisfied' ? '满意' : '不满意') : ''],
      ]),
    ]);
  }

  function renderContent(d) {
    const blocks = [el('p', { className: 'd-text', id: 'd-content', text: str(d.content) || '（未填写内容）' })];
    const more = [
      ['当场答复', d.answer], ['办理结果', d.result], ['公开摘要', d.public_summary],
      ['无效原因', d.invalid_reason],
    ];
    for (const [k, v] of more) {
      if (v) blocks.push(el('div', { className: 'd-sub' }, [el('h4', { text: k }), el('p', { className: 'd-text', text: v })]));
    }
    if (d.parent_case_id) {
      blocks.push(el('p', { className: 'count-text' }, [
        document.createTextNode('已并入工单 '),
        button('查看主工单', 'link-btn', () => openCase(d.parent_case_id)),
      ]));
    }
    return section('反映内容', 'd-content-section', blocks);
  }

  function renderPersonal(d) {
    const p = d.personal || {};
    const canReveal = REVEALERS.includes(role());
    const rows = PERSONAL.filter(([f]) => p[f] || C.revealed[f]).map(([f, label]) => {
      const value = el('span', { className: 'pval mono', text: C.revealed[f] != null ? C.revealed[f] : p[f] });
      const row = el('div', { className: 'p-row', dataset: { field: f } }, [
        el('span', { className: 'p-label', text: label }), value]);
      if (C.revealed[f] != null) {
        row.dataset.revealed = '1';
      } else if (canReveal) {
        row.appendChild(button('查看', 'btn btn-small btn-ghost btn-reveal', () => askReveal(row, f, value), `查看完整${label}（须说明原因，记入处理记录）`));
      }
      return row;
    });
    if (!rows.length) rows.push(el('p', { className: 'empty', text: '无来电人信息' }));
    return section('来电人信息', 'd-personal', rows,
      el('span', { className: 'count-text', text: '已脱敏；查看完整信息须说明原因' }));
  }

  function askReveal(row, f, value) {
    if (row.querySelector('.reveal-form')) return;
    const reason = input('text', { max: 200, placeholder: '查看原因，如：回复来电人' });
    reason.className = 'reveal-reason';
    const msg = el('p', { className: 'form-msg', hidden: true });
    msg.hidden = true;
    const form = el('form', { className: 'reveal-form' }, [reason]);
    const ok = el('button', { className: 'btn btn-small btn-primary', text: '确定' });
    ok.type = 'submit';
    const cancel = button('取消', 'btn btn-small btn-ghost', () => { form.remove(); msg.remove(); });
    form.append(ok, cancel);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const why = reason.value.trim();
      if (!why) {
        msg.textContent = '请填写查看原因';
        msg.dataset.kind = 'error';
        msg.hidden = false;
        reason.focus();
        return;
      }
      ok.disabled = true;
      try {
        const data = await api('POST', `/api/casework/cases/${C.caseId}/reveal`, { field: f, reason: why });
        C.revealed[f] = str(data.value);
        value.textContent = C.revealed[f] || '（空）';
        row.dataset.revealed = '1';
        form.remove();
        msg.remove();
        const b = row.querySelector('.btn-reveal');
        if (b) b.remove();
      } catch (e) {
        if (e.status === 401) return;
        msg.textContent = e.message;
        msg.dataset.kind = 'error';
        msg.hidden = false;
        ok.disabled = false;
      }
    });
    row.append(form, msg);
    reason.focus();
  }

  function renderAssignments(d) {
    const list = d.assignments || [];
    if (!list.length) return section('交办记录', 'd-assignments', [el('p', { className: 'empty', text: '尚未交办' })]);
    const rounds = [...new Set(list.map((a) => a.round))].sort((a, b) => b - a);
    const blocks = rounds.map((round) => {
      const items = list.filter((a) => a.round === round);
      const current = items.some((a) => a.current);
      return el('div', { className: 'round', dataset: { current: current ? '1' : '' } }, [
        el('h4', { className: 'round-head', text: `第 ${round} 轮${current ? '（当前）' : ''}` }),
        ...items.map((a) => el('div', { className: 'assignment', dataset: { status: a.status, assignmentId: a.id } }, [
          el('div', { className: 'a-top' }, [
            el('span', { className: `role-chip${a.role === 'lead' ? ' lead' : ''}`, text: a.role === 'lead' ? '主办' : '协办' }),
            el('span', { className: 'a-unit', text: a.unit }),
            el('span', { className: 'status-tag', text: ASSIGNMENT_STATUS[a.status] || a.status, dataset: { status: { assigned: 'pending', accepted: 'assigned', reported: 'reported', done: 'closed' }[a.status] || '' } }),
            el('span', { className: 'count-text', text: MODES[a.mode] || '' }),
          ]),
          el('div', { className: 'a-meta count-text', text: [
            `交办 ${fmtDateTime(a.assigned_at)}`,
            a.due_at ? `期限 ${fmtDateTime(a.due_at)}` : (a.mode === 'urgent' ? '随时报告' : ''),
            a.accepted_at ? `签收 ${fmtDateTime(a.accepted_at)}` : '',
            a.reported_at ? `反馈 ${fmtDateTime(a.reported_at)}` : '',
          ].filter(Boolean).join(' · ') }),
          a.note ? kv('交办意见', a.note) : null,
          a.result ? kv('办理结果', a.result) : null,
          a.reply ? kv('答复情况', a.reply) : null,
          a.return_reason ? kv('退单理由', a.return_reason) : null,
        ])),
      ]);
    });
    return section('交办记录', 'd-assignments', blocks);
  }

  function kv(k, v) {
    return el('p', { className: 'kv' }, [el('span', { className: 'kv-k', text: `${k}：` }), el('span', { className: 'kv-v', text: v })]);
  }

  function table(id, head, rows) {
    const t = el('table', { className: 'data-table compact', id });
    t.append(el('thead', {}, [el('tr', {}, head.map((h) => el('th', { text: h })))]),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => (c instanceof Node ? el('td', {}, [c])
        // the first column is a time: kept on one line
        : el('td', { text: c, className: i === 0 ? 'mono' : '' })))))));
    return el('div', { className: 'table-wrap' }, [t]);
  }

  function renderExtensions(d) {
    const canDecide = isHotline() || role() === 'supervision';
    const rows = d.extensions.map((x) => {
      let state = EXTENSION_STATUS[x.status] || x.status;
      if (x.status === 'approved' && x.new_due_at) state += `（新期限 ${fmtDateTime(x.new_due_at)}）`;
      return [fmtDateTime(x.asked_at), `${x.days} 个工作日`, x.reason, state];
    });
    const blocks = [table('d-extensions-table', ['申请时间', '天数', '理由', '状态'], rows)];
    if (canDecide) {
      for (const x of d.extensions.filter((e) => e.status === 'pending')) blocks.push(decideForm(x));
    }
    return section('延期申请', 'd-extensions', blocks);
  }

  function decideForm(x) {
    const note = input('text', { max: 1000, placeholder: '审核意见（可不填）' });
    const msg = el('p', { className: 'form-msg' });
    msg.hidden = true;
    const path = `/api/casework/extensions/${x.id}/decide`;
    const yes = button('同意延期', 'btn btn-small btn-primary', (_e, b) => step(b, msg, 'POST', path, { approve: true, note: note.value.trim() }, '已同意延期'));
    const no = button('不同意', 'btn btn-small', (_e, b) => step(b, msg, 'POST', path, { approve: false, note: note.value.trim() }, '已不同意延期'));
    return el('div', { className: 'action-card', dataset: { action: 'decide-extension' } }, [
      el('h4', { text: `延期申请待审核：${x.days} 个工作日` }),
      el('p', { className: 'd-text', text: x.reason }),
      field('审核意见', note), el('div', { className: 'btn-row' }, [yes, no]), msg,
    ]);
  }

  function renderUrgings(d) {
    return section('催办记录', 'd-urgings', [table('d-urgings-table', ['时间', '方式', '单位', '说明'],
      d.urgings.map((u) => [fmtDateTime(u.at), URGE_KINDS[u.kind] || u.kind, u.unit, str(u.note)]))]);
  }

  function renderRevisits(d) {
    return section('回访记录', 'd-revisits', [table('d-revisits-table', ['时间', '轮次', '结果', '记录'],
      d.revisits.map((v) => [fmtDateTime(v.at), `第 ${v.round} 轮`, REVISIT_OUTCOMES[v.outcome] || v.outcome, str(v.note)]))]);
  }

  function renderChildren(d) {
    return section('并入的重复来电', 'd-children', [el('ul', { className: 'plain-list' }, d.children.map((c) => el('li', {}, [
      button(c.case_no, 'link-btn mono', () => openCase(c.id)), el('span', { text: ` ${str(c.title)}` }),
    ])))]);
  }

  function renderCaseReports() {
    return section('专报', 'd-reports', C.reports.map((r) => reportCard(r, false)));
  }

  function trailDetail(t) {
    const d = t.detail || {};
    const out = [];
    if (t.action === 'sent_back' && d.why) out.push(SENT_BACK_WHY[d.why] || d.why);
    if (d.lead_unit != null) out.push(`主办：${unitName(d.lead_unit)}`);
    if (Array.isArray(d.co_units) && d.co_units.length) out.push(`协办：${d.co_units.map(unitName).join('、')}`);
    if (d.unit != null && t.action !== 'urged') out.push(unitName(d.unit));
    if (d.unit != null && t.action === 'urged') out.push(`${unitName(d.unit)}（第 ${str(d.count)} 次，${URGE_KINDS[d.kind] || ''}）`);
    if (d.mode) out.push(MODES[d.mode] || d.mode);
    if (d.round != null) out.push(`第 ${d.round} 轮`);
    if (d.due_at) out.push(`期限 ${fmtDateTime(d.due_at)}`);
    if (d.days != null) out.push(`${d.days} 个工作日`);
    if (d.outcome) out.push(REVISIT_OUTCOMES[d.outcome] || d.outcome);
    if (d.field) out.push((PERSONAL.find(([f]) => f === d.field) || [0, d.field])[1]);
    if (d.recipient) out.push(RECIPIENTS[d.recipient] || d.recipient);
    if (d.parent) out.push(`并入 ${d.parent}`);
    if (d.child) out.push(`来自 ${d.child}`);
    if (d.replied === true) out.push('已答复来电人');
    if (d.replied === false) out.push('未答复来电人');
    if (d.on_time === false) out.push('超期反馈');
    if (d.tries != null) out.push(`未联系上 ${d.tries} 次`);
    if (d.reason) out.push(`理由：${d.reason}`);
    if (d.note) out.push(`意见：${d.note}`);
    return out.join('；');
  }

  function renderTrail(d) {
    const rows = d.trail.map((t) => [
      fmtDateTime(t.at),
      t.actor ? `${str(t.actor_name || t.actor)}${t.actor_role ? `（${ROLE_NAMES[t.actor_role] || t.actor_role}）` : ''}` : '系统',
      ACTIONS[t.action] || t.action,
      trailDetail(t),
    ]);
    return section('处理记录', 'd-trail', [table('d-trail-table', ['时间', '人员', '操作', '说明'], rows)]);
  }

  // ---------------------------------------------------------------- actions

  /** A card with its own fields, buttons and error line. */
  function card(action, title, build, open = true) {
    const msg = el('p', { className: 'form-msg', role: 'alert' });
    msg.setAttribute('role', 'alert');
    msg.hidden = true;
    const content = build(msg);
    if (open) {
      return el('div', { className: 'action-card', dataset: { action } }, [el('h4', { text: title }), ...content, msg]);
    }
    const det = el('details', { className: 'action-card action-more', dataset: { action } }, [
      el('summary', { text: title }), ...content, msg]);
    return det;
  }

  function renderActions(d) {
    const r = role();
    const hot = isHotline();
    const sup = r === 'supervision';
    const base = `/api/casework/cases/${d.id}`;
    const cards = [];

    if (hot && ['pending', 'returned'].includes(d.status)) cards.push(assignCard(d, base));
    if (r === 'handler') {
      for (const a of (d.assignments || []).filter((x) => x.current && ['assigned', 'accepted'].includes(x.status))) {
        cards.push(...handlerCards(d, a));
      }
    }
    if (hot && d.status === 'reported') cards.push(reviewCard(base));
    if (hot && d.status === 'reviewed') cards.push(revisitCard(d, base));
    if ((hot || sup) && ['assigned', 'accepted'].includes(d.status)) cards.push(urgeCard(base));
    if (hot && d.status === 'closed') {
      cards.push(card('archive', '归档', (msg) => [
        el('p', { className: 'count-text', text: '归档后工单不再变化，仍可查阅和统计。' }),
        el('div', { className: 'btn-row' }, [button('归档', 'btn btn-primary', (_e, b) => step(b, msg, 'POST', `${base}/archive`, {}, '已归档'))]),
      ]));
    }
    if (sup) {
      cards.push(card('note', '协调意见', (msg) => {
        const note = input('textarea', { rows: 3, max: 2000, placeholder: '对各承办单位的协调意见' });
        return [field('意见', note), el('div', { className: 'btn-row' }, [
          button('提交协调意见', 'btn btn-primary', (_e, b) => step(b, msg, 'POST', `${base}/note`, { note: note.value.trim() }, '已记录协调意见')),
        ])];
      }, !['closed', 'archived'].includes(d.status)));
    }
    if ((hot || sup) && !['intake', 'invalid'].includes(d.status)) {
      cards.push(reportDraftCard(d));
      cards.push(alertCard(d, base));
    }
    const hasForm = (d.assignments || []).some((a) => a.current);
    const links = hasForm ? el('div', { className: 'print-row' }, [(() => {
      const a = el('a', { className: 'btn btn-small btn-ghost', text: '打印受理交办单', id: 'd-print' });
      a.href = `${base}/form`;
      a.target = '_blank';
      a.rel = 'noopener';
      return a;
    })()]) : null;
    if (!cards.length && !links) return null;
    const wrap = section('办理', 'd-actions', [links, ...cards]);
    wrap.addEventListener('input', () => { C.dirty = true; });
    return wrap;
  }

  function assignCard(d, base) {
    return card('assign', d.status === 'returned' ? '改派（单位已退单）' : '交办', (msg) => {
      const tree = unitTree();
      const opt = ([u, depth]) => [str(u.id), `${'\u3000'.repeat(depth)}${depth ? '└ ' : ''}${u.name}`];
      const lead = select('lead_unit', [['', '请选择主办单位'], ...tree.map(opt)]);
      lead.id = 'assign-lead';
      const co = select('co_units', tree.map(opt));
      co.multiple = true;
      // A single select picked its first option on creation: nothing is chosen yet.
      for (const o of co.options) o.selected = false;
      co.size = 6;
      co.id = 'assign-co';
      const filter = input('search', { placeholder: '输入单位名称筛选' });
      filter.addEventListener('input', () => {
        const q = filter.value.trim();
        for (const s of [lead, co]) {
          for (const o of s.options) o.hidden = !!q && !!o.value && !o.textContent.includes(q) && !o.selected;
        }
      });
      const mode = select('mode', Object.entries(MODES), 'written');
      mode.id = 'assign-mode';
      const note = input('textarea', { rows: 2, max: 2000, placeholder: '交办意见（可不填）' });
      note.id = 'assign-note';
      const go = button('交办', 'btn btn-primary', (_e, b) => {
        const leadId = Number(lead.value);
        if (!leadId) {
          msg.textContent = '请选择主办单位';
          msg.dataset.kind = 'error';
          msg.hidden = false;
          lead.focus();
          return;
        }
        const coIds = Array.from(co.selectedOptions).map((o) => Number(o.value)).filter((v) => v && v !== leadId);
        step(b, msg, 'POST', `${base}/assign`, { lead_unit: leadId, co_units: coIds, mode: mode.value, note: note.value.trim() },
          (data) => (data.due_at ? `已交办，办理期限 ${fmtDateTime(data.due_at)}` : '已交办（紧急事项，随时报告）'));
      });
      go.id = 'assign-submit';
      return [
        field('筛选', filter),
        el('div', { className: 'grid-2' }, [field('主办单位', lead), field('交办方式', mode)]),
        field('协办单位（可多选：按住 Ctrl 或 Shift）', co),
        field('交办意见', note),
        el('div', { className: 'btn-row' }, [go]),
      ];
    });
  }

  function handlerCards(d, a) {
    const ap = `/api/casework/assignments/${a.id}`;
    const cards = [];
    const who = a.role === 'lead' ? '主办' : '协办';
    if (a.status === 'assigned') {
      cards.push(card('accept', `签收（${who}：${a.unit}）`, (msg) => [
        el('p', { className: 'count-text', text: a.due_at ? `办理期限 ${fmtDateTime(a.due_at)}` : '紧急事项：请随时报告办理情况' }),
        el('div', { className: 'btn-row' }, [button('签收', 'btn btn-primary btn-accept', (_e, b) => step(b, msg, 'POST', `${ap}/accept`, {}, '已签收'))]),
      ]));
    }
    cards.push(card('result', '反馈办理结果', (msg) => {
      const result = input('textarea', { rows: 4, max: 5000, placeholder: '办理经过和结果' });
      result.id = 'result-text';
      const reply = input('textarea', { rows: 2, max: 2000, placeholder: '如何答复来电人（时间、方式、内容）' });
      reply.id = 'result-reply';
      const replied = input('checkbox');
      replied.id = 'result-replied';
      replied.checked = true;
      return [
        field('办理结果', result),
        field('答复来电人情况', reply),
        el('label', { className: 'check' }, [replied, el('span', { text: '已直接答复来电人' })]),
        el('div', { className: 'btn-row' }, [button('提交办理结果', 'btn btn-primary', (_e, b) => step(b, msg, 'POST', `${ap}/result`,
          { result: result.value.trim(), reply: reply.value.trim(), replied: replied.checked }, '已反馈办理结果'))]),
      ];
    }));
    const pendingExt = (d.extensions || []).some((x) => Number(x.assignment_id) === Number(a.id) && x.status === 'pending');
    if (a.role === 'lead' && a.due_at && !pendingExt) {
      cards.push(card('extension', '申请延期', (msg) => {
        const reason = input('textarea', { rows: 2, max: 1000, placeholder: '不能按期办结的原因' });
        const days = input('number', { value: '3' });
        days.min = '1';
        days.max = '15';
        return [el('div', { className: 'grid-2' }, [field('延期理由', reason), field('延长工作日', days)]),
          el('div', { className: 'btn-row' }, [button('提交延期申请', 'btn', (_e, b) => step(b, msg, 'POST', `${ap}/extension`,
            { reason: reason.value.trim(), days: Number(days.value) }, '已提交延期申请，等待热线审核'))])];
      }, false));
    } else if (pendingExt) {
      cards.push(el('p', { className: 'count-text', text: '延期申请正在审核。' }));
    }
    cards.push(card('return', '退单', (msg) => {
      const reason = input('textarea', { rows: 2, max: 1000, placeholder: '不属于本单位职责的理由及建议承办单位' });
      return [field('退单理由', reason), el('div', { className: 'btn-row' }, [
        button('退回热线', 'btn btn-danger', (_e, b) => step(b, msg, 'POST', `${ap}/return`, { reason: reason.value.trim() }, '已退单')),
      ])];
    }, false));
    return cards;
  }

  function reviewCard(base) {
    return card('review', '审核办理结果', (msg) => {
      const summary = input('textarea', { rows: 2, max: 500, placeholder: '对外公开的办理摘要（不含个人信息，可不填）' });
      summary.id = 'review-summary';
      const note = input('textarea', { rows: 2, max: 2000, placeholder: '审核意见（退回重办时必填）' });
      note.id = 'review-note';
      return [field('公开摘要', summary), field('审核意见', note), el('div', { className: 'btn-row' }, [
        button('审核通过', 'btn btn-primary', (_e, b) => step(b, msg, 'POST', `${base}/review`,
          { approve: true, public_summary: summary.value.trim(), note: note.value.trim() }, '审核通过，待回访')),
        button('退回重办', 'btn btn-danger', (_e, b) => step(b, msg, 'POST', `${base}/review`,
          { approve: false, note: note.value.trim() }, '已退回重办')),
      ])];
    });
  }

  function revisitCard(d, base) {
    const tries = (d.revisits || []).filter((v) => v.round === d.round && v.outcome === 'unreachable').length;
    return card('revisit', '回访来电人', (msg) => {
      const group = el('div', { className: 'radio-row', id: 'revisit-outcome' });
      group.setAttribute('role', 'radiogroup');
      for (const [v, t] of Object.entries(REVISIT_OUTCOMES)) {
        const r = input('radio');
        r.name = 'revisit-outcome';
        r.value = v;
        if (v === 'satisfied') r.checked = true;
        group.appendChild(el('label', { className: 'check' }, [r, el('span', { text: t })]));
      }
      const note = input('textarea', { rows: 2, max: 2000, placeholder: '回访记录（不满意时必填）' });
      note.id = 'revisit-note';
      const close = button(`多次未联系上办结（已 ${tries} 次，须 3 次）`, 'btn btn-small', (_e, b) => step(b, msg, 'POST', `${base}/close_unreached`, {}, '已办结（多次未联系上）'));
      close.disabled = tries < 3;
      // 回拨: the agent's own phone rings first, then the citizen (number kept on the server).
      const dial = button('回拨来电人', 'btn btn-small btn-dial', (_e, b) => step(b, msg, 'POST',
        `/api/cases/${d.id}/dial`, { purpose: 'revisit' },
        (data) => `正在回拨 ${data.number}：请接听您的电话`));
      dial.id = 'revisit-dial';
      return [group, field('回访记录', note), el('div', { className: 'btn-row' }, [
        dial,
        button('记录回访', 'btn btn-primary', (_e, b) => {
          const outcome = (group.querySelector('input:checked') || {}).value;
          step(b, msg, 'POST', `${base}/revisit`, { outcome, note: note.value.trim() },
            { satisfied: '回访满意，已办结', unsatisfied: '回访不满意，已转重办', unreachable: '已记录未联系上' }[outcome]);
        }),
        close,
      ])];
    });
  }

  function urgeCard(base) {
    return card('urge', '催办', (msg) => {
      const note = input('text', { max: 1000, placeholder: '催办说明（可不填）' });
      return [field('说明', note), el('div', { className: 'btn-row' }, [
        button('催办', 'btn', (_e, b) => step(b, msg, 'POST', `${base}/urge`, { note: note.value.trim() }, (data) => `已催办（共 ${data.urge_count} 次）`)),
      ])];
    }, false);
  }

  function reportDraftCard(d) {
    return card('report', '专报', (msg) => {
      const to = select('recipient', Object.entries(RECIPIENTS), 'supervision');
      const title = input('text', { max: 200, placeholder: `关于${str(d.title) || '有关事项'}的专报` });
      return [el('div', { className: 'grid-2' }, [field('报送对象', to), field('标题（可不填）', title)]),
        el('div', { className: 'btn-row' }, [button('起草专报', 'btn', (_e, b) => step(b, msg, 'POST', '/api/casework/reports',
          { case_ids: [d.id], recipient: to.value, title: title.value.trim() }, '专报草稿已生成，请核对后报送'))])];
    }, false);
  }

  function alertCard(d, base) {
    return card('alert', '重大突发事件上报', (msg) => {
      const title = input('text', { max: 200, placeholder: '重大突发事件即时报告' });
      const confirm = el('div', { className: 'confirm-box' });
      confirm.hidden = true;
      const first = button('上报应急办', 'btn btn-danger', () => {
        confirm.hidden = false;
        first.hidden = true;
        confirm.querySelector('button').focus();
      });
      confirm.append(
        el('span', { text: '确认作为重大突发事件立即上报市政府应急管理办公室？所有值班席位将收到提示。' }),
        button('确认上报', 'btn btn-danger', (_e, b) => step(b, msg, 'POST', `${base}/alert`, { title: title.value.trim() }, '已上报应急办')),
        button('取消', 'btn btn-ghost', () => { confirm.hidden = true; first.hidden = false; first.focus(); }),
      );
      return [
        d.major ? el('p', { className: 'count-text', text: '此工单已标记为重大突发事件。' }) : null,
        field('标题（可不填）', title), el('div', { className: 'btn-row' }, [first]), confirm,
      ].filter(Boolean);
    }, false);
  }

  // ---------------------------------------------------------------- special reports

  function reportCard(r, full) {
    const sent = r.status === 'sent';
    const wrap = el('div', { className: 'report-card', dataset: { reportId: r.id, status: r.status } });
    const msg = el('p', { className: 'form-msg' });
    msg.hidden = true;
    const head = el('div', { className: 'a-top' }, [
      el('span', { className: 'status-tag', text: sent ? '已报送' : '草稿', dataset: { status: sent ? 'closed' : 'pending' } }),
      el('strong', { text: r.title }),
      el('span', { className: 'count-text', text: `报送：${str(r.recipient_name)}` }),
    ]);
    wrap.appendChild(head);
    wrap.appendChild(el('p', { className: 'count-text', text: `${str(r.author)} 起草于 ${fmtDateTime(r.created_at)}${sent ? `，报送于 ${fmtDateTime(r.sent_at)}` : ''}` }));
    if (sent) {
      wrap.appendChild(el('p', { className: 'd-text', text: r.body }));
    } else {
      const title = input('text', { max: 200, value: r.title });
      const body = input('textarea', { rows: full ? 10 : 5, max: 20000, value: r.body });
      const path = `/api/casework/reports/${r.id}`;
      wrap.append(field('标题', title), field('正文', body), el('div', { className: 'btn-row' }, [
        button('保存修改', 'btn', (_e, b) => step(b, msg, 'PUT', path, { title: title.value.trim(), body: body.value }, '专报已保存')),
        button('报送', 'btn btn-primary', (_e, b) => step(b, msg, 'POST', `${path}/send`, {}, `专报已报送${str(r.recipient_name)}`)),
      ]));
    }
    if (full) {
      wrap.appendChild(el('div', { className: 'btn-row' }, (r.case_ids || []).map((id) => button(`查看工单 #${id}`, 'btn btn-small btn-ghost', () => openCase(id)))));
    }
    wrap.appendChild(msg);
    return wrap;
  }

  async function openReport(id) {
    C.reportId = Number(id);
    C.caseId = null;
    C.detail = null;
    history.replaceState(null, '', '#');
    try {
      const data = await api('GET', '/api/casework/reports');
      C.reports = data.reports || [];
    } catch (e) {
      if (e.status !== 401) showPageError(e.message);
      return;
    }
    const r = C.reports.find((x) => Number(x.id) === C.reportId);
    $('detail-empty').hidden = true;
    $('detail-error').hidden = true;
    $('detail-stale').hidden = true;
    const body = $('detail-body');
    body.replaceChildren(r ? section('专报', 'd-report', [reportCard(r, true)]) : el('p', { className: 'empty', text: '专报不存在' }));
    body.hidden = false;
    renderRows();
  }

  // ---------------------------------------------------------------- live pushes

  function setWsState(open, text) {
    document.body.dataset.wsState = open ? 'open' : 'closed';
    const box = $('ws-status');
    box.dataset.wsState = open ? 'open' : 'closed';
    box.textContent = text || (open ? '已连接' : '连接中断，正在重连…');
  }

  // The open socket alone is no sign of life: tell the server about the user's input.
  window.HotlineHttp.reportActivity(() => C.ws);

  function connectWs() {
    C.wsWanted = true;
    clearTimeout(C.wsTimer);
    C.wsTimer = null;
    if (C.ws) return;
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`);
    C.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (C.ws !== ws) return;
      opened = true;
      C.wsRetry = 0;
      setWsState(true);
      refresh(true); // anything missed while away
    });
    ws.addEventListener('message', (ev) => {
      if (C.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_e) {
        return;
      }
      onPush(msg);
    });
    ws.addEventListener('close', () => {
      if (C.ws !== ws) return;
      C.ws = null;
      if (!C.wsWanted) return;
      setWsState(false);
      const delay = Math.min(1000 * 2 ** C.wsRetry, WS_MAX_DELAY_MS);
      C.wsRetry = Math.min(C.wsRetry + 1, 10);
      C.wsTimer = setTimeout(async () => {
        C.wsTimer = null;
        if (!opened) {
          try {
            await api('GET', '/api/me', undefined, { authRedirect: false });
          } catch (e) {
            if (e.status === 401) {
              showLogin('登录已过期，请重新登录');
              return;
            }
          }
        }
        if (C.wsWanted) connectWs();
      }, delay);
    });
  }

  function stopWs() {
    C.wsWanted = false;
    clearTimeout(C.wsTimer);
    C.wsTimer = null;
    const ws = C.ws;
    C.ws = null;
    if (ws) {
      try {
        ws.close(1000, 'logout');
      } catch (_e) { /* ignore */ }
    }
    setWsState(false, '未连接');
  }

  function onPush(msg) {
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'case') {
      refresh();
      if (C.caseId != null && Number(msg.case_id) === C.caseId) {
        // Do not throw away what the user is typing: offer the refresh instead.
        if (C.dirty) $('detail-stale').hidden = false;
        else loadDetail();
      }
    } else if (msg.type === 'alert') {
      $('alert-text').textContent = str(msg.title);
      $('alert-banner').hidden = false;
      if (role() === 'supervision') refresh();
    }
  }

  // ---------------------------------------------------------------- boot

  function bind() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('btn-logout').addEventListener('click', onLogout);
    $('alert-dismiss').addEventListener('click', () => { $('alert-banner').hidden = true; });
    $('detail-reload').addEventListener('click', () => loadDetail());
    const q = $('search-q');
    let timer = null;
    const apply = () => {
      C.q = q.value.trim();
      renderLists();
      refresh(true);
    };
    $('search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      clearTimeout(timer);
      apply();
    });
    q.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(apply, 300);
    });
    window.addEventListener('hashchange', () => {
      const id = caseFromHash();
      if (id && id !== C.caseId && C.me) openCase(id);
    });
  }

  async function boot() {
    bind();
    try {
      enter(await api('GET', '/api/me', undefined, { authRedirect: false }));
    } catch (e) {
      showLogin(e.status === 401 ? '' : e.message);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
