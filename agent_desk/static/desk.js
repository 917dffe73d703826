/* 坐席工作台 — 12345 市长热线 / 63160000 民生热线
 * Plain ES2020, no dependencies. All data goes into the DOM via textContent.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- labels

  const STATE_LABELS = {
    logged_out: '未登录',
    ready: '就绪',
    ringing: '振铃中',
    on_call: '通话中',
    wrap_up: '话后处理',
    paused: '暂停',
    not_ready: '暂停', // the first desk's name of 'paused'
  };

  // Reasons the server sets by itself; the configured pause reasons come from
  // /api/pause_reasons and take precedence.
  const REASON_LABELS = {
    no_answer: '未接听',
    login: '刚登录',
    supervisor: '值班长设置',
    logout: '退出',
    break: '小休',
    meal: '用餐',
    training: '培训',
    meeting: '会议',
    manual: '小休',
    after_call: '话后处理',
    wrap_up: '话后处理',
    wrap_up_end: '话后处理结束',
  };

  const DEFAULT_PAUSE_REASONS = [{ code: 'break', name: '小休' }];

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
    rtp_timeout: '来电方线路中断（无语音）',
    session_expired: '来电方线路中断（会话超时）',
    agent_hangup: '坐席挂机',
    no_answer: '坐席未接听',
    abandoned: '来电方放弃',
    transferred: '已转接',
    transfer: '已转接',
    timeout: '超时',
    error: '系统错误',
    offer_withdrawn: '来电已转走',
    logout: '坐席已退出',
    supervisor: '值班长已暂停',
  };

  const CASE_STATUS_LABELS = {
    intake: '受理中',
    new: '新建',
    draft: '草稿',
    open: '处理中',
    in_progress: '处理中',
    saved: '已保存',
    submitted: '已提交',
    closed: '已办结',
    // the case workflow (casework/workflow.py STATUS_WORDS)
    invalid: '无效来电',
    pending: '待交办',
    assigned: '已交办',
    accepted: '办理中',
    returned: '退单待审',
    reported: '已反馈待审核',
    reviewed: '待回访',
    archived: '已归档',
    merged: '已并单',
  };

  // The valid-call criteria checked at intake (casework/workflow.py VALIDITY_CRITERIA).
  const VALIDITY_CRITERIA = [
    ['clear_target', '反映对象明确'],
    ['objective', '内容客观真实'],
    ['concise', '表述简明清楚'],
    ['real_identity', '愿意留下真实姓名、电话、工作单位或住址'],
    ['truthful', '如实回答受理人员询问'],
  ];

  const WORKLIST_KINDS = {
    abandoned: '放弃来电',
    callback: '预约回拨',
    voice_message: '语音留言',
  };

  const WORKLIST_OUTCOMES = [
    ['reached', '已接通'],
    ['no_answer', '无人接听'],
    ['invalid', '号码无效'],
  ];

  const ANNOUNCEMENT_MODES = {
    off: '未启用',
    emergency: '紧急通知',
    after_hours: '非工作时间留言',
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

  const BUSY_STATES = ['ringing', 'on_call'];
  const WS_MAX_DELAY_MS = 15000;
  const WS_STABLE_MS = 5000; // a connection open this long resets the back-off
  const REFRESH_GAP_MS = 2000; // wallboard / worklist / announcement: at most every 2 s
  const ARM_MS = 5000; // a second click within this confirms a supervisor logout

  // ---------------------------------------------------------------- state

  const S = {
    gen: 0, // bumped on every login / logout: late answers of a past session are dropped
    csrf: null,
    agent: null,
    prevAgentState: null,
    outbound: null, // a call out (回拨) in progress: { id, state }
    statePending: false,
    logoutArmedUntil: 0,
    selfLogout: false, // this desk asked for the logout that is pending
    loggedOut: null, // {message}: logged out by the server, waiting for the case to close

    pauseReasons: DEFAULT_PAUSE_REASONS.slice(),
    pauseReasonsLoaded: false,

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
    offsetKnown: false,

    supBusy: new Set(), // agent ids with a supervisor request in flight
    supArmed: null, // {id, until}: logout armed for this agent

    wb: { missing: false, data: null, fetchedAt: 0, error: '' },
    worklist: { missing: true, items: [], choosing: null, busy: new Set(), error: '' },
    ann: { missing: true, data: null, fromSnapshot: false, dirty: false, busy: false },

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

  function button(text, className, onClick, title) {
    const b = el('button', { className, text, title });
    b.type = 'button';
    if (onClick) {
      b.addEventListener('click', (ev) => {
        ev.stopPropagation();
        onClick(ev);
      });
    }
    return b;
  }

  function str(v) {
    return v == null ? '' : String(v);
  }

  function num(v) {
    if (v == null || v === '') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
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

  /** A statistic in seconds: "8 秒" below a minute, m:ss above; "—" for none. */
  function fmtStatSeconds(v) {
    const n = num(v);
    if (n == null) return '—';
    if (n < 60) return `${Math.round(n)} 秒`;
    return fmtDuration(Math.round(n));
  }

  /** A ratio 0..1 as a percentage; "—" for none. */
  function fmtPercent(v) {
    const n = num(v);
    if (n == null) return '—';
    const p = n * 100;
    return `${p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`;
  }

  function fmtCount(v) {
    const n = num(v);
    return n == null ? '—' : String(Math.round(n));
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

  function fmtHm(d) {
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  }

  /** hh:mm:ss today, else MM-DD hh:mm. */
  function fmtWhen(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return str(iso);
    const d = new Date(t);
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return fmtClock(d);
    return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtHm(d)}`;
  }

  function serverNow() {
    return Date.now() + S.serverOffsetMs;
  }

  /** The server's "at" has whole seconds: take the middle of that second, and ignore
   * jitter below a second so that countdowns do not jump back and forth. */
  function noteServerTime(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return;
    const offset = at + 500 - Date.now();
    if (!S.offsetKnown || Math.abs(offset - S.serverOffsetMs) > 1500) {
      S.serverOffsetMs = offset;
      S.offsetKnown = true;
    }
  }

  function secondsSince(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return null;
    return Math.max(0, (serverNow() - t) / 1000);
  }

  function dialledLabel(num_) {
    const n = str(num_);
    const name = DIALLED_NAMES[n];
    return name ? `${n} ${name}` : n;
  }

  function serviceLabel(svc) {
    return SERVICE_LABELS[svc] || str(svc);
  }

  function reasonLabel(reason) {
    const r = str(reason);
    const configured = S.pauseReasons.find((p) => p.code === r);
    if (configured) return configured.name;
    return REASON_LABELS[r] || r;
  }

  function stateLabel(state, reason) {
    const base = STATE_LABELS[state] || str(state) || '—';
    if ((state === 'paused' || state === 'not_ready') && reason) {
      return `${base}（${reasonLabel(reason)}）`;
    }
    return base;
  }

  /** "logout" / "pause:meal" -> what happens when the call ends. */
  function afterCallLabel(after) {
    const a = str(after);
    if (!a) return '';
    if (a === 'logout') return '通话结束后退出';
    if (a.startsWith('pause:')) {
      const r = a.slice('pause:'.length);
      return r ? `通话结束后暂停（${reasonLabel(r)}）` : '通话结束后暂停';
    }
    return `通话结束后：${a}`;
  }

  function endReasonLabel(reason) {
    return END_REASONS[reason] || reasonLabel(reason) || '已结束';
  }

  function isBusy(state) {
    return BUSY_STATES.includes(state);
  }

  function isSupervisor() {
    return !!(S.agent && S.agent.role === 'supervisor');
  }

  function agentName(a) {
    return str(a && (a.display_name || a.login)) || `#${str(a && a.id)}`;
  }

  // ---------------------------------------------------------------- HTTP


  async function api(method, path, body, { authRedirect = true } = {}) {
    try {
      return await window.HotlineHttp.request(method, path, body, S.csrf);
    } catch (e) {
      if (e.status === 401 && authRedirect && S.agent) sessionExpired();
      throw e;
    }
  }

  /**
   * A loader run on snapshot pushes, at most once every REFRESH_GAP_MS (a trailing
   * run catches the last push of a burst). `force` skips the wait (user actions).
   */
  function makeRefresher(load) {
    const r = { last: -Infinity, timer: null, running: false, again: false };
    async function run() {
      r.running = true;
      r.last = performance.now();
      const gen = S.gen;
      try {
        await load(gen);
      } catch (e) {
        console.error('refresh failed', e);
      } finally {
        r.running = false;
        if (r.again && gen === S.gen) {
          r.again = false;
          r.request();
        }
      }
    }
    r.request = (force = false) => {
      if (r.running) {
        r.again = true;
        return;
      }
      if (r.timer) {
        if (!force) return;
        clearTimeout(r.timer);
        r.timer = null;
      }
      const wait = force ? 0 : r.last + REFRESH_GAP_MS - performance.now();
      if (wait <= 0) {
        run();
      } else {
        r.timer = setTimeout(() => {
          r.timer = null;
          run();
        }, wait);
      }
    };
    r.cancel = () => {
      clearTimeout(r.timer);
      r.timer = null;
      r.again = false;
      r.last = -Infinity;
    };
    return r;
  }

  // ---------------------------------------------------------------- views

  function showLogin(message, kind = 'error') {
    S.gen += 1;
    stopWs();
    window.HotlineSoftphone.stop();
    stopTicker();
    for (const r of [wallboardRefresher, worklistRefresher, announcementRefresher]) r.cancel();
    S.csrf = null;
    S.agent = null;
    S.prevAgentState = null;
    S.selfLogout = false;
    S.loggedOut = null;
    S.logoutArmedUntil = 0;
    S.queue = [];
    S.agents = [];
    S.categories = [];
    S.categoriesLoaded = false;
    S.categoriesLoading = null;
    S.supBusy.clear();
    S.supArmed = null;
    S.wb = { missing: false, data: null, fetchedAt: 0, error: '' };
    S.worklist = { missing: true, items: [], choosing: null, busy: new Set(), error: '' };
    S.ann = { missing: true, data: null, fromSnapshot: false, dirty: false, busy: false };
    closeCase(true);
    hideDeskMessage();
    renderQueue();
    renderAgents();
    renderWallboard();
    renderWorklist();
    renderAnnouncement();
    $('ann-text').value = '';
    renderTotp(null);

    document.body.dataset.view = 'login';
    document.body.dataset.agentState = 'logged_out';
    document.body.dataset.role = 'agent';
    document.title = '坐席工作台 · 登录';
    $('desk-view').hidden = true;
    $('login-view').hidden = false;

    const err = $('login-error');
    if (message) {
      err.textContent = message;
      err.dataset.kind = kind;
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
    const agent = data && data.agent;
    S.gen += 1;
    S.csrf = str(data.csrf) || null;
    if (agent && agent.state === 'logged_out') {
      // The session outlived the agent's login (a supervisor or the end of a call
      // logged them out): end it, and ask to log in again.
      endSession('您已退出登录，请重新登录', 'info');
      return;
    }
    if (agent && agent.role === 'auditor') {
      window.location.replace('/audit'); // the auditor reads the access log only
      return;
    }
    if (agent && ['handler', 'supervision'].includes(agent.role) &&
        !(agent.role === 'supervision' && window.location.hash === '#totp')) {
      // Units and the supervision office work on cases only: their page is /cases
      // (the supervision office comes to /#totp for its second factor).
      window.location.replace('/cases');
      return;
    }
    $('link-cases').hidden = !!(agent && agent.role === 'admin');
    $('link-admin').hidden = !(agent && agent.role === 'admin');
    $('login-view').hidden = true;
    $('desk-view').hidden = false;
    document.body.dataset.view = 'desk';
    setAgent(agent);
    loadTotp();
    renderQueue();
    renderAgents();
    loadCategories();
    loadPauseReasons();
    startTicker();
    setWsState(false, '正在连接…');
    connectWs();
    window.HotlineSoftphone.start(); // registers the browser if the agent's phone is webrtc
  }

  // ---------------------------------------------------------------- login

  async function onLoginSubmit(ev) {
    ev.preventDefault();
    const login = $('login').value.trim();
    const password = $('password').value;
    const err = $('login-error');
    if (!login || !password) {
      err.textContent = '请输入用户名和密码';
      err.dataset.kind = 'error';
      err.hidden = false;
      return;
    }
    err.hidden = true;
    err.textContent = '';
    const btn = $('login-submit');
    btn.disabled = true;
    btn.textContent = '正在登录…';
    const codeField = $('totp-field');
    try {
      const body = { login, password };
      if (!codeField.hidden) body.code = $('totp-code').value.trim();
      const data = await api('POST', '/api/login', body, { authRedirect: false });
      $('password').value = '';
      $('totp-code').value = '';
      codeField.hidden = true;
      enterDesk(data);
    } catch (e) {
      err.textContent = e.message;
      err.dataset.kind = 'error';
      err.hidden = false;
      if (e.data && e.data.totp_required) {
        // The password was right; the account also needs its second factor.
        codeField.hidden = false;
        $('totp-code').value = '';
        $('totp-code').focus();
      } else {
        $('password').select();
      }
    } finally {
      btn.disabled = false;
      btn.textContent = '登录';
    }
  }

  // ---------------------------------------------------------------- second factor (TOTP)
  // 动态验证码 of supervisors, the supervision office and admins: a new secret is shown
  // once (as text: the base32 key to type into an authenticator app, and its otpauth URI),
  // confirmed with a code; switching it off needs a code too.

  const TOTP_STATES = { off: '未启用', pending: '待确认', on: '已启用' };

  function renderTotp(state, enrolment) {
    const panel = $('totp-panel');
    panel.hidden = !state;
    const box = $('totp-secret-box');
    box.hidden = !(state === 'pending' && enrolment);
    if (!box.hidden) {
      $('totp-secret').textContent = str(enrolment.secret);
      $('totp-uri').textContent = str(enrolment.uri);
    } else {
      // The secret is shown once, right after it was made; never left on screen.
      $('totp-secret').textContent = '';
      $('totp-uri').textContent = '';
    }
    if (!state) {
      $('totp-step-code').value = '';
      totpMessage('', '');
      return;
    }
    panel.dataset.state = state;
    $('totp-state').textContent = TOTP_STATES[state] || state;
    $('btn-totp-enrol').hidden = state === 'on';
    $('btn-totp-enrol').textContent = state === 'pending' ? '重新获取密钥' : '启用（获取密钥）';
    $('btn-totp-confirm').hidden = state !== 'pending';
    $('btn-totp-disable').hidden = state !== 'on';
    $('totp-code-field').hidden = state === 'off';
    $('totp-help').textContent = {
      off: '启用后，登录时除密码外还需输入验证器应用（如手机上的身份验证器）显示的 6 位动态验证码。',
      pending: '请在验证器应用中手动添加账户：输入下方密钥（或链接），再填写应用显示的 6 位验证码确认启用。' +
        '若密钥已不在页面上，请重新获取密钥。',
      on: '登录时需输入动态验证码。如需停用，请输入当前验证码；手机丢失请联系管理员重置。',
    }[state] || '';
  }

  function totpMessage(text, kind) {
    const m = $('totp-msg');
    m.textContent = text || '';
    m.dataset.kind = kind || '';
  }

  async function loadTotp() {
    const gen = S.gen;
    try {
      const data = await api('GET', '/api/me');
      if (gen !== S.gen) return;
      renderTotp(data.totp_allowed ? str(data.totp) || 'off' : null);
    } catch (e) {
      if (gen === S.gen && e.status !== 401) renderTotp(null);
    }
  }

  async function onTotpEnrol() {
    const gen = S.gen;
    const btn = $('btn-totp-enrol');
    btn.disabled = true;
    totpMessage('', '');
    try {
      const data = await api('POST', '/api/me/totp/enrol', {});
      if (gen !== S.gen) return;
      renderTotp('pending', data);
      $('totp-step-code').value = '';
      $('totp-step-code').focus();
    } catch (e) {
      if (gen === S.gen && e.status !== 401) totpMessage(e.message, 'error');
    } finally {
      btn.disabled = false;
    }
  }

  async function onTotpCode(step) {
    const gen = S.gen;
    const code = $('totp-step-code').value.trim();
    if (!/^\d{6}$/.test(code)) {
      totpMessage('请输入验证器上的 6 位动态验证码', 'error');
      return;
    }
    const btn = $(step === 'confirm' ? 'btn-totp-confirm' : 'btn-totp-disable');
    btn.disabled = true;
    try {
      const data = await api('POST', `/api/me/totp/${step}`, { code });
      if (gen !== S.gen) return;
      $('totp-step-code').value = '';
      renderTotp(str(data.totp) || (step === 'confirm' ? 'on' : 'off'));
      totpMessage(step === 'confirm' ? '动态验证码已启用' : '动态验证码已停用', 'ok');
    } catch (e) {
      if (gen === S.gen && e.status !== 401) totpMessage(e.message, 'error');
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- pause reasons

  function loadPauseReasons() {
    const gen = S.gen;
    api('GET', '/api/pause_reasons')
      .then((data) => {
        if (gen !== S.gen) return;
        const list = Array.isArray(data.reasons) ? data.reasons : [];
        const clean = list
          .filter((r) => r && r.code != null)
          .map((r) => ({ code: str(r.code), name: str(r.name) || str(r.code) }));
        if (clean.length) S.pauseReasons = clean;
        S.pauseReasonsLoaded = true;
        renderPauseReasonOptions();
        renderAgentHeader();
        renderAgents();
      })
      .catch((e) => {
        if (e.status !== 401 && gen === S.gen) {
          showDeskMessage(`暂停原因加载失败：${e.message}`, 'error');
        }
      });
  }

  function fillOptions(sel, options, keep) {
    const nodes = options.map(([value, text]) => {
      const o = el('option', { text });
      o.value = value;
      return o;
    });
    sel.replaceChildren(...nodes);
    if (keep && options.some(([v]) => v === keep)) sel.value = keep;
  }

  function renderPauseReasonOptions() {
    const own = $('pause-reason');
    fillOptions(own, S.pauseReasons.map((r) => [r.code, r.name]), own.value);
    // Prefer the reason the agent is paused for.
    const a = S.agent;
    if (a && a.state === 'paused' && S.pauseReasons.some((r) => r.code === a.reason)) {
      own.value = a.reason;
    }
    const sup = $('sup-pause-reason');
    fillOptions(sup, [['supervisor', reasonLabel('supervisor')],
      ...S.pauseReasons.filter((r) => r.code !== 'supervisor').map((r) => [r.code, r.name])],
    sup.value || 'supervisor');
  }

  // ---------------------------------------------------------------- agent header

  function setAgent(agent) {
    if (!agent || typeof agent !== 'object') return;
    const prev = S.agent ? S.agent.state : null;
    const prevReason = S.agent ? S.agent.reason : null;
    const prevRole = S.agent ? S.agent.role : null;
    S.agent = { ...(S.agent || {}), ...agent };
    S.prevAgentState = prev;
    const a = S.agent;

    // Follow the agent's pause reason in the menu when it changes.
    if (a.state === 'paused' && (prev !== 'paused' || prevReason !== a.reason) &&
        S.pauseReasons.some((r) => r.code === a.reason)) {
      $('pause-reason').value = a.reason;
    }
    if (!a.after_call) S.selfLogout = S.selfLogout && a.state === 'logged_out';
    if (prevRole !== a.role) renderRole();
    renderAgentHeader();

    const cur = S.current;
    if (cur && cur.phase === 'offer' && prev === 'ringing' &&
        a.state !== 'ringing' && a.state !== 'on_call') {
      // The offer went away without a call_ended (e.g. not answered in time).
      cur.phase = 'ended';
      cur.endReason = a.reason || 'offer_withdrawn';
      renderCallBanner();
    } else if (cur && cur.phase === 'connected' && prev === 'on_call' && a.state !== 'on_call') {
      // The call is over (call_ended may come a moment later with its reason).
      cur.phase = 'ended';
      renderCallBanner();
    }

    if (a.state === 'logged_out' && prev && prev !== 'logged_out') onLoggedOut();
  }

  function renderRole() {
    const sup = isSupervisor();
    document.body.dataset.role = sup ? 'supervisor' : 'agent';
    $('agent-role').hidden = !sup;
    $('wallboard').hidden = !sup;
    if (sup) {
      renderWallboard();
      wallboardRefresher.request(true);
    }
    renderAnnouncement();
    renderAgents();
  }

  function renderAgentHeader() {
    const a = S.agent;
    if (!a) return;
    $('agent-name').textContent = agentName(a);
    const badge = $('agent-state');
    badge.textContent = stateLabel(a.state, a.reason);
    badge.dataset.state = str(a.state);
    document.body.dataset.agentState = str(a.state) || 'logged_out';

    const after = $('after-call');
    const afterText = afterCallLabel(a.after_call);
    after.hidden = !afterText;
    after.dataset.kind = str(a.after_call).startsWith('pause') ? 'pause' : 'logout';
    $('after-call-text').textContent = afterText;
    $('btn-cancel-pending').disabled = S.statePending;

    renderAgentButtons();
    renderWrapUp();
    tickAgentSince();
    updateTitle();
  }

  function renderAgentButtons() {
    const a = S.agent;
    const state = a ? a.state : null;
    const busy = isBusy(state);
    const out = !a || state === 'logged_out';
    const ready = $('btn-ready');
    ready.hidden = isSupervisor(); // no phone: a supervisor takes no calls
    ready.disabled = S.statePending || out || state === 'ready' || busy;

    const sel = $('pause-reason');
    const reason = sel.value;
    const pause = $('btn-not-ready');
    sel.disabled = S.statePending || out;
    pause.disabled = S.statePending || out ||
      (state === 'paused' && a.reason === reason) ||
      (busy && a.after_call === `pause:${reason}`);
    pause.textContent = busy ? '通话后暂停' : '暂停';
    pause.title = busy
      ? `通话结束后暂停（${reasonLabel(reason)}）`
      : `暂停接听（${reasonLabel(reason)}）`;

    const wrapBusy = S.statePending || state !== 'wrap_up';
    $('btn-wrap-up-ready').disabled = wrapBusy;
  }

  function tickAgentSince() {
    const out = $('agent-state-since');
    const a = S.agent;
    const secs = a ? secondsSince(a.since) : null;
    out.textContent = secs == null ? '' : `已持续 ${fmtDuration(secs)}`;
  }

  async function setState(state, reason) {
    if (S.statePending) return;
    S.statePending = true;
    renderAgentHeader();
    const gen = S.gen;
    try {
      const body = { state };
      if (reason) body.reason = reason;
      const data = await api('POST', '/api/agent/state', body);
      if (gen !== S.gen) return;
      if (data.agent) {
        setAgent(data.agent);
        mergeOwnAgentRow();
      }
      hideDeskMessage();
    } catch (e) {
      if (e.status !== 401 && gen === S.gen) showDeskMessage(e.message, 'error');
    } finally {
      S.statePending = false;
      if (gen === S.gen) renderAgentHeader();
    }
  }

  function onPauseClick() {
    setState('paused', $('pause-reason').value || undefined);
  }

  /** Ready during a call cancels the pending pause / logout. */
  function onCancelPending() {
    S.selfLogout = false;
    setState('ready');
  }

  // ---------------------------------------------------------------- wrap-up

  function renderWrapUp() {
    const a = S.agent;
    const on = !!(a && a.state === 'wrap_up');
    $('wrap-up-bar').hidden = !on;
    if (on) document.body.dataset.wrapUp = '1';
    else delete document.body.dataset.wrapUp;
    tickWrapUp();
  }

  function wrapUpLeft() {
    const a = S.agent;
    if (!a || a.state !== 'wrap_up') return null;
    const until = Date.parse(a.wrap_up_until);
    if (Number.isNaN(until)) return null;
    return Math.max(0, (until - serverNow()) / 1000);
  }

  function tickWrapUp() {
    const a = S.agent;
    if (!a || a.state !== 'wrap_up') return;
    const left = wrapUpLeft();
    const bar = $('wrap-up-bar');
    const hint = $('wrap-up-hint');
    if (left == null) {
      $('wrap-up-countdown').textContent = '—';
      bar.dataset.urgent = '';
      hint.textContent = '完成工单后请点击“就绪”';
      return;
    }
    $('wrap-up-countdown').textContent = fmtMmSs(Math.ceil(left));
    bar.dataset.urgent = left <= 10 ? '1' : '';
    const cur = S.current;
    const unsaved = cur && cur.dirty.size > 0;
    if (left <= 0) hint.textContent = '即将自动就绪';
    else hint.textContent = unsaved ? '工单尚未保存！倒计时结束后自动就绪' : '倒计时结束后自动就绪';
    hint.dataset.kind = unsaved ? 'warn' : '';
  }

  async function onWrapUpExtend() {
    const btn = $('btn-wrap-up-extend');
    if (btn.disabled) return;
    btn.disabled = true;
    const gen = S.gen;
    const before = S.agent ? S.agent.wrap_up_until : null;
    try {
      const data = await api('POST', '/api/agent/wrap_up', { seconds: 30 });
      if (gen !== S.gen) return;
      if (data.agent) {
        setAgent(data.agent);
        mergeOwnAgentRow();
        if (data.agent.wrap_up_until === before) {
          showDeskMessage('话后处理时间已达上限，无法再延长', 'info');
        } else {
          hideDeskMessage();
        }
      }
    } catch (e) {
      if (e.status === 401 || gen !== S.gen) return;
      showDeskMessage(e.status === 409 ? `无法延长：${e.message}` : `延长失败：${e.message}`,
        'error');
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- logout

  async function onLogout() {
    const a = S.agent;
    const busy = a && isBusy(a.state);
    const cur = S.current;
    // During a call the logout waits for its end: nothing is lost yet.
    if (!busy && cur && cur.dirty.size > 0 && Date.now() > S.logoutArmedUntil) {
      S.logoutArmedUntil = Date.now() + 8000;
      showDeskMessage('当前工单有未保存的修改。再次点击“退出”将放弃修改并退出。', 'error');
      return;
    }
    S.logoutArmedUntil = 0;
    const btn = $('btn-logout');
    btn.disabled = true;
    const gen = S.gen;
    let data = null;
    try {
      data = await api('POST', '/api/logout', {}, { authRedirect: false });
    } catch (e) {
      if (e.status !== 401) {
        if (gen === S.gen) showDeskMessage(`退出失败：${e.message}`, 'error');
        btn.disabled = false;
        return;
      }
    }
    btn.disabled = false;
    if (gen !== S.gen) return;
    if (data && data.pending) {
      // On a call: the server logs us out when it ends; the desk stays open till then.
      S.selfLogout = true;
      if (data.agent) {
        setAgent(data.agent);
        mergeOwnAgentRow();
      }
      showDeskMessage('正在通话：通话结束后将自动退出。可点击“取消”撤销。', 'info');
      return;
    }
    showLogin();
  }

  /** The server logged this agent out (a pending logout after the call, or a supervisor). */
  function onLoggedOut() {
    const message = S.selfLogout ? '您已退出登录' : '您已被退出登录（值班长或系统操作）';
    S.selfLogout = false;
    const cur = S.current;
    if (cur && (cur.connectedSeen || cur.dirty.size > 0)) {
      // Let the agent finish the case first.
      S.loggedOut = { message };
      showDeskMessage(`${message}。请保存并关闭当前工单，之后返回登录页。`, 'info',
        { label: '退出', run: onLogout });
      renderAgentButtons();
      return;
    }
    endSession(message, 'info');
  }

  /** End the server session (it outlives a logout done by the server) and show login. */
  async function endSession(message, kind) {
    S.gen += 1;
    try {
      await api('POST', '/api/logout', {}, { authRedirect: false });
    } catch (_e) { /* the session may already be gone */ }
    showLogin(message, kind);
  }

  function updateTitle() {
    const cur = S.current;
    let prefix = '';
    if (cur && cur.phase === 'offer') prefix = '【来电振铃】';
    else if (S.agent && S.agent.state === 'on_call') prefix = '【通话中】';
    else if (S.agent && S.agent.state === 'wrap_up') prefix = '【话后处理】';
    const name = S.agent ? agentName(S.agent) : '';
    document.title = `${prefix}坐席工作台${name ? ` · ${name}` : ''}`;
  }

  // ---------------------------------------------------------------- desk message bar

  function showDeskMessage(text, kind = 'error', action = null) {
    const box = $('desk-error');
    box.replaceChildren(el('span', { className: 'desk-error-text', text }));
    if (action) {
      box.appendChild(button(action.label, 'btn btn-small', () => action.run()));
    }
    box.appendChild(button('知道了', 'btn btn-small btn-ghost', hideDeskMessage));
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
    const gen = S.gen;
    S.categoriesLoading = api('GET', '/api/categories')
      .then((data) => {
        if (gen !== S.gen) return;
        S.categories = Array.isArray(data.categories) ? data.categories : [];
        S.categoriesLoaded = true;
        renderCategoryOptions();
      })
      .catch((e) => {
        if (e.status !== 401 && gen === S.gen) {
          showDeskMessage(`类别列表加载失败：${e.message}`, 'error');
        }
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
    // A tree: each category under its parent, indented by depth.
    for (const [c, depth] of categoryTree(S.categories)) {
      const name = str(c.name) || str(c.code);
      const o = el('option', { text: depth ? `${'\u3000'.repeat(depth)}└ ${name}` : name });
      o.value = str(c.code);
      o.dataset.depth = String(depth);
      opts.push(o);
    }
    sel.replaceChildren(...opts);
    const cur = S.current;
    const wanted = cur && !cur.dirty.has('category') ? str(cur.case.category) : keep;
    setCategoryValue(wanted);
  }

  /** [category, depth] in tree order (parents before their children, server order kept). */
  function categoryTree(list) {
    const valid = list.filter((c) => c && c.code != null);
    const codes = new Set(valid.map((c) => str(c.code)));
    const children = new Map();
    const roots = [];
    for (const c of valid) {
      const parent = str(c.parent);
      if (parent && codes.has(parent) && parent !== str(c.code)) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(c);
      } else {
        roots.push(c);
      }
    }
    const out = [];
    const seen = new Set();
    const walk = (c, depth) => {
      const code = str(c.code);
      if (seen.has(code)) return;
      seen.add(code);
      out.push([c, depth]);
      for (const child of children.get(code) || []) walk(child, depth + 1);
    };
    for (const r of roots) walk(r, 0);
    for (const c of valid) walk(c, 0); // a cycle in the data: still listed
    return out;
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
      // The server may have been upgraded while we were away: ask again for
      // what answered 404 before (the first snapshot triggers the loads).
      S.wb.missing = false;
      S.worklist.missing = false;
      S.ann.missing = false;
      S.ann.fromSnapshot = false;
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
      case 'outbound':
        onOutbound(msg);
        break;
      case 'agent':
        if (msg.agent) {
          setAgent(msg.agent);
          mergeOwnAgentRow();
        }
        break;
      case 'announcement':
        // Not sent yet; taken if the server ever pushes it on its own.
        if (msg.announcement !== undefined) applyAnnouncement(msg.announcement, true);
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
    noteServerTime(msg.at);

    if (S.agent) {
      const me = S.agents.find((a) => a && a.id === S.agent.id);
      if (me) setAgent(me);
    }
    if (!S.agent) return; // setAgent may have ended the session
    renderQueue();
    renderAgents();

    if (Object.prototype.hasOwnProperty.call(msg, 'announcement')) {
      applyAnnouncement(msg.announcement, true);
    } else if (!S.ann.missing) {
      announcementRefresher.request();
    }
    if (isSupervisor() && !S.wb.missing) wallboardRefresher.request();
    if (!S.worklist.missing) worklistRefresher.request();
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
      const prio = num(item.priority) || 0;
      const serviceInner = el('span', { className: 'cell-flex' }, [
        el('span', { text: serviceLabel(item.service) }),
      ]);
      if (prio > 0) {
        serviceInner.appendChild(el('span', {
          className: 'prio-badge', text: '优先', title: `优先级 ${prio}`,
        }));
      }
      const serviceCell = el('td', {}, [serviceInner]);
      const tr = el('tr', {
        dataset: { callId: str(item.call_id), dialled, priority: prio > 0 ? prio : null },
      }, [
        el('td', { className: `dialled dial-${dialled.replace(/[^0-9A-Za-z_-]/g, '')}`, text: dialledLabel(dialled) }),
        serviceCell,
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

  const STATE_ORDER = {
    on_call: 0, ringing: 1, wrap_up: 2, ready: 3, paused: 4, not_ready: 4, logged_out: 5,
  };

  function renderAgents() {
    const tbody = $('agents-table').tBodies[0];
    const sup = isSupervisor();
    const list = S.agents
      .filter((a) => a && typeof a === 'object')
      .map((a, i) => ({ a, i }))
      .sort((x, y) => {
        const ox = STATE_ORDER[x.a.state] ?? 6;
        const oy = STATE_ORDER[y.a.state] ?? 6;
        return ox - oy || x.i - y.i;
      })
      .map((x) => x.a);

    const counts = { ready: 0, ringing: 0, on_call: 0, wrap_up: 0, paused: 0 };
    const rows = [];
    S.agentRows = [];
    for (const a of list) {
      const st = a.state === 'not_ready' ? 'paused' : a.state;
      if (st in counts) counts[st] += 1;
      const isMe = S.agent && a.id === S.agent.id;
      const nameInner = el('span', { className: 'cell-flex' }, [
        el('span', { text: str(a.display_name) || `#${str(a.id)}` }),
      ]);
      if (isMe) nameInner.appendChild(el('span', { className: 'me-tag', text: '本人' }));
      if (a.role === 'supervisor') {
        nameInner.appendChild(el('span', { className: 'role-tag small', text: '值班长' }));
      }
      const nameCell = el('td', { className: 'agent-cell' }, [nameInner]);
      const stateCell = el('td', { className: 'state-cell' }, [
        el('span', {
          className: 'state-badge small',
          text: stateLabel(a.state, a.reason),
          dataset: { state: str(a.state) },
        }),
      ]);
      if (a.after_call) {
        stateCell.appendChild(el('span', {
          className: 'after-call small', text: afterCallLabel(a.after_call),
        }));
      }
      const secs = secondsSince(a.since);
      const sinceCell = el('td', { className: 'num', text: secs == null ? '' : fmtDuration(secs) });
      const tr = el('tr', {
        className: isMe ? 'is-me' : '',
        dataset: { agentId: str(a.id), state: str(a.state), afterCall: a.after_call || null },
      }, [nameCell, stateCell, sinceCell]);
      if (sup) tr.appendChild(supervisorActions(a));
      rows.push(tr);
      S.agentRows.push({ agent: a, cell: sinceCell });
    }
    tbody.replaceChildren(...rows);
    $('agents-empty').hidden = rows.length > 0;
    $('agents-summary').textContent = rows.length
      ? `就绪 ${counts.ready} · 振铃 ${counts.ringing} · 通话 ${counts.on_call} · ` +
        `话后 ${counts.wrap_up} · 暂停 ${counts.paused}`
      : '';
  }

  function tickAgents() {
    for (const { agent, cell } of S.agentRows) {
      const secs = secondsSince(agent.since);
      cell.textContent = secs == null ? '' : fmtDuration(secs);
    }
  }

  // ---------------------------------------------------------------- supervisor

  function supervisorActions(a) {
    const cell = el('td', { className: 'sup-actions' });
    if (a.role === 'supervisor') return cell; // no phone, nothing to steer
    const st = a.state;
    const busy = isBusy(st);
    const out = st === 'logged_out';
    const inFlight = S.supBusy.has(a.id);
    const reason = $('sup-pause-reason').value || 'supervisor';

    const pause = button('暂停', 'btn btn-small btn-sup-pause',
      () => superviseAgent(a, 'paused'),
      busy ? `通话结束后暂停（${reasonLabel(reason)}）` : `暂停（${reasonLabel(reason)}）`);
    pause.disabled = inFlight || out || (st === 'paused' && a.reason === reason) ||
      (busy && a.after_call === `pause:${reason}`);

    const armed = S.supArmed && S.supArmed.id === a.id && Date.now() < S.supArmed.until;
    const logout = button(armed ? '确认退出' : '退出', 'btn btn-small btn-sup-logout',
      () => superviseAgent(a, 'logged_out'),
      busy ? '通话结束后退出' : '将该坐席退出登录');
    logout.disabled = inFlight || out || (busy && a.after_call === 'logout');
    if (armed) logout.dataset.armed = '1';

    const cancel = busy && !!a.after_call;
    const ready = button(cancel ? '撤销' : '就绪', 'btn btn-small btn-sup-ready',
      () => superviseAgent(a, 'ready'),
      cancel ? '撤销通话结束后的操作' : '设为就绪');
    ready.disabled = inFlight || out || st === 'ready' || (busy && !a.after_call);

    cell.append(pause, logout, ready);
    return cell;
  }

  async function superviseAgent(a, state) {
    if (S.supBusy.has(a.id)) return;
    if (state === 'logged_out') {
      const armed = S.supArmed && S.supArmed.id === a.id && Date.now() < S.supArmed.until;
      if (!armed) {
        S.supArmed = { id: a.id, until: Date.now() + ARM_MS };
        renderAgents();
        setTimeout(() => {
          if (S.supArmed && S.supArmed.id === a.id && Date.now() >= S.supArmed.until) {
            S.supArmed = null;
            renderAgents();
          }
        }, ARM_MS + 50);
        return;
      }
    }
    S.supArmed = null;
    const body = { state };
    if (state === 'paused') body.reason = $('sup-pause-reason').value || 'supervisor';
    S.supBusy.add(a.id);
    renderAgents();
    const gen = S.gen;
    const name = agentName(a);
    try {
      const data = await api('POST',
        `/api/supervisor/agents/${encodeURIComponent(str(a.id))}/state`, body);
      if (gen !== S.gen) return;
      const updated = data.agent && typeof data.agent === 'object' ? data.agent : null;
      if (updated) {
        const { login: _login, ...row } = updated;
        const i = S.agents.findIndex((x) => x && x.id === updated.id);
        if (i >= 0) S.agents[i] = { ...S.agents[i], ...row };
      }
      if (data.pending) {
        const what = afterCallLabel(updated && updated.after_call) ||
          (state === 'logged_out' ? '通话结束后退出' : '通话结束后暂停');
        showDeskMessage(`${name} 正在通话：已安排${what}`, 'info');
      } else if (state === 'ready' && a.after_call && isBusy(a.state)) {
        showDeskMessage(`已撤销 ${name} 通话结束后的操作`, 'info');
      }
    } catch (e) {
      if (e.status !== 401 && gen === S.gen) showDeskMessage(`${name}：${e.message}`, 'error');
    } finally {
      S.supBusy.delete(a.id);
      if (gen === S.gen) renderAgents();
    }
  }

  // ---------------------------------------------------------------- wallboard

  const wallboardRefresher = makeRefresher(async (gen) => {
    if (!isSupervisor()) return;
    const interval = $('wb-interval').value || '15';
    try {
      const data = await api('GET', `/api/wallboard?interval=${encodeURIComponent(interval)}`);
      if (gen !== S.gen) return;
      S.wb = { missing: false, data, fetchedAt: performance.now(), error: '' };
      noteServerTime(data.now);
    } catch (e) {
      if (gen !== S.gen || e.status === 401) return;
      if (e.status === 404) {
        S.wb = { missing: true, data: null, fetchedAt: 0, error: '' };
      } else {
        S.wb.error = e.message;
      }
    }
    renderWallboard();
  });

  function renderWallboard() {
    const wb = S.wb;
    const d = wb.data && typeof wb.data === 'object' ? wb.data : null;
    $('wb-empty').hidden = !!d;
    $('wb-body').hidden = !d;
    const upd = $('wb-updated');
    if (!d) {
      $('wb-empty').textContent = wb.error ? `暂无数据（${wb.error}）` : '暂无数据';
      upd.textContent = '';
      return;
    }
    const t = Date.parse(d.now);
    upd.textContent = wb.error
      ? `更新失败：${wb.error}`
      : Number.isNaN(t) ? '' : `更新于 ${fmtClock(new Date(t))}`;
    upd.dataset.kind = wb.error ? 'error' : '';

    const queues = Array.isArray(d.queues) ? d.queues.filter((q) => q && typeof q === 'object') : [];
    const waiting = queues.reduce((sum, q) => sum + (num(q.waiting) || 0), 0);
    const w = $('wb-waiting');
    w.textContent = String(waiting);
    w.dataset.level = waiting === 0 ? 'none' : waiting >= 5 ? 'high' : 'some';
    // Per queue, when there are several: only those with callers waiting.
    const busyQueues = queues.length > 1 ? queues.filter((q) => (num(q.waiting) || 0) > 0) : [];
    const qBox = $('wb-queues');
    qBox.replaceChildren(...busyQueues.map((q) => el('span', {
      className: 'wb-queue',
      text: `${str(q.name) || str(q.queue)} ${fmtCount(q.waiting)} 个排队` +
        (num(q.longest_wait) ? `，最长 ${fmtMmSs(q.longest_wait)}` : ''),
    })));
    tickWallboard();

    const ag = d.agents && typeof d.agents === 'object' ? d.agents : {};
    const chips = ['ready', 'ringing', 'on_call', 'wrap_up', 'paused', 'logged_out']
      .map((st) => el('span', { className: 'wb-chip', dataset: { state: st } }, [
        el('span', { className: 'wb-chip-label', text: STATE_LABELS[st] }),
        el('span', { className: 'wb-chip-num', text: fmtCount(ag[st] ?? 0) }),
      ]));
    $('wb-agents').replaceChildren(...chips);

    const slSecs = num(d.service_level_seconds);
    const slLabel = slSecs == null ? '服务水平' : `${slSecs}秒接通率`;
    $('wb-sl-label').textContent = slLabel;
    $('wb-intervals-sl').textContent = slLabel;
    const shortSecs = num(d.short_abandon_seconds);
    const today = d.today && typeof d.today === 'object' ? d.today : {};
    $('wb-offered').textContent = fmtCount(today.offered);
    $('wb-answered').textContent = fmtCount(today.answered);
    $('wb-answer-rate').textContent = fmtPercent(today.answer_rate);
    $('wb-service-level').textContent = fmtPercent(today.service_level);
    $('wb-asa').textContent = fmtStatSeconds(today.asa);
    $('wb-aht').textContent = fmtStatSeconds(today.aht);
    const ab = $('wb-abandoned');
    ab.textContent = `${fmtCount(today.abandoned)}（短时 ${fmtCount(today.short_abandoned)}）`
      + (today.lost ? `，系统中断 ${fmtCount(today.lost)}` : '');
    ab.title = (shortSecs == null ? '' : `短时放弃：等待不足 ${shortSecs} 秒即挂机`)
      + (today.lost ? '；系统中断：呼叫中心故障切断的来电，不计为放弃，已列入待回拨' : '');

    const intervals = (Array.isArray(d.intervals) ? d.intervals : [])
      .filter((x) => x && typeof x === 'object')
      .map((x) => ({ x, t: Date.parse(x.start) }))
      .sort((p, q) => (Number.isNaN(q.t) ? 0 : q.t) - (Number.isNaN(p.t) ? 0 : p.t));
    const minutes = num($('wb-interval').value) || 15;
    const rows = intervals.map(({ x, t }) => {
      const label = Number.isNaN(t)
        ? str(x.start)
        : `${fmtHm(new Date(t))}–${fmtHm(new Date(t + minutes * 60000))}`;
      return el('tr', { dataset: { start: str(x.start) } }, [
        el('td', { className: 'mono', text: label }),
        el('td', { className: 'num', text: fmtCount(x.offered) }),
        el('td', { className: 'num', text: fmtCount(x.answered) }),
        el('td', { className: 'num', text: `${fmtCount(x.abandoned)}（${fmtCount(x.short_abandoned)}）` }),
        el('td', { className: 'num', text: fmtPercent(x.answer_rate) }),
        el('td', { className: 'num', text: fmtPercent(x.service_level) }),
        el('td', { className: 'num', text: fmtStatSeconds(x.asa) }),
        el('td', { className: 'num', text: fmtStatSeconds(x.aht) }),
      ]);
    });
    $('wb-intervals').tBodies[0].replaceChildren(...rows);
    $('wb-intervals-empty').hidden = rows.length > 0;
  }

  /** The longest wait keeps growing between refreshes. */
  function tickWallboard() {
    const d = S.wb.data;
    if (!d || !isSupervisor()) return;
    const queues = Array.isArray(d.queues) ? d.queues : [];
    let longest = 0;
    let waiting = 0;
    for (const q of queues) {
      if (!q) continue;
      waiting += num(q.waiting) || 0;
      longest = Math.max(longest, num(q.longest_wait) || 0);
    }
    if (waiting > 0 && longest > 0) longest += (performance.now() - S.wb.fetchedAt) / 1000;
    const out = $('wb-longest');
    out.textContent = fmtMmSs(longest);
    out.dataset.level = waiting === 0 ? 'none' : longest >= 180 ? 'high' : longest >= 60 ? 'some' : 'none';
  }

  // ---------------------------------------------------------------- worklist

  const worklistRefresher = makeRefresher(async (gen) => {
    try {
      const data = await api('GET', '/api/worklist');
      if (gen !== S.gen) return;
      S.worklist.missing = false;
      S.worklist.error = '';
      S.worklist.items = Array.isArray(data.items)
        ? data.items.filter((i) => i && typeof i === 'object' && i.call_id != null)
        : [];
    } catch (e) {
      if (gen !== S.gen || e.status === 401) return;
      if (e.status === 404) {
        S.worklist.missing = true;
        S.worklist.items = [];
      } else {
        S.worklist.error = e.message;
      }
    }
    renderWorklist();
  });

  function renderWorklist() {
    const W = S.worklist;
    $('worklist').hidden = W.missing;
    if (W.missing) return;
    const rows = W.items.map((item) => {
      const id = str(item.call_id);
      const dialled = str(item.dialled_number);
      const waited = num(item.waited_seconds);
      const waitCell = el('td', {
        className: 'num mono',
        text: waited == null ? '—' : fmtMmSs(waited),
        title: num(item.position) ? `放弃时排第 ${num(item.position)} 位` : '',
      });
      const open = !item.status || item.status === 'open';
      return el('tr', { dataset: { callId: id, kind: str(item.kind) } }, [
        el('td', {}, [el('span', {
          className: 'kind-badge', text: WORKLIST_KINDS[item.kind] || str(item.kind) || '—',
          dataset: { kind: str(item.kind) },
        }), item.reason_text ? el('div', {
          className: 'worklist-reason', text: str(item.reason_text),
        }) : null].filter(Boolean)),
        el('td', {
          className: `dialled dial-${dialled.replace(/[^0-9A-Za-z_-]/g, '')}`,
          text: dialledLabel(dialled),
        }),
        el('td', { className: 'mono', text: str(item.caller_masked) || '（未显示号码）' }),
        el('td', { className: 'mono', text: item.at ? fmtWhen(item.at) : '' }),
        waitCell,
        el('td', { className: 'mono', text: str(item.case_no) || '—' }),
        el('td', { className: 'num', text: fmtCount(item.attempts ?? 0) }),
        open ? worklistActions(id) : el('td', { text: str(item.status) }),
      ]);
    });
    $('worklist-table').tBodies[0].replaceChildren(...rows);
    $('worklist-count').textContent = String(rows.length);
    $('worklist-count').dataset.level = rows.length === 0 ? 'none' : 'some';
    $('worklist-empty').hidden = rows.length > 0;
    const st = $('worklist-status');
    st.textContent = W.error ? `刷新失败：${W.error}` : '';
    st.dataset.kind = W.error ? 'error' : '';
  }

  function worklistActions(id) {
    const W = S.worklist;
    const cell = el('td', { className: 'worklist-actions' });
    const busy = W.busy.has(id);
    if (W.choosing === id) {
      for (const [outcome, label] of WORKLIST_OUTCOMES) {
        const b = button(label, 'btn btn-small btn-outcome', () => worklistDone(id, outcome));
        b.dataset.outcome = outcome;
        b.disabled = busy;
        cell.appendChild(b);
      }
      const cancel = button('取消', 'btn btn-small btn-ghost', () => {
        W.choosing = null;
        renderWorklist();
      });
      cancel.disabled = busy;
      cell.appendChild(cancel);
    } else {
      // 回拨: the agent's phone rings, then the citizen's (the number stays on the server).
      const dial = button('回拨', 'btn btn-small btn-primary btn-worklist-dial',
        () => worklistDial(id), '先振铃您的电话，接听后自动呼叫市民');
      dial.disabled = busy || Boolean(S.outbound);
      cell.appendChild(dial);
      const b = button('已回拨', 'btn btn-small btn-worklist-done', () => {
        W.choosing = id;
        renderWorklist();
      }, '记录回拨结果');
      b.disabled = busy;
      cell.appendChild(b);
    }
    return cell;
  }

  const OUTBOUND_TEXT = {
    requested: '正在呼叫您的电话…',
    agent_ringing: '您的电话在振铃，请接听',
    citizen_ringing: '正在呼叫市民…',
    connected: '已接通市民',
  };
  const OUTBOUND_OUTCOMES = {
    reached: '回拨结束：已联系到市民',
    busy: '回拨未成功：市民电话占线',
    no_answer: '回拨未成功：市民未接听',
    trunk_failed: '回拨未成功：外呼线路故障',
    refused: '回拨未成功：号码未通过外呼检查',
    agent_no_answer: '回拨已取消：您的电话未接听',
    agent_hangup: '回拨已取消：您挂断了电话',
    failed: '回拨未成功：系统故障，请稍后再试',
  };

  async function worklistDial(id) {
    const W = S.worklist;
    if (W.busy.has(id) || S.outbound) return;
    W.busy.add(id);
    renderWorklist();
    try {
      const data = await api('POST', `/api/worklist/${encodeURIComponent(id)}/dial`);
      S.outbound = { id: data.outbound_id, state: 'requested' };
      showDeskMessage(`${OUTBOUND_TEXT.requested}（${str(data.number)}）`, 'info');
    } catch (e) {
      if (e.status !== 401) showDeskMessage(e.message, 'error');
    } finally {
      W.busy.delete(id);
      renderWorklist();
    }
  }

  function onOutbound(msg) {
    if (msg.state === 'ended') {
      S.outbound = null;
      const text = OUTBOUND_OUTCOMES[msg.outcome] || '回拨结束';
      showDeskMessage(text, msg.outcome === 'reached' ? 'info' : 'error');
      worklistRefresher.request(true);
    } else {
      S.outbound = { id: msg.outbound_id, state: msg.state };
      showDeskMessage(OUTBOUND_TEXT[msg.state] || '回拨中…', 'info');
    }
    renderWorklist();
  }

  async function worklistDone(id, outcome) {
    const W = S.worklist;
    if (W.busy.has(id)) return;
    W.busy.add(id);
    renderWorklist();
    const gen = S.gen;
    try {
      const data = await api('POST', `/api/worklist/${encodeURIComponent(id)}/done`,
        { outcome });
      if (gen !== S.gen) return;
      // 'no_answer' counts an attempt and keeps the item open; the others close it.
      const stillOpen = data.status ? data.status === 'open' : outcome === 'no_answer';
      if (stillOpen) {
        W.items = W.items.map((i) => (str(i.call_id) === id
          ? { ...i, attempts: data.attempts ?? (num(i.attempts) || 0) + 1 } : i));
      } else {
        W.items = W.items.filter((i) => str(i.call_id) !== id);
      }
      if (W.choosing === id) W.choosing = null;
      worklistRefresher.request(true);
    } catch (e) {
      if (e.status !== 401 && gen === S.gen) showDeskMessage(`回拨记录失败：${e.message}`, 'error');
    } finally {
      W.busy.delete(id);
      if (gen === S.gen) renderWorklist();
    }
  }

  // ---------------------------------------------------------------- announcement

  const announcementRefresher = makeRefresher(async (gen) => {
    try {
      const data = await api('GET', '/api/announcement');
      if (gen !== S.gen || S.ann.fromSnapshot) return;
      applyAnnouncement(data.announcement && typeof data.announcement === 'object'
        ? data.announcement : data, false);
    } catch (e) {
      if (gen !== S.gen || e.status === 401) return;
      if (e.status === 404 && !S.ann.fromSnapshot) {
        S.ann.missing = true;
        S.ann.data = null;
        renderAnnouncement();
      }
    }
  });

  function applyAnnouncement(ann, fromSnapshot) {
    S.ann.missing = false;
    if (fromSnapshot) S.ann.fromSnapshot = true;
    S.ann.data = ann && typeof ann === 'object' ? ann : { mode: 'off', text: '' };
    renderAnnouncement();
  }

  function renderAnnouncement() {
    const A = S.ann;
    const d = A.data;
    const mode = d && ANNOUNCEMENT_MODES[d.mode] ? d.mode : 'off';
    const on = !A.missing && !!S.agent && mode !== 'off';
    const banner = $('announcement-banner');
    banner.hidden = !on;
    banner.dataset.mode = mode;
    if (on) {
      $('announcement-kind').textContent = ANNOUNCEMENT_MODES[mode];
      $('announcement-text').textContent = str(d.text);
      const meta = [str(d.set_by), d.at ? fmtWhen(d.at) : ''].filter(Boolean).join(' · ');
      $('announcement-meta').textContent = meta ? `（${meta}）` : '';
    }

    $('announcement-panel').hidden = A.missing || !isSupervisor();
    if (A.missing || !isSupervisor()) return;
    const cur = $('ann-current');
    cur.dataset.mode = mode;
    if (mode === 'off') {
      cur.textContent = '当前：未启用';
    } else {
      const by = [str(d.set_by), d.at ? fmtWhen(d.at) : ''].filter(Boolean).join(' ');
      cur.textContent = `当前：${ANNOUNCEMENT_MODES[mode]}已启用${by ? `（${by} 设置）` : ''}`;
    }
    // Do not overwrite what the supervisor is typing.
    if (!A.dirty && document.activeElement !== $('ann-text')) {
      if (mode !== 'off') {
        $('ann-mode').value = mode;
        $('ann-text').value = str(d.text);
      }
    }
    $('btn-ann-disable').disabled = A.busy || mode === 'off';
    $('btn-ann-enable').disabled = A.busy;
  }

  async function setAnnouncement(mode) {
    const A = S.ann;
    if (A.busy) return;
    const text = $('ann-text').value.trim();
    const status = $('ann-status');
    if (mode !== 'off' && !text) {
      status.textContent = '请输入通知内容';
      status.dataset.kind = 'error';
      $('ann-text').focus();
      return;
    }
    A.busy = true;
    renderAnnouncement();
    status.textContent = '正在保存…';
    status.dataset.kind = 'pending';
    const gen = S.gen;
    try {
      const data = await api('POST', '/api/supervisor/announcement', { mode, text });
      if (gen !== S.gen) return;
      A.dirty = false;
      const ann = data.announcement && typeof data.announcement === 'object'
        ? data.announcement : (typeof data.mode === 'string' ? data : null);
      if (ann) applyAnnouncement(ann, false);
      else announcementRefresher.request(true);
      status.textContent = mode === 'off' ? '已关闭' : '已启用';
      status.dataset.kind = 'ok';
    } catch (e) {
      if (e.status !== 401 && gen === S.gen) {
        status.textContent = e.message;
        status.dataset.kind = 'error';
      }
    } finally {
      A.busy = false;
      if (gen === S.gen) renderAnnouncement();
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
      intakeOpen();
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
    renderIntake();
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
      const why = cur.endReason ? `（${endReasonLabel(cur.endReason)}）` : '';
      head = cur.connectedSeen ? `通话已结束${why}` : `来电未接通${why}`;
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
    if (S.loggedOut) endSession(S.loggedOut.message, 'info');
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
    intakeReset();
    setCaseStatus('', '');
    renderCallBanner();
  }

  // ---------------------------------------------------------------- intake (受理登记)

  // Open cases another request may be merged into (casework OPEN_STATUSES).
  const OPEN_CASE_STATUSES = ['pending', 'assigned', 'accepted', 'returned', 'reported', 'reviewed'];

  const I = {
    caseId: null,
    knowledgeId: null,
    busy: false,
    done: null, // {kind, code, caseNo, into}
    earlier: [],
    mergeArmed: null, // {id, until}
    gen: 0,
  };

  function intakeReset() {
    I.caseId = null;
    I.knowledgeId = null;
    I.busy = false;
    I.done = null;
    I.earlier = [];
    I.mergeArmed = null;
    I.gen += 1;
    $('intake-title').value = '';
    $('intake-answer').value = '';
    $('intake-invalid-reason').value = '';
    $('intake-invalid').hidden = true;
    $('kb-q').value = '';
    $('kb-status').textContent = '';
    $('kb-results').replaceChildren();
    $('intake-kb-used').textContent = '';
    renderValidity();
    intakeError('');
    renderEarlier();
    renderIntake();
  }

  function intakeOpen() {
    const cur = S.current;
    intakeReset();
    if (!cur) return;
    I.caseId = cur.case.id;
    renderIntake();
    if (str(cur.case.status || 'intake') === 'intake') loadEarlier();
  }

  function renderValidity() {
    const box = $('intake-validity');
    const legend = box.querySelector('legend');
    const items = VALIDITY_CRITERIA.map(([key, label]) => {
      const input = el('input');
      input.type = 'checkbox';
      input.dataset.key = key;
      input.id = `validity-${key}`;
      const lab = el('label', { className: 'check' }, [input, el('span', { text: label })]);
      return lab;
    });
    box.replaceChildren(legend, ...items);
  }

  function intakeError(text) {
    const e = $('intake-error');
    e.textContent = text;
    e.hidden = !text;
  }

  function renderIntake() {
    const cur = S.current;
    const status = cur ? str(cur.case.status || 'intake') : '';
    const section = $('intake');
    // Only a case still at intake is registered here (or the one just done, to read the code).
    section.hidden = !cur || (status !== 'intake' && !I.done);
    const done = !!I.done;
    $('intake-actions').hidden = done;
    if (done) $('intake-invalid').hidden = true;
    for (const id of ['intake-title', 'intake-answer', 'kb-q', 'kb-search']) $(id).disabled = done;
    for (const b of section.querySelectorAll('#intake-validity input, #earlier-list button')) {
      b.disabled = done || I.busy;
    }
    for (const id of ['btn-register', 'btn-answer', 'btn-invalid', 'btn-invalid-confirm']) {
      $(id).disabled = I.busy;
    }
    const box = $('intake-done');
    box.hidden = !done;
    if (!done) return;
    const d = I.done;
    const heads = {
      register: '已登记受理，等待交办',
      answer: '已当场答复办结',
      invalid: '已登记为无效来电',
      merge: `已并入工单 ${str(d.into)}`,
    };
    $('intake-done-head').textContent = heads[d.kind] || '';
    box.dataset.kind = d.kind;
    $('done-case-no').textContent = str(d.caseNo);
    $('done-code').textContent = str(d.code);
    $('intake-code-box').hidden = d.kind !== 'register';
    $('intake-code-hint').hidden = d.kind !== 'register';
  }

  async function loadEarlier() {
    const gen = I.gen;
    const id = I.caseId;
    try {
      const data = await api('GET', `/api/casework/cases/${encodeURIComponent(str(id))}/earlier`);
      if (gen !== I.gen) return;
      I.earlier = Array.isArray(data.cases) ? data.cases : [];
    } catch (e) {
      if (gen !== I.gen || e.status === 401) return;
      I.earlier = [];
      $('earlier-empty').textContent = `历史工单加载失败：${e.message}`;
    }
    renderEarlier();
  }

  function renderEarlier() {
    const list = $('earlier-list');
    $('earlier-count').textContent = String(I.earlier.length);
    $('earlier-empty').hidden = I.earlier.length > 0;
    if (!I.earlier.length && !$('earlier-empty').textContent.includes('失败')) {
      $('earlier-empty').textContent = '无历史工单';
    }
    list.replaceChildren(...I.earlier.map((c) => {
      const armed = I.mergeArmed && I.mergeArmed.id === c.id && Date.now() < I.mergeArmed.until;
      const canMerge = OPEN_CASE_STATUSES.includes(str(c.status));
      const li = el('li', { className: 'earlier-item', dataset: { caseId: c.id } }, [
        el('span', { className: 'mono earlier-no', text: c.case_no }),
        el('span', { className: 'earlier-title', text: str(c.title) || '（无标题）' }),
        el('span', { className: 'status-tag', text: c.status_words, dataset: { status: c.status } }),
        el('span', { className: 'count-text', text: c.received_at ? fmtWhen(c.received_at) : '' }),
      ]);
      if (canMerge) {
        const b = button(armed ? '确认并入' : '并入此工单', `btn btn-small btn-merge${armed ? ' btn-danger' : ''}`,
          () => onMerge(c), '把本次来电作为重复诉求并入该工单');
        b.disabled = !!I.done || I.busy;
        li.appendChild(b);
      }
      return li;
    }));
  }

  async function onKbSearch(ev) {
    ev.preventDefault();
    const q = $('kb-q').value.trim();
    const status = $('kb-status');
    if (!q) {
      status.textContent = '请输入关键词';
      return;
    }
    status.textContent = '正在查找…';
    const gen = I.gen;
    try {
      const data = await api('GET', `/api/casework/knowledge?q=${encodeURIComponent(q)}`);
      if (gen !== I.gen) return;
      const entries = Array.isArray(data.entries) ? data.entries : [];
      status.textContent = entries.length ? `找到 ${entries.length} 条` : '知识库中没有相关条目';
      $('kb-results').replaceChildren(...entries.map((k) => el('li', { className: 'kb-item' }, [
        el('div', { className: 'kb-q', text: k.question }),
        el('div', { className: 'kb-a', text: k.answer }),
        button('采用此答复', 'btn btn-small', () => {
          $('intake-answer').value = str(k.answer);
          I.knowledgeId = typeof k.id === 'number' ? k.id : null;
          $('intake-kb-used').textContent = `（采用知识库：${str(k.question)}）`;
          $('intake-answer').focus();
        }),
      ])));
    } catch (e) {
      if (gen === I.gen && e.status !== 401) status.textContent = `查找失败：${e.message}`;
    }
  }

  /** Save what the agent typed in the case form first: the step must not lose it. */
  async function saveBeforeStep(cur) {
    if (cur.dirty.size === 0) return true;
    await saveCurrentCase();
    if (S.current !== cur) return false;
    if (cur.dirty.size > 0) {
      intakeError('工单内容尚未保存成功，请先保存');
      return false;
    }
    return true;
  }

  async function intakeStep(kind, path, body, intoNo = '') {
    const cur = S.current;
    if (!cur || I.busy || I.done) return;
    intakeError('');
    I.busy = true;
    renderIntake();
    renderEarlier();
    const gen = I.gen;
    try {
      if (!(await saveBeforeStep(cur))) return;
      const data = await api('POST', `/api/casework/cases/${encodeURIComponent(str(cur.case.id))}/${path}`, body);
      if (gen !== I.gen || S.current !== cur) return;
      const statuses = { register: 'pending', answer: 'closed', invalid: 'invalid', merge: 'merged' };
      cur.case = { ...cur.case, status: statuses[kind] };
      I.done = { kind, code: data.verify_code, caseNo: cur.case.case_no, into: intoNo };
      fillCase(true);
      // The agent reads the number and the code to the caller now: bring them into view.
      const box = $('intake-done');
      box.tabIndex = -1;
      box.scrollIntoView({ block: 'center' });
      box.focus({ preventScroll: true });
    } catch (e) {
      if (gen === I.gen && e.status !== 401) intakeError(e.message);
    } finally {
      if (gen === I.gen) {
        I.busy = false;
        renderIntake();
        renderEarlier();
      }
    }
  }

  function validityChecked() {
    const out = {};
    for (const input of $('intake-validity').querySelectorAll('input[data-key]')) {
      out[input.dataset.key] = input.checked;
    }
    return out;
  }

  function onRegister() {
    intakeStep('register', 'register', {
      title: $('intake-title').value.trim(),
      category: $('case-category').value,
      validity: validityChecked(),
    });
  }

  function onAnswer() {
    intakeStep('answer', 'answer', {
      title: $('intake-title').value.trim(),
      category: $('case-category').value,
      answer: $('intake-answer').value.trim(),
      knowledge_id: I.knowledgeId,
    });
  }

  function onInvalidConfirm() {
    const reason = $('intake-invalid-reason').value.trim();
    if (!reason) {
      intakeError('请填写无效原因');
      $('intake-invalid-reason').focus();
      return;
    }
    intakeStep('invalid', 'invalid', { reason });
  }

  function onMerge(c) {
    const armed = I.mergeArmed && I.mergeArmed.id === c.id && Date.now() < I.mergeArmed.until;
    if (!armed) {
      I.mergeArmed = { id: c.id, until: Date.now() + 6000 };
      renderEarlier();
      return;
    }
    I.mergeArmed = null;
    intakeStep('merge', 'merge', { into: c.id }, c.case_no);
  }

  function bindIntake() {
    renderValidity();
    $('kb-form').addEventListener('submit', onKbSearch);
    $('btn-register').addEventListener('click', onRegister);
    $('btn-answer').addEventListener('click', onAnswer);
    $('btn-invalid').addEventListener('click', () => {
      $('intake-invalid').hidden = false;
      $('intake-invalid-reason').focus();
    });
    $('btn-invalid-cancel').addEventListener('click', () => {
      $('intake-invalid').hidden = true;
      intakeError('');
    });
    $('btn-invalid-confirm').addEventListener('click', onInvalidConfirm);
    $('intake-invalid-reason').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        onInvalidConfirm();
      }
    });
  }

  // ---------------------------------------------------------------- ticker

  function tick() {
    tickQueue();
    tickAgents();
    tickAgentSince();
    tickCallTimer();
    tickWrapUp();
    tickWallboard();
  }

  function startTicker() {
    // Twice a second, so that the wrap-up countdown does not skip a second.
    if (!S.ticker) S.ticker = setInterval(tick, 500);
  }

  function stopTicker() {
    clearInterval(S.ticker);
    S.ticker = null;
  }

  // ---------------------------------------------------------------- activity

  // The open socket alone is no sign of life: tell the server about the user's input.
  window.HotlineHttp.reportActivity(() => S.ws);

  // ---------------------------------------------------------------- boot

  function bind() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('btn-ready').addEventListener('click', () => setState('ready'));
    $('btn-not-ready').addEventListener('click', onPauseClick);
    $('pause-reason').addEventListener('change', renderAgentButtons);
    $('btn-cancel-pending').addEventListener('click', onCancelPending);
    $('btn-logout').addEventListener('click', onLogout);
    $('btn-wrap-up-extend').addEventListener('click', onWrapUpExtend);
    $('btn-wrap-up-ready').addEventListener('click', () => setState('ready'));
    $('sup-pause-reason').addEventListener('change', renderAgents);
    $('btn-totp-enrol').addEventListener('click', onTotpEnrol);
    $('btn-totp-confirm').addEventListener('click', () => onTotpCode('confirm'));
    $('btn-totp-disable').addEventListener('click', () => onTotpCode('disable'));
    $('wb-interval').addEventListener('change', () => {
      if (S.wb.missing) return;
      wallboardRefresher.request(true);
    });
    $('ann-text').addEventListener('input', () => {
      S.ann.dirty = true;
    });
    $('ann-mode').addEventListener('change', () => {
      S.ann.dirty = true;
    });
    $('btn-ann-enable').addEventListener('click', () => setAnnouncement($('ann-mode').value));
    $('btn-ann-disable').addEventListener('click', () => setAnnouncement('off'));

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
    bindIntake();
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
    renderPauseReasonOptions();
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
