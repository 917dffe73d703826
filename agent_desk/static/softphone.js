/* 网页电话 — the agent's browser is their phone (YAML phones[].type: webrtc).
 * JsSIP (static/vendor/jssip.min.js) registers over the desk's own /sip WebSocket, which
 * the desk relays to Asterisk; the media are DTLS-SRTP. The call rings here until the
 * agent clicks 接听 (the queue's ring_timeout applies); no auto-answer.
 * desk.js calls HotlineSoftphone.start() when the desk opens and .stop() at logout.
 * Plain ES2020; text goes into the DOM via textContent.
 */
'use strict';

(() => {
  const RETRY_MS = 5000; // a refused or failed registration is tried again after this
  const REGISTER_EXPIRES = 300;

  const S = {
    gen: 0, // bumped by start/stop: late answers of a past start are dropped
    ua: null,
    account: null,
    session: null, // the call (JsSIP RTCSession) on this phone, if any
    reg: 'off', // off | connecting | registered | unregistered
    call: 'idle', // idle | ringing | connected
    muted: false,
    held: false,
    retry: null,
    note: '', // why the softphone is off although it should be on
    problem: '', // what went wrong with the last call
  };

  const $ = (id) => document.getElementById(id);

  function str(v) {
    return v == null ? '' : String(v);
  }

  // ---------------------------------------------------------------- view

  function render() {
    const bar = $('softphone-bar');
    if (!bar) return;
    bar.hidden = S.reg === 'off' && !S.note;
    bar.dataset.reg = S.reg;
    bar.dataset.call = S.call;
    bar.dataset.muted = S.muted ? '1' : '0';
    bar.dataset.held = S.held ? '1' : '0';

    let status;
    if (S.call === 'ringing') {
      status = `来电振铃：${callerOf(S.session)}`;
    } else if (S.call === 'connected') {
      status = S.held ? '通话保持中' : (S.muted ? '通话中（已静音）' : '通话中');
    } else if (S.reg === 'registered') {
      status = S.problem ? `已注册，等待来电（${S.problem}）` : '已注册，等待来电';
    } else if (S.reg === 'connecting') {
      status = '正在连接…';
    } else if (S.reg === 'unregistered') {
      status = '未注册，正在重试…';
    } else {
      status = S.note;
    }
    $('sp-status').textContent = status;
    $('sp-phone').textContent = S.account ? `分机 ${str(S.account.phone)}` : '';

    const ringing = S.call === 'ringing';
    const connected = S.call === 'connected';
    $('sp-answer').hidden = !ringing;
    $('sp-hangup').hidden = !(ringing || connected);
    $('sp-mute').hidden = !connected;
    $('sp-hold').hidden = !connected;
    $('sp-mute').textContent = S.muted ? '取消静音' : '静音';
    $('sp-hold').textContent = S.held ? '恢复' : '保持';
  }

  function callerOf(session) {
    if (!session || !session.remote_identity) return '';
    const id = session.remote_identity;
    return str(id.display_name) || str(id.uri && id.uri.user);
  }

  // ---------------------------------------------------------------- registering

  async function start() {
    if (S.ua || S.account) return; // already on
    const gen = ++S.gen;
    let account;
    try {
      account = await window.HotlineHttp.request('GET', '/api/agent/softphone');
    } catch (e) {
      // 404: this agent's phone is not a webrtc phone; 403: no phone at all.
      if (e.status !== 404 && e.status !== 403 && gen === S.gen) {
        S.note = `网页电话无法启用：${e.message}`;
        render();
      }
      return;
    }
    if (gen !== S.gen) return;
    if (!window.JsSIP || !window.RTCPeerConnection || !navigator.mediaDevices) {
      // Browsers give the microphone only to https pages (and to 127.0.0.1).
      S.note = '网页电话无法启用：请使用 HTTPS 地址打开工作台，并使用新版 Chrome 或 Edge';
      render();
      return;
    }
    S.account = account;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new window.JsSIP.WebSocketInterface(
      `${proto}//${location.host}${account.ws_path}`);
    const ua = new window.JsSIP.UA({
      sockets: [socket],
      uri: account.sip_uri,
      password: account.password,
      register: true,
      register_expires: REGISTER_EXPIRES,
      session_timers: false,
      user_agent: 'hotline-desk',
      // After a drop JsSIP reconnects (and then registers again) by itself.
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 15,
    });
    S.ua = ua;
    S.reg = 'connecting';
    ua.on('connecting', () => mine(ua) && S.reg !== 'registered' && setReg('connecting'));
    ua.on('disconnected', () => mine(ua) && setReg('unregistered'));
    ua.on('registered', () => mine(ua) && setReg('registered'));
    ua.on('unregistered', () => mine(ua) && setReg('unregistered'));
    ua.on('registrationFailed', () => {
      if (!mine(ua)) return;
      setReg('unregistered');
      retryRegister(ua);
    });
    ua.on('newRTCSession', (ev) => mine(ua) && onNewSession(ev));
    ua.start();
    render();
  }

  function mine(ua) {
    return S.ua === ua;
  }

  function setReg(reg) {
    S.reg = reg;
    render();
  }

  function retryRegister(ua) {
    clearTimeout(S.retry);
    S.retry = setTimeout(() => {
      S.retry = null;
      if (mine(ua) && ua.isConnected() && !ua.isRegistered()) ua.register();
    }, RETRY_MS);
  }

  function stop() {
    S.gen += 1;
    clearTimeout(S.retry);
    S.retry = null;
    const ua = S.ua;
    S.ua = null;
    S.account = null;
    if (S.session) {
      try {
        S.session.terminate();
      } catch (_e) { /* already over */ }
    }
    endCall();
    if (ua) {
      try {
        ua.stop(); // unregisters, then closes the socket
      } catch (_e) { /* ignore */ }
    }
    S.reg = 'off';
    S.note = '';
    render();
  }

  // ---------------------------------------------------------------- calls

  function onNewSession(ev) {
    const session = ev.session;
    if (ev.originator !== 'remote') return; // this phone only answers
    if (S.session) {
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    S.session = session;
    S.call = 'ringing';
    S.problem = '';
    S.muted = false;
    S.held = false;
    const cur = () => S.session === session;
    session.on('peerconnection', (e) => attachAudio(e.peerconnection));
    session.on('accepted', () => {
      if (!cur()) return;
      S.call = 'connected';
      render();
    });
    session.on('confirmed', () => {
      if (!cur()) return;
      S.call = 'connected';
      render();
    });
    session.on('ended', () => cur() && endCall());
    session.on('failed', (e) => {
      if (!cur()) return;
      if (e.cause === window.JsSIP.C.causes.USER_DENIED_MEDIA_ACCESS) {
        S.problem = '未能接听：请允许工作台使用麦克风';
      }
      endCall();
    });
    session.on('hold', (e) => {
      if (!cur() || e.originator !== 'local') return;
      S.held = true;
      render();
    });
    session.on('unhold', (e) => {
      if (!cur() || e.originator !== 'local') return;
      S.held = false;
      render();
    });
    session.on('muted', () => {
      if (!cur()) return;
      S.muted = true;
      render();
    });
    session.on('unmuted', () => {
      if (!cur()) return;
      S.muted = false;
      render();
    });
    render();
  }

  function attachAudio(pc) {
    pc.addEventListener('track', (e) => {
      if (e.track.kind !== 'audio') return;
      const audio = $('sp-audio');
      audio.srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      const played = audio.play();
      if (played && played.catch) played.catch(() => { /* plays on the next click */ });
    });
  }

  function endCall() {
    S.session = null;
    S.call = 'idle';
    S.muted = false;
    S.held = false;
    const audio = $('sp-audio');
    if (audio) audio.srcObject = null;
    render();
  }

  function answer() {
    const session = S.session;
    if (!session || S.call !== 'ringing') return;
    try {
      session.answer({
        mediaConstraints: { audio: true, video: false },
        // Asterisk and the agents' PCs are on one network: host candidates only.
        pcConfig: { iceServers: [] },
      });
    } catch (e) {
      console.error('softphone: answer failed', e); // JsSIP ends the call: 'failed'
    }
  }

  function hangUp() {
    if (!S.session) return;
    try {
      S.session.terminate();
    } catch (_e) {
      endCall();
    }
  }

  function toggleMute() {
    const session = S.session;
    if (!session || S.call !== 'connected') return;
    if (S.muted) session.unmute({ audio: true });
    else session.mute({ audio: true });
  }

  function toggleHold() {
    const session = S.session;
    if (!session || S.call !== 'connected') return;
    // A re-INVITE still under way answers false: the click can simply be repeated.
    if (S.held) session.unhold();
    else session.hold();
  }

  // ---------------------------------------------------------------- boot

  function bind() {
    $('sp-answer').addEventListener('click', answer);
    $('sp-hangup').addEventListener('click', hangUp);
    $('sp-mute').addEventListener('click', toggleMute);
    $('sp-hold').addEventListener('click', toggleHold);
    // Closing the tab: hang up and unregister rather than leave Asterisk ringing a
    // phone that is gone.
    window.addEventListener('pagehide', () => {
      if (S.ua) stop();
    });
    render();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', bind);
  } else {
    bind();
  }

  window.HotlineSoftphone = { start, stop };
})();
