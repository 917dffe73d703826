// The desk's one way to call its API, shared by every page (desk, cases, admin, audit):
// JSON in and out, the CSRF header on state changes, the server's plain-words `error`
// text carried by ApiError. What a 401 means (back to the login form) is each page's.
(() => {
  'use strict';

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  async function request(method, path, body, csrf) {
    const opts = {
      method,
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    };
    if (method !== 'GET' && method !== 'HEAD') {
      opts.headers['Content-Type'] = 'application/json';
      if (csrf) opts.headers['X-Hotline-CSRF'] = csrf;
      opts.body = JSON.stringify(body == null ? {} : body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (_e) {
      throw new ApiError(0, '网络错误，无法连接服务器', null);
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
        ? data.error : `请求失败（HTTP ${res.status}）`;
      throw new ApiError(res.status, msg, data);
    }
    return data && typeof data === 'object' ? data : {};
  }

  // The server ends a session after 30 minutes without the user doing anything; an open
  // WebSocket alone is no sign of life, so the user's input is reported on the page's
  // socket (getSocket()), at most once a minute.
  function reportActivity(getSocket) {
    let last = -Infinity;
    const ping = () => {
      const ws = getSocket();
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      const now = performance.now();
      if (now - last < 60000) return;
      last = now;
      try {
        ws.send('{"type":"activity"}');
      } catch (_e) { /* closing: the next input pings again */ }
    };
    for (const type of ['keydown', 'pointerdown', 'wheel']) {
      document.addEventListener(type, ping, { capture: true, passive: true });
    }
  }

  window.HotlineHttp = { ApiError, request, reportActivity };
})();
