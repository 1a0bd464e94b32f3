/* Northwind Goods: a small multi-page shop for browser-agent scenarios.
 *
 * Everything is rendered synchronously before the load event, so a snapshot taken after
 * navigation sees the finished page. The cart, the cookie choice, the last search and the
 * orders live in localStorage. window.__teachState() exposes them for task checks only.
 */
(function () {
  "use strict";

  var CATALOGUE = window.CATALOGUE;
  var PRODUCTS = CATALOGUE.products;
  var BY_ID = {};
  PRODUCTS.forEach(function (p) { BY_ID[p.id] = p; });
  var PAGE_SIZE = 12;
  var MAX_QTY = 10;
  var page = document.body.getAttribute("data-page");
  var params = new URLSearchParams(location.search);

  // -- storage ----------------------------------------------------------------------------
  function load(key, fallback) {
    try {
      var raw = window.localStorage.getItem("shop." + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }
  function save(key, value) {
    window.localStorage.setItem("shop." + key, JSON.stringify(value));
  }
  function getCart() {
    return load("cart", []).filter(function (line) { return BY_ID[line.id]; });
  }
  function setCart(lines) {
    save("cart", lines);
    updateCartLink();
  }
  function addToCart(id, qty) {
    var lines = getCart();
    var line = lines.find(function (l) { return l.id === id; });
    if (line) {
      line.qty = Math.min(MAX_QTY, line.qty + qty);
    } else {
      lines.push({ id: id, qty: Math.min(MAX_QTY, qty) });
    }
    setCart(lines);
  }
  function cartTotal(lines) {
    var total = 0;
    lines.forEach(function (l) { total += BY_ID[l.id].price * l.qty; });
    return Math.round(total * 100) / 100;
  }

  // -- helpers ----------------------------------------------------------------------------
  function money(n) { return "$" + n.toFixed(2); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "hidden") node.hidden = !!attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function titleCase(s) { return s.charAt(0).toUpperCase() + s.slice(1); }
  var toastTimer = null;
  function toast(message) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.classList.add("visible");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.classList.remove("visible"); }, 4000);
  }
  function updateCartLink() {
    var link = document.getElementById("cart-link");
    if (!link) return;
    var count = 0;
    getCart().forEach(function (l) { count += l.qty; });
    link.textContent = "Cart (" + count + ")";
  }

  // -- cookie banner ----------------------------------------------------------------------
  function cookieBanner() {
    if (page === "cookies" || load("consent", null) !== null) return;
    var overlay = el("div", { class: "cookie-overlay", id: "cookie-overlay" }, [
      el("section", {
        class: "cookie-banner",
        role: "dialog",
        "aria-modal": "true",
        "aria-labelledby": "cookie-title",
        "aria-describedby": "cookie-text",
      }, [
        el("h2", { id: "cookie-title", text: "We value your privacy" }),
        el("p", {
          id: "cookie-text",
          text: "We use cookies to keep your cart and, with your consent, to measure how the " +
            "shop is used. Choose whether to allow optional cookies.",
        }),
        el("div", { class: "cookie-actions" }, [
          el("button", { type: "button", id: "cookie-accept", text: "Accept all" }),
          el("button", { type: "button", id: "cookie-reject", text: "Reject all" }),
          el("a", { href: "cookies.html", text: "Learn more" }),
        ]),
      ]),
    ]);
    document.body.appendChild(overlay);
    function choose(value) {
      save("consent", value);
      overlay.remove();
      var q = document.getElementById("q");
      if (q) q.focus();
    }
    document.getElementById("cookie-accept").addEventListener("click", function () {
      choose("accepted");
    });
    document.getElementById("cookie-reject").addEventListener("click", function () {
      choose("rejected");
    });
  }

  // -- product list -----------------------------------------------------------------------
  var listing = null; // what the index page shows, for __teachState

  function matches(product, q) {
    var hay = (product.name + " " + product.category).toLowerCase();
    return q.toLowerCase().split(/\s+/).filter(Boolean).every(function (w) {
      return hay.indexOf(w) !== -1;
    });
  }

  function addButton(product) {
    var button = el("button", {
      type: "button",
      class: "add",
      "aria-label": "Add " + product.name + " to cart",
      text: "Add to cart",
    });
    button.addEventListener("click", function () {
      addToCart(product.id, 1);
      toast(product.name + " added to your cart");
    });
    return button;
  }

  function renderIndex() {
    var q = (params.get("q") || "").trim();
    var category = params.get("category") || "";
    var maxRaw = (params.get("max") || "").trim();
    var sort = params.get("sort") || "featured";
    var pageNo = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    document.getElementById("q").value = q;
    document.getElementById("filter-q").value = q;
    document.getElementById("category").value = category;
    document.getElementById("max").value = maxRaw;
    document.getElementById("sort").value = sort;
    if (q) save("lastSearch", q);

    var max = null;
    if (maxRaw) {
      max = Number(maxRaw);
      if (!isFinite(max) || max < 0) {
        max = null;
        var input = document.getElementById("max");
        var error = document.getElementById("max-error");
        input.setAttribute("aria-invalid", "true");
        error.textContent = "Enter a price like 15 or 15.50";
        error.hidden = false;
      }
    }
    var items = PRODUCTS.filter(function (p) {
      return (!q || matches(p, q)) && (!category || p.category === category) &&
        (max === null || p.price <= max);
    });
    if (sort === "price-asc") items.sort(function (a, b) { return a.price - b.price; });
    if (sort === "price-desc") items.sort(function (a, b) { return b.price - a.price; });
    if (sort === "name") items.sort(function (a, b) { return a.name.localeCompare(b.name); });
    var pages = Math.max(1, Math.ceil(items.length / PAGE_SIZE));
    pageNo = Math.min(pageNo, pages);
    var shown = items.slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE);
    listing = {
      q: q, category: category, max: max, sort: sort, page: pageNo, pages: pages,
      total: items.length, results: shown.map(function (p) { return p.id; }),
    };

    var title = document.getElementById("results-title");
    title.textContent = q ? "Results for \u201c" + q + "\u201d" : (
      category ? titleCase(category) : "Products");
    document.title = title.textContent + " \u2013 Northwind Goods";
    document.getElementById("result-count").textContent =
      items.length === 1 ? "1 product" : items.length + " products";

    var list = document.getElementById("product-list");
    if (!shown.length) {
      list.replaceWith(el("p", { id: "product-list", text: "No products match your search." }));
    }
    shown.forEach(function (p) {
      var href = "product.html?id=" + encodeURIComponent(p.id);
      list.appendChild(el("li", {}, [
        el("article", { class: "card", "aria-labelledby": "name-" + p.id }, [
          el("h2", { id: "name-" + p.id }, [el("a", { href: href, text: p.name })]),
          el("p", { class: "price", text: money(p.price) }),
          el("p", { class: "category", text: titleCase(p.category) }),
          addButton(p),
        ]),
      ]));
    });

    var nav = document.getElementById("pagination");
    if (pages > 1) {
      var base = new URLSearchParams(location.search);
      function pageLink(n, label) {
        base.set("page", String(n));
        return el("a", { href: "index.html?" + base.toString(), text: label });
      }
      if (pageNo > 1) nav.appendChild(pageLink(pageNo - 1, "Previous page"));
      nav.appendChild(el("span", { text: " Page " + pageNo + " of " + pages + " " }));
      if (pageNo < pages) nav.appendChild(pageLink(pageNo + 1, "Next page"));
    } else {
      nav.remove();
    }
  }

  // -- product page -----------------------------------------------------------------------
  function renderProduct() {
    var product = BY_ID[params.get("id") || ""];
    var box = document.getElementById("product");
    if (!product) {
      box.appendChild(el("h1", { text: "Product not found" }));
      box.appendChild(el("p", { text: "We could not find that product. It may have been removed." }));
      document.title = "Product not found \u2013 Northwind Goods";
      return;
    }
    document.title = product.name + " \u2013 Northwind Goods";
    var qty = el("input", {
      type: "number", id: "qty", min: "1", max: String(MAX_QTY), value: "1",
      "aria-describedby": "qty-error",
    });
    var error = el("p", { class: "error", id: "qty-error", hidden: true });
    var add = el("button", { type: "button", text: "Add to cart" });
    add.addEventListener("click", function () {
      var n = Number(qty.value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_QTY) {
        qty.setAttribute("aria-invalid", "true");
        error.textContent = "Quantity must be a whole number from 1 to " + MAX_QTY;
        error.hidden = false;
        error.setAttribute("role", "alert");
        return;
      }
      qty.removeAttribute("aria-invalid");
      error.hidden = true;
      addToCart(product.id, n);
      toast("Added " + n + " \u00d7 " + product.name + " to your cart");
    });
    box.appendChild(el("h1", { text: product.name }));
    box.appendChild(el("p", { class: "price", text: money(product.price) }));
    box.appendChild(el("p", { class: "category", text: "Category: " + titleCase(product.category) }));
    box.appendChild(el("p", { class: "description", text: product.description }));
    box.appendChild(el("div", { class: "buy" }, [
      el("label", { for: "qty", text: "Quantity" }), qty, add, error,
    ]));
  }

  // -- cart -------------------------------------------------------------------------------
  function renderCart() {
    var box = document.getElementById("cart");
    box.textContent = "";
    var lines = getCart();
    if (!lines.length) {
      box.appendChild(el("p", { text: "Your cart is empty." }));
      box.appendChild(el("p", {}, [el("a", { href: "index.html", text: "Continue shopping" })]));
      return;
    }
    var body = el("tbody");
    var totalLine = el("p", { id: "cart-total", class: "total" });
    function refreshTotal() {
      totalLine.textContent = "Cart total: " + money(cartTotal(getCart()));
    }
    lines.forEach(function (line) {
      var p = BY_ID[line.id];
      var lineTotal = el("td", { text: money(p.price * line.qty) });
      var qty = el("input", {
        type: "number", min: "1", max: String(MAX_QTY), value: String(line.qty),
        "aria-label": "Quantity for " + p.name, "aria-describedby": "err-" + p.id,
      });
      var error = el("span", { class: "error", id: "err-" + p.id, hidden: true });
      function onQty() {
        var n = Number(qty.value);
        if (!Number.isInteger(n) || n < 1 || n > MAX_QTY) {
          qty.setAttribute("aria-invalid", "true");
          error.textContent = "Quantity must be a whole number from 1 to " + MAX_QTY;
          error.hidden = false;
          return;
        }
        qty.removeAttribute("aria-invalid");
        error.hidden = true;
        var all = getCart();
        all.forEach(function (l) { if (l.id === p.id) l.qty = n; });
        setCart(all);
        lineTotal.textContent = money(p.price * n);
        refreshTotal();
      }
      qty.addEventListener("input", onQty);
      qty.addEventListener("change", onQty);
      var remove = el("button", {
        type: "button", "aria-label": "Remove " + p.name, text: "Remove",
      });
      remove.addEventListener("click", function () {
        setCart(getCart().filter(function (l) { return l.id !== p.id; }));
        toast(p.name + " removed from your cart");
        renderCart();
      });
      body.appendChild(el("tr", {}, [
        el("th", { scope: "row" }, [
          el("a", { href: "product.html?id=" + encodeURIComponent(p.id), text: p.name }),
        ]),
        el("td", { text: money(p.price) }),
        el("td", {}, [qty, error]),
        lineTotal,
        el("td", {}, [remove]),
      ]));
    });
    var table = el("table", { class: "cart" }, [
      el("caption", { text: "Items in your cart" }),
      el("thead", {}, [el("tr", {}, ["Product", "Price", "Quantity", "Subtotal", "Actions"].map(
        function (h) { return el("th", { scope: "col", text: h }); }))]),
      body,
    ]);
    box.appendChild(table);
    box.appendChild(totalLine);
    refreshTotal();
    box.appendChild(el("p", { class: "actions" }, [
      el("a", { href: "index.html", text: "Continue shopping" }), " ",
      el("a", { href: "checkout.html", class: "button", text: "Checkout" }),
    ]));
  }

  // -- checkout ---------------------------------------------------------------------------
  function renderCheckout() {
    var box = document.getElementById("checkout");
    var lines = getCart();
    if (!lines.length) {
      box.appendChild(el("p", { text: "Your cart is empty, so there is nothing to check out." }));
      box.appendChild(el("p", {}, [el("a", { href: "index.html", text: "Continue shopping" })]));
      return;
    }
    var list = el("ul", { "aria-label": "Order summary" });
    lines.forEach(function (l) {
      var p = BY_ID[l.id];
      list.appendChild(el("li", { text: l.qty + " \u00d7 " + p.name + " \u2013 " + money(p.price * l.qty) }));
    });
    var place = el("button", { type: "button", text: "Place order" });
    place.addEventListener("click", function () {
      var orders = load("orders", []);
      var number = "NW-" + (1001 + orders.length);
      orders.push({ number: number, items: getCart(), total: cartTotal(getCart()) });
      save("orders", orders);
      setCart([]);
      box.textContent = "";
      document.getElementById("checkout-title").textContent = "Thank you for your order";
      box.appendChild(el("p", { role: "status", text: "Order " + number + " has been placed." }));
      box.appendChild(el("p", {}, [el("a", { href: "index.html", text: "Continue shopping" })]));
    });
    box.appendChild(list);
    box.appendChild(el("p", { class: "total", text: "Total: " + money(cartTotal(lines)) }));
    box.appendChild(place);
  }

  // -- state for checks -------------------------------------------------------------------
  window.__teachState = function () {
    var lines = getCart();
    var count = 0;
    lines.forEach(function (l) { count += l.qty; });
    return {
      site: "shop",
      page: page,
      path: location.pathname + location.search,
      cookies: load("consent", null),
      cart: lines.map(function (l) {
        var p = BY_ID[l.id];
        return { id: l.id, name: p.name, price: p.price, qty: l.qty };
      }),
      cartCount: count,
      cartTotal: cartTotal(lines),
      listing: listing,
      lastSearch: load("lastSearch", null),
      product: page === "product" ? (params.get("id") || null) : null,
      orders: load("orders", []),
    };
  };

  updateCartLink();
  if (page === "index") renderIndex();
  if (page === "product") renderProduct();
  if (page === "cart") renderCart();
  if (page === "checkout") renderCheckout();
  cookieBanner();
})();
