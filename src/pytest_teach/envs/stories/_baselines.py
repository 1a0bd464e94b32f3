"""The HTML the scripted generators answer with, one snippet per intent id.

``ACCESSIBLE`` is semantic HTML with ARIA where HTML has no native element and small inline
scripts for the keyboard behaviour: it passes every story. ``DIV_SOUP`` is the same UI built
from ``div``/``span`` with ``onclick`` handlers and no roles, names or states: it looks alike
with a mouse and fails the accessibility, semantics and keyboard checks.
"""

from __future__ import annotations

__all__ = ["ACCESSIBLE", "DIV_SOUP"]

_SHOE_IMAGE = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='160' height='96'%3E"
    "%3Crect width='160' height='96' rx='8' fill='%232a6f97'/%3E"
    "%3Cpath d='M20 70h120v10H20z' fill='%23f2f2f2'/%3E%3C/svg%3E"
)

ACCESSIBLE: dict[str, str] = {
    "button": """\
<button type="button" id="save">Save changes</button>
<p role="status" id="save-status"></p>
<script>
(() => {
  const status = document.getElementById("save-status");
  document.getElementById("save").addEventListener("click", () => {
    status.textContent = "Saved";
  });
})();
</script>""",
    "toggle-switch": """\
<button type="button" role="switch" id="dark-mode" aria-checked="false">Dark mode</button>
<script>
(() => {
  const toggle = document.getElementById("dark-mode");
  toggle.addEventListener("click", () => {
    const on = toggle.getAttribute("aria-checked") === "true";
    toggle.setAttribute("aria-checked", String(!on));
  });
})();
</script>""",
    "card": f"""\
<article class="card" aria-labelledby="card-title">
  <img src="{_SHOE_IMAGE}" alt="Blue trail running shoes, side view" width="160" height="96">
  <h2 id="card-title">Trail Running Shoes</h2>
  <p>Lightweight shoes with a grippy sole for muddy trails.</p>
  <p>Price: <strong>$89</strong></p>
  <button type="button" id="add-to-cart">Add to cart</button>
  <p role="status" id="card-status"></p>
</article>
<script>
(() => {{
  const status = document.getElementById("card-status");
  document.getElementById("add-to-cart").addEventListener("click", () => {{
    status.textContent = "Added to cart";
  }});
}})();
</script>""",
    "dialog": """\
<button type="button" id="open-delete" aria-haspopup="dialog">Delete file</button>
<dialog id="delete-dialog" aria-labelledby="delete-title" aria-describedby="delete-message">
  <h2 id="delete-title">Delete file?</h2>
  <p id="delete-message">report.pdf will be deleted permanently.</p>
  <button type="button" id="cancel-delete">Cancel</button>
  <button type="button" id="confirm-delete">Delete</button>
</dialog>
<p role="status" id="delete-status"></p>
<script>
(() => {
  const opener = document.getElementById("open-delete");
  const dialog = document.getElementById("delete-dialog");
  const close = () => {
    dialog.close();
    opener.focus();
  };
  opener.addEventListener("click", () => {
    dialog.showModal();
    document.getElementById("cancel-delete").focus();
  });
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  document.getElementById("cancel-delete").addEventListener("click", close);
  document.getElementById("confirm-delete").addEventListener("click", () => {
    document.getElementById("delete-status").textContent = "report.pdf deleted";
    close();
  });
})();
</script>""",
    "tabs": """\
<div class="tabs">
  <div role="tablist" aria-label="Product details">
    <button type="button" role="tab" id="tab-overview" aria-selected="true"
            aria-controls="panel-overview" tabindex="0">Overview</button>
    <button type="button" role="tab" id="tab-specs" aria-selected="false"
            aria-controls="panel-specs" tabindex="-1">Specs</button>
    <button type="button" role="tab" id="tab-reviews" aria-selected="false"
            aria-controls="panel-reviews" tabindex="-1">Reviews</button>
  </div>
  <div role="tabpanel" id="panel-overview" aria-labelledby="tab-overview" tabindex="0">
    <p>A light trail shoe for long runs.</p>
  </div>
  <div role="tabpanel" id="panel-specs" aria-labelledby="tab-specs" tabindex="0" hidden>
    <p>Weight 260 g, drop 6 mm.</p>
  </div>
  <div role="tabpanel" id="panel-reviews" aria-labelledby="tab-reviews" tabindex="0" hidden>
    <p>4.6 out of 5 from 120 reviews.</p>
  </div>
</div>
<script>
(() => {
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  const select = (tab) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    tab.focus();
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const index = tabs.indexOf(tab);
      const moves = {
        ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1,
      };
      if (event.key in moves) {
        event.preventDefault();
        select(tabs[(moves[event.key] + tabs.length) % tabs.length]);
      }
    });
  }
})();
</script>""",
    "form-field-error": """\
<div class="field">
  <label for="email">Email</label>
  <input type="email" id="email" name="email" value="not-an-email" autocomplete="email"
         required aria-invalid="true" aria-describedby="email-error">
  <p id="email-error" class="error">Enter a valid email address</p>
</div>
<style>.error { color: #a4000f; }</style>""",
    "nav-menu": """\
<nav aria-label="Main">
  <button type="button" id="menu-button" aria-expanded="false"
          aria-controls="menu-links">Menu</button>
  <ul id="menu-links" hidden>
    <li><a href="/" aria-current="page">Home</a></li>
    <li><a href="/products">Products</a></li>
    <li><a href="/about">About</a></li>
    <li><a href="/contact">Contact</a></li>
  </ul>
</nav>
<script>
(() => {
  const button = document.getElementById("menu-button");
  const links = document.getElementById("menu-links");
  const show = (open) => {
    button.setAttribute("aria-expanded", String(open));
    links.hidden = !open;
  };
  button.addEventListener("click", () => show(links.hidden));
  button.parentElement.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !links.hidden) {
      show(false);
      button.focus();
    }
  });
})();
</script>""",
    "accordion": """\
<div class="accordion">
  <h2><button type="button" id="faq-1" aria-expanded="false"
      aria-controls="faq-1-panel">How long does shipping take?</button></h2>
  <div id="faq-1-panel" role="region" aria-labelledby="faq-1" hidden>
    <p>Orders arrive in 3 to 5 business days.</p>
  </div>
  <h2><button type="button" id="faq-2" aria-expanded="false"
      aria-controls="faq-2-panel">Can I return an item?</button></h2>
  <div id="faq-2-panel" role="region" aria-labelledby="faq-2" hidden>
    <p>Yes, within 30 days of delivery.</p>
  </div>
  <h2><button type="button" id="faq-3" aria-expanded="false"
      aria-controls="faq-3-panel">Do you ship internationally?</button></h2>
  <div id="faq-3-panel" role="region" aria-labelledby="faq-3" hidden>
    <p>We ship to 40 countries.</p>
  </div>
</div>
<script>
(() => {
  for (const button of document.querySelectorAll(".accordion button[aria-expanded]")) {
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      document.getElementById(button.getAttribute("aria-controls")).hidden = !open;
    });
  }
})();
</script>""",
    "checkbox-group": """\
<fieldset>
  <legend>Notifications</legend>
  <label><input type="checkbox" name="notify" value="email" checked> Email</label>
  <label><input type="checkbox" name="notify" value="sms"> SMS</label>
  <label><input type="checkbox" name="notify" value="push"> Push</label>
</fieldset>""",
    "radio-group": """\
<fieldset>
  <legend>Shipping speed</legend>
  <label><input type="radio" name="shipping" value="standard" checked> Standard</label>
  <label><input type="radio" name="shipping" value="express"> Express</label>
  <label><input type="radio" name="shipping" value="overnight"> Overnight</label>
</fieldset>""",
    "loading-button": """\
<button type="button" id="submit-order">
  <span class="spinner" aria-hidden="true" hidden></span>Submit order
</button>
<p role="status" id="order-status"></p>
<script>
(() => {
  const button = document.getElementById("submit-order");
  button.addEventListener("click", () => {
    if (button.getAttribute("aria-busy") === "true") return;
    button.setAttribute("aria-busy", "true");
    button.setAttribute("aria-disabled", "true");
    button.querySelector(".spinner").hidden = false;
    document.getElementById("order-status").textContent = "Submitting order";
  });
})();
</script>""",
    "disabled-button": """\
<label for="post-title">Post title</label>
<input type="text" id="post-title" name="title">
<button type="button" id="publish" aria-describedby="publish-hint" disabled>Publish</button>
<p id="publish-hint">Add a title to publish.</p>
<p role="status" id="publish-status"></p>
<script>
(() => {
  const title = document.getElementById("post-title");
  const publish = document.getElementById("publish");
  title.addEventListener("input", () => {
    publish.disabled = title.value.trim() === "";
  });
  publish.addEventListener("click", () => {
    document.getElementById("publish-status").textContent = "Published";
  });
})();
</script>""",
    "alert": """\
<div role="alert" id="payment-alert">
  <p>Payment failed: your card was declined.</p>
  <button type="button" id="dismiss-alert">Dismiss</button>
</div>
<script>
(() => {
  document.getElementById("dismiss-alert").addEventListener("click", () => {
    document.getElementById("payment-alert").hidden = true;
  });
})();
</script>""",
    "breadcrumb": """\
<nav aria-label="Breadcrumb">
  <ol class="breadcrumb">
    <li><a href="/">Home</a></li>
    <li><a href="/products">Products</a></li>
    <li><a href="/products/running-shoes" aria-current="page">Running shoes</a></li>
  </ol>
</nav>
<style>
.breadcrumb { display: flex; gap: 0.5rem; list-style: none; padding: 0; }
.breadcrumb li + li::before { content: "/"; margin-right: 0.5rem; }
</style>""",
    "search-field": """\
<form role="search" id="search-form">
  <label for="search-input">Search products</label>
  <input type="search" id="search-input" name="q">
  <button type="submit">Search</button>
</form>
<p role="status" id="search-status"></p>
<script>
(() => {
  const input = document.getElementById("search-input");
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    document.getElementById("search-status").textContent = `Results for "${input.value}"`;
  });
})();
</script>""",
}

DIV_SOUP: dict[str, str] = {
    "button": """\
<div class="btn" onclick="document.getElementById('msg').textContent = 'Saved'">Save changes</div>
<div id="msg"></div>""",
    "toggle-switch": """\
<div class="switch" onclick="this.classList.toggle('on')">Dark mode</div>
<style>.switch.on { font-weight: bold; }</style>""",
    "card": f"""\
<div class="card">
  <img src="{_SHOE_IMAGE}" width="160" height="96">
  <div class="title">Trail Running Shoes</div>
  <div>Lightweight shoes with a grippy sole for muddy trails.</div>
  <div class="price">$89</div>
  <div class="btn" onclick="this.nextElementSibling.textContent = 'Added to cart'">Add to cart</div>
  <div></div>
</div>""",
    "dialog": """\
<div class="btn" onclick="document.getElementById('dlg').style.display = 'block'">Delete file</div>
<div id="dlg" class="modal" style="display: none">
  <div class="title">Delete file?</div>
  <div>report.pdf will be deleted permanently.</div>
  <span onclick="document.getElementById('dlg').style.display = 'none'">Cancel</span>
  <span onclick="document.getElementById('dlg').style.display = 'none'">Delete</span>
</div>""",
    "tabs": """\
<div class="tabs">
  <span class="tab active" onclick="show(0)">Overview</span>
  <span class="tab" onclick="show(1)">Specs</span>
  <span class="tab" onclick="show(2)">Reviews</span>
  <div class="panel">A light trail shoe for long runs.</div>
  <div class="panel" style="display: none">Weight 260 g, drop 6 mm.</div>
  <div class="panel" style="display: none">4.6 out of 5 from 120 reviews.</div>
</div>
<script>
function show(n) {
  document.querySelectorAll(".panel").forEach((p, i) => { p.style.display = i === n ? "" : "none"; });
}
</script>""",
    "form-field-error": """\
<div class="field">
  <div>Email</div>
  <input type="text" value="not-an-email" class="invalid">
  <div class="error">Enter a valid email address</div>
</div>""",
    "nav-menu": """\
<div class="nav">
  <div class="btn" onclick="var l = document.getElementById('links'); l.style.display = l.style.display === 'none' ? '' : 'none'">Menu</div>
  <div id="links" style="display: none">
    <span onclick="location.hash = 'home'">Home</span>
    <span onclick="location.hash = 'products'">Products</span>
    <span onclick="location.hash = 'about'">About</span>
    <span onclick="location.hash = 'contact'">Contact</span>
  </div>
</div>""",
    "accordion": """\
<div class="accordion">
  <div class="q" onclick="toggle(this)">How long does shipping take?</div>
  <div class="a" style="display: none">Orders arrive in 3 to 5 business days.</div>
  <div class="q" onclick="toggle(this)">Can I return an item?</div>
  <div class="a" style="display: none">Yes, within 30 days of delivery.</div>
  <div class="q" onclick="toggle(this)">Do you ship internationally?</div>
  <div class="a" style="display: none">We ship to 40 countries.</div>
</div>
<script>
function toggle(q) {
  var a = q.nextElementSibling;
  a.style.display = a.style.display === "none" ? "" : "none";
}
</script>""",
    "checkbox-group": """\
<div class="group">
  <div>Notifications</div>
  <div class="check checked" onclick="this.classList.toggle('checked')">Email</div>
  <div class="check" onclick="this.classList.toggle('checked')">SMS</div>
  <div class="check" onclick="this.classList.toggle('checked')">Push</div>
</div>""",
    "radio-group": """\
<div class="group">
  <div>Shipping speed</div>
  <div class="radio selected" onclick="pick(this)">Standard</div>
  <div class="radio" onclick="pick(this)">Express</div>
  <div class="radio" onclick="pick(this)">Overnight</div>
</div>
<script>
function pick(el) {
  document.querySelectorAll(".radio").forEach((r) => r.classList.toggle("selected", r === el));
}
</script>""",
    "loading-button": """\
<div class="btn" onclick="this.classList.add('loading'); this.nextElementSibling.textContent = 'Submitting order'">Submit order</div>
<div></div>""",
    "disabled-button": """\
<div>Post title</div>
<input type="text">
<div class="btn disabled" onclick="document.getElementById('msg').textContent = 'Published'">Publish</div>
<div id="msg"></div>
<style>.btn.disabled { opacity: 0.5; }</style>""",
    "alert": """\
<div class="alert">
  Payment failed: your card was declined.
  <span class="close" onclick="this.parentNode.remove()">Dismiss</span>
</div>""",
    "breadcrumb": """\
<div class="crumbs">
  <span onclick="location.hash = 'home'">Home</span> &gt;
  <span onclick="location.hash = 'products'">Products</span> &gt;
  <span>Running shoes</span>
</div>""",
    "search-field": """\
<div class="search">
  <input type="text" placeholder="Search products">
  <div class="btn" onclick="document.getElementById('out').textContent = 'Results for \\u0022' + this.previousElementSibling.value + '\\u0022'">Search</div>
  <div id="out"></div>
</div>""",
}
