// The web chat page: send text, photos, voice and locations; press buttons; reply to case cards;
// show the bot's messages as they arrive (server-sent events). No build step, no libraries.
// What a person typed is never lost: each send waits in the log ("发送中…") until the server
// confirms it, is retried with the same client id (the server keeps one copy), and its words
// stay in localStorage until then, so a reload offers them again.
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.dataset.csrf, pane = body.dataset.pane || "";
  var log = document.getElementById("log");
  var notice = document.getElementById("notice");
  var form = document.getElementById("composer");
  var text = document.getElementById("text");
  var photo = document.getElementById("photo"), voice = document.getElementById("voice");
  var attached = document.getElementById("attached");
  var waiting = document.getElementById("waiting");  // sends the server has not confirmed yet
  var replying = null, location = null, recorded = null, shown = {}, pending = {}, byClient = {};
  var follow = true;  // the log follows the newest message unless the person scrolled up
  var UNSENT = "lz_unsent_" + pane, FONT = "lz_font";
  var SIZES = ["fs-s", "fs-m", "fs-l", "fs-xl"];
  var PHONE = /(1[3-9]\d{9}|110|119|120)(?!\d)/g;

  function store(key, value) {
    try {
      if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
    } catch (e) { /* private mode: nothing remembered, nothing lost in this page */ }
  }
  function stored(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }

  // Text size: A- / A+, remembered on this device.
  var size = parseInt(stored(FONT) || "1", 10);
  function setSize(n) {
    size = Math.max(0, Math.min(SIZES.length - 1, n));
    SIZES.forEach(function (c) { body.classList.remove(c); });
    body.classList.add(SIZES[size]);
    store(FONT, String(size));
  }
  setSize(isNaN(size) ? 1 : size);
  document.getElementById("bigger").addEventListener("click", function () { setSize(size + 1); });
  document.getElementById("smaller").addEventListener("click", function () { setSize(size - 1); });

  function newId() {
    if (window.crypto && crypto.getRandomValues) {
      var a = new Uint8Array(12); crypto.getRandomValues(a);
      return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function headers(extra) {
    var h = { "X-CSRF-Token": csrf, "X-Chat-Pane": pane };
    for (var k in extra || {}) h[k] = extra[k];
    return h;
  }
  function say(msg) { notice.textContent = msg; notice.hidden = !msg; }
  function q(p) { return p + (p.indexOf("?") < 0 ? "?" : "&") + "pane=" + encodeURIComponent(pane); }

  // Whatever the server answers, the person reads a sentence (never JSON).
  function sentence(status, j) {
    if (j && typeof j.error === "string" && j.error) return j.error;
    if (j && typeof j.detail === "string" && j.detail) return j.detail;
    if (status === 401) return "会话已过期，请刷新页面";
    if (status === 403) return "页面已失效，请刷新后再试";
    if (status === 413) return "文件太大，请压缩后再发";
    if (status === 429) return "操作太频繁，请稍等一会儿再试";
    if (status >= 500) return "服务器暂时出了点问题，请稍后再试";
    return "没有发送成功，请再试一次";
  }

  // One POST; resolves {ok, status, json}. `retry` (5xx, network) is for the caller to decide.
  function post(url, payload, isForm) {
    var opts = { method: "POST", credentials: "same-origin", body: payload,
                 headers: headers(isForm ? {} : { "Content-Type": "application/json" }) };
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        return { ok: r.ok, status: r.status, json: j, retry: r.status >= 500 };
      });
    }, function () { return { ok: false, status: 0, json: {}, retry: true }; });
  }
  function postJson(url, data) {
    return post(url, JSON.stringify(data), false).then(function (res) {
      say(res.ok ? "" : (res.status ? sentence(res.status, res.json) : "网络不通，请检查网络后再试"));
      return res.json;
    });
  }

  function scrollDown() { if (follow) log.scrollTop = log.scrollHeight; }
  log.addEventListener("scroll", function () {
    follow = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  });

  // Text with phone numbers (and 110/119/120) as tap-to-call links; everything as text nodes.
  function withLinks(el, s) {
    var last = 0, m;
    PHONE.lastIndex = 0;
    while ((m = PHONE.exec(s)) !== null) {
      if (m.index > 0 && /\d/.test(s.charAt(m.index - 1))) continue;
      el.appendChild(document.createTextNode(s.slice(last, m.index)));
      var a = document.createElement("a");
      a.href = "tel:" + m[1]; a.className = "tel"; a.textContent = m[1];
      el.appendChild(a);
      last = m.index + m[1].length;
    }
    el.appendChild(document.createTextNode(s.slice(last)));
  }

  function render(m) {
    if (m.edit_of) {
      var old = shown[m.edit_of];
      if (old) fill(old, m);
      return;
    }
    if (shown[m.id]) return;
    var it = m.client_id ? byClient[m.client_id] : null;
    var el = it ? it.el : document.createElement("div");
    if (it) { it.confirmed = true; delete byClient[m.client_id]; forget(m.client_id); }
    log.insertBefore(el, waiting);  // the server has it: into the log, above what still waits
    shown[m.id] = el;
    fill(el, m);
    scrollDown();
    if (m.options && m.options.request_contact) document.getElementById("phone-form").hidden = false;
  }

  // The bot's own links (a /login sign-in, a /join invite) become tappable; only links to this
  // very site, so a resident's typed address never turns into a link in a leader's chat. The
  // rest of the text keeps its tap-to-call numbers.
  function withSiteLinks(el, text) {
    var at = 0, re = /https?:\/\/[^\s，。）]+/g, hit;
    var origin = window.location.origin + "/";
    while ((hit = re.exec(text)) !== null) {
      if (hit[0].indexOf(origin) !== 0) continue;
      withLinks(el, text.slice(at, hit.index));
      var a = document.createElement("a");
      a.href = hit[0]; a.textContent = hit[0]; a.rel = "noreferrer"; a.target = "_blank";
      el.appendChild(a);
      at = hit.index + hit[0].length;
    }
    withLinks(el, text.slice(at));
  }

  function fill(el, m) {
    var o = m.options || {};
    el.className = "msg " + (m.dir === "inbound" ? "inbound" : "outbound") +
      (o.card ? " card" : "") + (o.error ? " error" : "");
    el.dataset.id = m.edit_of || m.id;
    el.textContent = "";
    var text = m.text || (o.press ? "（已按下按钮）" : "");
    if (m.dir === "inbound") withLinks(el, text); else withSiteLinks(el, text);
    if (o.photo) {
      var img = document.createElement("img");
      img.addEventListener("load", scrollDown);
      img.src = q("/chat/media/" + o.photo); img.alt = "照片"; el.appendChild(img);
    }
    if (o.voice) {
      var au = document.createElement("audio");
      au.controls = true; au.src = q("/chat/media/" + o.voice); el.appendChild(au);
    }
    if (o.location) {
      var p = document.createElement("div");
      p.textContent = "位置：" + o.location[0].toFixed(5) + ", " + o.location[1].toFixed(5);
      el.appendChild(p);
    }
    if (m.actions && m.actions.length) {
      var row = document.createElement("div");
      row.className = "actions";
      m.actions.forEach(function (a) {
        var b = document.createElement("button");
        b.type = "button"; b.textContent = a.label;
        b.addEventListener("click", function () { press(a, m); });
        row.appendChild(b);
      });
      el.appendChild(row);
    }
    // Replying to a case card is a leader's tool; a resident adds to a case with 补充情况.
    if (document.body.dataset.leader && m.dir !== "inbound" && m.case_id &&
        /工单#\d+/.test(m.text || "")) {
      var r = document.createElement("button");
      r.type = "button"; r.className = "reply"; r.textContent = "回复这条";
      r.addEventListener("click", function () {
        replying = { text: m.text, id: String(m.edit_of || m.id) };
        document.getElementById("replying-text").textContent = m.text.split("\n")[0];
        document.getElementById("replying").hidden = false;
        text.focus();
      });
      el.appendChild(r);
    }
  }

  function press(a, m) {
    var arg = a.arg !== undefined && a.arg !== null ? a.arg : (a.rating !== undefined ? a.rating : null);
    var data = { client_id: newId(), action: a.action, case_id: a.case_id, version: a.version,
                 arg: arg === null ? null : String(arg), message_id: String(m.id), label: a.label };
    var tries = 0;
    (function go() {
      post("/chat/press", JSON.stringify(data), false).then(function (res) {
        if (res.retry && tries < 3) { tries += 1; say("网络不稳，正在重试…"); setTimeout(go, 1000 * tries); return; }
        say(res.ok ? "" : (res.status ? sentence(res.status, res.json) : "网络不通，请检查网络后再试"));
      });
    }());
  }

  // --- sending: a message waits in the log until the server has it ---
  function remember() {
    var list = Object.keys(pending).map(function (k) {
      var it = pending[k];
      return { client_id: it.client_id, text: it.text, reply: it.replying };
    }).filter(function (x) { return x.text; });
    store(UNSENT, list.length ? JSON.stringify(list) : null);
  }
  function forget(cid) { delete pending[cid]; remember(); }

  function status(it, s) {
    var st = it.el.querySelector(".status");
    if (!st) { st = document.createElement("button"); st.type = "button"; st.className = "status"; it.el.appendChild(st);
      st.addEventListener("click", function () { if (it.state === "failed") transmit(it); }); }
    it.state = s;
    st.textContent = s === "failed" ? "未发送，点此重试" : (s === "sending" ? "发送中…" : "");
    st.disabled = s !== "failed";
    st.hidden = !s;
    it.el.classList.toggle("unsent", s === "failed");
  }

  function formOf(it) {
    var fd = new FormData();
    fd.append("client_id", it.client_id);
    fd.append("text", it.text);
    if (it.photo) fd.append("photo", it.photo);
    if (it.voice) fd.append("voice", it.voice, it.voiceName);
    if (it.location) { fd.append("lat", it.location[0]); fd.append("lon", it.location[1]); }
    if (it.replying) { fd.append("reply_to_text", it.replying.text); fd.append("reply_to_message_id", it.replying.id); }
    return fd;
  }

  function transmit(it) {
    status(it, "sending");
    post("/chat/send", formOf(it), true).then(function (res) {
      if (it.confirmed) return;
      if (res.ok || res.status === 413 || res.status === 422) {
        // Taken (files the server refused are said in the log): the words are safe there.
        if (!res.ok) say(sentence(res.status, res.json)); else say("");
        status(it, "");
        if (pending[it.client_id]) forget(it.client_id);
        return;
      }
      if (res.retry && it.tries < 3) {
        it.tries += 1;
        status(it, "sending");
        setTimeout(function () { transmit(it); }, 1000 * it.tries);
        return;
      }
      it.tries = 0;
      status(it, "failed");
      say(res.status ? sentence(res.status, res.json) : "网络不通，消息还没有发出，恢复后请点消息下方的“重试”");
    });
  }

  function queue(it) {
    it.tries = 0;
    it.el = document.createElement("div");
    it.el.className = "msg inbound";
    var words = it.text;
    var extra = [];
    if (it.photo) extra.push("（照片）");
    if (it.voice) extra.push("（语音）");
    if (it.location) extra.push("（位置）");
    it.el.textContent = words + (extra.length ? (words ? "\n" : "") + extra.join(" ") : "");
    waiting.appendChild(it.el);
    follow = true; scrollDown();
    pending[it.client_id] = byClient[it.client_id] = it;
    remember();
    transmit(it);
  }

  // Words left unsent when the page was closed come back, waiting for a tap.
  (function restore() {
    var list = [];
    try { list = JSON.parse(stored(UNSENT) || "[]"); } catch (e) { list = []; }
    list.forEach(function (x) {
      if (!x || !x.client_id || !x.text) return;
      var it = { client_id: String(x.client_id), text: String(x.text), replying: x.reply || null, tries: 0 };
      it.el = document.createElement("div"); it.el.className = "msg inbound";
      it.el.textContent = it.text;
      waiting.appendChild(it.el);
      pending[it.client_id] = byClient[it.client_id] = it;
      status(it, "failed");
    });
  }());

  function listen() {
    var es = new EventSource(q("/chat/events"));
    es.addEventListener("msg", function (e) { render(JSON.parse(e.data)); });
  }

  function greet() {
    fetch(q("/chat/card"), { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (j) {
        var card = j && j.card;
        if (!card) return;
        var g = document.getElementById("greeting");
        g.textContent = "";
        var h = document.createElement("div"); h.className = "title";
        h.textContent = "您好！您所在的" + card.node + "由以下几位负责：";
        g.appendChild(h);
        (card.contacts || []).forEach(function (c) {
          var line = document.createElement("div"); line.className = "contact";
          var who = document.createElement("span"); who.textContent = c.role + "：" + c.name + " ";
          line.appendChild(who);
          if (c.phone) {
            var a = document.createElement("a"); a.className = "tel call";
            a.href = "tel:" + c.phone; a.textContent = "打电话 " + c.phone;
            line.appendChild(a);
          }
          g.appendChild(line);
        });
        if (card.office_hours) {
          var oh = document.createElement("div"); oh.textContent = "办公时间：" + card.office_hours; g.appendChild(oh);
        }
        var how = document.createElement("div"); how.className = "how";
        how.textContent = "有问题直接在下面说话、写字或拍照发送，邻长会尽快答复您。";
        g.appendChild(how);
        g.hidden = false;
        scrollDown();
      }, function () { /* the greeting is a help, not a need */ });
  }

  function showAttached() {
    var parts = [];
    if (photo.files[0]) parts.push("照片：" + photo.files[0].name);
    if (voice.files[0]) parts.push("语音：" + voice.files[0].name);
    if (recorded) parts.push("录音 " + Math.round(recorded.size / 1024) + "KB");
    if (location) parts.push("位置已附上");
    attached.textContent = parts.join("　");
  }
  photo.addEventListener("change", showAttached);
  voice.addEventListener("change", showAttached);

  document.getElementById("reply-cancel").addEventListener("click", function () {
    replying = null; document.getElementById("replying").hidden = true;
  });

  document.getElementById("locate").addEventListener("click", function () {
    if (!navigator.geolocation) { say("这个浏览器不能取位置"); return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      location = [pos.coords.latitude, pos.coords.longitude]; showAttached();
    }, function () { say("没有取到位置，请允许浏览器使用位置"); }, { timeout: 15000 });
  });

  var recorder = null;
  document.getElementById("record").addEventListener("click", function () {
    var btn = this;
    if (recorder) { recorder.stop(); return; }
    if (!navigator.mediaDevices || !window.MediaRecorder) { say("这个浏览器不能录音，请选择语音文件"); return; }
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = function (e) { chunks.push(e.data); };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        recorded = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
        recorder = null; btn.classList.remove("on"); btn.textContent = "按这里说话（录音）"; showAttached();
      };
      recorder.start(); btn.classList.add("on"); btn.textContent = "说完了，停止录音";
    }, function () { say("没有麦克风权限"); });
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var words = text.value.trim();
    if (!words && !photo.files[0] && !voice.files[0] && !recorded && !location) {
      say("请先写几句话，或者录音、选一张照片，再按发送");
      text.focus();
      return;
    }
    var it = { client_id: newId(), text: words, photo: photo.files[0] || null, location: location,
               replying: replying };
    if (voice.files[0]) { it.voice = voice.files[0]; it.voiceName = voice.files[0].name; }
    else if (recorded) { it.voice = recorded; it.voiceName = recorded.type.indexOf("ogg") >= 0 ? "voice.ogg" : "voice.webm"; }
    // The words now wait in the log (and in localStorage) until the server has them.
    text.value = ""; photo.value = ""; voice.value = ""; recorded = null; location = null;
    replying = null; document.getElementById("replying").hidden = true; showAttached();
    say("");
    queue(it);
  });
  text.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });

  document.getElementById("phone-form").addEventListener("submit", function (e) {
    e.preventDefault();
    postJson("/chat/phone", { phone: document.getElementById("phone").value })
      .then(function (j) { if (j && j.message) say(j.message); });
  });
  document.getElementById("code-send").addEventListener("click", function () {
    postJson("/chat/code", { code: document.getElementById("code").value })
      .then(function (j) { if (j && j.ok) document.getElementById("phone-form").hidden = true; });
  });

  greet();
  listen();
})();
