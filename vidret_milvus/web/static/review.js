/* vidret-milvus review page: each target video in a player whose one progress bar shows the
   played part white, the unplayed part black and the copied segments grey, with triangle
   markers at each segment's start and end that seek the player when clicked (patent
   FIG. 1b / 1c). The query's own bar marks its copied parts too. The players have our own
   controls (play/pause, time, mute, volume, fullscreen) instead of the browser's, whose
   timeline would be a second, unmarked bar.
   Two modes: served by `vidret-milvus serve` (form, /api/..., the reviewer's verdicts), or a
   static report written by `vidret-milvus search --report/--report-dir` (the data is inlined as
   window.VIDRET_DATA; a result's "clip": {start, end} says its media is an excerpt of those
   seconds, and a result without "url" has no media in the report). */
(function () {
  "use strict";

  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "style") Object.assign(node.style, attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  function fmt(t) {
    var m = Math.floor(t / 60), s = t - 60 * m;
    return m + ":" + (s < 10 ? "0" : "") + s.toFixed(1);
  }

  function pct(t, duration) {
    return Math.max(0, Math.min(100, (100 * t) / duration)) + "%";
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many || one + "s");
  }

  /* Union of [start, end) spans, sorted. */
  function union(spans) {
    var s = spans.slice().sort(function (a, b) { return a.start - b.start; });
    var out = [];
    s.forEach(function (x) {
      var last = out[out.length - 1];
      if (last && x.start <= last.end) {
        last.end = Math.max(last.end, x.end);
        last.title += "; " + x.title;
      } else out.push({ start: x.start, end: x.end, title: x.title });
    });
    return out;
  }

  function seek(video, t) {
    video.currentTime = t;
  }

  /* Which seconds of the source a player's media holds: all of it, or an excerpt. */
  function mediaView(duration, clip) {
    if (clip && clip.end > clip.start) return { offset: clip.start, length: clip.end - clip.start, excerpt: true };
    return { offset: 0, length: duration, excerpt: false };
  }

  /* Source-time spans as media-time spans (an excerpt starts at view.offset). */
  function toMedia(spans, view) {
    return spans.map(function (sp) {
      return { start: Math.max(0, sp.start - view.offset), end: Math.min(view.length, sp.end - view.offset), title: sp.title,
        source: sp.start };
    }).filter(function (sp) { return sp.end > sp.start; });
  }

  /* A player's timeline: bar (black unplayed, white played, grey segments, playhead) and a
     row of triangle markers under it, one at each segment's start and end. Times here are the
     media's; the labels name the source's (view.offset added). */
  function timeline(video, duration, spans, name, view) {
    var offset = view ? view.offset : 0;
    var bar = el("div", { class: "bar", title: "click to seek" });
    var played = el("div", { class: "played" });
    bar.append(played);
    spans.forEach(function (sp, i) {
      bar.append(el("div", {
        class: "seg", "data-start": sp.start, "data-end": sp.end, title: sp.title,
        style: { left: pct(sp.start, duration), width: pct(sp.end - sp.start, duration) },
      }));
    });
    var head = el("div", { class: "playhead" });
    bar.append(head);
    var marks = el("div", { class: "markers" });
    spans.forEach(function (sp, i) {
      [["start", sp.start], ["end", sp.end]].forEach(function (pair) {
        var kind = pair[0], t = pair[1];
        var b = el("button", {
          type: "button", class: "marker " + kind, "data-time": t, "data-segment": i,
          "aria-label": name + ": segment " + (i + 1) + " " + kind + " at " + fmt(t + offset),
          title: "segment " + (i + 1) + " " + kind + " " + fmt(t + offset),
          style: { left: pct(t, duration) },
        });
        b.addEventListener("click", function () { seek(video, t); update(); });
        marks.append(b);
      });
    });
    function update() {
      var t = video.currentTime || 0;
      played.style.width = pct(t, duration);
      head.style.left = pct(t, duration);
    }
    ["timeupdate", "seeking", "seeked", "loadedmetadata", "pause"].forEach(function (ev) {
      video.addEventListener(ev, update);
    });
    video.addEventListener("play", function loop() {
      update();
      if (!video.paused && !video.ended) requestAnimationFrame(loop);
    });
    bar.addEventListener("click", function (e) {
      var r = bar.getBoundingClientRect();
      seek(video, ((e.clientX - r.left) / r.width) * duration);
      update();
    });
    update();
    return el("div", { class: "timeline" }, bar, marks);
  }

  function player(url, label) {
    // No `controls`: the browser's own would draw a second progress bar without the marks.
    return el("video", { src: url, preload: "metadata", playsinline: "", class: "player", "aria-label": label });
  }

  /* The player with its one marked timeline and our controls under it: play/pause, the time,
     mute, volume and fullscreen (of the whole box, so the marked bar stays in view). */
  function playerBox(video, duration, spans, name, view) {
    var offset = view ? view.offset : 0;
    var box = el("div", { class: "player-box" });
    var play = el("button", { type: "button", class: "ctl play", title: "play (click the picture too)", "aria-label": name + ": play", text: "\u25B6" });
    var time = el("span", { class: "time" });
    var mute = el("button", { type: "button", class: "ctl mute", title: "mute", "aria-label": name + ": mute", "aria-pressed": "false", text: "mute" });
    var volume = el("input", { type: "range", class: "volume", min: "0", max: "1", step: "0.05", value: "1", "aria-label": name + ": volume" });
    var full = el("button", { type: "button", class: "ctl fullscreen", title: "fullscreen (double-click the picture too)", "aria-label": name + ": fullscreen", text: "\u2922" });
    function toggle() {
      if (video.paused || video.ended) { var p = video.play(); if (p && p.catch) p.catch(function () {}); } else video.pause();
    }
    function fullscreen() {
      if (document.fullscreenElement === box) document.exitFullscreen();
      else if (box.requestFullscreen) box.requestFullscreen().catch(function () {});
    }
    function refresh() {
      var playing = !video.paused && !video.ended;
      play.textContent = playing ? "\u275A\u275A" : "\u25B6";
      play.setAttribute("aria-label", name + ": " + (playing ? "pause" : "play"));
      play.title = playing ? "pause" : "play";
      time.textContent = fmt(offset + (video.currentTime || 0)) + " / " + fmt(offset + duration);
      var muted = video.muted || video.volume === 0;
      mute.textContent = video.muted ? "unmute" : "mute";
      box.classList.toggle("silent", muted);
      mute.setAttribute("aria-pressed", String(video.muted));
      mute.title = video.muted ? "unmute" : "mute";
      if (parseFloat(volume.value) !== video.volume) volume.value = String(video.volume);
    }
    play.addEventListener("click", toggle);
    video.addEventListener("click", toggle);
    video.addEventListener("dblclick", fullscreen);
    mute.addEventListener("click", function () { video.muted = !video.muted; refresh(); });
    volume.addEventListener("input", function () {
      video.volume = parseFloat(volume.value);
      if (video.volume > 0 && video.muted) video.muted = false;
      refresh();
    });
    full.addEventListener("click", fullscreen);
    ["play", "pause", "ended", "timeupdate", "seeked", "loadedmetadata", "volumechange"].forEach(function (ev) {
      video.addEventListener(ev, refresh);
    });
    refresh();
    box.append(video, timeline(video, duration, spans, name, view),
      el("div", { class: "controls" }, play, time, el("span", { class: "fill" }), mute, volume, full));
    return box;
  }

  function basename(p) {
    return String(p).split(/[\\/]/).pop();
  }

  /* "3 candidates, 1 copy; #1 is the query itself" */
  function summary(data) {
    var self = -1, n = 0;
    data.results.forEach(function (r, i) {
      if (r.self_match) { if (self < 0) self = i; } else if (r.is_copy) n++;
    });
    return plural(data.results.length, "candidate") + ", " + plural(n, "copy", "copies") +
      (self >= 0 ? "; #" + (self + 1) + " is the query itself" : "");
  }

  var VERDICT_TEXT = { confirm: "confirmed copy", reject: "rejected" };

  /* Confirm / reject buttons of one result (served page only): clicking the active one clears it. */
  function verdictBox(data, r, card) {
    var box = el("div", { class: "verdict" });
    var label = el("span", { class: "verdict-label", role: "status" });
    var buttons = {};
    function show(v) {
      card.setAttribute("data-verdict", v || "");
      label.textContent = v ? VERDICT_TEXT[v] : "no verdict";
      Object.keys(buttons).forEach(function (k) { buttons[k].setAttribute("aria-pressed", String(k === v)); });
    }
    [["confirm", "Confirm copy"], ["reject", "Reject"]].forEach(function (pair) {
      var b = el("button", { type: "button", class: "vbtn " + pair[0], "data-verdict": pair[0], text: pair[1],
        title: pair[0] === "confirm" ? "this is a copy (click again to clear)" : "this is not a copy (click again to clear)" });
      b.addEventListener("click", function () {
        var want = card.getAttribute("data-verdict") === pair[0] ? "clear" : pair[0];
        box.classList.add("busy");
        postJson("/api/verdict", { query: data.query, video_id: r.video_id, verdict: want, search_id: data.search_id })
          .then(function (j) { r.verdict = j.verdict; show(j.verdict); })
          .catch(function (e) { label.textContent = "not saved: " + e.message; })
          .then(function () { box.classList.remove("busy"); });
      });
      buttons[pair[0]] = b;
      box.append(b);
    });
    box.append(label);
    show(r.verdict || null);
    return box;
  }

  function render(data, root, opts) {
    opts = opts || {};
    root.textContent = "";
    // The query: its copied parts (union over the copies' segments; the query itself excluded).
    var copies = data.results.filter(function (r) { return r.is_copy && !r.self_match; });
    var qspans = [];
    copies.forEach(function (r) {
      r.segments.forEach(function (g) {
        qspans.push({ start: g.query_start, end: Math.min(g.query_end, data.query_duration),
          title: basename(r.path) + " " + fmt(g.ref_start) + "-" + fmt(g.ref_end) });
      });
    });
    qspans = union(qspans);
    var qname = data.query_name || basename(data.query);
    var qview = mediaView(data.query_duration, data.query_clip);
    var qvideo = data.query_url ? player(data.query_url, "query " + qname) : null;
    var qcard = el("section", { class: "card query", id: "query-card", "data-duration": qview.length },
      el("h2", { text: "Query: " + qname }),
      el("div", { class: "meta", text: data.query_duration.toFixed(1) + " s; " +
        (qspans.length ? "copied parts marked grey" : "no copied part found") }),
      qvideo ? playerBox(qvideo, qview.length, toMedia(qspans, qview), "query", qview)
        : el("div", { class: "meta nomedia", text: "query video not included" }));
    root.append(qcard);

    var list = el("div", { class: "results" });
    if (!data.results.length) list.append(el("p", { class: "empty", text: "No candidate video." }));
    data.results.forEach(function (r, i) {
      var name = basename(r.path);
      var view = mediaView(r.duration, r.clip);
      var v = r.url ? player(r.url, "result " + (i + 1) + " " + name) : null;
      var spans = r.segments.map(function (g, k) {
        return { start: g.ref_start, end: Math.min(g.ref_end, r.duration),
          title: "segment " + (k + 1) + ": query " + fmt(g.query_start) + "-" + fmt(g.query_end) };
      });
      var segs = el("ol", { class: "segments" });
      r.segments.forEach(function (g, k) {
        var go = v ? el("button", { type: "button", class: "compare", text: "show",
          title: "seek both players to the start of this segment" }) : null;
        if (go) go.addEventListener("click", function () {
          seek(v, Math.max(0, g.ref_start - view.offset));
          if (qvideo) seek(qvideo, Math.max(0, g.query_start - qview.offset));
        });
        segs.append(el("li", {},
          "query " + fmt(g.query_start) + "-" + fmt(g.query_end) + " \u2192 reference " + fmt(g.ref_start) +
          "-" + fmt(g.ref_end) + " (similarity " + g.score.toFixed(2) + ") ", go));
      });
      var badge = r.self_match
        ? el("span", { class: "badge self", text: "the query itself", title: "the searched video (or the same file) finds itself" })
        : el("span", { class: "badge " + (r.is_copy ? "yes" : "no"), text: r.is_copy ? "copy" : "not a copy" });
      // Found through a region of the query (a picture-in-picture inset, the picture inside
      // bars or beside a caption band, a filmed screen, a crop), not the whole frame (views.py names them).
      var through = r.view && r.view !== "full"
        ? el("span", { class: "badge view", text: r.view.indexOf("box") === 0 ? "through an inset"
                         : r.view === "bars" ? "inside the bars" : r.view === "band" ? "beside a caption band"
                         : r.view === "screen" ? "on a filmed screen" : "through the " + r.view + " crop",
                       title: "matched through a region of the query (" + r.view + "), not the whole frame" })
        : null;
      var card = el("section", { class: "card result" + (r.is_copy ? " copy" : "") + (r.self_match ? " self" : ""),
        "data-video-id": r.video_id, "data-duration": view.length },
        el("h2", {},
          el("span", { class: "rank", text: "#" + (i + 1) }), " ",
          el("span", { class: "name", text: name }), " ", badge, through ? " " : null, through),
        el("div", { class: "meta", text: "score " + r.score.toFixed(3) + " \u00b7 repetition " +
          r.repetition_degree.toFixed(2) + " \u00b7 " + r.duration.toFixed(1) + " s \u00b7 " + r.path +
          (view.excerpt ? " \u00b7 excerpt " + fmt(view.offset) + "-" + fmt(view.offset + view.length) : "") }));
      if (v) card.append(playerBox(v, view.length, toMedia(spans, view), "result " + (i + 1), view));
      else card.append(el("div", { class: "meta nomedia", text: "video not included in this report (no matched segment)" }));
      card.append(r.segments.length ? segs : el("div", { class: "meta", text: "no segment" }));
      if (opts.verdicts) card.append(verdictBox(data, r, card));
      list.append(card);
    });
    root.append(list);
    var t = data.timing_ms || {};
    root.setAttribute("data-ready", "1");
    return t.total;
  }

  function status(text, isError) {
    var s = document.getElementById("status");
    if (s) { s.textContent = text; s.className = isError ? "error" : ""; }
  }

  function postJson(url, body) {
    return fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.statusText); return j; }); });
  }

  function runSearch(query) {
    var root = document.getElementById("view");
    root.removeAttribute("data-ready");
    status("Searching (fingerprinting the query)\u2026");
    var body = { query: query, mode: document.getElementById("mode").value,
      top_n: parseInt(document.getElementById("top-n").value, 10) || 10 };
    return postJson("/api/search", body).then(function (data) {
      var ms = render(data, root, { verdicts: true });
      status(summary(data) + (ms ? " (" + Math.round(ms) + " ms)" : ""));
      history.replaceState(null, "", "?q=" + encodeURIComponent(query));
    }).catch(function (e) { status("Search failed: " + e.message, true); });
  }

  function interactive() {
    var form = document.getElementById("query-form");
    var stored = document.getElementById("stored");
    fetch("/api/videos").then(function (r) { return r.json(); }).then(function (rows) {
      rows.forEach(function (v) {
        stored.append(el("option", { value: "video:" + v.video_id, text: v.name + " (" + v.duration.toFixed(1) + " s)" }));
      });
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var file = document.getElementById("upload").files[0];
      if (file) {
        status("Uploading " + file.name + "\u2026");
        fetch("/api/upload", { method: "POST", headers: { "X-Filename": encodeURIComponent(file.name) }, body: file })
          .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.statusText); return j; }); })
          .then(function (j) { return runSearch(j.query); })
          .catch(function (err) { status("Upload failed: " + err.message, true); });
      } else if (stored.value) {
        runSearch(stored.value);
      } else {
        status("Choose a file to upload or a stored video.", true);
      }
    });
    var q = new URLSearchParams(location.search).get("q");
    if (q) runSearch(q);
  }

  window.vidretRender = render;
  window.vidretSummary = summary;
  document.addEventListener("DOMContentLoaded", function () {
    if (window.VIDRET_DATA) {
      var form = document.getElementById("query-form");
      if (form) form.remove();
      render(window.VIDRET_DATA, document.getElementById("view"));
    } else {
      interactive();
    }
  });
})();
