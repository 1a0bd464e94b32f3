/* Harbor Hotel: a booking form with accessible client-side validation and a confirmation page.
 *
 * Errors are shown the accessible way: aria-invalid on the field, the message linked with
 * aria-describedby, and a summary with role=alert. Attempts, the errors of each attempt and the
 * confirmed booking live in sessionStorage; window.__teachState() exposes them for task checks.
 */
(function () {
  "use strict";

  var ROOMS = [
    { id: "standard", name: "Standard", sleeps: 2, price: 120 },
    { id: "double", name: "Double", sleeps: 2, price: 150 },
    { id: "double-deluxe", name: "Double Deluxe", sleeps: 3, price: 190 },
    { id: "family-suite", name: "Family Suite", sleeps: 5, price: 260 },
  ];
  var MAX_NIGHTS = 14;
  var EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$/;
  var page = document.body.getAttribute("data-page");
  var currentErrors = [];

  function load(key, fallback) {
    try {
      var raw = window.sessionStorage.getItem("booking." + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }
  function save(key, value) {
    window.sessionStorage.setItem("booking." + key, JSON.stringify(value));
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
  function roomById(id) {
    return ROOMS.find(function (r) { return r.id === id; }) || null;
  }
  function parseDate(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || "");
    return m ? Date.UTC(+m[1], +m[2] - 1, +m[3]) : null;
  }
  function reference(values) {
    var text = [values.name, values.email, values.checkin, values.checkout, values.room,
      values.guests].join("|");
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return "HB-" + ("000000" + h.toString(36).toUpperCase()).slice(-6);
  }

  // -- the form ---------------------------------------------------------------------------
  function values(form) {
    var room = form.querySelector("input[name=room]:checked");
    return {
      name: form.name.value.trim(),
      email: form.email.value.trim(),
      checkin: form.checkin.value,
      checkout: form.checkout.value,
      guests: Number(form.guests.value),
      room: room ? room.value : null,
      requests: form.requests.value.trim(),
      terms: form.terms.checked,
    };
  }

  function validate(v) {
    var errors = [];
    function add(field, message) { errors.push({ field: field, message: message }); }
    if (v.name.length < 2) add("name", "Enter your full name");
    if (!v.email) add("email", "Enter your email address");
    else if (!EMAIL.test(v.email)) add("email", "Enter a valid email address, like name@example.com");
    var ci = parseDate(v.checkin);
    var co = parseDate(v.checkout);
    if (ci === null) add("checkin", "Enter a check-in date");
    if (co === null) add("checkout", "Enter a check-out date");
    if (ci !== null && co !== null) {
      var nights = Math.round((co - ci) / 86400000);
      if (nights <= 0) add("checkout", "Check-out must be after check-in");
      else if (nights > MAX_NIGHTS) add("checkout", "Stays are limited to " + MAX_NIGHTS + " nights");
    }
    var room = roomById(v.room);
    if (!room) add("room", "Choose a room type");
    else if (v.guests > room.sleeps) {
      add("guests", "A " + room.name + " room sleeps at most " + room.sleeps +
        " guests. Choose a larger room or fewer guests.");
    }
    if (!v.terms) add("terms", "You must accept the terms and conditions to book");
    return errors;
  }

  function fieldsOf(form, field) {
    if (field === "room") return Array.prototype.slice.call(form.querySelectorAll("input[name=room]"));
    return [form.elements[field]];
  }

  function clearField(form, field) {
    fieldsOf(form, field).forEach(function (input) { input.removeAttribute("aria-invalid"); });
    var error = document.getElementById(field + "-error");
    error.textContent = "";
    error.hidden = true;
  }

  function showErrors(form, errors) {
    ["name", "email", "checkin", "checkout", "guests", "room", "terms"].forEach(function (f) {
      clearField(form, f);
    });
    var summary = document.getElementById("error-summary");
    summary.textContent = "";
    if (!errors.length) {
      summary.hidden = true;
      return;
    }
    errors.forEach(function (e) {
      fieldsOf(form, e.field).forEach(function (input) {
        input.setAttribute("aria-invalid", "true");
      });
      var box = document.getElementById(e.field + "-error");
      box.textContent = e.message;
      box.hidden = false;
    });
    summary.appendChild(el("h2", {
      id: "summary-title",
      text: errors.length === 1 ? "There is a problem with your booking" :
        "There are " + errors.length + " problems with your booking",
    }));
    var list = el("ul");
    errors.forEach(function (e) {
      var target = e.field === "room" ? "room-" + ROOMS[0].id : e.field;
      list.appendChild(el("li", {}, [el("a", { href: "#" + target, text: e.message })]));
    });
    summary.appendChild(list);
    summary.hidden = false;
    summary.focus();
  }

  function renderForm() {
    var form = document.getElementById("booking");
    var rooms = document.getElementById("rooms");
    ROOMS.forEach(function (r) {
      var id = "room-" + r.id;
      rooms.appendChild(el("div", { class: "room" }, [
        el("input", { type: "radio", name: "room", id: id, value: r.id,
          "aria-describedby": id + "-info" }),
        " ",
        el("label", { for: id, text: r.name }),
        el("small", { id: id + "-info",
          text: "Sleeps " + r.sleeps + " \u00b7 $" + r.price + " per night" }),
      ]));
    });
    ["name", "email", "checkin", "checkout", "guests", "requests", "terms"].forEach(function (f) {
      var input = form.elements[f];
      var clear = function () { if (f !== "requests") clearField(form, f); };
      input.addEventListener("input", clear);
      input.addEventListener("change", clear);
    });
    form.querySelectorAll("input[name=room]").forEach(function (input) {
      input.addEventListener("change", function () { clearField(form, "room"); });
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var v = values(form);
      var errors = validate(v);
      save("attempts", load("attempts", 0) + 1);
      var history = load("errorHistory", []);
      history.push(errors.map(function (e) { return e.field; }));
      save("errorHistory", history);
      currentErrors = errors;
      showErrors(form, errors);
      if (errors.length) return;
      var room = roomById(v.room);
      var nights = Math.round((parseDate(v.checkout) - parseDate(v.checkin)) / 86400000);
      var booking = {
        name: v.name, email: v.email, checkin: v.checkin, checkout: v.checkout,
        guests: v.guests, room: v.room, roomName: room.name, nights: nights,
        total: nights * room.price, requests: v.requests,
      };
      booking.reference = reference(booking);
      save("confirmed", booking);
      window.location.href = "confirmation.html";
    });
  }

  // -- the confirmation -------------------------------------------------------------------
  function renderConfirmation() {
    var box = document.getElementById("confirmation");
    var b = load("confirmed", null);
    if (!b) {
      box.appendChild(el("h1", { text: "No booking yet" }));
      box.appendChild(el("p", {}, [el("a", { href: "index.html", text: "Book a room" })]));
      document.title = "No booking yet \u2013 Harbor Hotel";
      return;
    }
    box.appendChild(el("h1", { text: "Booking confirmed" }));
    box.appendChild(el("p", { role: "status", text: "Your booking reference is " + b.reference + "." }));
    var rows = [
      ["Name", b.name], ["Email", b.email], ["Check-in", b.checkin], ["Check-out", b.checkout],
      ["Nights", String(b.nights)], ["Guests", String(b.guests)], ["Room", b.roomName],
      ["Total", "$" + b.total],
    ];
    var dl = el("dl", { "aria-label": "Booking details" });
    rows.forEach(function (r) {
      dl.appendChild(el("dt", { text: r[0] }));
      dl.appendChild(el("dd", { text: r[1] }));
    });
    box.appendChild(dl);
    box.appendChild(el("p", {}, [el("a", { href: "index.html", text: "Make another booking" })]));
  }

  window.__teachState = function () {
    var form = document.getElementById("booking");
    var history = load("errorHistory", []);
    var seen = [];
    history.forEach(function (fields) {
      fields.forEach(function (f) { if (seen.indexOf(f) === -1) seen.push(f); });
    });
    return {
      site: "booking",
      page: page,
      attempts: load("attempts", 0),
      errors: currentErrors,
      errorHistory: history,
      errorFields: seen,
      values: form ? values(form) : null,
      confirmed: load("confirmed", null),
    };
  };

  if (page === "form") renderForm();
  if (page === "confirmation") renderConfirmation();
})();
