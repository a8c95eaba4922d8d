// The web chat page: send text, photos, voice and locations; press buttons; reply to case cards;
// show the bot's messages as they arrive (server-sent events). No build step, no libraries.
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
  var replying = null, location = null, recorded = null, shown = {};

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

  // A retried POST carries the same client id: the server makes one case of it.
  function post(url, payload, isForm, tries) {
    tries = tries || 0;
    var opts = { method: "POST", credentials: "same-origin", body: payload,
                 headers: headers(isForm ? {} : { "Content-Type": "application/json" }) };
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) say(j.error || ("发送失败（" + r.status + "）"));
        else say("");
        return j;
      });
    }, function () {
      if (tries < 3) return new Promise(function (ok) { setTimeout(ok, 1000 * (tries + 1)); })
        .then(function () { return post(url, payload, isForm, tries + 1); });
      say("网络不通，请稍后再试");
    });
  }

  function render(m) {
    if (m.edit_of) {
      var old = shown[m.edit_of];
      if (old) fill(old, m);
      return;
    }
    if (shown[m.id]) return;
    var el = document.createElement("div");
    shown[m.id] = el;
    fill(el, m);
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    if (m.options && m.options.request_contact) document.getElementById("phone-form").hidden = false;
  }

  // The bot's own links (a /login sign-in, a /join invite) become tappable; only links to this
  // very site, so a resident's typed address never turns into a link in a leader's chat.
  function linkify(el) {
    var text = el.textContent, at = 0, re = /https?:\/\/[^\s，。）]+/g, hit;
    var origin = window.location.origin + "/";
    if (text.indexOf(origin) < 0) return;
    el.textContent = "";
    while ((hit = re.exec(text)) !== null) {
      if (hit[0].indexOf(origin) !== 0) continue;
      el.appendChild(document.createTextNode(text.slice(at, hit.index)));
      var a = document.createElement("a");
      a.href = hit[0]; a.textContent = hit[0]; a.rel = "noreferrer"; a.target = "_blank";
      el.appendChild(a);
      at = hit.index + hit[0].length;
    }
    el.appendChild(document.createTextNode(text.slice(at)));
  }

  function fill(el, m) {
    var o = m.options || {};
    el.className = "msg " + (m.dir === "inbound" ? "inbound" : "outbound") +
      (o.card ? " card" : "") + (o.error ? " error" : "");
    el.dataset.id = m.edit_of || m.id;
    el.textContent = m.text || (o.press ? "（按下了按钮）" : "");
    if (m.dir !== "inbound") linkify(el);
    if (o.photo) {
      var img = document.createElement("img");
      img.src = q("/chat/media/" + o.photo); img.alt = "照片"; el.appendChild(img);
    }
    if (o.voice) {
      var au = document.createElement("audio");
      au.controls = true; au.src = q("/chat/media/" + o.voice); el.appendChild(au);
    }
    if (o.location) {
      var p = document.createElement("div");
      p.textContent = "📍 " + o.location[0].toFixed(5) + ", " + o.location[1].toFixed(5);
      el.appendChild(p);
    }
    if (m.actions && m.actions.length) {
      var row = document.createElement("div");
      row.className = "actions";
      m.actions.forEach(function (a) {
        var b = document.createElement("button");
        b.type = "button"; b.textContent = a.label;
        b.addEventListener("click", function () {
          post("/chat/press", JSON.stringify({ client_id: newId(), action: a.action,
            case_id: a.case_id, version: a.version, arg: a.arg === undefined ? null : a.arg,
            message_id: String(m.id) }), false);
        });
        row.appendChild(b);
      });
      el.appendChild(row);
    }
    if (m.dir !== "inbound" && m.case_id && /工单#\d+/.test(m.text || "")) {
      var r = document.createElement("button");
      r.type = "button"; r.className = "reply"; r.textContent = "↩ 回复这条";
      r.addEventListener("click", function () {
        replying = { text: m.text, id: String(m.edit_of || m.id) };
        document.getElementById("replying-text").textContent = m.text.split("\n")[0];
        document.getElementById("replying").hidden = false;
        text.focus();
      });
      el.appendChild(r);
    }
  }

  function listen() {
    var es = new EventSource(q("/chat/events"));
    es.addEventListener("msg", function (e) { render(JSON.parse(e.data)); });
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
        recorder = null; btn.classList.remove("on"); btn.textContent = "🎤 录音"; showAttached();
      };
      recorder.start(); btn.classList.add("on"); btn.textContent = "⏹ 停止录音";
    }, function () { say("没有麦克风权限"); });
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var fd = new FormData();
    fd.append("client_id", newId());
    fd.append("text", text.value);
    if (photo.files[0]) fd.append("photo", photo.files[0]);
    if (voice.files[0]) fd.append("voice", voice.files[0]);
    else if (recorded) fd.append("voice", recorded, recorded.type.indexOf("ogg") >= 0 ? "voice.ogg" : "voice.webm");
    if (location) { fd.append("lat", location[0]); fd.append("lon", location[1]); }
    if (replying) { fd.append("reply_to_text", replying.text); fd.append("reply_to_message_id", replying.id); }
    if (!text.value.trim() && !photo.files[0] && !voice.files[0] && !recorded && !location) return;
    var btn = document.getElementById("send");
    btn.disabled = true;
    post("/chat/send", fd, true).then(function () {
      btn.disabled = false;
      text.value = ""; photo.value = ""; voice.value = ""; recorded = null; location = null;
      replying = null; document.getElementById("replying").hidden = true; showAttached();
    });
  });
  text.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });

  document.getElementById("phone-form").addEventListener("submit", function (e) {
    e.preventDefault();
    post("/chat/phone", JSON.stringify({ phone: document.getElementById("phone").value }), false)
      .then(function (j) { if (j && j.message) say(j.message); });
  });
  document.getElementById("code-send").addEventListener("click", function () {
    post("/chat/code", JSON.stringify({ code: document.getElementById("code").value }), false)
      .then(function (j) { if (j && j.ok) document.getElementById("phone-form").hidden = true; });
  });

  listen();
})();
