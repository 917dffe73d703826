/* 个人信息访问审计 — the auditor's page: the log of personal-data access, filtered, in
 * pages, with a CSV download of the whole listing. Plain ES2020, no dependencies; all
 * data goes into the DOM via textContent. The server decides who may read it (the auditor).
 */
'use strict';

(() => {
  const PAGE = 100;
  const P = { csrf: null, me: null, offset: 0, filters: {} };

  const $ = (id) => document.getElementById(id);
  const str = (v) => (v == null ? '' : String(v));
  const pad2 = (n) => String(n).padStart(2, '0');


  function api(method, path, body) {
    return window.HotlineHttp.request(method, path, body, P.csrf);
  }

  function fmtTime(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return str(iso);
    const d = new Date(t);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function showError(text) {
    const box = $('page-error');
    box.textContent = text || '';
    box.hidden = !text;
  }

  // ---------------------------------------------------------------- login

  function showLogin(message) {
    P.me = null;
    P.csrf = null;
    document.body.dataset.view = 'login';
    $('audit-view').hidden = true;
    $('login-view').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('password').value = '';
    $('login').focus();
  }

  function enter(data) {
    const agent = data && data.agent;
    if (!agent || agent.role !== 'auditor') {
      // Everyone else has their own page; the listing would answer 403 anyway.
      window.location.replace(agent && agent.role === 'admin' ? '/admin' : '/');
      return;
    }
    P.me = agent;
    P.csrf = str(data.csrf) || null;
    document.body.dataset.view = 'audit';
    document.body.dataset.role = 'auditor';
    $('user-name').textContent = str(agent.name || agent.display_name || agent.login);
    $('login-view').hidden = true;
    $('audit-view').hidden = false;
    search(0);
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const login = $('login').value.trim();
    const password = $('password').value;
    const err = $('login-error');
    if (!login || !password) {
      err.textContent = '请输入用户名和密码';
      err.hidden = false;
      return;
    }
    const body = { login, password };
    if (!$('totp-field').hidden) body.code = $('totp-code').value.trim();
    $('login-submit').disabled = true;
    try {
      const data = await api('POST', '/api/login', body);
      $('totp-code').value = '';
      $('totp-field').hidden = true;
      enter(data);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      if (e.data && e.data.totp_required) {
        $('totp-field').hidden = false;
        $('totp-code').focus();
      }
    } finally {
      $('login-submit').disabled = false;
    }
  }

  async function onLogout() {
    try {
      await api('POST', '/api/logout');
    } catch (_e) {
      // Logged out already, or the server is gone: the login form either way.
    }
    showLogin('');
  }

  // ---------------------------------------------------------------- listing

  function readFilters() {
    return {
      from: $('f-from').value.trim(),
      to: $('f-to').value.trim(),
      actor: $('f-actor').value.trim(),
      case_no: $('f-case').value.trim(),
    };
  }

  function query(filters, extra) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
    return q.toString();
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = str(text) || '—';
    if (className) td.className = className;
    return td;
  }

  function actorText(e) {
    if (e.actor) return e.actor_name && e.actor_name !== e.actor
      ? `${e.actor_name}（${e.actor}）` : e.actor;
    return e.action === 'progress_heard' ? '来电人（电话查询）' : '系统';
  }

  function render(entries) {
    $('rows').replaceChildren(...entries.map((e) => {
      const tr = document.createElement('tr');
      tr.append(cell(fmtTime(e.at)), cell(e.action_words), cell(actorText(e)),
        cell(e.actor_role_words), cell(e.case_no), cell(e.field_words),
        cell(e.reason, 'reason'), cell(e.note));
      return tr;
    }));
  }

  async function search(offset) {
    const filters = readFilters();
    P.filters = filters;
    P.offset = Math.max(0, offset);
    $('csv-link').href = `/api/audit/reveals?${query(filters, { format: 'csv' })}`;
    $('list-status').textContent = '正在加载…';
    showError('');
    try {
      const data = await api('GET',
        `/api/audit/reveals?${query(filters, { limit: PAGE, offset: P.offset })}`);
      const entries = Array.isArray(data.entries) ? data.entries : [];
      render(entries);
      $('list-status').textContent = entries.length
        ? `第 ${P.offset + 1}–${P.offset + entries.length} 条` : '没有符合条件的记录';
      $('prev').disabled = P.offset === 0;
      $('next').disabled = !data.more;
    } catch (e) {
      $('list-status').textContent = '';
      if (e.status === 401) {
        showLogin('登录已过期，请重新登录');
      } else {
        showError(e.message);
      }
    }
  }

  // ---------------------------------------------------------------- start

  async function start() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('filters').addEventListener('submit', (ev) => {
      ev.preventDefault();
      search(0);
    });
    $('prev').addEventListener('click', () => search(P.offset - PAGE));
    $('next').addEventListener('click', () => search(P.offset + PAGE));
    try {
      enter(await api('GET', '/api/me'));
    } catch (e) {
      showLogin(e.status === 401 ? '' : e.message);
    }
  }

  start();
})();
