/* vidret-milvus review page: each target video in a player whose progress bar shows the
   played part white, the unplayed part black and the copied segments grey, with triangle
   markers at each segment's start and end that seek the player when clicked (patent
   FIG. 1b / 1c). The query's own bar marks its copied parts too.
   Two modes: served by `vidret-milvus serve` (form, /api/...), or a static report written by
   `vidret-milvus search --report` (the data is inlined as window.VIDRET_DATA). */
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

  /* A player's timeline: bar (black unplayed, white played, grey segments, playhead) and a
     row of triangle markers under it, one at each segment's start and end. */
  function timeline(video, duration, spans, name) {
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
          "aria-label": name + ": segment " + (i + 1) + " " + kind + " at " + fmt(t),
          title: "segment " + (i + 1) + " " + kind + " " + fmt(t),
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
    return el("video", { src: url, controls: "", preload: "metadata", class: "player", "aria-label": label });
  }

  function basename(p) {
    return String(p).split(/[\\/]/).pop();
  }

  function render(data, root) {
    root.textContent = "";
    var copies = data.results.filter(function (r) { return r.is_copy; });
    // The query: its copied parts (union over the copies' segments).
    var qspans = [];
    copies.forEach(function (r) {
      r.segments.forEach(function (g) {
        qspans.push({ start: g.query_start, end: Math.min(g.query_end, data.query_duration),
          title: basename(r.path) + " " + fmt(g.ref_start) + "-" + fmt(g.ref_end) });
      });
    });
    qspans = union(qspans);
    var qname = data.query_name || basename(data.query);
    var qvideo = player(data.query_url, "query " + qname);
    var qcard = el("section", { class: "card query", id: "query-card" },
      el("h2", { text: "Query: " + qname }),
      el("div", { class: "meta", text: data.query_duration.toFixed(1) + " s; " +
        (qspans.length ? "copied parts marked grey" : "no copied part found") }),
      qvideo, timeline(qvideo, data.query_duration, qspans, "query"));
    root.append(qcard);

    var list = el("div", { class: "results" });
    if (!data.results.length) list.append(el("p", { class: "empty", text: "No candidate video." }));
    data.results.forEach(function (r, i) {
      var v = player(r.url, "result " + (i + 1) + " " + basename(r.path));
      var spans = r.segments.map(function (g, k) {
        return { start: g.ref_start, end: Math.min(g.ref_end, r.duration),
          title: "segment " + (k + 1) + ": query " + fmt(g.query_start) + "-" + fmt(g.query_end) };
      });
      var segs = el("ol", { class: "segments" });
      r.segments.forEach(function (g, k) {
        var go = el("button", { type: "button", class: "compare", text: "show",
          title: "seek both players to the start of this segment" });
        go.addEventListener("click", function () { seek(v, g.ref_start); seek(qvideo, g.query_start); });
        segs.append(el("li", {},
          "query " + fmt(g.query_start) + "-" + fmt(g.query_end) + " \u2192 reference " + fmt(g.ref_start) +
          "-" + fmt(g.ref_end) + " (similarity " + g.score.toFixed(2) + ") ", go));
      });
      list.append(el("section", { class: "card result" + (r.is_copy ? " copy" : ""), "data-video-id": r.video_id, "data-duration": r.duration },
        el("h2", {},
          el("span", { class: "rank", text: "#" + (i + 1) }), " ",
          el("span", { class: "name", text: basename(r.path) }), " ",
          el("span", { class: "badge " + (r.is_copy ? "yes" : "no"), text: r.is_copy ? "copy" : "not a copy" })),
        el("div", { class: "meta", text: "score " + r.score.toFixed(3) + " \u00b7 repetition " +
          r.repetition_degree.toFixed(2) + " \u00b7 " + r.duration.toFixed(1) + " s \u00b7 " + r.path }),
        v, timeline(v, r.duration, spans, "result " + (i + 1)),
        r.segments.length ? segs : el("div", { class: "meta", text: "no segment" })));
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
      var ms = render(data, root);
      var n = data.results.filter(function (r) { return r.is_copy; }).length;
      status(data.results.length + " candidates, " + n + " copies" + (ms ? " (" + Math.round(ms) + " ms)" : ""));
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
