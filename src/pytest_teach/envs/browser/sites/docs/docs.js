/* Lumen docs: sidebar, pages with in-page navigation, and search.
 *
 * Rendered synchronously before the load event. The last search and the pages visited live in
 * sessionStorage; window.__teachState() exposes them for task checks only.
 */
(function () {
  "use strict";

  var DOCS = window.DOCS;
  var ORDER = [];
  DOCS.groups.forEach(function (g) { ORDER = ORDER.concat(g.pages); });
  var kind = document.body.getAttribute("data-kind");
  var params = new URLSearchParams(location.search);
  var slug = kind === "page" ? (params.get("p") || "introduction") : null;
  var found = slug === null || Object.prototype.hasOwnProperty.call(DOCS.pages, slug);
  var searchState = null;

  function load(key, fallback) {
    try {
      var raw = window.sessionStorage.getItem("docs." + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }
  function save(key, value) {
    window.sessionStorage.setItem("docs." + key, JSON.stringify(value));
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function href(page, section) {
    return "page.html?p=" + encodeURIComponent(page) + (section ? "#" + section : "");
  }

  function renderSidebar() {
    var nav = document.getElementById("sidebar");
    DOCS.groups.forEach(function (group) {
      nav.appendChild(el("h2", { text: group.title }));
      var list = el("ul");
      group.pages.forEach(function (p) {
        var attrs = { href: href(p), text: DOCS.pages[p].title };
        if (p === slug) attrs["aria-current"] = "page";
        list.appendChild(el("li", {}, [el("a", attrs)]));
      });
      nav.appendChild(list);
    });
  }

  function renderPage() {
    var main = document.getElementById("main");
    var toc = document.getElementById("toc");
    if (!found) {
      main.appendChild(el("h1", { text: "Page not found" }));
      main.appendChild(el("p", { text: "There is no page called \u201c" + slug + "\u201d." }));
      document.title = "Page not found \u2013 Lumen docs";
      toc.remove();
      return;
    }
    var doc = DOCS.pages[slug];
    document.title = doc.title + " \u2013 Lumen docs";
    main.appendChild(el("h1", { text: doc.title }));
    toc.appendChild(el("h2", { text: "On this page" }));
    var tocList = el("ul");
    doc.sections.forEach(function (s) {
      main.appendChild(el("h2", { id: s[0], text: s[1] }));
      s[2].forEach(function (text) { main.appendChild(el("p", { text: text })); });
      tocList.appendChild(el("li", {}, [el("a", { href: "#" + s[0], text: s[1] })]));
    });
    toc.appendChild(tocList);
    var i = ORDER.indexOf(slug);
    var pager = el("nav", { class: "pager", "aria-label": "Previous and next pages" });
    if (i > 0) {
      pager.appendChild(el("a", {
        href: href(ORDER[i - 1]), text: "Previous: " + DOCS.pages[ORDER[i - 1]].title,
      }));
    }
    if (i < ORDER.length - 1) {
      pager.appendChild(el("a", {
        href: href(ORDER[i + 1]), text: "Next: " + DOCS.pages[ORDER[i + 1]].title,
      }));
    }
    main.appendChild(pager);
    var visited = load("visited", []);
    if (visited[visited.length - 1] !== slug) {
      visited.push(slug);
      save("visited", visited);
    }
  }

  function search(q) {
    var words = q.toLowerCase().split(/\s+/).filter(Boolean);
    var hits = [];
    ORDER.forEach(function (p, order) {
      var doc = DOCS.pages[p];
      var titleScore = 0;
      words.forEach(function (w) {
        if (doc.title.toLowerCase().indexOf(w) !== -1) titleScore += 5;
      });
      var best = null;
      var total = titleScore;
      doc.sections.forEach(function (s) {
        var score = 0;
        var body = s[2].join(" ").toLowerCase();
        words.forEach(function (w) {
          if (s[1].toLowerCase().indexOf(w) !== -1) score += 3;
          if (body.indexOf(w) !== -1) score += 1;
        });
        total += score;
        if (score > 0 && (best === null || score > best.score)) {
          best = { id: s[0], heading: s[1], text: s[2].join(" "), score: score };
        }
      });
      if (total > 0) hits.push({ page: p, order: order, score: total, best: best });
    });
    hits.sort(function (a, b) { return b.score - a.score || a.order - b.order; });
    return hits.slice(0, 10);
  }

  function renderSearch() {
    var q = (params.get("q") || "").trim();
    var main = document.getElementById("main");
    document.getElementById("toc").remove();
    document.getElementById("q").value = q;
    main.appendChild(el("h1", { text: "Search results" }));
    if (!q) {
      main.appendChild(el("p", { role: "status", text: "Type a word to search the docs." }));
      searchState = { query: "", results: [] };
      return;
    }
    save("lastSearch", q);
    var hits = search(q);
    searchState = { query: q, results: hits.map(function (h) { return h.page; }) };
    document.title = q + " \u2013 Search \u2013 Lumen docs";
    main.appendChild(el("p", {
      role: "status",
      text: (hits.length === 1 ? "1 result" : hits.length + " results") +
        " for \u201c" + q + "\u201d",
    }));
    if (!hits.length) return;
    var list = el("ol", { class: "results", "aria-label": "Search results" });
    hits.forEach(function (h) {
      var doc = DOCS.pages[h.page];
      var section = h.best ? h.best.id : null;
      var snippet = h.best ? h.best.heading + ": " + h.best.text : doc.sections[0][2][0];
      if (snippet.length > 160) snippet = snippet.slice(0, 157) + "\u2026";
      list.appendChild(el("li", {}, [
        el("a", { href: href(h.page, section), text: doc.title }),
        el("p", { class: "snippet", text: snippet }),
      ]));
    });
    main.appendChild(list);
  }

  window.__teachState = function () {
    var doc = slug && found ? DOCS.pages[slug] : null;
    return {
      site: "docs",
      page: kind === "search" ? "search" : (found ? slug : null),
      title: doc ? doc.title : document.title,
      hash: location.hash.replace(/^#/, ""),
      search: searchState,
      lastSearch: load("lastSearch", null),
      visited: load("visited", []),
    };
  };

  renderSidebar();
  if (kind === "page") renderPage();
  if (kind === "search") renderSearch();
})();
