/* 坐席工作台 — 12345 市长热线 / 63160000 民生热线
 * Plain ES2020, no dependencies. All data goes into the DOM via textContent.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- labels

  const STATE_LABELS = {
    logged_out: '未登录',
    ready: '就绪',
    not_ready: '未就绪',
    ringing: '振铃中',
    on_call: '通话中',
  };

  const REASON_LABELS = {
    no_answer: '未接听',
    break: '小休',
    manual: '小休',
    after_call: '话后处理',
    wrap_up: '话后处理',
    login: '刚登录',
    meal: '用餐',
    training: '培训',
    meeting: '会议',
  };

  const DIALLED_NAMES = {
    '12345': '市长热线',
    '63160000': '民生热线',
  };

  const SERVICE_LABELS = {
    hotline: '市长热线事项',
    news_tip: '新闻线索',
    info_query: '信息查询',
  };

  const END_REASONS = {
    caller_hangup: '来电方挂机',
    agent_hangup: '坐席挂机',
    no_answer: '坐席未接听',
    abandoned: '来电方放弃',
    transferred: '已转接',
    transfer: '已转接',
    timeout: '超时',
    error: '系统错误',
    offer_withdrawn: '来电已转走',
  };

  const CASE_STATUS_LABELS = {
    new: '新建',
    draft: '草稿',
    open: '处理中',
    in_progress: '处理中',
    saved: '已保存',
    submitted: '已提交',
    closed: '已办结',
  };

  // case form fields: [case key, element id]
  const CASE_FIELDS = [
    ['name', 'case-name'],
    ['address', 'case-address'],
    ['work_unit', 'case-work-unit'],
    ['callback_number', 'case-callback'],
    ['category', 'case-category'],
    ['content', 'case-content'],
  ];

  const WS_MAX_DELAY_MS = 15000;
  const WS_STABLE_MS = 5000; // a connection open this long resets the back-off

  // ---------------------------------------------------------------- state

  const S = {
    csrf: null,
    agent: null,
    prevAgentState: null,
    statePending: false,
    logoutArmedUntil: 0,

    categories: [],
    categoriesLoaded: false,
    categoriesLoading: null,

    ws: null,
    wsWanted: false,
    wsRetry: 0,
    wsTimer: null,

    queue: [],
    queueReceivedAt: 0, // performance.now() when the last snapshot arrived
    queueRows: [], // [{item, cell}]
    agents: [],
    agentRows: [], // [{agent, cell}]
    serverOffsetMs: 0, // server clock - local clock, from snapshot "at"

    current: null, // the case on screen, see openCall()
    ticker: null,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  function el(tag, opts = {}, children = []) {
    const node = document.createElement(tag);
    if (opts.className) node.className = opts.className;
    if (opts.text != null) node.textContent = String(opts.text);
    if (opts.title) node.title = opts.title;
    if (opts.dataset) {
      for (const [k, v] of Object.entries(opts.dataset)) {
        if (v != null) node.dataset[k] = String(v);
      }
    }
    for (const child of children) node.appendChild(child);
    return node;
  }

  function str(v) {
    return v == null ? '' : String(v);
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  /** mm:ss (minutes not capped, e.g. 75:03). */
  function fmtMmSs(totalSeconds) {
    const s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
    return `${pad2(Math.floor(s / 60))}:${pad2(s % 60)}`;
  }

  /** mm:ss below one hour, h:mm:ss above. */
  function fmtDuration(totalSeconds) {
    const s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
    if (s < 3600) return fmtMmSs(s);
    const h = Math.floor(s / 3600);
    return `${h}:${pad2(Math.floor((s % 3600) / 60))}:${pad2(s % 60)}`;
  }

  function fmtDateTime(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return str(iso);
    const d = new Date(t);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function fmtClock(d = new Date()) {
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function serverNow() {
    return Date.now() + S.serverOffsetMs;
  }

  function secondsSince(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return null;
    return Math.max(0, (serverNow() - t) / 1000);
  }

  function dialledLabel(num) {
    const n = str(num);
    const name = DIALLED_NAMES[n];
    return name ? `${n} ${name}` : n;
  }

  function serviceLabel(svc) {
    return SERVICE_LABELS[svc] || str(svc);
  }

  function reasonLabel(reason) {
    return REASON_LABELS[reason] || str(reason);
  }

  function stateLabel(state, reason) {
    const base = STATE_LABELS[state] || str(state) || '—';
    if (state === 'not_ready' && reason) return `${base}（${reasonLabel(reason)}）`;
    return base;
  }

  function endReasonLabel(reason) {
    return END_REASONS[reason] || str(reason) || '已结束';
  }

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  /**
   * JSON request. Non-2xx responses throw ApiError carrying the server's
   * `error` text. A 401 (other than for login/me) sends the user back to the
   * login form.
   */
  async function api(method, path, body, { authRedirect = true } = {}) {
    const opts = {
      method,
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    };
    if (method !== 'GET' && method !== 'HEAD') {
      opts.headers['Content-Type'] = 'application/json';
      if (S.csrf) opts.headers['X-Hotline-CSRF'] = S.csrf;
      opts.body = JSON.stringify(body == null ? {} : body);
    }

    let res;
    try {
      res = await fetch(path, opts);
    } catch (_e) {
      throw new ApiError(0, '网络错误，无法连接服务器');
    }

    let data = null;
    try {
      const text = await res.text();
      if (text) data = JSON.parse(text);
    } catch (_e) {
      data = null;
    }

    if (!res.ok) {
      const msg = data && typeof data.error === 'string' && data.error
        ? data.error
        : `请求失败（HTTP ${res.status}）`;
      const err = new ApiError(res.status, msg, data);
      if (res.status === 401 && authRedirect && S.agent) {
        sessionExpired();
      }
      throw err;
    }
    return data && typeof data === 'object' ? data : {};
  }

  // ---------------------------------------------------------------- views

  function showLogin(message) {
    stopWs();
    stopTicker();
    S.csrf = null;
    S.agent = null;
    S.prevAgentState = null;
    S.queue = [];
    S.agents = [];
    S.categories = [];
    S.categoriesLoaded = false;
    S.categoriesLoading = null;
    closeCase(true);
    hideDeskMessage();
    renderQueue();
    renderAgents();

    document.body.dataset.view = 'login';
    document.body.dataset.agentState = 'logged_out';
    document.title = '坐席工作台 · 登录';
    $('desk-view').hidden = true;
    $('login-view').hidden = false;

    const err = $('login-error');
    if (message) {
      err.textContent = message;
      err.hidden = false;
    } else {
      err.textContent = '';
      err.hidden = true;
    }
    $('password').value = '';
    $('login-submit').disabled = false;
    const loginInput = $('login');
    (loginInput.value ? $('password') : loginInput).focus();
  }

  function sessionExpired() {
    showLogin('登录已过期，请重新登录');
  }

  function enterDesk(data) {
    S.csrf = str(data.csrf) || null;
    $('login-view').hidden = true;
    $('desk-view').hidden = false;
    document.body.dataset.view = 'desk';
    setAgent(data.agent);
    renderQueue();
    renderAgents();
    loadCategories();
    startTicker();
    setWsState(false, '正在连接…');
    connectWs();
  }

  // ---------------------------------------------------------------- login

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
    err.hidden = true;
    err.textContent = '';
    const btn = $('login-submit');
    btn.disabled = true;
    btn.textContent = '正在登录…';
    try {
      const data = await api('POST', '/api/login', { login, password }, { authRedirect: false });
      $('password').value = '';
      enterDesk(data);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      $('password').select();
    } finally {
      btn.disabled = false;
      btn.textContent = '登录';
    }
  }

  // ---------------------------------------------------------------- agent header

  function setAgent(agent) {
    if (!agent || typeof agent !== 'object') return;
    const prev = S.agent ? S.agent.state : null;
    S.agent = { ...(S.agent || {}), ...agent };
    S.prevAgentState = prev;
    renderAgentHeader();

    // The offer went away without a call_ended (e.g. not answered in time):
    // ringing -> anything but on_call closes the offer phase.
    const cur = S.current;
    if (cur && cur.phase === 'offer' && prev === 'ringing' &&
        S.agent.state !== 'ringing' && S.agent.state !== 'on_call') {
      cur.phase = 'ended';
      cur.endReason = S.agent.reason || 'offer_withdrawn';
      renderCallBanner();
    }
  }

  function renderAgentHeader() {
    const a = S.agent;
    if (!a) return;
    $('agent-name').textContent = str(a.display_name || a.login);
    const badge = $('agent-state');
    badge.textContent = stateLabel(a.state, a.reason);
    badge.dataset.state = str(a.state);
    document.body.dataset.agentState = str(a.state) || 'logged_out';
    renderAgentButtons();
    tickAgentSince();
    updateTitle();
  }

  function renderAgentButtons() {
    const state = S.agent ? S.agent.state : null;
    const busy = state === 'ringing' || state === 'on_call';
    $('btn-ready').disabled = S.statePending || state === 'ready' || busy;
    $('btn-not-ready').disabled = S.statePending || state === 'not_ready' || state === 'on_call';
  }

  function tickAgentSince() {
    const out = $('agent-state-since');
    const a = S.agent;
    const secs = a ? secondsSince(a.since) : null;
    out.textContent = secs == null ? '' : `已持续 ${fmtDuration(secs)}`;
  }

  async function setState(state) {
    if (S.statePending) return;
    S.statePending = true;
    renderAgentButtons();
    try {
      const data = await api('POST', '/api/agent/state', { state });
      if (data.agent) setAgent(data.agent);
      hideDeskMessage();
    } catch (e) {
      if (e.status !== 401) showDeskMessage(e.message, 'error');
    } finally {
      S.statePending = false;
      renderAgentButtons();
    }
  }

  async function onLogout() {
    const cur = S.current;
    if (cur && cur.dirty.size > 0 && Date.now() > S.logoutArmedUntil) {
      S.logoutArmedUntil = Date.now() + 8000;
      showDeskMessage('当前工单有未保存的修改。再次点击“退出”将放弃修改并退出。', 'error');
      return;
    }
    S.logoutArmedUntil = 0;
    const btn = $('btn-logout');
    btn.disabled = true;
    try {
      await api('POST', '/api/logout', {}, { authRedirect: false });
    } catch (e) {
      if (e.status !== 401) {
        showDeskMessage(`退出失败：${e.message}`, 'error');
        btn.disabled = false;
        return;
      }
    }
    btn.disabled = false;
    showLogin();
  }

  function updateTitle() {
    const cur = S.current;
    let prefix = '';
    if (cur && cur.phase === 'offer') prefix = '【来电振铃】';
    else if (S.agent && S.agent.state === 'on_call') prefix = '【通话中】';
    const name = S.agent ? str(S.agent.display_name || S.agent.login) : '';
    document.title = `${prefix}坐席工作台${name ? ` · ${name}` : ''}`;
  }

  // ---------------------------------------------------------------- desk message bar

  function showDeskMessage(text, kind = 'error', action = null) {
    const box = $('desk-error');
    box.replaceChildren(el('span', { className: 'desk-error-text', text }));
    if (action) {
      const b = el('button', { className: 'btn btn-small', text: action.label });
      b.type = 'button';
      b.addEventListener('click', (ev) => {
        ev.stopPropagation();
        action.run();
      });
      box.appendChild(b);
    }
    const x = el('button', { className: 'btn btn-small btn-ghost', text: '知道了' });
    x.type = 'button';
    x.addEventListener('click', hideDeskMessage);
    box.appendChild(x);
    box.dataset.kind = kind;
    box.hidden = false;
  }

  function hideDeskMessage() {
    const box = $('desk-error');
    box.hidden = true;
    box.replaceChildren();
  }

  // ---------------------------------------------------------------- categories

  function loadCategories() {
    if (S.categoriesLoaded) return Promise.resolve();
    if (S.categoriesLoading) return S.categoriesLoading;
    S.categoriesLoading = api('GET', '/api/categories')
      .then((data) => {
        S.categories = Array.isArray(data.categories) ? data.categories : [];
        S.categoriesLoaded = true;
        renderCategoryOptions();
      })
      .catch((e) => {
        if (e.status !== 401) showDeskMessage(`类别列表加载失败：${e.message}`, 'error');
      })
      .finally(() => {
        S.categoriesLoading = null;
      });
    return S.categoriesLoading;
  }

  function renderCategoryOptions() {
    const sel = $('case-category');
    const keep = sel.value;
    const opts = [el('option', { text: '请选择类别' })];
    opts[0].value = '';
    for (const c of S.categories) {
      if (!c || c.code == null) continue;
      const o = el('option', { text: str(c.name) || str(c.code) });
      o.value = str(c.code);
      opts.push(o);
    }
    sel.replaceChildren(...opts);
    const cur = S.current;
    const wanted = cur && !cur.dirty.has('category') ? str(cur.case.category) : keep;
    setCategoryValue(wanted);
  }

  function setCategoryValue(value) {
    const sel = $('case-category');
    const v = str(value);
    if (v && !Array.from(sel.options).some((o) => o.value === v)) {
      const o = el('option', { text: S.categoriesLoaded ? `${v}（未知类别）` : v });
      o.value = v;
      o.dataset.extra = '1';
      sel.appendChild(o);
    }
    sel.value = v;
  }

  // ---------------------------------------------------------------- WebSocket

  function wsUrl() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws`;
  }

  function setWsState(open, text) {
    const s = open ? 'open' : 'closed';
    document.body.dataset.wsState = s;
    const box = $('ws-status');
    box.dataset.wsState = s;
    box.textContent = text || (open ? '已连接' : '连接中断，正在重连…');
  }

  function connectWs() {
    S.wsWanted = true;
    clearTimeout(S.wsTimer);
    S.wsTimer = null;
    if (S.ws) return;

    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (_e) {
      setWsState(false);
      scheduleReconnect(false, 0);
      return;
    }
    S.ws = ws;
    let openedAt = 0;

    ws.addEventListener('open', () => {
      if (S.ws !== ws) return;
      openedAt = performance.now();
      setWsState(true);
    });

    ws.addEventListener('message', (ev) => {
      if (S.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_e) {
        return;
      }
      try {
        handleMessage(msg);
      } catch (e) {
        // A bad message must not kill the connection handler.
        console.error('ws message failed', msg, e);
      }
    });

    ws.addEventListener('close', (ev) => {
      if (S.ws !== ws) return;
      S.ws = null;
      if (!S.wsWanted) return;
      setWsState(false);
      const wasOpen = openedAt > 0;
      if (wasOpen && performance.now() - openedAt >= WS_STABLE_MS) S.wsRetry = 0;
      scheduleReconnect(wasOpen, ev.code);
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  function scheduleReconnect(wasOpen, code) {
    if (!S.wsWanted || S.wsTimer) return;
    const delay = Math.min(1000 * 2 ** S.wsRetry, WS_MAX_DELAY_MS);
    S.wsRetry = Math.min(S.wsRetry + 1, 10);
    // Handshake refused or policy/auth close: the session may be gone.
    const checkSession = !wasOpen || code === 1008 || (code >= 4000 && code < 5000);
    S.wsTimer = setTimeout(async () => {
      S.wsTimer = null;
      if (!S.wsWanted) return;
      if (checkSession) {
        try {
          const data = await api('GET', '/api/me', undefined, { authRedirect: false });
          if (data.csrf) S.csrf = str(data.csrf);
          if (data.agent) setAgent(data.agent);
        } catch (e) {
          if (e.status === 401) {
            if (S.wsWanted) sessionExpired();
            return;
          }
          // Server unreachable: keep trying with back-off.
          if (S.wsWanted) scheduleReconnect(false, 0);
          return;
        }
        if (!S.wsWanted) return;
      }
      connectWs();
    }, delay);
  }

  function stopWs() {
    S.wsWanted = false;
    clearTimeout(S.wsTimer);
    S.wsTimer = null;
    S.wsRetry = 0;
    const ws = S.ws;
    S.ws = null;
    if (ws) {
      try {
        ws.close(1000, 'logout');
      } catch (_e) { /* ignore */ }
    }
    setWsState(false, '未连接');
  }

  function handleMessage(msg) {
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'snapshot':
        onSnapshot(msg);
        break;
      case 'offer':
        openCall(msg.call, msg.case, 'offer');
        break;
      case 'connected':
        openCall(msg.call, msg.case, 'connected');
        break;
      case 'call_ended':
        onCallEnded(msg);
        break;
      case 'agent':
        if (msg.agent) {
          setAgent(msg.agent);
          mergeOwnAgentRow();
        }
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- queue & agents

  function onSnapshot(msg) {
    const q = msg.queue && typeof msg.queue === 'object' ? msg.queue : {};
    S.queue = Array.isArray(q.waiting) ? q.waiting : [];
    S.agents = Array.isArray(q.agents) ? q.agents : [];
    S.queueReceivedAt = performance.now();
    const at = Date.parse(msg.at);
    if (!Number.isNaN(at)) S.serverOffsetMs = at - Date.now();

    if (S.agent) {
      const me = S.agents.find((a) => a && a.id === S.agent.id);
      if (me) setAgent(me);
    }
    renderQueue();
    renderAgents();
  }

  function mergeOwnAgentRow() {
    if (!S.agent) return;
    const i = S.agents.findIndex((a) => a && a.id === S.agent.id);
    if (i >= 0) {
      const { login: _login, ...row } = S.agent;
      S.agents[i] = { ...S.agents[i], ...row };
      renderAgents();
    }
  }

  function waitedSeconds(item) {
    const w = Number(item.waited_seconds);
    if (item.waited_seconds != null && Number.isFinite(w)) {
      return w + (performance.now() - S.queueReceivedAt) / 1000;
    }
    const s = secondsSince(item.entered_at);
    return s == null ? 0 : s;
  }

  function waitClass(secs) {
    if (secs >= 180) return 'wait alert';
    if (secs >= 60) return 'wait warn';
    return 'wait';
  }

  function renderQueue() {
    const tbody = $('queue-table').tBodies[0];
    const rows = [];
    S.queueRows = [];
    for (const item of S.queue) {
      if (!item) continue;
      const secs = waitedSeconds(item);
      const waitCell = el('td', { className: `num ${waitClass(secs)}`, text: fmtMmSs(secs) });
      const dialled = str(item.dialled_number);
      const tr = el('tr', { dataset: { callId: str(item.call_id), dialled } }, [
        el('td', { className: `dialled dial-${dialled.replace(/[^0-9A-Za-z_-]/g, '')}`, text: dialledLabel(dialled) }),
        el('td', { text: serviceLabel(item.service) }),
        el('td', { className: 'mono', text: str(item.caller_masked) || '—' }),
        waitCell,
      ]);
      rows.push(tr);
      S.queueRows.push({ item, cell: waitCell });
    }
    tbody.replaceChildren(...rows);
    $('queue-count').textContent = String(rows.length);
    $('queue-count').dataset.level = rows.length === 0 ? 'none' : rows.length >= 5 ? 'high' : 'some';
    $('queue-empty').hidden = rows.length > 0;
  }

  function tickQueue() {
    for (const { item, cell } of S.queueRows) {
      const secs = waitedSeconds(item);
      cell.textContent = fmtMmSs(secs);
      cell.className = `num ${waitClass(secs)}`;
    }
  }

  const STATE_ORDER = { on_call: 0, ringing: 1, ready: 2, not_ready: 3, logged_out: 4 };

  function renderAgents() {
    const tbody = $('agents-table').tBodies[0];
    const list = S.agents
      .filter((a) => a && typeof a === 'object')
      .map((a, i) => ({ a, i }))
      .sort((x, y) => {
        const ox = STATE_ORDER[x.a.state] ?? 5;
        const oy = STATE_ORDER[y.a.state] ?? 5;
        return ox - oy || x.i - y.i;
      })
      .map((x) => x.a);

    const counts = { ready: 0, not_ready: 0, ringing: 0, on_call: 0 };
    const rows = [];
    S.agentRows = [];
    for (const a of list) {
      if (a.state in counts) counts[a.state] += 1;
      const isMe = S.agent && a.id === S.agent.id;
      const nameCell = el('td', { className: 'agent-cell' }, [
        el('span', { text: str(a.display_name) || `#${str(a.id)}` }),
      ]);
      if (isMe) nameCell.appendChild(el('span', { className: 'me-tag', text: '本人' }));
      const secs = secondsSince(a.since);
      const sinceCell = el('td', { className: 'num', text: secs == null ? '' : fmtDuration(secs) });
      const tr = el('tr', {
        className: isMe ? 'is-me' : '',
        dataset: { agentId: str(a.id), state: str(a.state) },
      }, [
        nameCell,
        el('td', {}, [
          el('span', {
            className: 'state-badge small',
            text: stateLabel(a.state, a.reason),
            dataset: { state: str(a.state) },
          }),
        ]),
        sinceCell,
      ]);
      rows.push(tr);
      S.agentRows.push({ agent: a, cell: sinceCell });
    }
    tbody.replaceChildren(...rows);
    $('agents-empty').hidden = rows.length > 0;
    $('agents-summary').textContent = rows.length
      ? `就绪 ${counts.ready} · 振铃 ${counts.ringing} · 通话 ${counts.on_call} · 未就绪 ${counts.not_ready}`
      : '';
  }

  function tickAgents() {
    for (const { agent, cell } of S.agentRows) {
      const secs = secondsSince(agent.since);
      cell.textContent = secs == null ? '' : fmtDuration(secs);
    }
  }

  // ---------------------------------------------------------------- case panel

  /**
   * S.current = {
   *   case, call, callId,
   *   phase: 'offer' | 'connected' | 'ended',
   *   connectedSeen: bool, endReason: str|null,
   *   dirty: Set<case key>, saving: bool, closeArmedUntil: ms
   * }
   */
  function openCall(call, kase, phase) {
    if (!kase || typeof kase !== 'object') return;
    const cur = S.current;
    const callId = call && call.call_id != null ? str(call.call_id) : null;

    if (cur && cur.case.id === kase.id) {
      // Same case (offer -> connected, or a resend after reconnect):
      // refresh server data but keep what the agent has typed.
      cur.call = call || cur.call;
      cur.callId = callId || cur.callId;
      cur.phase = phase;
      cur.endReason = null;
      if (phase === 'connected') cur.connectedSeen = true;
      cur.case = { ...cur.case, ...kase };
      fillCase(true);
    } else {
      if (cur && cur.dirty.size > 0) autoSaveDisplaced(cur);
      S.current = {
        case: kase,
        call: call || null,
        callId,
        phase,
        connectedSeen: phase === 'connected',
        endReason: null,
        dirty: new Set(),
        saving: false,
        closeArmedUntil: 0,
      };
      fillCase(false);
      setCaseStatus('', '');
      $('case-save').disabled = false;
    }

    $('case-panel').hidden = false;
    document.body.dataset.hasCase = '1';
    renderCallBanner();
    if (!S.categoriesLoaded) loadCategories();

    if (phase === 'offer') {
      $('case-panel').scrollIntoView({ block: 'start', behavior: 'smooth' });
    } else if (phase === 'connected' && !isEditingCase()) {
      $('case-name').focus({ preventScroll: true });
    }
  }

  function isEditingCase() {
    const a = document.activeElement;
    return !!(a && $('case-form').contains(a));
  }

  function fillCase(keepDirty) {
    const cur = S.current;
    if (!cur) return;
    const c = cur.case;
    $('case-no').textContent = str(c.case_no);
    $('case-dialled').textContent = `${dialledLabel(c.dialled_number)} · ${serviceLabel(c.service)}`;
    $('case-caller').textContent = str(c.caller_number) || '（未显示号码）';
    $('case-created').textContent = c.created_at ? fmtDateTime(c.created_at) : '';
    const st = str(c.status);
    $('case-record-status').textContent = st ? `状态：${CASE_STATUS_LABELS[st] || st}` : '';
    $('case-callback-copy').disabled = !c.caller_number;

    for (const [key, id] of CASE_FIELDS) {
      if (keepDirty && cur.dirty.has(key)) continue;
      if (key === 'category') setCategoryValue(c.category);
      else $(id).value = str(c[key]);
    }
  }

  function collectCase() {
    const body = {};
    for (const [key, id] of CASE_FIELDS) {
      const v = $(id).value;
      body[key] = key === 'content' ? v : v.trim();
    }
    return body;
  }

  function onCaseInput(ev) {
    const cur = S.current;
    if (!cur) return;
    const pair = CASE_FIELDS.find(([, id]) => id === ev.target.id);
    if (!pair) return;
    cur.dirty.add(pair[0]);
    cur.closeArmedUntil = 0;
    if (!cur.saving) setCaseStatus('有未保存的修改', 'dirty');
  }

  function setCaseStatus(text, kind, title) {
    const s = $('case-status');
    s.textContent = text;
    s.dataset.kind = kind || '';
    s.title = title || '';
  }

  async function saveCurrentCase() {
    const cur = S.current;
    if (!cur || cur.saving) return;
    const body = collectCase();
    cur.saving = true;
    $('case-save').disabled = true;
    setCaseStatus('正在保存…', 'pending');
    try {
      const data = await putCase(cur.case.id, body);
      if (S.current !== cur) return;
      // Fields edited while the request was in flight stay dirty.
      const now = collectCase();
      for (const [key] of CASE_FIELDS) {
        if (now[key] === body[key]) cur.dirty.delete(key);
      }
      if (data.case && typeof data.case === 'object') {
        cur.case = { ...cur.case, ...data.case };
        fillCase(true);
      }
      if (cur.dirty.size > 0) {
        setCaseStatus('有未保存的修改', 'dirty');
      } else {
        setCaseStatus('已保存', 'ok', `保存于 ${fmtClock()}`);
      }
    } catch (e) {
      if (S.current === cur) setCaseStatus(e.message, 'error');
    } finally {
      cur.saving = false;
      if (S.current === cur) $('case-save').disabled = false;
    }
  }

  function putCase(caseId, body) {
    return api('PUT', `/api/cases/${encodeURIComponent(str(caseId))}`, body);
  }

  /**
   * A new call arrived while the previous case still had unsaved edits:
   * save them in the background instead of silently dropping them.
   */
  function autoSaveDisplaced(prev) {
    const body = collectCase();
    const caseNo = str(prev.case.case_no) || `#${str(prev.case.id)}`;
    const attempt = () => {
      showDeskMessage(`正在自动保存上一工单 ${caseNo} …`, 'info');
      putCase(prev.case.id, body)
        .then(() => showDeskMessage(`上一工单 ${caseNo} 的修改已自动保存`, 'info'))
        .catch((e) => {
          if (e.status === 401) return;
          showDeskMessage(`上一工单 ${caseNo} 自动保存失败：${e.message}`, 'error',
            { label: '重试', run: attempt });
        });
    };
    attempt();
  }

  function onCallEnded(msg) {
    const cur = S.current;
    if (!cur) return;
    if (msg.call_id != null && cur.callId && str(msg.call_id) !== cur.callId) return;
    cur.phase = 'ended';
    cur.endReason = msg.reason || null;
    renderCallBanner();
  }

  function renderCallBanner() {
    const cur = S.current;
    const banner = $('call-banner');
    const phase = cur ? cur.phase : '';
    document.body.dataset.phase = phase;
    banner.dataset.phase = phase;
    $('case-close').hidden = !cur || phase !== 'ended';
    if (!cur) {
      banner.replaceChildren();
      updateTitle();
      return;
    }

    const c = cur.case;
    const call = cur.call || {};
    const line = `${dialledLabel(call.dialled_number || c.dialled_number)} · ${serviceLabel(call.service || c.service)}`;
    let head;
    let sub;
    if (phase === 'offer') {
      head = '来电振铃 — 请接听电话';
      sub = line;
    } else if (phase === 'connected') {
      head = '通话中';
      sub = line;
    } else {
      const why = endReasonLabel(cur.endReason);
      head = cur.connectedSeen ? `通话已结束（${why}）` : `来电未接通（${why}）`;
      sub = cur.connectedSeen ? '请完善工单并保存' : line;
    }
    const timer = el('span', { className: 'call-timer' });
    banner.replaceChildren(
      el('span', { className: 'call-banner-head', text: head }),
      el('span', { className: 'call-banner-sub', text: sub }),
      timer,
    );
    tickCallTimer();
    updateTitle();
  }

  function tickCallTimer() {
    const cur = S.current;
    const timer = document.querySelector('#call-banner .call-timer');
    if (!timer) return;
    if (cur && cur.phase === 'connected' && cur.call && cur.call.answered_at) {
      const secs = secondsSince(cur.call.answered_at);
      timer.textContent = secs == null ? '' : `通话 ${fmtDuration(secs)}`;
    } else {
      timer.textContent = '';
    }
  }

  function onCaseClose() {
    const cur = S.current;
    if (!cur || cur.phase !== 'ended') return;
    if (cur.dirty.size > 0 && Date.now() > cur.closeArmedUntil) {
      cur.closeArmedUntil = Date.now() + 8000;
      setCaseStatus('有未保存的修改，再次点击“关闭工单”将放弃修改', 'error');
      return;
    }
    closeCase(true);
  }

  function closeCase(force) {
    const cur = S.current;
    if (!force && cur && cur.phase !== 'ended') return;
    S.current = null;
    $('case-panel').hidden = true;
    delete document.body.dataset.hasCase;
    $('case-form').reset();
    for (const o of Array.from($('case-category').options)) {
      if (o.dataset.extra) o.remove();
    }
    for (const id of ['case-no', 'case-dialled', 'case-caller', 'case-created', 'case-record-status']) {
      $(id).textContent = '';
    }
    setCaseStatus('', '');
    renderCallBanner();
  }

  // ---------------------------------------------------------------- ticker

  function tick() {
    tickQueue();
    tickAgents();
    tickAgentSince();
    tickCallTimer();
  }

  function startTicker() {
    if (!S.ticker) S.ticker = setInterval(tick, 1000);
  }

  function stopTicker() {
    clearInterval(S.ticker);
    S.ticker = null;
  }

  // ---------------------------------------------------------------- boot

  function bind() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('btn-ready').addEventListener('click', () => setState('ready'));
    $('btn-not-ready').addEventListener('click', () => setState('not_ready'));
    $('btn-logout').addEventListener('click', onLogout);

    const form = $('case-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      saveCurrentCase();
    });
    form.addEventListener('input', onCaseInput);
    form.addEventListener('change', onCaseInput);
    form.addEventListener('keydown', (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && (ev.key === 's' || ev.key === 'S')) {
        ev.preventDefault();
        saveCurrentCase();
      }
    });
    $('case-close').addEventListener('click', onCaseClose);
    $('case-callback-copy').addEventListener('click', () => {
      const cur = S.current;
      if (!cur || !cur.case.caller_number) return;
      const input = $('case-callback');
      input.value = str(cur.case.caller_number);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.focus();
    });

    // Back online: do not wait for the back-off timer.
    window.addEventListener('online', () => {
      if (S.wsWanted && !S.ws) {
        clearTimeout(S.wsTimer);
        S.wsTimer = null;
        S.wsRetry = 0;
        connectWs();
      }
    });
  }

  async function boot() {
    bind();
    setWsState(false, '未连接');
    try {
      const data = await api('GET', '/api/me', undefined, { authRedirect: false });
      enterDesk(data);
    } catch (e) {
      showLogin(e.status === 401 ? '' : e.message);
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', boot);
  } else {
    boot();
  }
})();
